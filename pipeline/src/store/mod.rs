//! The event store: what is stored is decided here, once; each database holds only its SQL.
//!
//! - [`traits`]: the public traits, one per concern ([`EventLog`], [`DeadLetters`],
//!   [`Outbox`], [`Cursors`]) and the [`Store`] that callers hold as `Arc<dyn Store>`.
//! - `backend`: the transaction-level statements a database provides (crate-private).
//! - `log`, `append`, `dead_letters`, `outbox`: the orchestration, written once over any
//!   backend: group commit with its one-by-one fallback, dedupe, version planning,
//!   outcomes, the expected-version check, replay.
//! - `sqlite`, `postgres`: the SQL of each database, and its connection glue.

mod append;
mod backend;
mod dead_letters;
mod error;
mod log;
mod outbox;
mod postgres;
mod sqlite;
mod traits;
mod versions;

pub use error::StoreError;
pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;
pub use traits::{Cursors, DeadLetters, EventLog, MappingHistory, Outbox, Store};
pub use versions::MappingVersion;

use crate::hl7::ack::AckCode;
use crate::outcome::Outcome;
use crate::pipeline::Processed;
use crate::reason::Reason;
use backend::StoredAnswer;
use serde::Serialize;
use std::collections::HashMap;
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
    /// When it was stored.
    pub created_at: String,
    /// How often the message was received: 1, plus one per resend of the same key.
    pub attempts: i32,
}

/// Which open dead letters a support operation takes.
#[derive(Debug, Clone, Default)]
pub struct DeadLetterFilter {
    /// Only this tenant's (None: every tenant, and letters with no tenant; admin use).
    pub tenant: Option<String>,
    /// Only these ids (empty: any).
    pub ids: Vec<Uuid>,
    /// Only letters with this reason code.
    pub code: Option<String>,
    /// At most this many.
    pub limit: i64,
}

impl DeadLetterFilter {
    /// The letters of `letters` (oldest first, as `DeadLetters::dead_letters` lists them)
    /// that the filter takes: open, and matching its ids, code and limit, as the stores'
    /// claim and discard queries select them. For dry runs that must not lock.
    pub fn select(&self, letters: Vec<DeadLetter>) -> Vec<DeadLetter> {
        letters
            .into_iter()
            .filter(|d| d.status == "open")
            .filter(|d| self.tenant.is_none() || d.tenant_id == self.tenant)
            .filter(|d| self.ids.is_empty() || self.ids.contains(&d.id))
            .filter(|d| self.code.as_ref().is_none_or(|c| *c == d.reason_code))
            .take(usize::try_from(self.limit).unwrap_or(0))
            .collect()
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

/// Which component wrote an event: `intake/mllp`, `intake/http`, ...
pub(crate) fn created_by(p: &Processed) -> String {
    format!(
        "intake/{}",
        p.raw.channel.split(':').next().unwrap_or("unknown")
    )
}

/// How a message's rows stand once its batch has inserted what was new.
pub(crate) enum Written<'a> {
    /// This batch inserted it; `positions` maps the batch's appended event ids to their
    /// global positions.
    New(&'a HashMap<Uuid, i64>),
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
        Written::New(positions) => Outcome::inserted(p, positions),
    }
}
