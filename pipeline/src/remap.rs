//! Re-map preview: run stored raw messages through another mapping version and compare
//! the events it would produce with the events stored. With `apply`, the events the new
//! version adds are appended as corrections (idempotent: their ids are the deterministic
//! ids of the new version, so a second run finds them stored) and audited.
//!
//! The comparison is by event id, which depends on the message and the event's index, not
//! on the mapping: the same message's n-th event has the same id under every version.
//! Reports name event types, streams and field names; they never hold values. Messages
//! whose raw bytes retention emptied cannot be mapped again: they are counted, not compared.

use crate::audit::{audit_event, Actor, AuditAction};
use crate::event::{EventEnvelope, NewEvent};
use crate::mapping::Tenants;
use crate::pipeline::{process, Disposition};
use crate::store::messages::MessageQuery;
use crate::store::{Store, StoreError};
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::{BTreeSet, HashMap};
use uuid::Uuid;

/// An event in a report: what it is and where, not what it says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EventSummary {
    /// Its id.
    pub event_id: Uuid,
    /// Its type.
    pub event_type: String,
    /// Its stream's type.
    pub stream_type: String,
    /// Its stream.
    pub stream_id: Uuid,
    /// The names of its fields.
    pub fields: Vec<String>,
}

/// An event both versions produce, with differences.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Changed {
    /// Its id.
    pub event_id: Uuid,
    /// Its type as stored.
    pub event_type: String,
    /// Its type under the new version, when that differs.
    pub new_event_type: Option<String>,
    /// Whether its stream differs.
    pub stream_changed: bool,
    /// Fields whose value differs, or that only one version has.
    pub fields: Vec<String>,
}

/// What the new version would do to one stored message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MessageDiff {
    /// The inbound message.
    pub message_id: Uuid,
    /// Its control id, when known.
    pub control_id: Option<String>,
    /// Its type, when known.
    pub message_type: Option<String>,
    /// The outcome under the new version: `events`, `filtered`, or the reason code.
    pub new_outcome: String,
    /// Events the new version produces that are not stored.
    pub added: Vec<EventSummary>,
    /// Stored events the new version does not produce.
    pub removed: Vec<EventSummary>,
    /// Events both produce, with different content.
    pub changed: Vec<Changed>,
}

impl MessageDiff {
    /// Whether the new version gives exactly the stored events.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }
}

/// A whole re-map run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RemapReport {
    /// The new mapping version of the tenant.
    pub version: String,
    /// Messages compared.
    pub messages: usize,
    /// Messages selected but not compared: retention emptied their raw bytes.
    pub pruned: usize,
    /// Of those, messages the new version maps exactly as stored.
    pub unchanged: usize,
    /// The messages with differences.
    pub diffs: Vec<MessageDiff>,
    /// Events appended as corrections (0 unless applied).
    pub appended: usize,
    /// The last message compared (the `before` of the next page), when the page was full.
    pub next_before: Option<Uuid>,
}

