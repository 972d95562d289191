//! The plugins' rules that read stream state, run inside the commit (DESIGN §1 step 5).
//!
//! A rule such as "an A08 whose location differs from the visit's current location is a
//! move" needs the stream's state, and only the store knows it: the stream's stored
//! events and, in a group commit, the earlier events of the same batch. So the append
//! folds the streams that new trigger events go on, in commit order, under the append
//! lock that also plans their versions, and asks each tenant's plugins what the trigger
//! derives. Streams no rule looks at are not read at all, and a stream whose committed
//! state the [`StateCache`] holds at its stored head is not read either: the batch folds
//! onto that state.

use super::backend::{Res, Tx};
use super::state_cache::{FoldedState, StateCache};
use crate::event::NewEvent;
use crate::mapping::catalogue::Catalogue;
use crate::mapping::Tenant;
use serde_json::{Map, Value};
use std::collections::HashMap;
use uuid::Uuid;

/// The tenant versions whose plugins may derive, by tenant id.
pub(super) type Derivers<'a> = HashMap<&'a str, &'a Tenant>;

/// The tenants of `mapped_by` that enable a plugin, by id (the last version wins).
pub(super) fn derivers<'a>(mapped_by: impl Iterator<Item = &'a Tenant>) -> Derivers<'a> {
    mapped_by
        .filter(|t| !t.plugins.0.is_empty())
        .map(|t| (t.name.as_str(), t))
        .collect()
}

/// What the plugins' rules derived from a batch.
#[derive(Debug, Default)]
pub(super) struct Derived {
    /// For each new event (in append order), the events it derives.
    pub events: Vec<Vec<NewEvent>>,
    /// The states of the streams folded, each at the version it reaches once everything
    /// folded is appended: for the cache, after the commit.
    pub states: HashMap<Uuid, FoldedState>,
    /// The stored head version of every stream folded (0 for one with no events yet),
    /// read under the append lock: the append plans versions from them.
    pub heads: HashMap<Uuid, i64>,
}

/// For each of `events` (new, in append order), the events its tenant's stateful rules
/// derive from it; with `cache`, stream states are taken from it where current.
pub(super) async fn derive<T: Tx>(
    tx: &mut T,
    events: &[&NewEvent],
    derivers: &Derivers<'_>,
    cache: Option<&StateCache>,
) -> Res<Derived> {
    let mut derived = vec![Vec::new(); events.len()];
    // The streams a rule reads, each with its tenant's mapping version.
    let tracked: HashMap<Uuid, &str> = events
        .iter()
        .filter_map(|e| {
            let t = derivers.get(e.tenant_id.as_str())?;
            t.plugins
                .reads_state_for(&e.event_type, &e.stream_type)
                .then_some((e.stream_id, t.version.as_str()))
        })
        .collect();
    if tracked.is_empty() {
        return Ok(Derived {
            events: derived,
            ..Derived::default()
        });
    }
    let mut ids: Vec<Uuid> = tracked.keys().copied().collect();
    ids.sort_unstable();
    let catalogue = |tenant: &str| -> &Catalogue {
        derivers
            .get(tenant)
            .map_or(Catalogue::shipped(), |t| t.catalogue.as_ref())
    };
    let mut heads: HashMap<Uuid, i64> = tx.stream_heads(&ids).await?.into_iter().collect();
    for id in &ids {
        heads.entry(*id).or_insert(0);
    }
    let mut states: HashMap<Uuid, FoldedState> = HashMap::new();
    let mut unread = Vec::new();
    for id in &ids {
        let head = heads[id];
        let mapping = tracked.get(id).copied().unwrap_or_default();
        let kept = cache.and_then(|c| c.current(*id, head, mapping));
        if kept.is_none() && head > 0 {
            unread.push(*id);
        }
        let state = kept.unwrap_or_else(|| FoldedState {
            version: head,
            mapping: mapping.to_owned(),
            state: Map::new(),
        });
        states.insert(*id, state);
    }
    if !unread.is_empty() {
        for stored in tx.stream_events(&unread).await? {
            if let Some(s) = states.get_mut(&stored.stream_id) {
                catalogue(&stored.tenant_id).fold_event(&mut s.state, &stored);
            }
        }
    }
    for (i, e) in events.iter().enumerate() {
        let Some(s) = states.get_mut(&e.stream_id) else {
            continue;
        };
        if let Some(t) = derivers.get(e.tenant_id.as_str()) {
            derived[i] = t.plugins.derive_stateful(&s.state, e);
        }
        let c = catalogue(&e.tenant_id);
        for folded in std::iter::once(*e).chain(&derived[i]) {
            let at = folded
                .metadata
                .get("effective_at")
                .and_then(Value::as_str)
                .unwrap_or_default();
            c.fold(&mut s.state, &folded.event_type, &folded.data, at);
            // Folded here but appended to another stream: a read of this stream would not
            // see it, so this state must never be taken for the stream's stored one.
            s.version = match folded.stream_id == e.stream_id {
                true => s.version.saturating_add(1),
                false => i64::MIN,
            };
        }
    }
    Ok(Derived {
        events: derived,
        states,
        heads,
    })
}
