//! The message browser over any backend: inbound messages found by their header facts,
//! outcome, time received or business key, newest first, each with the events it produced
//! (as references to their streams) and its dead letter. Nothing here returns message
//! content or event data; business keys are stored and searched hashed.

use super::append::append_events;
use super::backend::{Backend, MessageSql, Res, Scope, Tx, Work};
use super::{Messages, StoreError};
use crate::event::{EventEnvelope, NewEvent};
use crate::message::RawMessage;
use chrono::{DateTime, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use uuid::Uuid;

/// A business key the writer indexes, from the event field that carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyKind {
    /// The patient's MRN (`patient_mrn`).
    Mrn,
    /// The visit number (`visit_number`).
    Visit,
}

impl KeyKind {
    /// Every kind, with the event field it is read from.
    pub const FIELDS: [(KeyKind, &'static str); 2] = [
        (KeyKind::Mrn, "patient_mrn"),
        (KeyKind::Visit, "visit_number"),
    ];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyKind::Mrn => "mrn",
            KeyKind::Visit => "visit",
        }
    }
}

/// The stored hash of a business key: SHA-256 of `tenant NUL kind NUL value`.
pub fn key_hash(tenant: &str, kind: KeyKind, value: &str) -> Vec<u8> {
    let mut h = Sha256::new();
    for part in [tenant, kind.as_str(), value] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    h.finalize().to_vec()
}

/// An inbound message's outcome, as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageOutcome {
    /// It became events (stored `stored`).
    Events,
    /// A rule of its tenant ignored it.
    Filtered,
    /// It could not be parsed, routed or mapped.
    DeadLettered,
}

impl MessageOutcome {
    /// The outcome by its API name: `events`, `filtered` or `dead_lettered`.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "events" => Some(MessageOutcome::Events),
            "filtered" => Some(MessageOutcome::Filtered),
            "dead_lettered" => Some(MessageOutcome::DeadLettered),
            _ => None,
        }
    }

    /// The value of the `outcome` column.
    pub fn column(self) -> &'static str {
        match self {
            MessageOutcome::Events => "stored",
            MessageOutcome::Filtered => "filtered",
            MessageOutcome::DeadLettered => "dead_lettered",
        }
    }
}

/// Which messages to find.
#[derive(Debug, Clone, Default)]
pub struct MessageQuery {
    /// Only this tenant's (None: every tenant's, and messages with no tenant; admin use).
    pub tenant: Option<String>,
    /// Only this outcome.
    pub outcome: Option<MessageOutcome>,
    /// Only this type (`ADT^A01`, or a FHIR resource type).
    pub message_type: Option<String>,
    /// Only from this sending facility (MSH-4).
    pub sending_facility: Option<String>,
    /// Only with this control id (MSH-10).
    pub control_id: Option<String>,
    /// Received at or after.
    pub since: Option<DateTime<Utc>>,
    /// Received before.
    pub until: Option<DateTime<Utc>>,
    /// Only messages whose events carry this business key (needs a tenant).
    pub key: Option<(KeyKind, String)>,
    /// Only messages older than this one (the last id of the previous page).
    pub before: Option<Uuid>,
    /// At most this many.
    pub limit: i64,
}

/// One message found, without its content.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MessageHit {
    /// The inbound message id (UUIDv7: its time of receipt).
    pub id: Uuid,
    /// Its tenant, when it was routed.
    pub tenant_id: Option<String>,
    /// When it was received (RFC 3339).
    pub received_at: String,
    /// Where it came in.
    pub channel: String,
    /// `hl7v2`, `fhir+json` or `fhir+xml`.
    pub format: String,
    /// `ADT^A01` or the FHIR resource type, when known.
    pub message_type: Option<String>,
    /// MSH-4, when known.
    pub sending_facility: Option<String>,
    /// MSH-10, when known.
    pub control_id: Option<String>,
    /// `events`, `filtered` or `dead_lettered`.
    pub outcome: &'static str,
    /// The ACK code it earned.
    pub ack_code: String,
    /// Why: the reason code of a dead letter, the rule's reason of a filtered message.
    pub reason: Option<String>,
    /// The events it produced (first time and replays), in order.
    pub events: Vec<EventRef>,
    /// Its dead letter, if it had one.
    pub dead_letter: Option<LetterRef>,
    /// When the tenant's retention policy emptied its raw bytes (RFC 3339); absent while
    /// they are kept.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raw_pruned_at: Option<String>,
}

/// An event a message produced: where to find it, not what it says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct EventRef {
    /// The inbound message it came from.
    #[serde(skip)]
    pub message_id: Uuid,
    /// The event.
    pub event_id: Uuid,
    /// Its type.
    pub event_type: String,
    /// Its stream's type.
    pub stream_type: String,
    /// Its stream (read it with `GET …/events?stream=`).
    pub stream_id: Uuid,
    /// Its version in the stream.
    pub event_version: i64,
    /// Its global position.
    pub global_position: i64,
}

/// A message's dead letter, in brief.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LetterRef {
    /// open, replayed or discarded.
    pub status: String,
    /// The stable reason code.
    pub reason_code: String,
    /// The field and path, when relevant.
    pub detail: Option<String>,
    /// How often the message was received.
    pub attempts: i32,
}

