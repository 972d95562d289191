//! The embedded SQLite store: WAL journal, `synchronous=FULL`. This module is the
//! connection glue; `events`, `dead_letters` and `outbox` hold its SQL.
//!
//! sqlx runs each SQLite statement on a worker thread, so every statement costs a thread
//! round trip; multi-row statements (a few per batch, whatever its size) are what keeps
//! ACKs fast. Their row counts are powers of two ([`chunks`]), so a handful of statement
//! texts per table stay prepared in each connection's cache instead of one per batch size.
//!
//! Checkpoints are off the commit path: connections never checkpoint on commit
//! (`wal_autocheckpoint=0`); a background task copies the WAL into the database
//! ([`checkpoint`]) between commits.

mod cursors;
mod dead_letters;
mod events;
mod messages;
mod outbox;
mod projections;
mod retention;
#[cfg(test)]
mod tests;
mod versions;

use super::backend::{Backend, Res, Scope, Tx, Work};
use super::state_cache::StateCache;
use super::{StoreError, StoreOptions};
use chrono::{DateTime, SecondsFormat, Utc};
use sqlx::migrate::Migrator;
use sqlx::pool::PoolConnection;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::ConnectOptions;
use sqlx::{QueryBuilder, Sqlite, SqliteConnection, SqlitePool, Transaction};
use std::str::FromStr;
use std::sync::{Arc, Weak};
use std::time::Duration;

/// The schema, applied on start (`intake serve`) or by `intake migrate`.
static MIGRATIONS: Migrator = sqlx::migrate!("../migrations/sqlite");

/// Most rows per multi-row statement (13 columns × 256 stays far below SQLite's 32766
/// bound parameters).
const ROWS: usize = 256;

/// Statements each connection keeps prepared: every table's power-of-two shapes.
const STATEMENT_CACHE: usize = 512;

/// How often the background task checkpoints the WAL.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);

/// The SQLite store (see [`crate::store::Store`]).
#[derive(Clone)]
pub struct SqliteStore {
    /// Reads and single statements.
    pool: SqlitePool,
    /// Transactions, on one connection: SQLite has one writer at a time anyway, and the
    /// connection's page cache stays valid from one commit to the next (no other
    /// connection's write invalidates it), so commits do not re-read index pages.
    writes: SqlitePool,
    options: StoreOptions,
    /// Committed stream states for the plugins' rules, shared by every clone.
    states: Arc<StateCache>,
    /// Held while the store is in use: the checkpoint task stops once every clone is gone.
    _alive: Arc<()>,
}

impl SqliteStore {
    /// Opens (creating file and folder if needed) the database at `url`
    /// (`sqlite://path/to/file.db` or `sqlite:path`).
    pub async fn open(url: &str, options: StoreOptions) -> Result<Self, StoreError> {
        let path = url
            .trim_start_matches("sqlite://")
            .trim_start_matches("sqlite:");
        let path = path.split('?').next().unwrap_or(path);
        if let Some(dir) = std::path::Path::new(path)
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
        {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Unavailable(e.to_string()))?;
        }
        let connect = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true)
            .statement_cache_capacity(STATEMENT_CACHE)
            // Statement journals (for a statement that fails mid-way) in memory, not in a
            // temporary file; a page cache that holds the hot index pages (64 MiB).
            .pragma("temp_store", "memory")
            .pragma("cache_size", "-65536")
            .pragma("wal_autocheckpoint", "0");
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            // A local file needs no ping before each transaction.
            .test_before_acquire(false)
            .connect_with(connect.clone())
            .await?;
        let writes = SqlitePoolOptions::new()
            .max_connections(1)
            .test_before_acquire(false)
            .connect_with(connect.clone())
            .await?;
        let alive = Arc::new(());
        tokio::spawn(checkpoint(connect, Arc::downgrade(&alive)));
        Ok(SqliteStore {
            pool,
            writes,
            options,
            states: Arc::default(),
            _alive: alive,
        })
    }
}

