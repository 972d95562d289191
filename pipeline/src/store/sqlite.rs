//! The embedded SQLite store: WAL journal, `synchronous=FULL`.

use super::{
    DeadLetter, EventQuery, EventStore, ExpectedVersion, StoreError, Stored, WriteOutcome,
};
use crate::event::{EventEnvelope, NewEvent};
use crate::pipeline::{AckCode, Disposition, Processed};
use chrono::{SecondsFormat, Utc};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, Sqlite, SqlitePool, Transaction};
use std::str::FromStr;
use std::time::Duration;
use uuid::Uuid;

/// SQLite-backed [`EventStore`].
#[derive(Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating file and folder if needed) the database at `url`
    /// (`sqlite://path/to/file.db` or `sqlite:path`).
    pub async fn open(url: &str) -> Result<Self, StoreError> {
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
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await?;
        Ok(SqliteStore { pool })
    }

    async fn stream_version(
        tx: &mut Transaction<'_, Sqlite>,
        stream_id: Uuid,
    ) -> Result<i64, StoreError> {
        let v: i64 = sqlx::query_scalar(
            "SELECT COALESCE(MAX(event_version), 0) FROM events WHERE stream_id = ?",
        )
        .bind(stream_id)
        .fetch_one(&mut **tx)
        .await?;
        Ok(v)
    }

    async fn insert_event(
        tx: &mut Transaction<'_, Sqlite>,
        e: &NewEvent,
        version: i64,
        now: &str,
        created_by: &str,
    ) -> Result<i64, StoreError> {
        let pos: i64 = sqlx::query_scalar(
            "INSERT INTO events (event_id, stream_id, stream_type, event_type, event_version, tenant_id, \
             data, metadata, created_at, created_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING global_position",
        )
        .bind(e.event_id)
        .bind(e.stream_id)
        .bind(&e.stream_type)
        .bind(&e.event_type)
        .bind(version)
        .bind(&e.tenant_id)
        .bind(e.data.to_string())
        .bind(e.metadata.to_string())
        .bind(now)
        .bind(created_by)
        .fetch_one(&mut **tx)
        .await?;
        Ok(pos)
    }

    /// Appends to streams in order, each event at its stream's next version.
    async fn append_in(
        tx: &mut Transaction<'_, Sqlite>,
        events: &[NewEvent],
        expected: ExpectedVersion,
        now: &str,
        created_by: &str,
    ) -> Result<Vec<i64>, StoreError> {
        let mut positions = Vec::with_capacity(events.len());
        for (i, e) in events.iter().enumerate() {
            let current = Self::stream_version(tx, e.stream_id).await?;
            if i == 0 {
                let ok = match expected {
                    ExpectedVersion::Any => true,
                    ExpectedVersion::NoStream => current == 0,
                    ExpectedVersion::Exact(v) => current == v,
                };
                if !ok {
                    return Err(StoreError::Conflict {
                        stream_id: e.stream_id,
                        expected,
                        actual: current,
                    });
                }
            }
            positions.push(Self::insert_event(tx, e, current + 1, now, created_by).await?);
        }
        Ok(positions)
    }

    async fn commit_one(
        tx: &mut Transaction<'_, Sqlite>,
        p: &Processed,
        now: &str,
    ) -> Result<WriteOutcome, StoreError> {
        let (stored, ack, reason, count) = match &p.disposition {
            Disposition::Events(ev) => ("stored", AckCode::Accept, None, ev.len() as i64),
            Disposition::DeadLetter { rejection, ack } => {
                ("dead_lettered", *ack, Some(rejection.reason.code()), 0)
            }
        };
        let key = p.key.as_ref();
        let inserted = sqlx::query(
            "INSERT INTO inbound_messages (id, tenant_id, sending_facility, control_id, channel, message_type, raw, \
             received_at, outcome, ack_code, reason_code, event_count) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
             ON CONFLICT DO NOTHING",
        )
        .bind(p.raw.id)
        .bind(p.tenant.as_deref())
        .bind(key.map(|k| k.sending_facility.as_str()))
        .bind(key.map(|k| k.control_id.as_str()))
        .bind(&p.raw.channel)
        .bind(p.message_code())
        .bind(&p.raw.bytes)
        .bind(p.raw.received_at.to_rfc3339_opts(SecondsFormat::Micros, true))
        .bind(stored)
        .bind(ack.as_letter())
        .bind(reason)
        .bind(count)
        .execute(&mut **tx)
        .await?
        .rows_affected();
        if inserted == 0 {
            let Some(k) = key else {
                return Err(StoreError::Unavailable(
                    "inbound message id collision".into(),
                ));
            };
            let row = sqlx::query(
                "SELECT ack_code, reason_code FROM inbound_messages \
                 WHERE tenant_id = ? AND sending_facility = ? AND control_id = ?",
            )
            .bind(&k.tenant)
            .bind(&k.sending_facility)
            .bind(&k.control_id)
            .fetch_one(&mut **tx)
            .await?;
            let ack: String = row.try_get(0)?;
            return Ok(WriteOutcome {
                stored: Stored::Duplicate,
                ack: AckCode::from_letter(&ack).unwrap_or(AckCode::Accept),
                reason_code: row.try_get(1)?,
                positions: Vec::new(),
            });
        }
        match &p.disposition {
            Disposition::Events(events) => {
                let created_by = format!(
                    "intake/{}",
                    p.raw.channel.split(':').next().unwrap_or("unknown")
                );
                let positions =
                    Self::append_in(tx, events, ExpectedVersion::Any, now, &created_by).await?;
                Ok(WriteOutcome {
                    stored: Stored::Events,
                    ack,
                    reason_code: None,
                    positions,
                })
            }
            Disposition::DeadLetter { rejection, .. } => {
                sqlx::query(
                    "INSERT INTO dead_letters (id, inbound_id, tenant_id, stage, reason_code, detail, created_at) \
                     VALUES (?, ?, ?, ?, ?, ?, ?)",
                )
                .bind(p.raw.id)
                .bind(p.raw.id)
                .bind(p.tenant.as_deref())
                .bind(rejection.reason.stage().as_str())
                .bind(rejection.reason.code())
                .bind(rejection.detail.as_deref())
                .bind(now)
                .execute(&mut **tx)
                .await?;
                Ok(WriteOutcome {
                    stored: Stored::DeadLettered,
                    ack,
                    reason_code: Some(rejection.reason.code().to_string()),
                    positions: Vec::new(),
                })
            }
        }
    }
}

fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true)
}

#[async_trait::async_trait]
impl EventStore for SqliteStore {
    async fn migrate(&self) -> Result<(), StoreError> {
        sqlx::migrate!("../migrations/sqlite")
            .run(&self.pool)
            .await
            .map_err(|e| StoreError::Migration(e.to_string()))
    }

    async fn commit_batch(
        &self,
        batch: &[Processed],
    ) -> Result<Vec<Result<WriteOutcome, StoreError>>, StoreError> {
        let now = now();
        let mut tx = self.pool.begin().await?;
        let mut results = Vec::with_capacity(batch.len());
        for p in batch {
            // One savepoint per message: a failure undoes that message only.
            let mut sp = sqlx::Acquire::begin(&mut *tx).await?;
            match Self::commit_one(&mut sp, p, &now).await {
                Ok(o) => {
                    sp.commit().await?;
                    results.push(Ok(o));
                }
                Err(e) => {
                    sp.rollback().await?;
                    results.push(Err(e));
                }
            }
        }
        tx.commit().await?;
        Ok(results)
    }

    async fn append(
        &self,
        expected: ExpectedVersion,
        events: &[NewEvent],
        created_by: &str,
    ) -> Result<Vec<i64>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let positions = Self::append_in(&mut tx, events, expected, &now(), created_by).await?;
        tx.commit().await?;
        Ok(positions)
    }

    async fn read_events(&self, q: &EventQuery) -> Result<Vec<EventEnvelope>, StoreError> {
        let rows = sqlx::query(
            "SELECT event_id, stream_id, stream_type, event_type, event_version, tenant_id, data, metadata, \
             created_at, created_by, global_position FROM events \
             WHERE global_position > ?1 AND (?2 IS NULL OR tenant_id = ?2) AND (?3 IS NULL OR stream_id = ?3) \
             ORDER BY global_position LIMIT ?4",
        )
        .bind(q.after)
        .bind(q.tenant.as_deref())
        .bind(q.stream_id)
        .bind(q.limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let json = |i: usize| -> Result<serde_json::Value, StoreError> {
                    let s: String = r.try_get(i)?;
                    serde_json::from_str(&s)
                        .map_err(|e| StoreError::Unavailable(format!("corrupt JSON column: {e}")))
                };
                Ok(EventEnvelope {
                    event_id: r.try_get(0)?,
                    stream_id: r.try_get(1)?,
                    stream_type: r.try_get(2)?,
                    event_type: r.try_get(3)?,
                    event_version: r.try_get(4)?,
                    tenant_id: r.try_get(5)?,
                    data: json(6)?,
                    metadata: json(7)?,
                    created_at: r.try_get(8)?,
                    created_by: r.try_get(9)?,
                    global_position: r.try_get(10)?,
                })
            })
            .collect()
    }

    async fn dead_letters(&self, tenant: Option<&str>) -> Result<Vec<DeadLetter>, StoreError> {
        let rows = sqlx::query(
            "SELECT d.id, d.tenant_id, d.stage, d.reason_code, d.detail, d.status, i.message_type, d.created_at \
             FROM dead_letters d JOIN inbound_messages i ON i.id = d.inbound_id \
             WHERE (?1 IS NULL OR d.tenant_id = ?1) ORDER BY d.created_at, d.id",
        )
        .bind(tenant)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
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
            .collect()
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}
