//! Outbox and publisher lease SQL on SQLite. Times are RFC 3339 text in a
//! fixed format, so comparing text compares times.

use super::events::EVENT_COLUMNS;
use super::{push_list, rfc3339, SqliteTx};
use crate::event::EventEnvelope;
use crate::store::backend::{Lease, OutboxSql, Res};
use crate::store::StoreError;
use chrono::Utc;
use sqlx::QueryBuilder;
use std::time::Duration;

/// Rows per `UPDATE ... IN (...)` when marking published.
const MARKED: usize = 500;

fn lease_length(lease: Duration) -> Res<chrono::Duration> {
    chrono::Duration::from_std(lease).map_err(|_| StoreError::Unavailable("lease too long".into()))
}

#[async_trait::async_trait]
impl OutboxSql for SqliteTx {
    async fn lease(&mut self, lease: Duration) -> Res<Option<Lease>> {
        let now = Utc::now();
        let half = now + lease_length(lease)? / 2;
        Ok(sqlx::query_as(
            "SELECT holder, expires_at > ?1 AS valid, expires_at > ?2 AS fresh \
             FROM publisher_lease WHERE id = 1",
        )
        .bind(rfc3339(now))
        .bind(rfc3339(half))
        .fetch_optional(self.conn.get())
        .await?)
    }

    async fn take_lease(&mut self, holder: &str, lease: Duration) -> Res<bool> {
        let now = Utc::now();
        let held: Option<String> = sqlx::query_scalar(
            "INSERT INTO publisher_lease (id, holder, expires_at) VALUES (1, ?1, ?2) \
             ON CONFLICT (id) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at \
             WHERE publisher_lease.holder = excluded.holder OR publisher_lease.expires_at <= ?3 \
             RETURNING holder",
        )
        .bind(holder)
        .bind(rfc3339(now + lease_length(lease)?))
        .bind(rfc3339(now))
        .fetch_optional(self.conn.get())
        .await?;
        Ok(held.is_some())
    }

    async fn unpublished(&mut self, limit: i64) -> Res<Vec<EventEnvelope>> {
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM outbox o JOIN events e ON e.global_position = o.global_position \
             WHERE o.published_at IS NULL ORDER BY o.global_position LIMIT ?1"
        );
        Ok(sqlx::query_as(&sql)
            .bind(limit)
            .fetch_all(self.conn.get())
            .await?)
    }

    async fn mark_published(&mut self, positions: &[i64]) -> Res<()> {
        for chunk in positions.chunks(MARKED) {
            let mut q = QueryBuilder::new("UPDATE outbox SET published_at = ");
            q.push_bind(self.now.as_str());
            q.push(" WHERE published_at IS NULL AND global_position IN ");
            push_list(&mut q, chunk.iter().copied());
            q.build().execute(self.conn.get()).await?;
        }
        Ok(())
    }

    async fn backlog(&mut self) -> Res<i64> {
        Ok(
            sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE published_at IS NULL")
                .fetch_one(self.conn.get())
                .await?,
        )
    }
}
