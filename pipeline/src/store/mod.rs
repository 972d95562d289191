//! The event store: one trait, one implementation per database.
//!
//! A store commits whole batches of processed messages in one transaction (the batching
//! writer calls it), appends events with optimistic concurrency, and reads events and
//! dead letters back.

mod postgres;
mod replay;
mod sqlite;

pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

use crate::event::{EventEnvelope, NewEvent};
use crate::hl7::ack::AckCode;
use crate::message::RawMessage;
use crate::outcome::Outcome;
use crate::pipeline::Processed;
use crate::reason::Reason;
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
pub async fn open(url: &str, options: StoreOptions) -> Result<Arc<dyn EventStore>, StoreError> {
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

/// Store failures. Messages never contain message content.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database is unreachable or failed.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// Optimistic concurrency: the stream moved on.
    #[error("stream {stream_id} is at version {actual}, expected {expected:?}")]
    Conflict {
        /// The stream.
        stream_id: Uuid,
        /// What the caller expected.
        expected: ExpectedVersion,
        /// Where the stream is.
        actual: i64,
    },
    /// Schema migration failed.
    #[error("migration failed: {0}")]
    Migration(String),
    /// The database is reachable but not set up for serving (schema, role).
    #[error("{0}")]
    Setup(String),
}

impl StoreError {
    /// Stable code for ACKs and API errors.
    pub fn code(&self) -> &'static str {
        match self {
            StoreError::Unavailable(_) | StoreError::Migration(_) | StoreError::Setup(_) => {
                "STORE_UNAVAILABLE"
            }
            StoreError::Conflict { .. } => "STREAM_CONFLICT",
        }
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        // sqlx errors name tables, columns and constraints, never bound values.
        StoreError::Unavailable(e.to_string())
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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

/// Maps a dead letter's raw message again, with the mappings in force now.
pub type Remap = dyn Fn(RawMessage) -> Processed + Send + Sync;

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

/// An event store.
#[async_trait::async_trait]
pub trait EventStore: Send + Sync + 'static {
    /// Applies pending schema migrations.
    async fn migrate(&self) -> Result<(), StoreError>;

    /// Makes the store ready for `intake serve`. SQLite applies its migrations (the
    /// embedded default needs no separate step); PostgreSQL checks that `intake migrate`
    /// has run (as the owner role) and that the engine's role is subject to row-level
    /// security.
    async fn prepare_serving(&self) -> Result<(), StoreError>;

    /// Commits a batch of processed messages in one transaction. The outer error means
    /// nothing was committed; an inner error affects only that message (a failed batch
    /// is retried message by message, so one bad message cannot fail the others).
    async fn commit_batch(
        &self,
        batch: &[Processed],
    ) -> Result<Vec<Result<Outcome, StoreError>>, StoreError>;

    /// Appends events to one stream, checking the expected version; returns positions.
    async fn append(
        &self,
        expected: ExpectedVersion,
        events: &[NewEvent],
        created_by: &str,
    ) -> Result<Vec<i64>, StoreError>;

    /// Reads events in global order.
    async fn read_events(&self, query: &EventQuery) -> Result<Vec<EventEnvelope>, StoreError>;

    /// Lists dead letters, newest last.
    async fn dead_letters(&self, tenant: Option<&str>) -> Result<Vec<DeadLetter>, StoreError>;

    /// Claims the open dead letters `filter` selects, exclusively (a letter another
    /// replay holds is skipped, not waited for), maps each raw message again with
    /// `remap`, appends the events of those that now map and marks them `replayed`, all
    /// in one transaction. Letters that still fail stay open. A dry run stores nothing.
    async fn replay_dead_letters(
        &self,
        filter: &DeadLetterFilter,
        remap: &Remap,
        dry_run: bool,
    ) -> Result<Vec<Replayed>, StoreError>;

    /// The raw message of a dead letter (of `tenant`, when given), as received: what
    /// support staff inspect to fix a mapping.
    async fn dead_letter_message(
        &self,
        tenant: Option<&str>,
        id: Uuid,
    ) -> Result<Option<Vec<u8>>, StoreError>;

    /// Marks the open dead letters `filter` selects `discarded`; returns their ids.
    async fn discard_dead_letters(
        &self,
        filter: &DeadLetterFilter,
    ) -> Result<Vec<Uuid>, StoreError>;

    /// Cheap liveness check of the database.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Takes (or renews) the publisher lease for `holder` for `lease`, and returns up to `limit`
    /// unpublished events in global order; `None` when another holder's lease is still valid
    /// (one publisher at a time across instances keeps per-stream order).
    async fn outbox_claim(
        &self,
        holder: &str,
        lease: std::time::Duration,
        limit: i64,
    ) -> Result<Option<Vec<EventEnvelope>>, StoreError>;

    /// Marks events published (after the broker confirmed them).
    async fn outbox_mark_published(&self, positions: &[i64]) -> Result<(), StoreError>;

    /// How many events wait to be published.
    async fn outbox_backlog(&self) -> Result<i64, StoreError>;

    /// The saved position of a polling source of `tenant` (e.g. `fhir:Patient`), if any.
    /// Cursors are opaque text to the store.
    async fn poll_cursor(&self, tenant: &str, source: &str) -> Result<Option<String>, StoreError>;

    /// Saves the position of a polling source of `tenant`. Pollers call it only once
    /// everything up to `cursor` is committed, so a restart resumes without losing anything.
    async fn set_poll_cursor(
        &self,
        tenant: &str,
        source: &str,
        cursor: &str,
    ) -> Result<(), StoreError>;
}

/// Which component wrote an event: `intake/mllp`, `intake/http`, ...
pub(crate) fn created_by(p: &Processed) -> String {
    format!(
        "intake/{}",
        p.raw.channel.split(':').next().unwrap_or("unknown")
    )
}

/// The outcome of a message whose rows were inserted by this batch.
pub(crate) fn outcome(p: &Processed, positions: &std::collections::HashMap<Uuid, i64>) -> Outcome {
    Outcome::inserted(p, positions)
}

/// The outcome of a message whose key was stored before, from the first one's stored
/// acknowledgement letter and reason code.
pub(crate) fn duplicate(p: &Processed, ack: &str, reason: Option<&str>) -> Outcome {
    Outcome::duplicate(
        p,
        AckCode::from_letter(ack).unwrap_or(AckCode::Accept),
        reason.and_then(Reason::from_code),
    )
}
