//! The PostgreSQL store: the production backend, shared by several `intake serve`
//! instances.
//!
//! - **Tenant isolation** by row-level security: every transaction first sets the
//!   transaction-local `app.tenant_id` (a tenant, or `*` for the engine's cross-tenant
//!   work), and the policies in `migrations/postgres` only let rows of that scope through.
//!   The engine must log in as a member of `intake_app`, never as a superuser, a
//!   `BYPASSRLS` role or the tables' owner; [`EventStore::prepare_serving`] checks it.
//! - **Several instances**: idempotency is the unique key on inbound messages; event
//!   appends are serialized by one transaction-scoped advisory lock, so stream versions
//!   never clash and global positions become visible in order (a reader following
//!   `after=` never skips an event that commits late); a transaction that still fails on
//!   a deadlock, serialization failure or unique violation is retried.

mod batch;
mod outbox;
mod replay;

use super::{
    DeadLetter, DeadLetterFilter, EventQuery, EventStore, ExpectedVersion, Remap, Replayed,
    StoreError, StoreOptions, Outcome,
};
use crate::event::{EventEnvelope, NewEvent};
use crate::pipeline::Processed;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, Postgres, Row, Transaction};
use std::str::FromStr;
use std::time::Duration;

/// How often a transaction that failed on a concurrency error is tried again.
const ATTEMPTS: usize = 4;

/// PostgreSQL-backed [`EventStore`].
#[derive(Clone)]
pub struct PostgresStore {
    pool: PgPool,
    options: StoreOptions,
}

impl PostgresStore {
    /// Connects to `url` (`postgres://user@host:port/database`).
    pub async fn open(url: &str, options: StoreOptions) -> Result<Self, StoreError> {
        let connect = PgConnectOptions::from_str(url)?.application_name("intake");
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(connect)
            .await?;
        Ok(PostgresStore { pool, options })
    }

    /// The connection pool (tests use it for hand-written queries).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

/// Begins a transaction scoped to `tenant` (`*`: every tenant).
pub(super) async fn begin_scoped(
    pool: &PgPool,
    tenant: &str,
) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT set_config('app.tenant_id', $1, true)")
        .bind(tenant)
        .execute(&mut *tx)
        .await?;
    Ok(tx)
}

/// Whether a failed transaction may succeed when tried again: deadlock, serialization
/// failure, or a unique violation raced by another instance.
fn retryable(e: &sqlx::Error) -> bool {
    matches!(
        e.as_database_error().and_then(|d| d.code()).as_deref(),
        Some("40001" | "40P01" | "23505")
    )
}

/// Runs `f` in fresh transactions until it succeeds or fails for a non-retryable reason.
macro_rules! with_retry {
    ($f:expr) => {{
        let mut attempt = 1;
        loop {
            match $f.await {
                Err(e) if retryable(&e) && attempt < ATTEMPTS => {
                    tracing::debug!(attempt, "concurrent transaction conflict; retrying");
                    tokio::time::sleep(Duration::from_millis(5 << attempt)).await;
                    attempt += 1;
                }
                other => break other,
            }
        }
    }};
}

/// Events as `GET .../events` shows them; `$n` placeholders follow the SELECT.
const EVENT_COLUMNS: &str = "event_id, stream_id, stream_type, event_type, event_version, \
     tenant_id, data, metadata, \
     to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), \
     created_by, global_position";

pub(super) fn envelope(r: &sqlx::postgres::PgRow) -> Result<EventEnvelope, sqlx::Error> {
    Ok(EventEnvelope {
        event_id: r.try_get(0)?,
        stream_id: r.try_get(1)?,
        stream_type: r.try_get(2)?,
        event_type: r.try_get(3)?,
        event_version: r.try_get(4)?,
        tenant_id: r.try_get(5)?,
        data: r.try_get(6)?,
        metadata: r.try_get(7)?,
        created_at: r.try_get(8)?,
        created_by: r.try_get(9)?,
        global_position: r.try_get(10)?,
    })
}

#[async_trait::async_trait]
impl EventStore for PostgresStore {
    async fn migrate(&self) -> Result<(), StoreError> {
        sqlx::migrate!("../migrations/postgres")
            .run(&self.pool)
            .await
            .map_err(|e| StoreError::Migration(e.to_string()))
    }

    async fn prepare_serving(&self) -> Result<(), StoreError> {
        let privileged: bool = sqlx::query_scalar(
            "SELECT rolsuper OR rolbypassrls OR EXISTS \
             (SELECT 1 FROM pg_tables WHERE tablename = 'events' AND tableowner = current_user) \
             FROM pg_roles WHERE rolname = current_user",
        )
        .fetch_one(&self.pool)
        .await?;
        if privileged {
            return Err(StoreError::Setup(
                "the database role is a superuser, has BYPASSRLS or owns the tables, so \
                 row-level security would not isolate tenants: connect as a member of \
                 intake_app (see the README, PostgreSQL)"
                    .into(),
            ));
        }
        let latest = sqlx::migrate!("../migrations/postgres")
            .iter()
            .map(|m| m.version)
            .max()
            .unwrap_or(0);
        let applied: Option<i64> =
            sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations WHERE success")
                .fetch_one(&self.pool)
                .await
                .unwrap_or(None);
        if applied.unwrap_or(0) < latest {
            return Err(StoreError::Setup(format!(
                "the database schema is at migration {} of {latest}: run `intake migrate` \
                 as the owner role first",
                applied.unwrap_or(0)
            )));
        }
        Ok(())
    }