/// Why a re-map could not run.
#[derive(Debug, thiserror::Error)]
pub enum RemapError {
    /// The mapping folder has no such tenant.
    #[error("the mappings given have no tenant {0}")]
    NoSuchTenant(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Compares the messages `query` selects (of one tenant) under `tenants` with what is
/// stored; with `apply`, appends the added events and audits it as `apply`'s actor.
pub async fn remap(
    store: &dyn Store,
    tenants: &Tenants,
    query: &MessageQuery,
    apply: Option<&Actor>,
) -> Result<RemapReport, RemapError> {
    let tenant = query.tenant.clone().unwrap_or_default();
    let version = tenants
        .get(&tenant)
        .ok_or_else(|| RemapError::NoSuchTenant(tenant.clone()))?
        .version
        .clone();
    let hits = store.find_messages(query).await?;
    let ids: Vec<Uuid> = hits
        .iter()
        .filter(|h| h.raw_pruned_at.is_none())
        .map(|h| h.id)
        .collect();
    let pruned = hits.len() - ids.len();
    let inputs = store.message_inputs(&tenant, &ids).await?;
    let mut stored: HashMap<String, Vec<EventEnvelope>> = HashMap::new();
    for e in store.message_events(&tenant, &ids).await? {
        // Events a plugin derived from stream state in the commit are not the mapping's
        // to compare: they follow from their trigger event, which is.
        if e.metadata["derived"].get("from_event").is_some() {
            continue;
        }
        let owner = e.metadata["correlation_id"]
            .as_str()
            .unwrap_or("")
            .to_string();
        stored.entry(owner).or_default().push(e);
    }
    let mut diffs = Vec::new();
    let mut additions: Vec<NewEvent> = Vec::new();
    for raw in inputs {
        let hit = hits.iter().find(|h| h.id == raw.id);
        let (control_id, message_type) = hit
            .map(|h| (h.control_id.clone(), h.message_type.clone()))
            .unwrap_or_default();
        let id = raw.id;
        let (new_outcome, events) = match process(raw, tenants).disposition {
            Disposition::Events(events) => ("events".to_string(), events),
            Disposition::Filtered(_) => ("filtered".to_string(), Vec::new()),
            Disposition::DeadLetter { rejection, .. } => {
                (rejection.reason.code().to_string(), Vec::new())
            }
        };
        let before = stored.remove(&id.to_string()).unwrap_or_default();
        let diff = compare(id, control_id, message_type, new_outcome, &before, &events);
        if !diff.is_empty() {
            let added: BTreeSet<Uuid> = diff.added.iter().map(|a| a.event_id).collect();
            additions.extend(events.into_iter().filter(|e| added.contains(&e.event_id)));
            diffs.push(diff);
        }
    }
    let appended = match apply {
        Some(actor) if !additions.is_empty() => {
            for e in &mut additions {
                e.metadata["correction"] = json!({"remapped_by": actor.name, "version": version});
            }
            let details = json!({
                "version": version,
                "counts": {"messages": ids.len(), "pruned": pruned, "appended": additions.len()},
                "ids": diffs.iter().filter(|d| !d.added.is_empty()).map(|d| d.message_id).collect::<Vec<_>>(),
            });
            let at = chrono::Utc::now();
            let audit = audit_event(AuditAction::MessagesRemapped, actor, &tenant, details, at);
            store.append_corrections(&additions, audit).await?
        }
        _ => 0,
    };
    Ok(RemapReport {
        version,
        messages: ids.len(),
        pruned,
        unchanged: ids.len() - diffs.len(),
        diffs,
        appended,
        next_before: (hits.len() as i64 == query.limit)
            .then(|| hits.last().map(|h| h.id))
            .flatten(),
    })
}

/// The differences between the events stored for a message and those the new version
/// gives it.
fn compare(
    message_id: Uuid,
    control_id: Option<String>,
    message_type: Option<String>,
    new_outcome: String,
    before: &[EventEnvelope],
    after: &[NewEvent],
) -> MessageDiff {
    let old: HashMap<Uuid, &EventEnvelope> = before.iter().map(|e| (e.event_id, e)).collect();
    let new_ids: BTreeSet<Uuid> = after.iter().map(|e| e.event_id).collect();
    let mut diff = MessageDiff {
        message_id,
        control_id,
        message_type,
        new_outcome,
        added: Vec::new(),
        removed: Vec::new(),
        changed: Vec::new(),
    };
    for e in after {
        match old.get(&e.event_id) {
            None => diff.added.push(summary(
                e.event_id,
                &e.event_type,
                &e.stream_type,
                e.stream_id,
                &e.data,
            )),
            Some(s) => {
                let fields = changed_fields(&s.data, &e.data);
                let retyped = s.event_type != e.event_type;
                if retyped || s.stream_id != e.stream_id || !fields.is_empty() {
                    diff.changed.push(Changed {
                        event_id: e.event_id,
                        event_type: s.event_type.clone(),
                        new_event_type: retyped.then(|| e.event_type.clone()),
                        stream_changed: s.stream_id != e.stream_id,
                        fields,
                    });
                }
            }
        }
    }
    for s in before.iter().filter(|s| !new_ids.contains(&s.event_id)) {
        diff.removed.push(summary(
            s.event_id,
            &s.event_type,
            &s.stream_type,
            s.stream_id,
            &s.data,
        ));
    }
    diff
}

fn summary(id: Uuid, ty: &str, stream_type: &str, stream: Uuid, data: &Value) -> EventSummary {
    EventSummary {
        event_id: id,
        event_type: ty.to_string(),
        stream_type: stream_type.to_string(),
        stream_id: stream,
        fields: data
            .as_object()
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default(),
    }
}

/// The top-level fields whose values differ between `a` and `b` (or that one lacks).
fn changed_fields(a: &Value, b: &Value) -> Vec<String> {
    let empty = serde_json::Map::new();
    let (a, b) = (
        a.as_object().unwrap_or(&empty),
        b.as_object().unwrap_or(&empty),
    );
    let names: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    names
        .into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_that_differ_or_only_one_side_has() {
        let a = json!({"location": "W1", "bed": "1", "mrn": "M"});
        let b = json!({"location": "W2", "bed": "1", "class": "I"});
        assert_eq!(changed_fields(&a, &b), ["class", "location", "mrn"]);
        assert!(changed_fields(&a, &a).is_empty());
    }
}
