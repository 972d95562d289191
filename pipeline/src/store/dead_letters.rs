//! Dead letters over any backend. Replay claims letters (claim → remap → append → mark,
//! in one unit of work); a claimed letter's raw message is mapped again as it was received
//! (same id, tenant, channel and receipt time), so the replayed events get the ids they
//! would have had the first time.

use super::append::append_events;
use super::backend::{retry, Backend, ClaimedLetter, DeadLetterSql, Res, Scope, Tx, Work};
use super::{DeadLetter, DeadLetterFilter, DeadLetters, Remap, Replayed};
use crate::event::NewEvent;
use crate::message::{Format, RawMessage};
use crate::pipeline::Disposition;
use std::collections::HashMap;
use uuid::Uuid;

/// Which component appends replayed events.
const REPLAY_CREATED_BY: &str = "intake/replay";

#[async_trait::async_trait]
impl<B: Backend> DeadLetters for B {
    async fn dead_letters(&self, tenant: Option<&str>) -> Res<Vec<DeadLetter>> {
        let mut tx = self.begin(Scope::of(tenant), Work::Single).await?;
        let letters = tx.list_dead_letters(tenant).await?;
        tx.commit().await?;
        Ok(letters)
    }

    async fn dead_letter_message(&self, tenant: Option<&str>, id: Uuid) -> Res<Option<Vec<u8>>> {
        let mut tx = self.begin(Scope::of(tenant), Work::Single).await?;
        let raw = tx.dead_letter_raw(tenant, id).await?;
        tx.commit().await?;
        Ok(raw)
    }

    async fn replay_dead_letters(
        &self,
        filter: &DeadLetterFilter,
        remap: &Remap,
        dry_run: bool,
    ) -> Res<Vec<Replayed>> {
        retry(|| replay(self, filter, remap, dry_run)).await
    }

    async fn discard_dead_letters(&self, filter: &DeadLetterFilter) -> Res<Vec<Uuid>> {
        let scope = Scope::of(filter.tenant.as_deref());
        let mut tx = self.begin(scope, Work::Claim).await?;
        let ids = tx.discard_letters(filter).await?;
        tx.commit().await?;
        Ok(ids)
    }
}

/// One try of a replay.
async fn replay<B: Backend>(
    b: &B,
    filter: &DeadLetterFilter,
    remap: &Remap,
    dry_run: bool,
) -> Res<Vec<Replayed>> {
    let mut tx = b
        .begin(Scope::of(filter.tenant.as_deref()), Work::Claim)
        .await?;
    let claimed = tx.claim_dead_letters(filter).await?;
    let results = remap_all(claimed, remap);
    if dry_run {
        tx.rollback().await?;
        return Ok(results.into_iter().map(|(r, _)| r).collect());
    }
    let rows: Vec<(&NewEvent, &str)> = results
        .iter()
        .flat_map(|(_, events)| events.iter().map(|e| (e, REPLAY_CREATED_BY)))
        .collect();
    let positions = append_events(&mut tx, &rows).await?;
    let (results, replayed) = finish(results, &positions);
    if !replayed.is_empty() {
        tx.mark_replayed(&replayed).await?;
    }
    tx.commit().await?;
    Ok(results)
}

/// Maps every claimed letter again; returns each one's result and its events.
fn remap_all(claimed: Vec<ClaimedLetter>, remap: &Remap) -> Vec<(Replayed, Vec<NewEvent>)> {
    claimed
        .into_iter()
        .map(|c| {
            let raw = RawMessage {
                id: c.id,
                tenant: c.tenant_id,
                // The column is written from `Format::as_str` and defaults to `hl7v2`.
                format: Format::from_name(&c.format).unwrap_or(Format::Hl7v2),
                channel: c.channel,
                bytes: c.raw,
                received_at: c.received_at,
            };
            match remap(raw).disposition {
                // A letter that the fixed mapping now ignores is resolved without events.
                Disposition::Filtered(_) => (
                    Replayed {
                        id: c.id,
                        events: 0,
                        appended: 0,
                        still_failing: None,
                    },
                    Vec::new(),
                ),
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

/// Counts what was appended (`positions` holds the appended event ids) and returns the
/// results and the ids of the letters that now map (to be marked replayed).
fn finish(
    results: Vec<(Replayed, Vec<NewEvent>)>,
    positions: &HashMap<Uuid, i64>,
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
