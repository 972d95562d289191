//! Point-in-time state of a stream: the fold of its events ([`crate::mapping::fold`]) up
//! to an instant, on one of two clocks.
//!
//! - **Effective** (`as_of`): the events that *happened* by then, by their own time
//!   (`metadata.effective_at`), folded in that order. A late message (an A02 sent an hour
//!   after the transfer) changes the answer for every instant after its effective time.
//! - **Recorded** (`as_recorded`): what the store *knew* by then: the events committed by
//!   then, folded in commit order. A late message changes nothing before its arrival.
//!
//! Without an instant, the state is the fold of every stored event, in commit order:
//! what the plugins' rules read.

use crate::event::EventEnvelope;
use crate::mapping::catalogue::Catalogue;
use crate::store::{EventLog, EventQuery, StoreError};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::{Map, Value};
use uuid::Uuid;

/// Which clock a point-in-time query cuts by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Clock {
    /// The events' own time (`as_of`).
    Effective,
    /// The store's commit time (`as_recorded`).
    Recorded,
}

/// An instant on a clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct At {
    /// The clock.
    pub clock: Clock,
    /// The instant.
    pub time: DateTime<Utc>,
}

/// A stream's state at an instant.
#[derive(Debug, Clone, Serialize)]
pub struct StreamState {
    /// The stream.
    pub stream_id: Uuid,
    /// Its type, when it has events.
    pub stream_type: Option<String>,
    /// The clock the answer uses (`effective` for `as_of`, `recorded` for `as_recorded`
    /// and for the current state).
    pub clock: Clock,
    /// The instant asked for (RFC 3339), or null for now.
    pub at: Option<String>,
    /// How many of the stream's events the state folds.
    pub events: usize,
    /// The highest stream version among them (0 when none).
    pub version: i64,
    /// The folded state: status, location, bed, attending, last results...
    pub state: Map<String, Value>,
}

/// The events of `stream_id` that count at `at`, in fold order.
pub fn cut<'e>(events: &'e [EventEnvelope], at: Option<At>) -> Vec<&'e EventEnvelope> {
    let mut kept: Vec<&EventEnvelope> = match at {
        None => events.iter().collect(),
        Some(At {
            clock: Clock::Recorded,
            time,
        }) => events.iter().filter(|e| e.recorded_at() <= time).collect(),
        Some(At {
            clock: Clock::Effective,
            time,
        }) => events.iter().filter(|e| e.effective_at() <= time).collect(),
    };
    match at.map(|a| a.clock) {
        Some(Clock::Effective) => kept.sort_by_key(|e| (e.effective_at(), e.global_position)),
        _ => kept.sort_by_key(|e| e.global_position),
    }
    kept
}

/// Folds `events` (one stream's, in fold order) by `catalogue`.
pub fn fold<'e>(
    catalogue: &Catalogue,
    events: impl IntoIterator<Item = &'e EventEnvelope>,
) -> Map<String, Value> {
    let mut state = Map::new();
    for e in events {
        let at = e
            .effective_at()
            .to_rfc3339_opts(SecondsFormat::Millis, true);
        catalogue.fold(&mut state, &e.event_type, &e.data, &at);
    }
    state
}

/// The state of a stream from its events (any order) at `at`.
pub fn state_at(
    catalogue: &Catalogue,
    stream_id: Uuid,
    events: &[EventEnvelope],
    at: Option<At>,
) -> StreamState {
    state_of(catalogue, stream_id, events, &cut(events, at), at)
}

/// The state folded from `kept` (the cut of `events` at `at`).
fn state_of(
    catalogue: &Catalogue,
    stream_id: Uuid,
    events: &[EventEnvelope],
    kept: &[&EventEnvelope],
    at: Option<At>,
) -> StreamState {
    StreamState {
        stream_id,
        stream_type: events.first().map(|e| e.stream_type.clone()),
        clock: at.map_or(Clock::Recorded, |a| a.clock),
        at: at.map(|a| a.time.to_rfc3339_opts(SecondsFormat::Millis, true)),
        events: kept.len(),
        version: kept.iter().map(|e| e.event_version).max().unwrap_or(0),
        state: fold(catalogue, kept.iter().copied()),
    }
}

