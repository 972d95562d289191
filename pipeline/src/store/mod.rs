//! The event store: what is stored is decided here, once; each database holds only its SQL.
//!
//! - [`traits`]: the public traits, one per concern ([`EventLog`], [`DeadLetters`],
//!   [`Outbox`], [`Cursors`]) and the [`Store`] that callers hold as `Arc<dyn Store>`.
//! - `backend`: the transaction-level statements a database provides (crate-private).
//! - `log`, `append`, `dead_letters`, `messages`, `outbox`: the orchestration, written once over any
//!   backend: group commit with its one-by-one fallback, dedupe, version planning,
//!   outcomes, the expected-version check, replay.
//! - [`retention`]: emptying old raw messages by each tenant's policy.
//! - `sqlite`, `postgres`: the SQL of each database, and its connection glue.

mod append;
mod backend;
mod dead_letters;
mod derive;
mod error;
mod log;
pub mod messages;
mod outbox;
mod postgres;
pub mod projections;
pub mod retention;
mod sqlite;
mod state_cache;
mod traits;
mod versions;

pub use error::StoreError;
pub use postgres::PostgresStore;
pub use projections::Projections;
pub use retention::{PruneRequest, Pruned, Retention};
pub use sqlite::SqliteStore;
pub use traits::{Cursors, DeadLetters, EventLog, MappingHistory, Messages, Outbox, Store};
pub use versions::MappingVersion;

use crate::hl7::ack::AckCode;
use crate::outcome::Outcome;
use crate::pipeline::Processed;
use crate::reason::Reason;
use backend::StoredAnswer;
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::sync::Arc;
use uuid::Uuid;

/// Store settings that do not come from the URL.
#[derive(Debug, Clone, Copy, Default)]
pub struct StoreOptions {
    /// Queue every appended event for publishing (a broker is configured).
    pub outbox: bool,
}

/// Opens the store a URL names: `sqlite://path` (the embedded default) or
/// `postgres://user@host/database` (production; several instances may share it).
pub async fn open(url: &str, options: StoreOptions) -> Result<Arc<dyn Store>, StoreError> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(SqliteStore::open(url, options).await?))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(PostgresStore::open(url, options).await?))
    } else {
        Err(StoreError::Setup(
            "unsupported database URL scheme (supported: sqlite://, postgres://)".into(),
        ))
    }
}

/// Expected stream version for an append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpectedVersion {
    /// Whatever the stream is at.
    Any,
    /// The stream must not exist yet.
    NoStream,
    /// The stream's last version must be exactly this.
    Exact(i64),
}

impl ExpectedVersion {
    /// Whether a stream whose last version is `actual` (0: no stream) meets this
    /// expectation.
    pub fn admits(self, actual: i64) -> bool {
        match self {
            ExpectedVersion::Any => true,
            ExpectedVersion::NoStream => actual == 0,
            ExpectedVersion::Exact(v) => actual == v,
        }
    }
}

/// Which events to read.
#[derive(Debug, Clone, Default)]
pub struct EventQuery {
    /// Only this tenant's (None: all tenants; admin use).
    pub tenant: Option<String>,
    /// Only this stream's.
    pub stream_id: Option<Uuid>,
    /// Global position to start after.
    pub after: i64,
    /// Maximum number of events.
    pub limit: i64,
}

/// A stored message's raw bytes, or the fact that retention emptied them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoredRaw {
    /// The bytes as received.
    Kept(Vec<u8>),
    /// Emptied by the tenant's retention policy (`intake prune`) at this time (RFC 3339).
    Pruned(String),
}

/// The stable code of a raw message that retention emptied (HTTP 410).
pub const RAW_PRUNED: &str = "RAW_PRUNED";

/// A dead letter, as support staff see it (no raw bytes, no PHI).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct DeadLetter {
    /// Id (= inbound message id).
    pub id: Uuid,
    /// Owning tenant, when known.
    pub tenant_id: Option<String>,
    /// Stage name.
    pub stage: String,
    /// Stable reason code.
    pub reason_code: String,
    /// Field name and path, when relevant.
    pub detail: Option<String>,
    /// open | replayed | discarded.
    pub status: String,
    /// MSH-9 code, when known.
    pub message_type: Option<String>,
    /// MSH-4, when known.
    pub sending_facility: Option<String>,
    /// MSH-10, when known.
    pub control_id: Option<String>,
    /// Where it came in (`mllp:2575`, `http`, `fhir`...).
    pub channel: String,
    /// When the message was received (RFC 3339).
    pub received_at: String,
    /// When it was stored.
    pub created_at: String,
    /// How often the message was received: 1, plus one per resend of the same key.
    pub attempts: i32,
}

