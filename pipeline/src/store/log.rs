//! The event log over any backend: group commit of processed messages (with its
//! one-by-one fallback), dedupe of idempotency keys and of stored event ids, version
//! planning, and appends checked against an expected version.

use super::append::{append_checked, append_deriving};
use super::backend::{
    retry, Backend, DeadLetterRow, DeadLetterSql, EventSql, InboundRow, MessageSql, Res, Scope,
    StoredAnswer, Tx, Work,
};
use super::derive::derivers;
use super::messages::key_rows;
use super::{created_by, outcome, EventLog, EventQuery, ExpectedVersion, StoreError, Written};
use crate::event::{EventEnvelope, NewEvent};
use crate::hl7::ack::AckCode;
use crate::message::IdempotencyKey;
use crate::outcome::Outcome;
use crate::pipeline::{Disposition, Processed};
use std::collections::{HashMap, HashSet};
use uuid::Uuid;

#[async_trait::async_trait]
impl<B: Backend> EventLog for B {
    async fn commit_batch(&self, batch: &[Processed]) -> Res<Vec<Res<Outcome>>> {
        match retry(|| commit_all(self, batch)).await {
            Ok(outcomes) => Ok(outcomes.into_iter().map(Ok).collect()),
            Err(e) if batch.len() == 1 => Ok(vec![Err(e)]),
            Err(e) => {
                // Something in the batch failed and the whole transaction rolled back.
                // Commit each message on its own so that only the culprit fails.
                tracing::warn!(
                    batch = batch.len(),
                    code = e.code(),
                    "batch failed; committing messages one by one"
                );
                let mut results = Vec::with_capacity(batch.len());
                for p in batch {
                    let one = std::slice::from_ref(p);
                    let result = retry(|| commit_all(self, one)).await;
                    results.push(result.map(|mut o| o.remove(0)));
                }
                Ok(results)
            }
        }
    }

    async fn append(
        &self,
        expected: ExpectedVersion,
        events: &[NewEvent],
        created_by: &str,
    ) -> Res<Vec<i64>> {
        retry(|| append_checked(self, expected, events, created_by)).await
    }

    async fn read_events(&self, query: &EventQuery) -> Res<Vec<EventEnvelope>> {
        let mut tx = self
            .begin(Scope::of(query.tenant.as_deref()), Work::Single)
            .await?;
        let events = tx.select_events(query).await?;
        tx.commit().await?;
        Ok(events)
    }
}

/// Commits every message of `batch`, or none of them.
async fn commit_all<B: Backend>(b: &B, batch: &[Processed]) -> Res<Vec<Outcome>> {
    let mut tx = b.begin(Scope::All, Work::Atomic).await?;
    let inserted: HashSet<Uuid> = tx
        .insert_inbound(&inbound_rows(batch))
        .await?
        .into_iter()
        .collect();
    let fresh: Vec<&Processed> = batch
        .iter()
        .filter(|p| inserted.contains(&p.raw.id))
        .collect();
    let writers: Vec<String> = fresh.iter().map(|p| created_by(p)).collect();
    let events: Vec<(&NewEvent, &str)> = fresh
        .iter()
        .zip(&writers)
        .flat_map(|(p, by)| events_of(p).iter().map(move |e| (e, by.as_str())))
        .collect();
    let derivers = derivers(fresh.iter().filter_map(|p| p.mapped_by.as_deref()));
    let mut appended = append_deriving(&mut tx, &events, &derivers, Some(b.state_cache())).await?;
    let states = std::mem::take(&mut appended.states);
    let keys: Vec<_> = fresh
        .iter()
        .flat_map(|p| key_rows(p.raw.id, events_of(p)))
        .collect();
    if !keys.is_empty() {
        tx.insert_message_keys(&keys).await?;
    }
    let dead = dead_letter_rows(&fresh);
    if !dead.is_empty() {
        tx.insert_dead_letters(&dead).await?;
    }
    let answers = stored_answers(&mut tx, batch, &inserted).await?;
    // A resend of a dead-lettered message counts as one more attempt on its letter.
    for p in batch.iter().filter(|p| !inserted.contains(&p.raw.id)) {
        let Some(key) = p.key.as_ref().map(key_columns) else {
            continue;
        };
        let first = answers.get(&key.map(String::from));
        if first.is_some_and(|a| a.reason_code.is_some()) {
            tx.count_resend(key).await?;
        }
    }
    let outcomes = batch
        .iter()
        .map(|p| {
            let written = if inserted.contains(&p.raw.id) {
                Written::New(&appended)
            } else {
                let key = p.key.as_ref().map(|k| key_columns(k).map(String::from));
                let first = key.and_then(|k| answers.get(&k));
                Written::Duplicate(first.ok_or(StoreError::IdCollision(p.raw.id))?)
            };
            Ok(outcome(p, written))
        })
        .collect::<Res<Vec<_>>>()?;
    tx.commit().await?;
    b.state_cache().put(states);
    Ok(outcomes)
}

