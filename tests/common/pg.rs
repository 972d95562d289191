//! PostgreSQL for tests: one fresh database per server, owned by `intake_owner` (which
//! runs the migrations) and used by the engine as `intake_engine`, a member of
//! `intake_app` to which row-level security applies, as in production.
//!
//! `INTAKE_TEST_PG_URL` names a superuser connection (default
//! `postgres://postgres@127.0.0.1:5432/postgres`); `scripts/test` sets it up.

use intake_pipeline::store::{PostgresStore, Store, StoreOptions};
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, PgConnection};
use std::str::FromStr;
use std::sync::OnceLock;
use std::time::Duration;

/// The superuser URL the tests administer PostgreSQL with.
pub fn admin_url() -> String {
    std::env::var("INTAKE_TEST_PG_URL")
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// Runs a future to completion on a runtime of its own (the harness is synchronous and
/// may be called from inside a test's runtime).
pub fn block_on<T: Send, F: std::future::Future<Output = T>>(make: impl FnOnce() -> F + Send) -> T {
    std::thread::scope(|s| {
        s.spawn(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(make())
        })
        .join()
        .unwrap()
    })
}

async fn admin() -> Result<PgConnection, sqlx::Error> {
    let options = PgConnectOptions::from_str(&admin_url())?;
    tokio::time::timeout(Duration::from_secs(5), options.connect())
        .await
        .map_err(|_| sqlx::Error::PoolTimedOut)?
}

/// Whether PostgreSQL is reachable (checked once). Unreachable fails the calling test when
/// `INTAKE_TEST_REQUIRE_PG=1` (as `scripts/test` and CI set it) and skips it otherwise.
pub fn available() -> bool {
    static AVAILABLE: OnceLock<Result<(), String>> = OnceLock::new();
    let result = AVAILABLE.get_or_init(|| {
        block_on(|| async {
            let mut c = admin().await.map_err(|e| e.to_string())?;
            ensure_roles(&mut c).await.map_err(|e| e.to_string())
        })
    });
    match result {
        Ok(()) => true,
        Err(e) if std::env::var("INTAKE_TEST_REQUIRE_PG").as_deref() == Ok("1") => {
            panic!(
                "PostgreSQL at {} is required but unusable: {e}",
                admin_url()
            )
        }
        Err(e) => {
            eprintln!(
                "skipped: PostgreSQL unreachable ({e}); set INTAKE_TEST_REQUIRE_PG=1 to fail"
            );
            false
        }
    }
}

/// The roles, created once per cluster (concurrent creation by parallel test processes is
/// harmless).
async fn ensure_roles(c: &mut PgConnection) -> Result<(), sqlx::Error> {
    let password = url_password(&admin_url())
        .map(|p| format!(" PASSWORD '{}'", p.replace('\'', "''")))
        .unwrap_or_default();
    for role in [
        format!("CREATE ROLE intake_owner LOGIN{password}"),
        "CREATE ROLE intake_app NOLOGIN".to_string(),
        format!("CREATE ROLE intake_engine LOGIN IN ROLE intake_app{password}"),
    ] {
        let sql = format!(
            "DO $$ BEGIN {role}; EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$"
        );
        sqlx::raw_sql(&sql).execute(&mut *c).await?;
    }
    Ok(())
}

/// The password in a `postgres://user:password@host/db` URL, if any.
fn url_password(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let creds = rest.rsplit_once('@')?.0;
    creds.split_once(':').map(|(_, p)| p.to_string())
}

/// A database that is dropped when this value is.
pub struct Database {
    pub name: String,
    /// The owner's URL (migrations, hand-written DDL).
    pub owner_url: String,
    /// The engine's URL (`intake_engine`, subject to row-level security).
    pub app_url: String,
}

impl Database {
    /// Creates a fresh database and applies the migrations as its owner.
    pub fn create() -> Database {
        let db = Self::create_unmigrated();
        block_on(|| async {
            let owner = PostgresStore::open(&db.owner_url, StoreOptions::default())
                .await
                .expect("connect as owner");
            owner.migrate().await.expect("migrate test database");
        });
        db
    }

    /// Creates a fresh, empty database owned by `intake_owner`.
    pub fn create_unmigrated() -> Database {
        let name = format!("intake_test_{}", uuid::Uuid::now_v7().simple());
        let admin_url = admin_url();
        let url_for = |user: &str| -> String {
            let o = PgConnectOptions::from_str(&admin_url).unwrap();
            let password = url_password(&admin_url)
                .map(|p| format!(":{p}"))
                .unwrap_or_default();
            format!(
                "postgres://{user}{password}@{}:{}/{name}",
                o.get_host(),
                o.get_port()
            )
        };
        let db = Database {
            owner_url: url_for("intake_owner"),
            app_url: url_for("intake_engine"),
            name,
        };
        block_on(|| async {
            let mut c = admin().await.expect("connect to PostgreSQL as admin");
            sqlx::raw_sql(&format!("CREATE DATABASE {} OWNER intake_owner", db.name))
                .execute(&mut c)
                .await
                .expect("create test database");
        });
        db
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        block_on(|| async move {
            if let Ok(mut c) = admin().await {
                let _ = sqlx::raw_sql(&sql).execute(&mut c).await;
                let _ = c.close().await;
            }
        });
    }
}
