//! The store's one error type.

use super::ExpectedVersion;
use uuid::Uuid;

/// Store failures. Messages never contain message content.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database is unreachable or failed.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// A concurrent transaction got in the way (deadlock, serialization failure, or a key
    /// that another instance inserted at the same moment): the work may succeed when tried
    /// again, and the store does so a few times before giving up with this error.
    #[error("store contention: {0}")]
    Contention(String),
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
    /// An inbound message's id is already stored, and not as the first copy of the same
    /// idempotency key.
    #[error("inbound message id collision: {0}")]
    IdCollision(Uuid),
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
            StoreError::Conflict { .. } => "STREAM_CONFLICT",
            StoreError::Unavailable(_)
            | StoreError::Contention(_)
            | StoreError::IdCollision(_)
            | StoreError::Migration(_)
            | StoreError::Setup(_) => "STORE_UNAVAILABLE",
        }
    }
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        StoreError::Migration(e.to_string())
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        // sqlx errors name tables, columns and constraints, never bound values.
        if super::postgres::is_contention(&e) {
            StoreError::Contention(e.to_string())
        } else {
            StoreError::Unavailable(e.to_string())
        }
    }
}
