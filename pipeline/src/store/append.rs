//! Appends over any backend: the expected-version check, dedupe of stored event ids, and
//! version planning (each event at its stream's next version, gap-free).

use super::backend::{Backend, EventRow, EventSql, Res, Scope, Tx, Work};
use super::derive::{derive, Derived, Derivers};
use super::state_cache::{FoldedState, StateCache};
use super::{ExpectedVersion, StoreError};
use crate::event::NewEvent;
use std::collections::{HashMap, HashSet};
use uuid::Uuid;

/// Appends `events` to their stream after checking `expected` against the first one's
/// stream.
pub(super) async fn append_checked<B: Backend>(
    b: &B,
    expected: ExpectedVersion,
    events: &[NewEvent],
    created_by: &str,
) -> Res<Vec<i64>> {
    let Some(first) = events.first() else {
        return Ok(Vec::new());
    };
    let mut tx = b
        .begin(Scope::Tenant(&first.tenant_id), Work::Atomic)
        .await?;
    if expected != ExpectedVersion::Any {
        tx.lock_appends().await?;
        let heads = tx.stream_heads(&[first.stream_id]).await?;
        let actual = heads.first().map_or(0, |&(_, v)| v);
        if !expected.admits(actual) {
            return Err(StoreError::Conflict {
                stream_id: first.stream_id,
                expected,
                actual,
            });
        }
    }
    let rows: Vec<(&NewEvent, &str)> = events.iter().map(|e| (e, created_by)).collect();
    let positions = append_events(&mut tx, &rows).await?;
    tx.commit().await?;
    Ok(events
        .iter()
        .filter_map(|e| positions.get(&e.event_id).copied())
        .collect())
}

/// Appends `events` (each with the component that wrote it) in order, each at its
/// stream's next version; returns the global position of each appended event id.
///
/// Replay-safe: an event whose id is already stored (the same source mapped again, e.g.
/// a later version of a FHIR resource that repeats earlier events) is skipped, not an
/// error, and takes no version; so is a repeat of an id within `events`.
pub(super) async fn append_events<T: Tx>(
    tx: &mut T,
    events: &[(&NewEvent, &str)],
) -> Res<HashMap<Uuid, i64>> {
    Ok(append_deriving(tx, events, &Derivers::new(), None)
        .await?
        .positions)
}

/// What an append wrote: the global position of each appended event id, and the
/// positions of the events plugins derived, by the inbound message they came from (a
/// message's outcome counts them with its own).
#[derive(Debug, Default)]
pub(crate) struct Appended {
    pub(crate) positions: HashMap<Uuid, i64>,
    pub(crate) derived: HashMap<Uuid, Vec<i64>>,
    /// The folded states of the streams the rules read, at their new heads: for the
    /// [`StateCache`] once the unit of work has committed.
    pub(crate) states: HashMap<Uuid, FoldedState>,
}

/// [`append_events`], with the plugins' stateful rules of `derivers` run over the new
/// events: each derived event is appended right after the event it derives from, by the
/// same writer ([`super::derive`]), onto the states `cache` holds where they are current.
pub(super) async fn append_deriving<T: Tx>(
    tx: &mut T,
    events: &[(&NewEvent, &str)],
    derivers: &Derivers<'_>,
    cache: Option<&StateCache>,
) -> Res<Appended> {
    if events.is_empty() {
        return Ok(Appended::default());
    }
    tx.lock_appends().await?;
    let ids: Vec<Uuid> = events.iter().map(|(e, _)| e.event_id).collect();
    let mut seen: HashSet<Uuid> = tx.stored_event_ids(&ids).await?.into_iter().collect();
    let events: Vec<&(&NewEvent, &str)> = events
        .iter()
        .filter(|(e, _)| seen.insert(e.event_id))
        .collect();
    if events.is_empty() {
        return Ok(Appended::default());
    }
    // With plugins, each derived event goes right after its trigger; without, none is
    // looked for.
    let Derived {
        events: derived,
        mut states,
        heads,
    } = match derivers.is_empty() {
        true => Derived::default(),
        false => {
            let new: Vec<&NewEvent> = events.iter().map(|(e, _)| *e).collect();
            derive(tx, &new, derivers, cache).await?
        }
    };
    let mut ordered: Vec<(&NewEvent, &str)> = Vec::with_capacity(events.len());
    for (i, &&(event, by)) in events.iter().enumerate() {
        ordered.push((event, by));
        if let Some(more) = derived.get(i) {
            ordered.extend(
                more.iter()
                    .filter(|d| seen.insert(d.event_id))
                    .map(|d| (d, by)),
            );
        }
    }
    let events = ordered;
    let mut streams: Vec<Uuid> = events.iter().map(|(e, _)| e.stream_id).collect();
    streams.sort_unstable();
    streams.dedup();
    // Heads the rules read already are not read again.
    let unread: Vec<Uuid> = streams
        .into_iter()
        .filter(|s| !heads.contains_key(s))
        .collect();
    let mut version = heads;
    if !unread.is_empty() {
        version.extend(tx.stream_heads(&unread).await?);
    }
    let rows: Vec<EventRow<'_>> = events
        .iter()
        .map(|&(event, created_by)| {
            let v = version.entry(event.stream_id).or_insert(0);
            *v += 1;
            EventRow {
                event,
                version: *v,
                created_by,
            }
        })
        .collect();
    // A folded state is kept only if it is exactly the stream's new head (a derived event
    // skipped as a repeat would make it differ).
    states.retain(|stream, s| version.get(stream).copied().unwrap_or(0) == s.version);
    let positions: HashMap<Uuid, i64> = tx.insert_events(&rows).await?.into_iter().collect();
    let mut by_message: HashMap<Uuid, Vec<i64>> = HashMap::new();
    for d in derived.iter().flatten() {
        if let (Some(message), Some(&at)) = (d.message_id, positions.get(&d.event_id)) {
            by_message.entry(message).or_default().push(at);
        }
    }
    Ok(Appended {
        positions,
        derived: by_message,
        states,
    })
}
