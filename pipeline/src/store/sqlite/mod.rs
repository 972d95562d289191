//! The embedded SQLite store: WAL journal, `synchronous=FULL`.

mod batch;
mod replay;

use super::{
    DeadLetter, DeadLetterFilter, EventQuery, EventStore, ExpectedVersion, Remap, Replayed,
    StoreError, StoreOptions, Outcome,
};
use crate::event::{EventEnvelope, NewEvent};
use crate::pipeline::Processed;
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

    /// Appends events after checking the first one's stream against `expected`.
    async fn append_in(
        &self,
        tx: &mut Transaction<'_, Sqlite>,
        events: &[NewEvent],
        expected: ExpectedVersion,
        now: &str,
        created_by: &str,
    ) -> Result<Vec<i64>, StoreError> {
        if let (Some(first), false) = (events.first(), expected == ExpectedVersion::Any) {
            let current = Self::stream_version(tx, first.stream_id).await?;
            let ok = match expected {
                ExpectedVersion::Any => true,
                ExpectedVersion::NoStream => current == 0,
                ExpectedVersion::Exact(v) => current == v,
            };
            if !ok {
                return Err(StoreError::Conflict {
                    stream_id: first.stream_id,
                    expected,
                    actual: current,
                });
            }
        }
        let rows: Vec<(&NewEvent, String)> =
            events.iter().map(|e| (e, created_by.to_string())).collect();
        let positions = batch::append_events(tx, &rows, now, self.options.outbox).await?;
        Ok(events
            .iter()
            .filter_map(|e| positions.get(&e.event_id).copied())
            .collect())
    }
}

fn now() -> String {
    rfc3339(Utc::now())
}

