//! Dead-letter replay, the part both stores share: a claimed letter's raw message is
//! mapped again, as it was received (same id, tenant, channel and receipt time), so the
//! replayed events get the ids they would have had the first time.

use super::{Remap, Replayed};
use crate::event::NewEvent;
use crate::message::{Format, RawMessage};
use crate::pipeline::Disposition;
use chrono::{DateTime, Utc};
use uuid::Uuid;

/// A dead letter claimed by a replay, with its inbound message.
pub(super) struct Claimed {
    pub id: Uuid,
    pub tenant: Option<String>,
    pub channel: String,
    pub format: Format,
    pub raw: Vec<u8>,
    pub received_at: DateTime<Utc>,
}

/// The stored `format` column's value.
pub(super) fn format(name: String) -> Result<Format, sqlx::Error> {
    Format::from_name(&name).ok_or_else(|| sqlx::Error::Decode("unknown inbound format".into()))
}

/// Maps every claimed letter again; returns each one's result and its events.
pub(super) fn remap_all(claimed: Vec<Claimed>, remap: &Remap) -> Vec<(Replayed, Vec<NewEvent>)> {
    claimed
        .into_iter()
        .map(|c| {
            let raw = RawMessage {
                id: c.id,
                tenant: c.tenant,
                format: c.format,
                channel: c.channel,
                bytes: c.raw,
                received_at: c.received_at,
            };
            match remap(raw).disposition {
                Disposition::Events(events) => (
                    Replayed {
                        id: c.id,
                        events: events.len(),
                        appended: 0,
                        still_failing: None,
                    },
                    events,
                ),
                Disposition::DeadLetter { rejection, .. } => (
                    Replayed {
                        id: c.id,
                        events: 0,
                        appended: 0,
                        still_failing: Some(rejection.reason.code().to_string()),
                    },
                    Vec::new(),
                ),
            }
        })
        .collect()
}

/// The events to append for `results`, as (event, created_by) rows.
pub(super) fn event_rows(results: &[(Replayed, Vec<NewEvent>)]) -> Vec<(&NewEvent, String)> {
    results
        .iter()
        .flat_map(|(_, events)| events.iter().map(|e| (e, REPLAY_CREATED_BY.to_string())))
        .collect()
}

/// Counts what was appended (`positions` holds the appended event ids) and returns the
/// results and the ids of the letters that now map (to be marked replayed).
pub(super) fn finish(
    results: Vec<(Replayed, Vec<NewEvent>)>,
    positions: &std::collections::HashMap<Uuid, i64>,
) -> (Vec<Replayed>, Vec<Uuid>) {
    let mut replayed = Vec::new();
    let results = results
        .into_iter()
        .map(|(mut r, events)| {
            if r.still_failing.is_none() {
                r.appended = events
                    .iter()
                    .filter(|e| positions.contains_key(&e.event_id))
                    .count();
                replayed.push(r.id);
            }
            r
        })
        .collect();
    (results, replayed)
}

/// Which component appends replayed events.
pub(super) const REPLAY_CREATED_BY: &str = "intake/replay";
