//! What a database provides to the store: transactions, and in them the SQL statements that
//! the orchestration (`log`, `dead_letters`, `outbox`) runs. A backend implements these
//! traits and nothing else; every decision (what to insert, in which order, at which
//! version, what to answer) is taken by the orchestration, once for every database.
//!
//! Each statement method is one round trip, or one per chunk where a database bounds the
//! size of a statement.

use super::messages::{EventRef, KeyRow, MessageQuery, MessageRow};
use super::{DeadLetter, DeadLetterFilter, EventQuery, MappingVersion, Store, StoreError};
use crate::event::{EventEnvelope, NewEvent};
use chrono::{DateTime, Utc};
use std::future::Future;
use std::time::Duration;
use uuid::Uuid;

/// Results of the store.
pub(crate) type Res<T> = Result<T, StoreError>;

/// A database: where transactions begin, and its lifecycle.
#[async_trait::async_trait]
pub(crate) trait Backend: Send + Sync + 'static {
    /// A unit of work on this database.
    type Tx: Tx;

    /// Begins a unit of work that sees `scope`'s rows.
    async fn begin(&self, scope: Scope<'_>, work: Work) -> Res<Self::Tx>;

    /// Checks (or makes) the database ready for `intake serve`.
    async fn check_serving(&self) -> Res<()>;

    /// Applies pending schema migrations.
    async fn run_migrations(&self) -> Res<()>;

    /// The committed stream states the plugins' rules fold onto (one per store).
    fn state_cache(&self) -> &super::state_cache::StateCache;
}

/// Which tenants' rows a unit of work sees (PostgreSQL enforces it by row-level security).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Scope<'a> {
    /// Every tenant's: the engine's own cross-tenant work.
    All,
    /// One tenant's.
    Tenant(&'a str),
}

impl<'a> Scope<'a> {
    /// `tenant`'s rows, or every tenant's when none is given.
    pub(crate) fn of(tenant: Option<&'a str>) -> Self {
        tenant.map_or(Scope::All, Scope::Tenant)
    }
}

/// How a unit of work runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Work {
    /// Reads, or single writes that need no transaction of their own (SQLite runs them in
    /// autocommit mode).
    Single,
    /// Statements that commit together or not at all.
    Atomic,
    /// Atomic, and claims dead letters exclusively: SQLite takes the write lock up front
    /// (`BEGIN IMMEDIATE`); PostgreSQL claims in the statement (`FOR UPDATE SKIP LOCKED`).
    Claim,
}

/// A unit of work: the statements of every concern, then commit or rollback.
#[async_trait::async_trait]
pub(crate) trait Tx:
    EventSql
    + DeadLetterSql
    + MessageSql
    + OutboxSql
    + CursorSql
    + VersionSql
    + ProjectionSql
    + RetentionSql
    + Send
    + 'static
{
    /// Commits what the statements did.
    async fn commit(self) -> Res<()>;

    /// Undoes what the statements did.
    async fn rollback(self) -> Res<()>;

    /// One cheap statement: the database answers.
    async fn ping(&mut self) -> Res<()>;
}

