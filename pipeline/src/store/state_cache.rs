//! The folded states of the streams the plugins' stateful rules read, as committed, kept
//! by the writer between batches ([`super::derive`]).
//!
//! Without it, every trigger event reads its stream's whole history back and folds it
//! again, so a visit's thousandth lab result costs a thousand times its first: quadratic
//! over a long stay. With it, a batch folds only its own events onto the state the last
//! batch left, and reads a stream only the first time it is seen.
//!
//! An entry is used only while it is exactly current, which the append checks under its
//! lock:
//! - its version is the stream's stored head (another process, a CLI replay say, that
//!   appended since makes it stale, and the stream is read again);
//! - it was folded under the tenant's mapping version in force (a reload that changes a
//!   plugin's fold reads the stream again).
//!
//! Entries are put only after their transaction committed, so a batch that rolled back
//! leaves nothing behind. The cache holds at most [`CAPACITY`] streams, the oldest
//! forgotten first; a forgotten stream is read again when next seen.

use serde_json::{Map, Value};
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use uuid::Uuid;

/// Most streams kept (a few KB each).
const CAPACITY: usize = 8192;

/// A stream's state as of one version.
#[derive(Debug, Clone)]
pub(crate) struct FoldedState {
    /// The stream version the state includes every event up to.
    pub version: i64,
    /// The tenant mapping version it was folded under.
    pub mapping: String,
    /// The state.
    pub state: Map<String, Value>,
}

/// Committed stream states, shared by every unit of work of one store.
#[derive(Debug, Default)]
pub(crate) struct StateCache {
    inner: Mutex<Entries>,
}

#[derive(Debug, Default)]
struct Entries {
    states: HashMap<Uuid, FoldedState>,
    /// Insertion order, for forgetting the oldest.
    order: VecDeque<Uuid>,
}

impl StateCache {
    /// The state of `stream` if it is current: at `head` under `mapping`.
    pub(crate) fn current(&self, stream: Uuid, head: i64, mapping: &str) -> Option<FoldedState> {
        let entries = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        entries
            .states
            .get(&stream)
            .filter(|s| s.version == head && s.mapping == mapping)
            .cloned()
    }

    /// Keeps `states` (committed), replacing what was kept for their streams.
    pub(crate) fn put(&self, states: HashMap<Uuid, FoldedState>) {
        if states.is_empty() {
            return;
        }
        let mut entries = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        for (stream, state) in states {
            if entries.states.insert(stream, state).is_none() {
                entries.order.push_back(stream);
            }
        }
        while entries.states.len() > CAPACITY {
            let Some(oldest) = entries.order.pop_front() else {
                break;
            };
            entries.states.remove(&oldest);
        }
    }

    /// How many streams are kept.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.inner.lock().map(|e| e.states.len()).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(version: i64, mapping: &str) -> FoldedState {
        FoldedState {
            version,
            mapping: mapping.into(),
            state: Map::new(),
        }
    }

    #[test]
    fn an_entry_is_used_only_at_its_version_and_mapping() {
        let cache = StateCache::default();
        let s = Uuid::from_u128(1);
        cache.put(HashMap::from([(s, state(3, "v1"))]));
        assert!(cache.current(s, 3, "v1").is_some());
        assert!(
            cache.current(s, 4, "v1").is_none(),
            "another writer appended"
        );
        assert!(
            cache.current(s, 3, "v2").is_none(),
            "the mapping was reloaded"
        );
        assert!(cache.current(Uuid::from_u128(2), 0, "v1").is_none());
    }

    #[test]
    fn the_oldest_streams_are_forgotten_beyond_capacity() {
        let cache = StateCache::default();
        for i in 0..(CAPACITY as u128 + 10) {
            cache.put(HashMap::from([(Uuid::from_u128(i), state(1, "v"))]));
        }
        assert_eq!(cache.len(), CAPACITY);
        assert!(cache.current(Uuid::from_u128(0), 1, "v").is_none());
        assert!(cache
            .current(Uuid::from_u128(CAPACITY as u128 + 9), 1, "v")
            .is_some());
    }
}