    async fn commit_batch(
        &self,
        batch: &[Processed],
    ) -> Result<Vec<Result<Outcome, StoreError>>, StoreError> {
        let outbox = self.options.outbox;
        match with_retry!(batch::commit_all(&self.pool, batch, outbox)) {
            Ok(outcomes) => Ok(outcomes.into_iter().map(Ok).collect()),
            Err(e) if batch.len() == 1 => Ok(vec![Err(e.into())]),
            Err(e) => {
                let e = StoreError::from(e);
                tracing::warn!(
                    batch = batch.len(),
                    code = e.code(),
                    "batch failed; committing messages one by one"
                );
                let mut results = Vec::with_capacity(batch.len());
                for p in batch {
                    let one = std::slice::from_ref(p);
                    results.push(
                        with_retry!(batch::commit_all(&self.pool, one, outbox))
                            .map(|mut o| o.remove(0))
                            .map_err(StoreError::from),
                    );
                }
                Ok(results)
            }
        }
    }

    async fn append(
        &self,
        expected: ExpectedVersion,
        events: &[NewEvent],
        created_by: &str,
    ) -> Result<Vec<i64>, StoreError> {
        let outbox = self.options.outbox;
        match with_retry!(batch::append_checked(
            &self.pool, expected, events, created_by, outbox
        )) {
            Ok(Ok(positions)) => Ok(positions),
            Ok(Err((stream_id, actual))) => Err(StoreError::Conflict {
                stream_id,
                expected,
                actual,
            }),
            Err(e) => Err(e.into()),
        }
    }

    async fn read_events(&self, q: &EventQuery) -> Result<Vec<EventEnvelope>, StoreError> {
        let mut tx = begin_scoped(&self.pool, q.tenant.as_deref().unwrap_or("*")).await?;
        let rows = sqlx::query(&format!(
            "SELECT {EVENT_COLUMNS} FROM events \
             WHERE global_position > $1 AND ($2::text IS NULL OR tenant_id = $2) \
             AND ($3::uuid IS NULL OR stream_id = $3) ORDER BY global_position LIMIT $4"
        ))
        .bind(q.after)
        .bind(q.tenant.as_deref())
        .bind(q.stream_id)
        .bind(q.limit)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(rows.iter().map(envelope).collect::<Result<_, _>>()?)
    }

    async fn dead_letters(&self, tenant: Option<&str>) -> Result<Vec<DeadLetter>, StoreError> {
        let mut tx = begin_scoped(&self.pool, tenant.unwrap_or("*")).await?;
        let rows = sqlx::query(
            "SELECT d.id, d.tenant_id, d.stage, d.reason_code, d.detail, d.status, i.message_type, \
             to_char(d.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') \
             FROM dead_letters d JOIN inbound_messages i ON i.id = d.inbound_id \
             WHERE ($1::text IS NULL OR d.tenant_id = $1) ORDER BY d.created_at, d.id",
        )
        .bind(tenant)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        let letters = rows
            .iter()
            .map(|r| {
                Ok(DeadLetter {
                    id: r.try_get(0)?,
                    tenant_id: r.try_get(1)?,
                    stage: r.try_get(2)?,
                    reason_code: r.try_get(3)?,
                    detail: r.try_get(4)?,
                    status: r.try_get(5)?,
                    message_type: r.try_get(6)?,
                    created_at: r.try_get(7)?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()?;
        Ok(letters)
    }

    async fn replay_dead_letters(
        &self,
        filter: &DeadLetterFilter,
        remap: &Remap,
        dry_run: bool,
    ) -> Result<Vec<Replayed>, StoreError> {
        let outbox = self.options.outbox;
        Ok(with_retry!(replay::replay(
            &self.pool, filter, remap, dry_run, outbox
        ))?)
    }

    async fn dead_letter_message(
        &self,
        tenant: Option<&str>,
        id: uuid::Uuid,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let mut tx = begin_scoped(&self.pool, tenant.unwrap_or("*")).await?;
        let raw = sqlx::query_scalar(
            "SELECT i.raw FROM dead_letters d JOIN inbound_messages i ON i.id = d.inbound_id \
             WHERE d.id = $1 AND ($2::text IS NULL OR d.tenant_id = $2)",
        )
        .bind(id)
        .bind(tenant)
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(raw)
    }

    async fn discard_dead_letters(
        &self,
        filter: &DeadLetterFilter,
    ) -> Result<Vec<uuid::Uuid>, StoreError> {
        Ok(replay::discard(&self.pool, filter).await?)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn outbox_claim(
        &self,
        holder: &str,
        lease: Duration,
        limit: i64,
    ) -> Result<Option<Vec<EventEnvelope>>, StoreError> {
        Ok(outbox::claim(&self.pool, holder, lease, limit).await?)
    }

    async fn outbox_mark_published(&self, positions: &[i64]) -> Result<(), StoreError> {
        Ok(outbox::mark_published(&self.pool, positions).await?)
    }

    async fn outbox_backlog(&self) -> Result<i64, StoreError> {
        Ok(outbox::backlog(&self.pool).await?)
    }

    async fn poll_cursor(&self, tenant: &str, source: &str) -> Result<Option<String>, StoreError> {
        Ok(outbox::cursor(&self.pool, tenant, source).await?)
    }

    async fn set_poll_cursor(
        &self,
        tenant: &str,
        source: &str,
        cursor: &str,
    ) -> Result<(), StoreError> {
        Ok(outbox::set_cursor(&self.pool, tenant, source, cursor).await?)
    }
}

/// The stream a set of events is appended to, and whether `expected` holds for it.
pub(super) fn check_expected(expected: ExpectedVersion, current: i64) -> bool {
    match expected {
        ExpectedVersion::Any => true,
        ExpectedVersion::NoStream => current == 0,
        ExpectedVersion::Exact(v) => current == v,
    }
}
