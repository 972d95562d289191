//! Dead letters over any backend. Replay claims letters (claim → remap → append → mark,
//! in one unit of work); a claimed letter's raw message is mapped again as it was received
//! (same id, tenant, channel and receipt time), so the replayed events get the ids they
//! would have had the first time. A preview reads and maps without claiming: it takes no
//! lock and changes nothing. Replays and discards append their audit events in their own
//! transaction.

use super::append::{append_deriving, append_events};
use super::backend::{
    retry, Backend, ClaimedLetter, DeadLetterSql, EventSql, MessageSql, Res, Scope, Tx, Work,
};
use super::derive::derivers;
use super::messages::key_rows;
use super::{DeadLetter, DeadLetterFilter, DeadLetters, Preview, Remap, Replayed, StoredRaw};
use crate::audit::{audit_event, Actor, AuditAction, AUDIT_CREATED_BY, UNROUTED_TENANT};
use crate::event::NewEvent;
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

    async fn dead_letter_message(&self, tenant: Option<&str>, id: Uuid) -> Res<Option<StoredRaw>> {
        let mut tx = self.begin(Scope::of(tenant), Work::Single).await?;
        let raw = tx.dead_letter_raw(tenant, id).await?;
        tx.commit().await?;
        Ok(raw.map(|r| r.into_stored()))
    }

    async fn preview_dead_letters(
        &self,
        filter: &DeadLetterFilter,
        remap: &Remap,
    ) -> Res<Vec<Preview>> {
        let mut tx = self
            .begin(Scope::of(filter.tenant.as_deref()), Work::Single)
            .await?;
        let letters = tx.select_letters(filter, false).await?;
        let (results, _) = remap_all(letters, remap);
        let ids: Vec<Uuid> = results.iter().flat_map(|(_, _, e)| ids_of(e)).collect();
        let stored = tx.stored_event_ids(&ids).await?;
        tx.commit().await?;
        Ok(results
            .into_iter()
            .map(|(r, _, events)| Preview {
                would_append: events
                    .iter()
                    .filter(|e| !stored.contains(&e.event_id))
                    .count(),
                id: r.id,
                still_failing: r.still_failing,
                events,
            })
            .collect())
    }

    async fn replay_dead_letters(
        &self,
        filter: &DeadLetterFilter,
        remap: &Remap,
        actor: &Actor,
    ) -> Res<Vec<Replayed>> {
        retry(|| replay(self, filter, remap, actor)).await
    }

    async fn discard_dead_letters(
        &self,
        filter: &DeadLetterFilter,
        actor: &Actor,
    ) -> Res<Vec<Uuid>> {
        retry(|| discard(self, filter, actor)).await
    }
}

/// The ids of `events`.
fn ids_of(events: &[NewEvent]) -> impl Iterator<Item = Uuid> + '_ {
    events.iter().map(|e| e.event_id)
}

/// One try of a discard: mark, then audit, in one unit of work.
async fn discard<B: Backend>(b: &B, filter: &DeadLetterFilter, actor: &Actor) -> Res<Vec<Uuid>> {
    let mut tx = b
        .begin(Scope::of(filter.tenant.as_deref()), Work::Claim)
        .await?;
    let discarded = tx.discard_letters(filter).await?;
    let audit = audit_per_tenant(
        AuditAction::DeadLettersDiscarded,
        actor,
        filter,
        discarded
            .iter()
            .map(|(id, t)| (*id, t.as_deref(), "discarded")),
    );
    append_audit(&mut tx, &audit).await?;
    tx.commit().await?;
    Ok(discarded.into_iter().map(|(id, _)| id).collect())
}

/// One try of a replay.
async fn replay<B: Backend>(
    b: &B,
    filter: &DeadLetterFilter,
    remap: &Remap,
    actor: &Actor,
) -> Res<Vec<Replayed>> {
    let mut tx = b
        .begin(Scope::of(filter.tenant.as_deref()), Work::Claim)
        .await?;
    let claimed = tx.select_letters(filter, true).await?;
    let (results, mapped_by) = remap_all(claimed, remap);
    let rows: Vec<(&NewEvent, &str)> = results
        .iter()
        .flat_map(|(_, _, events)| events.iter().map(|e| (e, REPLAY_CREATED_BY)))
        .collect();
    let derivers = derivers(mapped_by.iter().map(|t| t.as_ref()));
    let positions = append_deriving(&mut tx, &rows, &derivers, Some(b.state_cache()))
        .await?
        .positions;
    let keys: Vec<_> = results
        .iter()
        .flat_map(|(r, _, events)| key_rows(r.id, events))
        .collect();
    if !keys.is_empty() {
        tx.insert_message_keys(&keys).await?;
    }
    let (results, replayed) = finish(results, &positions);
    if !replayed.is_empty() {
        tx.mark_replayed(&replayed).await?;
    }
    let audit = audit_per_tenant(
        AuditAction::DeadLettersReplayed,
        actor,
        filter,
        results.iter().map(|(r, tenant)| {
            let outcome = match r.still_failing {
                None => "replayed",
                Some(_) => "still_failing",
            };
            (r.id, tenant.as_deref(), outcome)
        }),
    );
    append_audit(&mut tx, &audit).await?;
    tx.commit().await?;
    Ok(results.into_iter().map(|(r, _)| r).collect())
}