/// RFC 3339 UTC with a fixed microsecond format: text order is time order.
fn rfc3339(t: chrono::DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// An envelope from a row of the event columns, in table order.
fn envelope(r: &sqlx::sqlite::SqliteRow) -> Result<EventEnvelope, StoreError> {
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
}

#[async_trait::async_trait]
impl EventStore for SqliteStore {
    async fn migrate(&self) -> Result<(), StoreError> {
        sqlx::migrate!("../migrations/sqlite")
            .run(&self.pool)
            .await
            .map_err(|e| StoreError::Migration(e.to_string()))
    }

    async fn prepare_serving(&self) -> Result<(), StoreError> {
        self.migrate().await
    }

    async fn commit_batch(
        &self,
        batch: &[Processed],
    ) -> Result<Vec<Result<Outcome, StoreError>>, StoreError> {
        match batch::commit_all(&self.pool, batch, self.options).await {
            Ok(outcomes) => Ok(outcomes.into_iter().map(Ok).collect()),
            Err(e) if batch.len() == 1 => Ok(vec![Err(e)]),
            Err(e) => {
                // Something in the batch failed and the whole transaction rolled back.
                // Commit each message on its own so that only the culprit fails.
                tracing::warn!(
                    batch = batch.len(),
                    code = e.code(),
                    "batch failed; committing messages one by one"
                );
                let mut results = Vec::with_capacity(batch.len());
                for p in batch {
                    results.push(
                        batch::commit_all(&self.pool, std::slice::from_ref(p), self.options)
                            .await
                            .map(|mut o| o.remove(0)),
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
        let mut tx = self.pool.begin().await?;
        let positions = self
            .append_in(&mut tx, events, expected, &now(), created_by)
            .await?;
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
        rows.iter().map(envelope).collect()
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

    async fn replay_dead_letters(
        &self,
        filter: &DeadLetterFilter,
        remap: &Remap,
        dry_run: bool,
    ) -> Result<Vec<Replayed>, StoreError> {
        Ok(replay::replay(&self.pool, filter, remap, dry_run, self.options.outbox).await?)
    }

    async fn dead_letter_message(
        &self,
        tenant: Option<&str>,
        id: Uuid,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT i.raw FROM dead_letters d JOIN inbound_messages i ON i.id = d.inbound_id \
             WHERE d.id = ?1 AND (?2 IS NULL OR d.tenant_id = ?2)",
        )
        .bind(id)
        .bind(tenant)
        .fetch_optional(&self.pool)
        .await?)
    }

    async fn discard_dead_letters(
        &self,
        filter: &DeadLetterFilter,
    ) -> Result<Vec<Uuid>, StoreError> {
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
        let now = Utc::now();
        let lease = chrono::Duration::from_std(lease)
            .map_err(|_| StoreError::Unavailable("lease too long".into()))?;
        // A lease of ours with more than half its time left needs no write (no fsync):
        // idle polls and busy rounds stay reads.
        let current: Option<(String, String)> =
            sqlx::query_as("SELECT holder, expires_at FROM publisher_lease WHERE id = 1")
                .fetch_optional(&self.pool)
                .await?;
        let renew = match &current {
            Some((h, expires)) if h == holder => *expires <= rfc3339(now + lease / 2),
            Some((_, expires)) if *expires > rfc3339(now) => return Ok(None),
            _ => true,
        };
        if renew {
            // Take the lease when it is free, expired or already ours; otherwise no row
            // comes back and another publisher keeps it.
            let held: Option<String> = sqlx::query_scalar(
                "INSERT INTO publisher_lease (id, holder, expires_at) VALUES (1, ?1, ?2) \
                 ON CONFLICT (id) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at \
                 WHERE publisher_lease.holder = excluded.holder OR publisher_lease.expires_at <= ?3 \
                 RETURNING holder",
            )
            .bind(holder)
            .bind(rfc3339(now + lease))
            .bind(rfc3339(now))
            .fetch_optional(&self.pool)
            .await?;
            if held.is_none() {
                return Ok(None);
            }
        }
        let rows = sqlx::query(
            "SELECT e.event_id, e.stream_id, e.stream_type, e.event_type, e.event_version, e.tenant_id, \
             e.data, e.metadata, e.created_at, e.created_by, e.global_position \
             FROM outbox o JOIN events e ON e.global_position = o.global_position \
             WHERE o.published_at IS NULL ORDER BY o.global_position LIMIT ?1",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(envelope)
            .collect::<Result<_, _>>()
            .map(Some)
    }

    async fn outbox_mark_published(&self, positions: &[i64]) -> Result<(), StoreError> {
        if positions.is_empty() {
            return Ok(());
        }
        let now = now();
        let mut tx = self.pool.begin().await?;
        for chunk in positions.chunks(500) {
            let mut q = sqlx::QueryBuilder::<Sqlite>::new("UPDATE outbox SET published_at = ");
            q.push_bind(&now);
            q.push(" WHERE published_at IS NULL AND global_position IN (");
            let mut list = q.separated(", ");
            for p in chunk {
                list.push_bind(*p);
            }
            q.push(")");
            q.build().execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn outbox_backlog(&self) -> Result<i64, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE published_at IS NULL")
                .fetch_one(&self.pool)
                .await?,
        )
    }

    async fn poll_cursor(&self, tenant: &str, source: &str) -> Result<Option<String>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT cursor FROM poll_cursors WHERE tenant_id = ?1 AND source = ?2",
        )
        .bind(tenant)
        .bind(source)
        .fetch_optional(&self.pool)
        .await?)
    }

    async fn set_poll_cursor(
        &self,
        tenant: &str,
        source: &str,
        cursor: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO poll_cursors (tenant_id, source, cursor, updated_at) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT (tenant_id, source) DO UPDATE SET cursor = excluded.cursor, updated_at = excluded.updated_at",
        )
        .bind(tenant)
        .bind(source)
        .bind(cursor)
        .bind(now())
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{event_id, stream_id};

    fn ev(i: usize) -> NewEvent {
        NewEvent {
            event_id: event_id(Utc::now(), "t", "k", i),
            stream_id: stream_id("t", "Admission", "V1"),
            stream_type: "Admission".into(),
            stream_key: "V1".into(),
            event_type: "AdmissionCreated".into(),
            tenant_id: "t".into(),
            data: serde_json::json!({"i": i}),
            metadata: serde_json::json!({}),
        }
    }

    #[tokio::test]
    async fn appends_check_the_expected_version_and_events_are_immutable() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(
            &format!("sqlite://{}/s.db", dir.path().display()),
            StoreOptions::default(),
        )
        .await
        .unwrap();
        store.migrate().await.unwrap();
        assert_eq!(
            store
                .append(ExpectedVersion::NoStream, &[ev(0)], "test")
                .await
                .unwrap(),
            [1]
        );
        match store
            .append(ExpectedVersion::NoStream, &[ev(1)], "test")
            .await
        {
            Err(StoreError::Conflict {
                actual: 1,
                expected: ExpectedVersion::NoStream,
                ..
            }) => {}
            other => panic!("expected a conflict, got {other:?}"),
        }
        match store
            .append(ExpectedVersion::Exact(5), &[ev(1)], "test")
            .await
        {
            Err(e @ StoreError::Conflict { actual: 1, .. }) => {
                assert_eq!(e.code(), "STREAM_CONFLICT")
            }
            other => panic!("expected a conflict, got {other:?}"),
        }
        assert_eq!(
            store
                .append(ExpectedVersion::Exact(1), &[ev(1), ev(2)], "test")
                .await
                .unwrap(),
            [2, 3]
        );
        let q = EventQuery {
            tenant: Some("t".into()),
            stream_id: None,
            after: 0,
            limit: 10,
        };
        let read = store.read_events(&q).await.unwrap();
        assert_eq!(
            read.iter().map(|e| e.event_version).collect::<Vec<_>>(),
            [1, 2, 3]
        );
        for sql in ["UPDATE events SET data = '{}'", "DELETE FROM events"] {
            let err = sqlx::query(sql).execute(&store.pool).await.unwrap_err();
            assert!(err.to_string().contains("append-only"), "{err}");
        }
    }

    async fn store(dir: &tempfile::TempDir, outbox: bool) -> SqliteStore {
        let store = SqliteStore::open(
            &format!("sqlite://{}/s.db", dir.path().display()),
            StoreOptions { outbox },
        )
        .await
        .unwrap();
        store.migrate().await.unwrap();
        store
    }

    fn positions(events: &[EventEnvelope]) -> Vec<i64> {
        events.iter().map(|e| e.global_position).collect()
    }

    #[tokio::test]
    async fn appended_events_are_queued_only_with_the_outbox_on() {
        let dir = tempfile::tempdir().unwrap();
        let off = store(&dir, false).await;
        off.append(ExpectedVersion::Any, &[ev(0)], "test")
            .await
            .unwrap();
        assert_eq!(off.outbox_backlog().await.unwrap(), 0);
        drop(off);
        let on = store(&dir, true).await;
        on.append(ExpectedVersion::Any, &[ev(1), ev(2)], "test")
            .await
            .unwrap();
        assert_eq!(on.outbox_backlog().await.unwrap(), 2);
        let lease = Duration::from_secs(30);
        let batch = on.outbox_claim("a", lease, 10).await.unwrap().unwrap();
        assert_eq!(positions(&batch), [2, 3], "in global order, not event 1");
        assert_eq!(batch[0].event_version, 2);
        on.outbox_mark_published(&[2]).await.unwrap();
        assert_eq!(on.outbox_backlog().await.unwrap(), 1);
        let batch = on.outbox_claim("a", lease, 10).await.unwrap().unwrap();
        assert_eq!(positions(&batch), [3]);
        on.outbox_mark_published(&[3]).await.unwrap();
        assert_eq!(on.outbox_backlog().await.unwrap(), 0);
        assert!(on
            .outbox_claim("a", lease, 10)
            .await
            .unwrap()
            .unwrap()
            .is_empty());
    }

    #[tokio::test]
    async fn one_publisher_holds_the_lease_until_it_expires() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir, true).await;
        store
            .append(ExpectedVersion::Any, &[ev(0), ev(1)], "test")
            .await
            .unwrap();
        let lease = Duration::from_secs(1);
        let a = store.outbox_claim("a", lease, 1).await.unwrap();
        assert_eq!(positions(&a.unwrap()), [1], "limit applies");
        assert!(
            store.outbox_claim("b", lease, 10).await.unwrap().is_none(),
            "b gets nothing while a's lease is valid"
        );
        // With less than half its lease left, a's claim renews it.
        tokio::time::sleep(Duration::from_millis(700)).await;
        let a = store.outbox_claim("a", lease, 10).await.unwrap();
        assert_eq!(positions(&a.unwrap()), [1, 2]);
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert!(
            store.outbox_claim("b", lease, 10).await.unwrap().is_none(),
            "past a's first lease, but a renewed it"
        );
        tokio::time::sleep(Duration::from_millis(800)).await;
        let b = store.outbox_claim("b", lease, 10).await.unwrap();
        assert_eq!(positions(&b.unwrap()), [1, 2], "b takes the expired lease");
        assert!(
            store.outbox_claim("a", lease, 10).await.unwrap().is_none(),
            "and now a waits"
        );
    }

    #[tokio::test]
    async fn poll_cursors_are_per_tenant_and_source_and_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(
            &format!("sqlite://{}/c.db", dir.path().display()),
            StoreOptions::default(),
        )
        .await
        .unwrap();
        store.migrate().await.unwrap();
        assert_eq!(store.poll_cursor("t", "fhir:Patient").await.unwrap(), None);
        store
            .set_poll_cursor("t", "fhir:Patient", "a")
            .await
            .unwrap();
        store
            .set_poll_cursor("t", "fhir:Patient", "b")
            .await
            .unwrap();
        store
            .set_poll_cursor("u", "fhir:Patient", "x")
            .await
            .unwrap();
        assert_eq!(
            store
                .poll_cursor("t", "fhir:Patient")
                .await
                .unwrap()
                .as_deref(),
            Some("b")
        );
        assert_eq!(
            store.poll_cursor("t", "fhir:Encounter").await.unwrap(),
            None
        );
        assert_eq!(
            store
                .poll_cursor("u", "fhir:Patient")
                .await
                .unwrap()
                .as_deref(),
            Some("x")
        );
    }
}