/// Copies committed WAL frames into the database every [`CHECKPOINT_EVERY`] on a
/// connection of its own, without waiting for readers or writers (`PASSIVE`), so no
/// commit pays for a checkpoint; the WAL restarts from its beginning once a checkpoint
/// has caught up. Stops when the store is dropped.
async fn checkpoint(options: SqliteConnectOptions, alive: Weak<()>) {
    let Ok(mut conn) = options.connect().await else {
        tracing::warn!(code = "STORE_UNAVAILABLE", "no checkpoint connection");
        return;
    };
    let mut tick = tokio::time::interval(CHECKPOINT_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while alive.strong_count() > 0 {
        tick.tick().await;
        if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
            .execute(&mut conn)
            .await
        {
            tracing::debug!(error = %StoreError::from(e), "checkpoint skipped");
        }
    }
}

/// `rows` in consecutive chunks whose lengths are powers of two, largest first, none
/// longer than [`ROWS`]: 300 rows are statements of 256, 32, 8 and 4.
fn chunks<T>(mut rows: &[T]) -> impl Iterator<Item = &[T]> {
    std::iter::from_fn(move || {
        if rows.is_empty() {
            return None;
        }
        let n = ROWS.min(1 << rows.len().ilog2());
        let (chunk, rest) = rows.split_at(n);
        rows = rest;
        Some(chunk)
    })
}

#[async_trait::async_trait]
impl Backend for SqliteStore {
    type Tx = SqliteTx;

    async fn begin(&self, _scope: Scope<'_>, work: Work) -> Res<SqliteTx> {
        let conn = match work {
            Work::Single => Conn::Autocommit(self.pool.acquire().await?),
            // Every unit of work that writes takes the write lock up front: one that read
            // first and then wrote would fail at once (a busy snapshot) when another
            // process (a CLI, the census projection) committed in between; this way it
            // waits its turn under the busy timeout instead.
            Work::Atomic | Work::Claim => {
                Conn::Tx(self.writes.begin_with("BEGIN IMMEDIATE").await?)
            }
        };
        Ok(SqliteTx {
            conn,
            now: rfc3339(Utc::now()),
            outbox: self.options.outbox,
        })
    }

    async fn check_serving(&self) -> Res<()> {
        // The embedded default needs no separate `intake migrate`.
        self.run_migrations().await
    }

    async fn run_migrations(&self) -> Res<()> {
        Ok(MIGRATIONS.run(&self.pool).await?)
    }

    fn state_cache(&self) -> &StateCache {
        &self.states
    }
}

/// A unit of work on SQLite.
pub(crate) struct SqliteTx {
    conn: Conn,
    /// The unit's time, as its rows record it (RFC 3339, like PostgreSQL's `now()`).
    now: String,
    /// Whether appended events are queued in the outbox.
    outbox: bool,
}

/// A connection in autocommit mode, or in a transaction.
enum Conn {
    Autocommit(PoolConnection<Sqlite>),
    Tx(Transaction<'static, Sqlite>),
}

impl Conn {
    /// The connection to run statements on.
    fn get(&mut self) -> &mut SqliteConnection {
        match self {
            Conn::Autocommit(c) => c,
            Conn::Tx(t) => t,
        }
    }
}

#[async_trait::async_trait]
impl Tx for SqliteTx {
    async fn commit(self) -> Res<()> {
        match self.conn {
            Conn::Autocommit(_) => Ok(()),
            Conn::Tx(t) => Ok(t.commit().await?),
        }
    }

    async fn rollback(self) -> Res<()> {
        match self.conn {
            Conn::Autocommit(_) => Ok(()),
            Conn::Tx(t) => Ok(t.rollback().await?),
        }
    }

    async fn ping(&mut self) -> Res<()> {
        sqlx::query("SELECT 1").execute(self.conn.get()).await?;
        Ok(())
    }
}

/// RFC 3339 UTC with a fixed microsecond format: text order is time order.
fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// Appends `(?, ?, ...)`, one placeholder bound to each of `values`.
fn push_list<'a, T>(q: &mut QueryBuilder<'a, Sqlite>, values: impl IntoIterator<Item = T>)
where
    T: 'a + sqlx::Encode<'a, Sqlite> + sqlx::Type<Sqlite> + Send,
{
    q.push("(");
    let mut list = q.separated(", ");
    for v in values {
        list.push_bind(v);
    }
    q.push(")");
}