/// Statements of the event log.
#[async_trait::async_trait]
pub(crate) trait EventSql {
    /// Inserts inbound messages in the order given, skipping each whose id or idempotency
    /// key is stored already; returns the ids it inserted.
    async fn insert_inbound(&mut self, rows: &[InboundRow<'_>]) -> Res<Vec<Uuid>>;

    /// The stored answers of the messages whose idempotency keys are `keys`
    /// (tenant, sending facility, control id).
    async fn stored_answers(&mut self, keys: &[[&str; 3]]) -> Res<Vec<StoredAnswer>>;

    /// Serializes appends until this unit of work ends, so that stream versions never clash
    /// and positions become visible in order (PostgreSQL: an advisory lock; SQLite's one
    /// writer needs none). Taking it again is free.
    async fn lock_appends(&mut self) -> Res<()>;

    /// Which of `ids` are stored events.
    async fn stored_event_ids(&mut self, ids: &[Uuid]) -> Res<Vec<Uuid>>;

    /// The last version of each of `streams` that has events.
    async fn stream_heads(&mut self, streams: &[Uuid]) -> Res<Vec<(Uuid, i64)>>;

    /// Inserts events in the order given, each with an outbox row in the same statement
    /// or unit of work when the store was opened with
    /// [`StoreOptions::outbox`](super::StoreOptions::outbox); returns
    /// each one's (event id, global position).
    async fn insert_events(&mut self, rows: &[EventRow<'_>]) -> Res<Vec<(Uuid, i64)>>;

    /// Inserts dead letters (their inbound messages are inserted already).
    async fn insert_dead_letters(&mut self, rows: &[DeadLetterRow<'_>]) -> Res<()>;

    /// Events in global order, as `query` selects them.
    async fn select_events(&mut self, query: &EventQuery) -> Res<Vec<EventEnvelope>>;

    /// Every event of `streams`, in global order (the plugins' stateful rules fold them).
    async fn stream_events(&mut self, streams: &[Uuid]) -> Res<Vec<EventEnvelope>>;
}

/// Statements on dead letters.
#[async_trait::async_trait]
pub(crate) trait DeadLetterSql {
    /// Dead letters (of `tenant`, when given), oldest first.
    async fn list_dead_letters(&mut self, tenant: Option<&str>) -> Res<Vec<DeadLetter>>;

    /// The raw message of dead letter `id` (of `tenant`, when given).
    async fn dead_letter_raw(&mut self, tenant: Option<&str>, id: Uuid) -> Res<Option<RawRow>>;

    /// The open letters `filter` selects, in id order, with their inbound messages. With
    /// `claim`, exclusively: letters another unit of work holds are skipped. Without, a
    /// plain read that takes no lock (previews).
    async fn select_letters(
        &mut self,
        filter: &DeadLetterFilter,
        claim: bool,
    ) -> Res<Vec<ClaimedLetter>>;

    /// Marks letters `replayed`.
    async fn mark_replayed(&mut self, ids: &[Uuid]) -> Res<()>;

    /// Counts one more attempt on the dead letter of the message stored under `key`
    /// (tenant, sending facility, control id), if it has one.
    async fn count_resend(&mut self, key: [&str; 3]) -> Res<()>;

    /// Marks the open letters `filter` selects `discarded`, skipping letters another unit
    /// of work holds; returns their ids and tenants.
    async fn discard_letters(
        &mut self,
        filter: &DeadLetterFilter,
    ) -> Res<Vec<(Uuid, Option<String>)>>;
}

/// Statements of the message browser.
#[async_trait::async_trait]
pub(crate) trait MessageSql {
    /// Inserts business-key rows, skipping any stored already.
    async fn insert_message_keys(&mut self, rows: &[KeyRow<'_>]) -> Res<()>;

    /// The inbound messages `query` selects, newest first, with their dead letters.
    async fn select_messages(&mut self, query: &MessageQuery) -> Res<Vec<MessageRow>>;

    /// The events of the inbound messages `ids`, in global order.
    async fn events_of_messages(&mut self, ids: &[Uuid]) -> Res<Vec<EventRef>>;

    /// The same events whole.
    async fn message_events(&mut self, ids: &[Uuid]) -> Res<Vec<EventEnvelope>>;

    /// The inbound messages `ids`, as received, but those whose raw was pruned.
    async fn inbound_inputs(&mut self, ids: &[Uuid]) -> Res<Vec<ClaimedLetter>>;
}

/// Statements of the outbox and its publisher lease.
#[async_trait::async_trait]
pub(crate) trait OutboxSql {
    /// The publisher lease as it stands, judged for a lease of length `lease`; `None`
    /// when nobody ever took it.
    async fn lease(&mut self, lease: Duration) -> Res<Option<Lease>>;

    /// Takes the lease for `holder` for `lease` when it is free, expired or `holder`'s
    /// already; false when another holder keeps it.
    async fn take_lease(&mut self, holder: &str, lease: Duration) -> Res<bool>;

    /// Up to `limit` unpublished events, in global order.
    async fn unpublished(&mut self, limit: i64) -> Res<Vec<EventEnvelope>>;

    /// Marks the events at `positions` published.
    async fn mark_published(&mut self, positions: &[i64]) -> Res<()>;

    /// How many events wait to be published.
    async fn backlog(&mut self) -> Res<i64>;
}

/// Statements on polling cursors.
#[async_trait::async_trait]
pub(crate) trait CursorSql {
    /// The cursor of `tenant`'s `source`, if saved.
    async fn cursor(&mut self, tenant: &str, source: &str) -> Res<Option<String>>;

    /// Saves the cursor of `tenant`'s `source`, replacing the one saved.
    async fn save_cursor(&mut self, tenant: &str, source: &str, cursor: &str) -> Res<()>;
}

/// One stream's folded state, as the projection stores it.
#[derive(Debug, Clone)]
pub(crate) struct StateRow {
    pub stream_id: Uuid,
    pub tenant_id: String,
    pub stream_type: String,
    pub version: i64,
    pub status: Option<String>,
    pub location: Option<String>,
    /// The state, JSON.
    pub state: String,
}

/// Statements of the read models (projections).
#[async_trait::async_trait]
pub(crate) trait ProjectionSql {
    /// Where projection `name` has got to (0 before its first event).
    async fn projection_position(&mut self, name: &str) -> Res<i64>;

    /// Moves projection `name` from position `from` to `to`; false (and nothing
    /// changed) when it is no longer at `from` (another instance advanced it).
    async fn move_projection(&mut self, name: &str, from: i64, to: i64) -> Res<bool>;

    /// The stored states of `streams`.
    async fn stream_states(&mut self, streams: &[Uuid]) -> Res<Vec<StateRow>>;

    /// Inserts or replaces states.
    async fn put_stream_states(&mut self, rows: &[StateRow]) -> Res<()>;

    /// Forgets every state and sets projection `name` back to 0.
    async fn clear_projection(&mut self, name: &str) -> Res<()>;

    /// The states of `tenant`'s streams of `stream_type` whose status is one of
    /// `statuses` (at `location`, when given), by location and stream.
    async fn states_with_status(
        &mut self,
        tenant: &str,
        stream_type: &str,
        statuses: &[&str],
        location: Option<&str>,
    ) -> Res<Vec<StateRow>>;

    /// The global position of the newest event (0 when there is none).
    async fn head_position(&mut self) -> Res<i64>;
}

/// Statements of raw-message retention.
#[async_trait::async_trait]
pub(crate) trait RetentionSql {
    /// Up to `limit` messages of `tenant` received before `cutoff` whose raw is kept and
    /// that have no open dead letter, after `after` in id order: each one's id and raw
    /// length in bytes.
    async fn prunable(
        &mut self,
        tenant: &str,
        cutoff: DateTime<Utc>,
        after: Option<Uuid>,
        limit: i64,
    ) -> Res<Vec<(Uuid, i64)>>;

    /// Empties the raw of messages `ids` and records the unit of work's time as their
    /// `pruned_at`.
    async fn prune(&mut self, ids: &[Uuid]) -> Res<()>;
}

/// Statements on the history of mapping versions.
#[async_trait::async_trait]
pub(crate) trait VersionSql {
    /// The newest recorded version of `tenant`, if any.
    async fn latest_version(&mut self, tenant: &str) -> Res<Option<String>>;

    /// Records that `version` of `tenant` went live, with its files (JSON).
    async fn insert_version(
        &mut self,
        tenant: &str,
        version: &str,
        origin: &str,
        files: &str,
    ) -> Res<()>;

    /// Deletes all but the newest `keep` rows of `tenant`.
    async fn prune_versions(&mut self, tenant: &str, keep: i64) -> Res<()>;

    /// The newest `limit` rows of `tenant`, newest first, without their files.
    async fn versions(&mut self, tenant: &str, limit: i64) -> Res<Vec<MappingVersion>>;

    /// The files (JSON) of row `seq` of `tenant`.
    async fn version_files(&mut self, tenant: &str, seq: i64) -> Res<Option<String>>;
}

/// An inbound message row.
pub(crate) struct InboundRow<'a> {
    /// Inbound message id.
    pub id: Uuid,
    /// The resolved tenant, if any.
    pub tenant: Option<&'a str>,
    /// MSH-4, when the key is known.
    pub sending_facility: Option<&'a str>,
    /// MSH-10, when the key is known.
    pub control_id: Option<&'a str>,
    /// Where it came from.
    pub channel: &'a str,
    /// `ADT^A01` or the FHIR resource type, when known.
    pub message_type: Option<&'a str>,
    /// `hl7v2`, `fhir+json` or `fhir+xml`: how replay decodes the bytes.
    pub format: &'static str,
    /// The bytes as received.
    pub raw: &'a [u8],
    /// When it was received.
    pub received_at: DateTime<Utc>,
    /// `stored`, `filtered` or `dead_lettered`.
    pub outcome: &'static str,
    /// The ack letter it earned (replayed to resends).
    pub ack: &'static str,
    /// The reason code when dead-lettered.
    pub reason_code: Option<&'static str>,
    /// How many events it mapped to.
    pub event_count: i32,
    /// A filtered message's rule reason (mapping text, never message content).
    pub detail: Option<&'a str>,
}

/// An event row: the event at its planned stream version.
pub(crate) struct EventRow<'a> {
    /// The event.
    pub event: &'a NewEvent,
    /// Its version in its stream.
    pub version: i64,
    /// Which component wrote it.
    pub created_by: &'a str,
}

/// A dead-letter row (its id is its inbound message's).
pub(crate) struct DeadLetterRow<'a> {
    /// The inbound message id.
    pub id: Uuid,
    /// The tenant, when known.
    pub tenant: Option<&'a str>,
    /// Stage name.
    pub stage: &'static str,
    /// Stable reason code.
    pub reason_code: &'static str,
    /// Field name and path, when relevant.
    pub detail: Option<&'a str>,
}

/// The answer stored with the first copy of an idempotency key.
#[derive(sqlx::FromRow)]
pub(crate) struct StoredAnswer {
    /// Key: tenant.
    pub tenant_id: String,
    /// Key: MSH-4.
    pub sending_facility: String,
    /// Key: MSH-10.
    pub control_id: String,
    /// `A`, `E` or `R`.
    pub ack_code: String,
    /// The reason code when it was dead-lettered.
    pub reason_code: Option<String>,
}

/// A message's raw column and when retention emptied it.
#[derive(sqlx::FromRow)]
pub(crate) struct RawRow {
    /// The bytes (empty once pruned).
    pub raw: Vec<u8>,
    /// When they were pruned (RFC 3339), if they were.
    pub pruned_at: Option<String>,
}

impl RawRow {
    /// What the row holds, for callers.
    pub(crate) fn into_stored(self) -> super::StoredRaw {
        match self.pruned_at {
            Some(at) => super::StoredRaw::Pruned(at),
            None => super::StoredRaw::Kept(self.raw),
        }
    }
}

/// A dead letter claimed by a replay, with its inbound message.
#[derive(sqlx::FromRow)]
pub(crate) struct ClaimedLetter {
    /// The letter (= inbound message id).
    pub id: Uuid,
    /// The inbound message's tenant.
    pub tenant_id: Option<String>,
    /// Where it came from.
    pub channel: String,
    /// `hl7v2`, `fhir+json` or `fhir+xml`.
    pub format: String,
    /// The bytes as received.
    pub raw: Vec<u8>,
    /// When it was received.
    pub received_at: DateTime<Utc>,
}

impl ClaimedLetter {
    /// The inbound message as it was received: mapping it again gives its events the ids
    /// they had the first time.
    pub(crate) fn into_raw(self) -> crate::message::RawMessage {
        crate::message::RawMessage {
            id: self.id,
            tenant: self.tenant_id,
            // The column is written from `Format::as_str` and defaults to `hl7v2`.
            format: crate::message::Format::from_name(&self.format)
                .unwrap_or(crate::message::Format::Hl7v2),
            channel: self.channel,
            bytes: self.raw,
            received_at: self.received_at,
        }
    }
}

/// The publisher lease as it stands.
#[derive(sqlx::FromRow)]
pub(crate) struct Lease {
    /// Who holds it.
    pub holder: String,
    /// It has not expired.
    pub valid: bool,
    /// More than half of a lease's length is left (no renewal due).
    pub fresh: bool,
}

/// How often work that fails on [`StoreError::Contention`] is tried in all (only
/// PostgreSQL reports contention; SQLite has one writer at a time).
const ATTEMPTS: usize = 4;

/// Runs `work` until it succeeds, fails for a reason other than contention, or has been
/// tried [`ATTEMPTS`] times; each try is a fresh unit of work.
pub(crate) async fn retry<T, F, Fut>(mut work: F) -> Res<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Res<T>>,
{
    let mut attempt = 1;
    loop {
        match work().await {
            Err(StoreError::Contention(_)) if attempt < ATTEMPTS => {
                tracing::debug!(attempt, "concurrent transaction conflict; retrying");
                tokio::time::sleep(Duration::from_millis(5 << attempt)).await;
                attempt += 1;
            }
            other => return other,
        }
    }
}

#[async_trait::async_trait]
impl<B: Backend> Store for B {
    async fn migrate(&self) -> Res<()> {
        self.run_migrations().await
    }

    async fn prepare_serving(&self) -> Res<()> {
        self.check_serving().await
    }

    async fn ping(&self) -> Res<()> {
        let mut tx = self.begin(Scope::All, Work::Single).await?;
        tx.ping().await?;
        tx.commit().await
    }
}