/// The events a processed message appends (none for a dead letter).
fn events_of(p: &Processed) -> &[NewEvent] {
    match &p.disposition {
        Disposition::Events(events) => events,
        Disposition::DeadLetter { .. } | Disposition::Filtered(_) => &[],
    }
}

/// The inbound rows of `batch`, in idempotency-key order: two instances inserting
/// overlapping keys then wait on each other in one order, never in a cycle. The sort is
/// stable, so of two copies in one batch the first is stored and the second is its
/// duplicate.
fn inbound_rows(batch: &[Processed]) -> Vec<InboundRow<'_>> {
    let mut order: Vec<&Processed> = batch.iter().collect();
    order.sort_by_key(|p| {
        p.key
            .as_ref()
            .map(|k| (&k.tenant, &k.sending_facility, &k.control_id))
    });
    order
        .into_iter()
        .map(|p| {
            let (outcome, ack, reason_code, event_count) = match &p.disposition {
                Disposition::Events(ev) => ("stored", AckCode::Accept, None, ev.len() as i32),
                Disposition::Filtered(_) => ("filtered", AckCode::Accept, None, 0),
                Disposition::DeadLetter { rejection, ack } => {
                    ("dead_lettered", *ack, Some(rejection.reason.code()), 0)
                }
            };
            let detail = match &p.disposition {
                Disposition::Filtered(f) => Some(f.reason.as_str()),
                _ => None,
            };
            InboundRow {
                id: p.raw.id,
                tenant: p.tenant.as_deref(),
                sending_facility: p.key.as_ref().map(|k| k.sending_facility.as_str()),
                control_id: p.key.as_ref().map(|k| k.control_id.as_str()),
                channel: &p.raw.channel,
                message_type: p.message_type.as_deref(),
                format: p.raw.format.as_str(),
                raw: &p.raw.bytes,
                received_at: p.raw.received_at,
                outcome,
                ack: ack.as_letter(),
                reason_code,
                event_count,
                detail,
            }
        })
        .collect()
}

/// The dead-letter rows of the new messages that are dead letters.
fn dead_letter_rows<'a>(fresh: &[&'a Processed]) -> Vec<DeadLetterRow<'a>> {
    fresh
        .iter()
        .filter_map(|p| match &p.disposition {
            Disposition::DeadLetter { rejection, .. } => Some(DeadLetterRow {
                id: p.raw.id,
                tenant: p.tenant.as_deref(),
                stage: rejection.reason.stage().as_str(),
                reason_code: rejection.reason.code(),
                detail: rejection.detail.as_deref(),
            }),
            Disposition::Events(_) | Disposition::Filtered(_) => None,
        })
        .collect()
}

/// The first copy's stored answer of each message of `batch` that was not inserted, by
/// idempotency key (one statement for the whole batch).
async fn stored_answers<T: Tx>(
    tx: &mut T,
    batch: &[Processed],
    inserted: &HashSet<Uuid>,
) -> Res<HashMap<[String; 3], StoredAnswer>> {
    let keys: Vec<[&str; 3]> = batch
        .iter()
        .filter(|p| !inserted.contains(&p.raw.id))
        .filter_map(|p| p.key.as_ref().map(key_columns))
        .collect();
    if keys.is_empty() {
        return Ok(HashMap::new());
    }
    let answers = tx.stored_answers(&keys).await?.into_iter().map(|a| {
        let key = [&a.tenant_id, &a.sending_facility, &a.control_id].map(String::clone);
        (key, a)
    });
    Ok(answers.collect())
}

/// An idempotency key as its columns: tenant, sending facility, control id.
fn key_columns(k: &IdempotencyKey) -> [&str; 3] {
    [&k.tenant, &k.sending_facility, &k.control_id]
}