/// Which open dead letters a support operation takes. Letters are taken in id order
/// (their inbound message's UUIDv7: time of receipt), so `after` pages through a bulk
/// operation and resumes one that was interrupted.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DeadLetterFilter {
    /// Only this tenant's (None: every tenant, and letters with no tenant; admin use).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// Only these ids (empty: any).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ids: Vec<Uuid>,
    /// Only letters with this reason code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// Only messages of this type (`ADT^A01`, or a FHIR resource type).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_type: Option<String>,
    /// Only messages from this sending facility (MSH-4).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sending_facility: Option<String>,
    /// Only messages received at or after this instant.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since: Option<DateTime<Utc>>,
    /// Only messages received before this instant.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub until: Option<DateTime<Utc>>,
    /// Only letters whose id sorts after this one (the last id of the previous page).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after: Option<Uuid>,
    /// At most this many.
    pub limit: i64,
}

impl DeadLetterFilter {
    /// Whether letter `d` meets every condition but status and limit.
    pub fn matches(&self, d: &DeadLetter) -> bool {
        let received = || DateTime::parse_from_rfc3339(&d.received_at).ok();
        (self.tenant.is_none() || d.tenant_id == self.tenant)
            && (self.ids.is_empty() || self.ids.contains(&d.id))
            && self.code.as_ref().is_none_or(|c| *c == d.reason_code)
            && (self.message_type.is_none() || d.message_type == self.message_type)
            && (self.sending_facility.is_none() || d.sending_facility == self.sending_facility)
            && self
                .since
                .is_none_or(|s| received().is_some_and(|t| t >= s))
            && self.until.is_none_or(|u| received().is_some_and(|t| t < u))
            && self.after.is_none_or(|a| d.id > a)
    }

    /// The letters of `letters` with status `status` (None: any) that the filter takes, in
    /// id order, at most `limit`: with `Some("open")`, what the stores' claim and discard
    /// queries select. For dry runs that must not lock, and for listings.
    pub fn select(&self, letters: Vec<DeadLetter>, status: Option<&str>) -> Vec<DeadLetter> {
        let mut letters: Vec<DeadLetter> = letters
            .into_iter()
            .filter(|d| status.is_none_or(|s| d.status == s) && self.matches(d))
            .collect();
        letters.sort_by_key(|d| d.id);
        letters.truncate(usize::try_from(self.limit).unwrap_or(0));
        letters
    }
}

/// Maps a dead letter's raw message again, with the mappings in force now.
pub type Remap = dyn Fn(crate::message::RawMessage) -> Processed + Send + Sync;

/// What replaying one dead letter did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Replayed {
    /// The dead letter (= inbound message id).
    pub id: Uuid,
    /// Events the message maps to now (0 while it still fails).
    pub events: usize,
    /// Events appended (fewer than `events` when some were stored already; 0 on a dry run).
    pub appended: usize,
    /// The reason code when it still fails; the letter then stays open.
    pub still_failing: Option<String>,
}

/// What replaying one dead letter would do (a preview changes nothing).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Preview {
    /// The dead letter (= inbound message id).
    pub id: Uuid,
    /// The events the message maps to now (none while it still fails, or when filtered).
    pub events: Vec<crate::event::NewEvent>,
    /// How many of `events` are not stored yet: what a replay would append.
    pub would_append: usize,
    /// The reason code when it still fails.
    pub still_failing: Option<String>,
}

/// Which component wrote an event: `intake/mllp`, `intake/http`, ...
pub(crate) fn created_by(p: &Processed) -> String {
    format!(
        "intake/{}",
        p.raw.channel.split(':').next().unwrap_or("unknown")
    )
}

/// How a message's rows stand once its batch has inserted what was new.
pub(crate) enum Written<'a> {
    /// This batch inserted it: the batch's appended event ids and their global positions,
    /// and what plugins derived, by message.
    New(&'a append::Appended),
    /// Its idempotency key was stored before: the first copy's answer, as its row holds it.
    Duplicate(&'a StoredAnswer),
}

/// The outcome of one message of a committed batch: the one place that turns a processed
/// message, or a duplicate's stored answer, into what the writer hands back.
pub(crate) fn outcome(p: &Processed, written: Written<'_>) -> Outcome {
    match written {
        Written::Duplicate(first) => Outcome::duplicate(
            p,
            AckCode::from_letter(&first.ack_code).unwrap_or(AckCode::Accept),
            first.reason_code.as_deref().and_then(Reason::from_code),
        ),
        Written::New(appended) => {
            let derived = appended
                .derived
                .get(&p.raw.id)
                .map_or(&[][..], Vec::as_slice);
            Outcome::inserted(p, &appended.positions, derived)
        }
    }
}