/// The answer to a stream query (CLI and API alike): the stream, its state at `at`
/// and the events that state folds, in fold order.
pub fn describe(
    catalogue: &Catalogue,
    stream_id: Uuid,
    events: &[EventEnvelope],
    at: Option<At>,
) -> Value {
    let kept = cut(events, at);
    let state = state_of(catalogue, stream_id, events, &kept, at);
    serde_json::json!({
        "stream_id": stream_id,
        "stream_type": state.stream_type,
        "version": state.version,
        "clock": state.clock,
        "at": state.at,
        "state": state.state,
        "events": kept,
    })
}

/// Every event of one stream of `tenant`, in global order (read page by page).
pub async fn read_stream(
    log: &dyn EventLog,
    tenant: &str,
    stream_id: Uuid,
) -> Result<Vec<EventEnvelope>, StoreError> {
    const PAGE: i64 = 1000;
    let mut events = Vec::new();
    let mut after = 0;
    loop {
        let q = EventQuery {
            tenant: Some(tenant.to_string()),
            stream_id: Some(stream_id),
            after,
            limit: PAGE,
        };
        let page = log.read_events(&q).await?;
        let full = page.len() as i64 == PAGE;
        after = page.last().map_or(after, |e| e.global_position);
        events.extend(page);
        if !full {
            return Ok(events);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(pos: i64, ty: &str, data: Value, effective: &str, recorded: &str) -> EventEnvelope {
        EventEnvelope {
            event_id: Uuid::nil(),
            stream_id: Uuid::nil(),
            stream_type: "Admission".into(),
            event_type: ty.into(),
            event_version: pos,
            tenant_id: "t".into(),
            data,
            metadata: json!({"effective_at": effective}),
            created_at: recorded.into(),
            created_by: "test".into(),
            global_position: pos,
        }
    }

    fn at(clock: Clock, t: &str) -> Option<At> {
        let time = DateTime::parse_from_rfc3339(t).unwrap().to_utc();
        Some(At { clock, time })
    }

    /// An admission at 08:00, a transfer to W2 at 10:00, and a transfer to W3 that
    /// happened at 09:00 but arrived at 11:00.
    #[test]
    fn a_late_transfer_changes_as_of_but_not_as_recorded_before_it_arrived() {
        let c = Catalogue::shipped();
        let events = [
            event(
                1,
                "AdmissionCreated",
                json!({"patient_mrn": "M", "location": "W1", "bed": "1"}),
                "2026-01-01T08:00:00Z",
                "2026-01-01T08:00:01Z",
            ),
            event(
                2,
                "LocationChanged",
                json!({"patient_mrn": "M", "to_location": "W2", "to_bed": "2"}),
                "2026-01-01T10:00:00Z",
                "2026-01-01T10:00:01Z",
            ),
            event(
                3,
                "LocationChanged",
                json!({"patient_mrn": "M", "to_location": "W3", "to_bed": "3"}),
                "2026-01-01T09:00:00Z",
                "2026-01-01T11:00:00Z",
            ),
        ];
        let loc = |a| state_at(c, Uuid::nil(), &events, a).state["location"].clone();
        assert_eq!(loc(at(Clock::Effective, "2026-01-01T08:30:00Z")), "W1");
        assert_eq!(loc(at(Clock::Effective, "2026-01-01T09:30:00Z")), "W3");
        assert_eq!(
            loc(at(Clock::Effective, "2026-01-01T12:00:00Z")),
            "W2",
            "W2 happened last"
        );
        assert_eq!(loc(at(Clock::Recorded, "2026-01-01T09:30:00Z")), "W1");
        assert_eq!(loc(at(Clock::Recorded, "2026-01-01T10:30:00Z")), "W2");
        assert_eq!(
            loc(at(Clock::Recorded, "2026-01-01T11:30:00Z")),
            "W3",
            "W3 arrived last"
        );
        assert_eq!(loc(None), "W3");
        let s = state_at(
            c,
            Uuid::nil(),
            &events,
            at(Clock::Effective, "2026-01-01T07:00:00Z"),
        );
        assert_eq!((s.events, s.version, s.state.len()), (0, 0, 0));
    }
}