/// One audit event per tenant that `letters` (id, tenant, outcome) touch, with the ids and
/// the count of each outcome; none when there are no letters.
fn audit_per_tenant<'a>(
    action: AuditAction,
    actor: &Actor,
    filter: &DeadLetterFilter,
    letters: impl Iterator<Item = (Uuid, Option<&'a str>, &'static str)>,
) -> Vec<NewEvent> {
    let mut by_tenant: std::collections::BTreeMap<&str, (Vec<Uuid>, HashMap<&str, usize>)> =
        Default::default();
    for (id, tenant, outcome) in letters {
        let (ids, counts) = by_tenant
            .entry(tenant.unwrap_or(UNROUTED_TENANT))
            .or_default();
        ids.push(id);
        *counts.entry(outcome).or_default() += 1;
    }
    let now = chrono::Utc::now();
    by_tenant
        .into_iter()
        .map(|(tenant, (ids, counts))| {
            let details = serde_json::json!({"filter": filter, "counts": counts, "ids": ids});
            audit_event(action, actor, tenant, details, now)
        })
        .collect()
}

/// Appends audit events in the unit of work of the operation they record.
async fn append_audit<T: Tx>(tx: &mut T, events: &[NewEvent]) -> Res<()> {
    let rows: Vec<(&NewEvent, &str)> = events.iter().map(|e| (e, AUDIT_CREATED_BY)).collect();
    append_events(tx, &rows).await?;
    Ok(())
}

/// Maps every letter again; returns each one's result, tenant and events, and the
/// tenant versions that mapped them (whose plugins derive in the commit).
fn remap_all(
    letters: Vec<ClaimedLetter>,
    remap: &Remap,
) -> (
    Vec<(Replayed, Option<String>, Vec<NewEvent>)>,
    Vec<std::sync::Arc<crate::mapping::Tenant>>,
) {
    let mut mapped_by = Vec::new();
    let results = letters
        .into_iter()
        .map(|c| {
            let tenant = c.tenant_id.clone();
            let id = c.id;
            let raw = c.into_raw();
            let processed = remap(raw);
            mapped_by.extend(processed.mapped_by);
            let (replayed, events) = match processed.disposition {
                // A letter that the fixed mapping now ignores is resolved without events.
                Disposition::Filtered(_) => (
                    Replayed {
                        id,
                        events: 0,
                        appended: 0,
                        still_failing: None,
                    },
                    Vec::new(),
                ),
                Disposition::Events(events) => (
                    Replayed {
                        id,
                        events: events.len(),
                        appended: 0,
                        still_failing: None,
                    },
                    events,
                ),
                Disposition::DeadLetter { rejection, .. } => (
                    Replayed {
                        id,
                        events: 0,
                        appended: 0,
                        still_failing: Some(rejection.reason.code().to_string()),
                    },
                    Vec::new(),
                ),
            };
            (replayed, tenant, events)
        })
        .collect();
    (results, mapped_by)
}

/// Counts what was appended (`positions` holds the appended event ids) and returns the
/// results and the ids of the letters that now map (to be marked replayed).
fn finish(
    results: Vec<(Replayed, Option<String>, Vec<NewEvent>)>,
    positions: &HashMap<Uuid, i64>,
) -> (Vec<(Replayed, Option<String>)>, Vec<Uuid>) {
    let mut replayed = Vec::new();
    let results = results
        .into_iter()
        .map(|(mut r, tenant, events)| {
            if r.still_failing.is_none() {
                r.appended = events
                    .iter()
                    .filter(|e| positions.contains_key(&e.event_id))
                    .count();
                replayed.push(r.id);
            }
            (r, tenant)
        })
        .collect();
    (results, replayed)
}
