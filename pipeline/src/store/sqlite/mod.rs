//! The embedded SQLite store: WAL journal, `synchronous=FULL`. This module is the
//! connection glue; `events`, `dead_letters` and `outbox` hold its SQL.
//!
//! sqlx runs each SQLite statement on a worker thread, so every statement costs a thread
//! round trip; multi-row statements (a constant number per batch, whatever its size) are
//! what keeps ACKs fast.

mod cursors;
mod dead_letters;
mod events;
mod outbox;
#[cfg(test)]
mod tests;

use super::backend::{Backend, Res, Scope, Tx, Work};
use super::{StoreError, StoreOptions};
use chrono::{DateTime, SecondsFormat, Utc};
use sqlx::migrate::Migrator;
use sqlx::pool::PoolConnection;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{QueryBuilder, Sqlite, SqliteConnection, SqlitePool, Transaction};
use std::str::FromStr;
use std::time::Duration;

/// The schema, applied on start (`intake serve`) or by `intake migrate`.
static MIGRATIONS: Migrator = sqlx::migrate!("../migrations/sqlite");

/// Rows per multi-row statement (12 columns × 256 stays far below SQLite's 32766
/// bound parameters).
const ROWS: usize = 256;

/// The SQLite store (see [`crate::store::Store`]).
#[derive(Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    options: StoreOptions,
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
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(connect)
            .await?;
        Ok(SqliteStore { pool, options })
    }
}

#[async_trait::async_trait]
impl Backend for SqliteStore {
    type Tx = SqliteTx;

    async fn begin(&self, _scope: Scope<'_>, work: Work) -> Res<SqliteTx> {
        let conn = match work {
            Work::Single => Conn::Autocommit(self.pool.acquire().await?),
            Work::Atomic => Conn::Tx(self.pool.begin().await?),
            Work::Claim => Conn::Tx(self.pool.begin_with("BEGIN IMMEDIATE").await?),
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
