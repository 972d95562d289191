//! The event store: one trait, one implementation per database.
//!
//! A store commits whole batches of processed messages in one transaction (the batching
//! writer calls it), appends events with optimistic concurrency, and reads events and
//! dead letters back.

mod sqlite;

pub use sqlite::SqliteStore;

use crate::event::{EventEnvelope, NewEvent};
use crate::pipeline::{AckCode, Processed};
use serde::Serialize;
use uuid::Uuid;

/// What happened to one message in a committed batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stored {
    /// Its events were appended.
    Events,
    /// It was kept as a dead letter.
    DeadLettered,
    /// Its idempotency key was already stored: nothing new was written.
    Duplicate,
}

/// The committed outcome of one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteOutcome {
    /// What was stored.
    pub stored: Stored,
    /// The acknowledgement it earned (for a duplicate: the first one's).
    pub ack: AckCode,
    /// The reason code when dead-lettered (for a duplicate: the first one's).
    pub reason_code: Option<String>,
    /// Global positions of the appended events.
    pub positions: Vec<i64>,
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
}

impl StoreError {
    /// Stable code for ACKs and API errors.
    pub fn code(&self) -> &'static str {
        match self {
            StoreError::Unavailable(_) | StoreError::Migration(_) => "STORE_UNAVAILABLE",
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

/// Store settings that do not come from the URL.
#[derive(Debug, Clone, Copy, Default)]
pub struct StoreOptions {
    /// Queue every appended event for publishing (a broker is configured).
    pub outbox: bool,
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

/// An event store.
#[async_trait::async_trait]
pub trait EventStore: Send + Sync + 'static {
    /// Applies pending schema migrations.
    async fn migrate(&self) -> Result<(), StoreError>;

    /// Commits a batch of processed messages in one transaction. The outer error means
    /// nothing was committed; an inner error affects only that message (a failed batch
    /// is retried message by message, so one bad message cannot fail the others).
    async fn commit_batch(
        &self,
        batch: &[Processed],
    ) -> Result<Vec<Result<WriteOutcome, StoreError>>, StoreError>;

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
}