/// A found message's row, before its events are attached.
#[derive(sqlx::FromRow)]
pub(crate) struct MessageRow {
    pub id: Uuid,
    pub tenant_id: Option<String>,
    pub received_at: String,
    pub channel: String,
    pub format: String,
    pub message_type: Option<String>,
    pub sending_facility: Option<String>,
    pub control_id: Option<String>,
    pub outcome: String,
    pub ack_code: String,
    pub reason_code: Option<String>,
    pub detail: Option<String>,
    pub dl_status: Option<String>,
    pub dl_reason_code: Option<String>,
    pub dl_detail: Option<String>,
    pub dl_attempts: Option<i32>,
    pub pruned_at: Option<String>,
}

/// A business-key row the writer inserts.
pub(crate) struct KeyRow<'a> {
    pub tenant: &'a str,
    pub kind: &'static str,
    pub hash: Vec<u8>,
    pub message_id: Uuid,
}

/// The business keys `events` carry, one row per distinct key of each message (the
/// events' correlation id is their inbound message).
pub(crate) fn key_rows<'a>(message_id: Uuid, events: &'a [NewEvent]) -> Vec<KeyRow<'a>> {
    let mut rows: Vec<KeyRow<'a>> = Vec::new();
    for e in events {
        for (kind, field) in KeyKind::FIELDS {
            let Some(value) = e.data.get(field).and_then(|v| v.as_str()) else {
                continue;
            };
            let hash = key_hash(&e.tenant_id, kind, value);
            if !rows.iter().any(|r| r.hash == hash) {
                rows.push(KeyRow {
                    tenant: &e.tenant_id,
                    kind: kind.as_str(),
                    hash,
                    message_id,
                });
            }
        }
    }
    rows
}

#[async_trait::async_trait]
impl<B: Backend> Messages for B {
    async fn find_messages(&self, query: &MessageQuery) -> Result<Vec<MessageHit>, StoreError> {
        let mut tx = self
            .begin(Scope::of(query.tenant.as_deref()), Work::Single)
            .await?;
        let rows = tx.select_messages(query).await?;
        let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
        let mut events: HashMap<Uuid, Vec<EventRef>> = HashMap::new();
        if !ids.is_empty() {
            for e in tx.events_of_messages(&ids).await? {
                events.entry(e.message_id).or_default().push(e);
            }
        }
        tx.commit().await?;
        Ok(rows.into_iter().map(|r| hit(r, &mut events)).collect())
    }

    async fn message_inputs(&self, tenant: &str, ids: &[Uuid]) -> Res<Vec<RawMessage>> {
        let mut tx = self.begin(Scope::Tenant(tenant), Work::Single).await?;
        let rows = match ids.is_empty() {
            true => Vec::new(),
            false => tx.inbound_inputs(ids).await?,
        };
        tx.commit().await?;
        Ok(rows
            .into_iter()
            .filter(|r| r.tenant_id.as_deref() == Some(tenant))
            .map(|r| r.into_raw())
            .collect())
    }

    async fn message_events(&self, tenant: &str, ids: &[Uuid]) -> Res<Vec<EventEnvelope>> {
        let mut tx = self.begin(Scope::Tenant(tenant), Work::Single).await?;
        let events = match ids.is_empty() {
            true => Vec::new(),
            false => tx.message_events(ids).await?,
        };
        tx.commit().await?;
        Ok(events
            .into_iter()
            .filter(|e| e.tenant_id == tenant)
            .collect())
    }

    async fn append_corrections(&self, events: &[NewEvent], audit: NewEvent) -> Res<usize> {
        super::backend::retry(|| async {
            let mut tx = self
                .begin(Scope::Tenant(&audit.tenant_id), Work::Atomic)
                .await?;
            let rows: Vec<(&NewEvent, &str)> = events.iter().map(|e| (e, "intake/remap")).collect();
            let appended = append_events(&mut tx, &rows).await?.len();
            let keys: Vec<KeyRow<'_>> = events
                .iter()
                .filter_map(|e| Some(key_rows(e.message_id?, std::slice::from_ref(e))))
                .flatten()
                .collect();
            if !keys.is_empty() {
                tx.insert_message_keys(&keys).await?;
            }
            append_events(&mut tx, &[(&audit, crate::audit::AUDIT_CREATED_BY)]).await?;
            tx.commit().await?;
            Ok(appended)
        })
        .await
    }
}

/// A row and its events as the browser shows them.
fn hit(r: MessageRow, events: &mut HashMap<Uuid, Vec<EventRef>>) -> MessageHit {
    let outcome = match r.outcome.as_str() {
        "stored" => "events",
        "filtered" => "filtered",
        _ => "dead_lettered",
    };
    let dead_letter = match (r.dl_status, r.dl_reason_code) {
        (Some(status), Some(reason_code)) => Some(LetterRef {
            status,
            reason_code,
            detail: r.dl_detail,
            attempts: r.dl_attempts.unwrap_or(1),
        }),
        _ => None,
    };
    MessageHit {
        events: events.remove(&r.id).unwrap_or_default(),
        id: r.id,
        tenant_id: r.tenant_id,
        received_at: r.received_at,
        channel: r.channel,
        format: r.format,
        message_type: r.message_type,
        sending_facility: r.sending_facility,
        control_id: r.control_id,
        outcome,
        ack_code: r.ack_code,
        reason: r.reason_code.or(r.detail),
        dead_letter,
        raw_pruned_at: r.pruned_at,
    }
}
