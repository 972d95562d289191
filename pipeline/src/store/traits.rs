//! The store's public traits, one per concern. Every backend implements all of them
//! through the orchestration in this module's siblings; callers hold an `Arc<dyn Store>`
//! and bring into scope the concern they use (`use intake_pipeline::store::EventLog`).

use super::messages::{MessageHit, MessageQuery};
use super::{
    DeadLetter, DeadLetterFilter, EventQuery, ExpectedVersion, MappingVersion, Preview, Remap,
    Replayed, StoreError, StoredRaw,
};
use crate::audit::Actor;
use crate::event::{EventEnvelope, NewEvent};
use crate::outcome::Outcome;
use crate::pipeline::Processed;
use std::time::Duration;
use uuid::Uuid;

/// What came in and what it became: group commit of processed messages, appends with
/// optimistic concurrency, reads in global order.
#[async_trait::async_trait]
pub trait EventLog: Send + Sync {
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
}

/// The messages that could not become events, and the support operations on them.
#[async_trait::async_trait]
pub trait DeadLetters: Send + Sync {
    /// Lists dead letters, newest last.
    async fn dead_letters(&self, tenant: Option<&str>) -> Result<Vec<DeadLetter>, StoreError>;

    /// The raw message of a dead letter (of `tenant`, when given), as received: what
    /// support staff inspect to fix a mapping; [`StoredRaw::Pruned`] once retention
    /// emptied it (never while the letter is open).
    async fn dead_letter_message(
        &self,
        tenant: Option<&str>,
        id: Uuid,
    ) -> Result<Option<StoredRaw>, StoreError>;

    /// What a replay of the open letters `filter` selects would do: each one's events, as
    /// `remap` maps them now, and how many of those are not stored yet. A plain read: it
    /// claims nothing, takes no write lock and changes nothing.
    async fn preview_dead_letters(
        &self,
        filter: &DeadLetterFilter,
        remap: &Remap,
    ) -> Result<Vec<Preview>, StoreError>;

    /// Claims the open dead letters `filter` selects, exclusively (a letter another
    /// replay holds is skipped, not waited for), maps each raw message again with
    /// `remap`, appends the events of those that now map and marks them `replayed`, and
    /// appends `actor`'s audit event to each tenant's `Audit` stream, all in one
    /// transaction. Letters that still fail stay open.
    async fn replay_dead_letters(
        &self,
        filter: &DeadLetterFilter,
        remap: &Remap,
        actor: &Actor,
    ) -> Result<Vec<Replayed>, StoreError>;

    /// Marks the open dead letters `filter` selects `discarded` and audits it, in one
    /// transaction; returns their ids.
    async fn discard_dead_letters(
        &self,
        filter: &DeadLetterFilter,
        actor: &Actor,
    ) -> Result<Vec<Uuid>, StoreError>;
}

/// The message browser: inbound messages found by header facts, outcome, time or
/// business key, each with its events and dead letter (never content).
#[async_trait::async_trait]
pub trait Messages: Send + Sync {
    /// The messages `query` selects, newest first.
    async fn find_messages(&self, query: &MessageQuery) -> Result<Vec<MessageHit>, StoreError>;

    /// The inbound messages `ids` of `tenant`, as received (same id, channel, format and
    /// receipt time, so that mapping one again gives its events their first ids). Messages
    /// whose raw bytes retention emptied are left out.
    async fn message_inputs(
        &self,
        tenant: &str,
        ids: &[Uuid],
    ) -> Result<Vec<crate::message::RawMessage>, StoreError>;

    /// The events the inbound messages `ids` of `tenant` produced, whole, in global order.
    async fn message_events(
        &self,
        tenant: &str,
        ids: &[Uuid],
    ) -> Result<Vec<EventEnvelope>, StoreError>;

    /// Appends correction events (skipping any stored already) and their audit event in
    /// one transaction; returns how many corrections were appended.
    async fn append_corrections(
        &self,
        events: &[NewEvent],
        audit: NewEvent,
    ) -> Result<usize, StoreError>;
}

/// Appended events waiting for the broker (written with the events when
/// `StoreOptions::outbox` is on).
#[async_trait::async_trait]
pub trait Outbox: Send + Sync {
    /// Takes (or renews) the publisher lease for `holder` for `lease`, and returns up to `limit`
    /// unpublished events in global order; `None` when another holder's lease is still valid
    /// (one publisher at a time across instances keeps per-stream order).
    async fn outbox_claim(
        &self,
        holder: &str,
        lease: Duration,
        limit: i64,
    ) -> Result<Option<Vec<EventEnvelope>>, StoreError>;

    /// Marks events published (after the broker confirmed them).
    async fn outbox_mark_published(&self, positions: &[i64]) -> Result<(), StoreError>;

    /// How many events wait to be published.
    async fn outbox_backlog(&self) -> Result<i64, StoreError>;
}

/// Where polling sources have got to.
#[async_trait::async_trait]
pub trait Cursors: Send + Sync {
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

/// The versions of each tenant's mapping files that went live (staged deploys).
#[async_trait::async_trait]
pub trait MappingHistory: Send + Sync {
    /// Records that `version` of `tenant` went live (`origin`: start, reload or rollback)
    /// with its files, unless it is already the newest row; keeps the newest `keep` rows.
    /// True when a row was added.
    async fn record_mapping_version(
        &self,
        tenant: &str,
        version: &str,
        origin: &str,
        files: &std::collections::BTreeMap<String, String>,
        keep: usize,
    ) -> Result<bool, StoreError>;

    /// The newest `limit` versions of `tenant`, newest first (files left out).
    async fn mapping_history(
        &self,
        tenant: &str,
        limit: i64,
    ) -> Result<Vec<MappingVersion>, StoreError>;

    /// The files of a recorded version (row `seq` of `tenant`).
    async fn mapping_files(
        &self,
        tenant: &str,
        seq: i64,
    ) -> Result<Option<std::collections::BTreeMap<String, String>>, StoreError>;
}

/// A whole store: every concern, plus the database's lifecycle.
#[async_trait::async_trait]
pub trait Store:
    EventLog
    + DeadLetters
    + Messages
    + Outbox
    + Cursors
    + MappingHistory
    + super::Projections
    + super::Retention
    + 'static
{
    /// Applies pending schema migrations.
    async fn migrate(&self) -> Result<(), StoreError>;

    /// Makes the store ready for `intake serve`. SQLite applies its migrations (the
    /// embedded default needs no separate step); PostgreSQL checks that `intake migrate`
    /// has run (as the owner role) and that the engine's role is subject to row-level
    /// security.
    async fn prepare_serving(&self) -> Result<(), StoreError>;

    /// Cheap liveness check of the database.
    async fn ping(&self) -> Result<(), StoreError>;
}
