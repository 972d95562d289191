//! Domain events: what the mapper produces and what the store keeps.
//!
//! Ids are deterministic so that the same input always gives the same events (replay,
//! dry-run and golden files rely on it):
//! - `stream_id` is a UUIDv5 of (tenant, stream type, natural key);
//! - `event_id` is a UUIDv8 whose high 48 bits are a millisecond time taken from the
//!   source (the event's own time, else the message's receipt time) and whose other bits
//!   are a SHA-256 of (tenant, source key, event index): time-ordered, yet reproducible.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// Namespace for intake's v5 stream ids (a fixed, random UUID). Public contract: a
/// stream id is `uuid5(STREAM_NAMESPACE, "{tenant}\0{stream_type}\0{key}")` (README,
/// "Finding a stream"), so a consumer can compute it without asking intake.
pub const STREAM_NAMESPACE: Uuid = Uuid::from_u128(0x6f1c_3a2e_9b47_4d0a_8e55_2c7d_1f9a_b3e4);

/// An event produced by mapping, before it has a stream version and position.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NewEvent {
    /// Deterministic, time-ordered id.
    pub event_id: Uuid,
    /// Deterministic stream id.
    pub stream_id: Uuid,
    /// e.g. `Admission`.
    pub stream_type: String,
    /// The stream's natural key (e.g. the visit number). Kept out of storage; used for ids.
    #[serde(skip)]
    pub stream_key: String,
    /// e.g. `AdmissionCreated`.
    pub event_type: String,
    /// The tenant that owns the event.
    pub tenant_id: String,
    /// The event's fields as the mapping produced them.
    pub data: serde_json::Value,
    /// Provenance: correlation id, control id, sender, channel, mapping, received_at.
    pub metadata: serde_json::Value,
    /// The inbound message it came from (None for events no message produced: audit
    /// entries). Stored as `inbound_id`, by which the message browser finds a message's
    /// events; the same id is the metadata's `correlation_id`.
    #[serde(skip)]
    pub message_id: Option<Uuid>,
}

/// A stored event, as read back from the store (decoded from its row by column name).
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct EventEnvelope {
    /// Deterministic, time-ordered id.
    pub event_id: Uuid,
    /// Deterministic stream id.
    pub stream_id: Uuid,
    /// e.g. `Admission`.
    pub stream_type: String,
    /// e.g. `AdmissionCreated`.
    pub event_type: String,
    /// Position in the stream, from 1.
    pub event_version: i64,
    /// The owning tenant.
    pub tenant_id: String,
    /// The event's fields.
    pub data: serde_json::Value,
    /// Provenance.
    pub metadata: serde_json::Value,
    /// When it was committed (RFC 3339).
    pub created_at: String,
    /// Which component wrote it, e.g. `intake/mllp`.
    pub created_by: String,
    /// Total order across the store.
    pub global_position: i64,
}

impl EventEnvelope {
    /// The event's own time: when it happened, by its message (`metadata.effective_at`:
    /// the event's time, else the message's receipt time), else when it was committed.
    /// Temporal queries (`as_of`) order and cut a stream by it.
    pub fn effective_at(&self) -> DateTime<Utc> {
        ["effective_at", "received_at"]
            .iter()
            .filter_map(|k| self.metadata.get(k).and_then(|v| v.as_str()))
            .chain(std::iter::once(self.created_at.as_str()))
            .find_map(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.to_utc())
            .unwrap_or(DateTime::UNIX_EPOCH)
    }

    /// When the store committed it (`created_at`): what `as_recorded` cuts by.
    pub fn recorded_at(&self) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(&self.created_at)
            .map(|t| t.to_utc())
            .unwrap_or(DateTime::UNIX_EPOCH)
    }
}

/// The v5 id of a stream: [`STREAM_NAMESPACE`] and the name `tenant NUL stream_type NUL
/// key` (UTF-8).
pub fn stream_id(tenant: &str, stream_type: &str, key: &str) -> Uuid {
    let name = format!("{tenant}\u{0}{stream_type}\u{0}{key}");
    Uuid::new_v5(&STREAM_NAMESPACE, name.as_bytes())
}

/// The deterministic, time-ordered id of the `index`-th event derived from a source.
pub fn event_id(time: DateTime<Utc>, tenant: &str, source_key: &str, index: usize) -> Uuid {
    let mut h = Sha256::new();
    h.update(tenant.as_bytes());
    h.update([0]);
    h.update(source_key.as_bytes());
    h.update([0]);
    h.update((index as u64).to_be_bytes());
    let hash = h.finalize();
    let millis = time.timestamp_millis().clamp(0, (1 << 48) - 1) as u64;
    let mut b = [0u8; 16];
    b[..6].copy_from_slice(&millis.to_be_bytes()[2..]);
    b[6..].copy_from_slice(&hash[..10]);
    uuid::Builder::from_custom_bytes(b).into_uuid()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The README's worked example: the stream id anyone can compute.
    #[test]
    fn a_stream_id_is_the_documented_uuid5() {
        assert_eq!(
            STREAM_NAMESPACE.to_string(),
            "6f1c3a2e-9b47-4d0a-8e55-2c7d1f9ab3e4"
        );
        let id = stream_id("demo", "Admission", "V20261122-0001");
        assert_eq!(id.get_version_num(), 5);
        assert_eq!(
            id,
            Uuid::new_v5(&STREAM_NAMESPACE, b"demo\0Admission\0V20261122-0001")
        );
        assert_eq!(id.to_string(), "90be3805-d65a-5d18-bdab-7f5254b8d377");
    }

    #[test]
    fn ids_are_deterministic_and_time_ordered() {
        let t1 = DateTime::parse_from_rfc3339("2024-01-01T10:00:00Z")
            .unwrap()
            .to_utc();
        let t2 = DateTime::parse_from_rfc3339("2024-01-01T10:00:01Z")
            .unwrap()
            .to_utc();
        let a = event_id(t1, "demo", "FAC\u{0}C1", 0);
        assert_eq!(a, event_id(t1, "demo", "FAC\u{0}C1", 0));
        assert_ne!(a, event_id(t1, "demo", "FAC\u{0}C1", 1));
        assert_ne!(a, event_id(t1, "other", "FAC\u{0}C1", 0));
        assert!(
            a < event_id(t2, "demo", "FAC\u{0}C0", 0),
            "later time sorts later"
        );
        assert_eq!(a.get_version_num(), 8);
        assert_eq!(
            stream_id("demo", "Admission", "V1"),
            stream_id("demo", "Admission", "V1")
        );
        assert_ne!(
            stream_id("demo", "Admission", "V1"),
            stream_id("demo2", "Admission", "V1")
        );
    }
}
