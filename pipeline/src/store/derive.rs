//! The plugins' rules that read stream state, run inside the commit (DESIGN §1 step 5).
//!
//! A rule such as "an A08 whose location differs from the visit's current location is a
//! move" needs the stream's state, and only the store knows it: the stream's stored
//! events and, in a group commit, the earlier events of the same batch. So the append
//! folds the streams that new trigger events go on, in commit order, under the append
//! lock that also plans their versions, and asks each tenant's plugins what the trigger
//! derives. Streams no rule looks at are not read at all.

use super::backend::{Res, Tx};
use crate::event::NewEvent;
use crate::mapping::catalogue::Catalogue;
use crate::mapping::Tenant;
use serde_json::{Map, Value};
use std::collections::{HashMap, HashSet};
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

/// For each of `events` (new, in append order), the events its tenant's stateful rules
/// derive from it.
pub(super) async fn derive<T: Tx>(
    tx: &mut T,
    events: &[&NewEvent],
    derivers: &Derivers<'_>,
) -> Res<Vec<Vec<NewEvent>>> {
    let mut derived = vec![Vec::new(); events.len()];
    if derivers.is_empty() {
        return Ok(derived);
    }
    let tracked: HashSet<Uuid> = events
        .iter()
        .filter(|e| {
            derivers
                .get(e.tenant_id.as_str())
                .is_some_and(|t| t.plugins.reads_state_for(&e.event_type, &e.stream_type))
        })
        .map(|e| e.stream_id)
        .collect();
    if tracked.is_empty() {
        return Ok(derived);
    }
    let mut ids: Vec<Uuid> = tracked.iter().copied().collect();
    ids.sort_unstable();
    let catalogue = |tenant: &str| -> &Catalogue {
        derivers
            .get(tenant)
            .map_or(Catalogue::shipped(), |t| t.catalogue.as_ref())
    };
    let mut states: HashMap<Uuid, Map<String, Value>> = HashMap::new();
    for stored in tx.stream_events(&ids).await? {
        let state = states.entry(stored.stream_id).or_default();
        catalogue(&stored.tenant_id).fold_event(state, &stored);
    }
    for (i, e) in events.iter().enumerate() {
        if !tracked.contains(&e.stream_id) {
            continue;
        }
        let state = states.entry(e.stream_id).or_default();
        if let Some(t) = derivers.get(e.tenant_id.as_str()) {
            derived[i] = t.plugins.derive_stateful(state, e);
        }
        let c = catalogue(&e.tenant_id);
        for folded in std::iter::once(*e).chain(&derived[i]) {
            let at = folded
                .metadata
                .get("effective_at")
                .and_then(Value::as_str)
                .unwrap_or_default();
            c.fold(state, &folded.event_type, &folded.data, at);
        }
    }
    Ok(derived)
}
