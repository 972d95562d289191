//! The PostgreSQL store: the production backend, shared by several `intake serve`
//! instances. This module is the connection glue; `events`, `dead_letters` and `outbox`
//! hold its SQL (arrays bound once and expanded with `UNNEST`, so a statement's text, and
//! its prepared plan, never changes with the batch size).
//!
//! - **Tenant isolation** by row-level security: every unit of work first sets the
//!   transaction-local `app.tenant_id` (a tenant, or `*` for the engine's cross-tenant
//!   work), and the policies in `migrations/postgres` only let rows of that scope through.
//!   The engine must log in as a member of `intake_app`, never as a superuser, a
//!   `BYPASSRLS` role or the tables' owner; [`Store::prepare_serving`] checks it.
//! - **Several instances**: idempotency is the unique key on inbound messages; event
//!   appends are serialized by one transaction-scoped advisory lock, so stream versions
//!   never clash and global positions become visible in order (a reader following
//!   `after=` never skips an event that commits late); a transaction that still fails on
//!   a deadlock, serialization failure or unique violation is retried.
//!
//! [`Store::prepare_serving`]: crate::store::Store::prepare_serving

mod cursors;
mod dead_letters;
mod events;
mod messages;
mod outbox;
mod projections;
mod retention;
mod versions;

use super::backend::{Backend, Res, Scope, Tx, Work};
use super::state_cache::StateCache;
use super::{StoreError, StoreOptions};
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgDatabaseError, PgPoolOptions};
use sqlx::{PgPool, Postgres, Transaction};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

/// The schema, applied by `intake migrate` as the tables' owner.
static MIGRATIONS: Migrator = sqlx::migrate!("../migrations/postgres");

/// The PostgreSQL store (see [`crate::store::Store`]).
#[derive(Clone)]
pub struct PostgresStore {
    pool: PgPool,
    options: StoreOptions,
    /// Committed stream states for the plugins' rules, shared by every clone.
    states: Arc<StateCache>,
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
        Ok(PostgresStore {
            pool,
            options,
            states: Arc::default(),
        })
    }

    /// The connection pool (tests use it for hand-written queries).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

/// Whether a failed statement may succeed when its transaction is tried again: deadlock,
/// serialization failure, or a unique violation raced by another instance.
pub(super) fn is_contention(e: &sqlx::Error) -> bool {
    let code = e
        .as_database_error()
        .and_then(|d| d.try_downcast_ref::<PgDatabaseError>())
        .map(PgDatabaseError::code);
    matches!(code, Some("40001" | "40P01" | "23505"))
}

#[async_trait::async_trait]
impl Backend for PostgresStore {
    type Tx = PgTx;

    async fn begin(&self, scope: Scope<'_>, _work: Work) -> Res<PgTx> {
        let mut tx = self.pool.begin().await?;
        let tenant = match scope {
            Scope::All => "*",
            Scope::Tenant(t) => t,
        };
        sqlx::query("SELECT set_config('app.tenant_id', $1, true)")
            .bind(tenant)
            .execute(&mut *tx)
            .await?;
        Ok(PgTx {
            tx,
            locked: false,
            outbox: self.options.outbox,
        })
    }

    fn state_cache(&self) -> &StateCache {
        &self.states
    }

    async fn check_serving(&self) -> Res<()> {
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
        let latest = MIGRATIONS.iter().map(|m| m.version).max().unwrap_or(0);
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

    async fn run_migrations(&self) -> Res<()> {
        Ok(MIGRATIONS.run(&self.pool).await?)
    }
}

/// A unit of work on PostgreSQL: a transaction scoped by `app.tenant_id`.
pub(crate) struct PgTx {
    tx: Transaction<'static, Postgres>,
    /// Whether it holds the append lock already.
    locked: bool,
    /// Whether appended events are queued in the outbox.
    outbox: bool,
}

#[async_trait::async_trait]
impl Tx for PgTx {
    async fn commit(self) -> Res<()> {
        Ok(self.tx.commit().await?)
    }

    async fn rollback(self) -> Res<()> {
        Ok(self.tx.rollback().await?)
    }

    async fn ping(&mut self) -> Res<()> {
        sqlx::query("SELECT 1").execute(&mut *self.tx).await?;
        Ok(())
    }
}
