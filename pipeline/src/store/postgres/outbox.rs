//! Outbox and publisher lease SQL on PostgreSQL. Lease times are the
//! database's clock (`clock_timestamp()`), the same for every instance.

use super::events::EVENT_COLUMNS;
use super::PgTx;
use crate::event::EventEnvelope;
use crate::store::backend::{Lease, OutboxSql, Res};
use std::time::Duration;

/// A lease's length in milliseconds, as the SQL takes it.
fn millis(lease: Duration) -> i64 {
    lease.as_millis().min(i64::MAX as u128) as i64
}

#[async_trait::async_trait]
impl OutboxSql for PgTx {
    async fn lease(&mut self, lease: Duration) -> Res<Option<Lease>> {
        Ok(sqlx::query_as(
            "SELECT holder, expires_at > clock_timestamp() AS valid, \
             expires_at > clock_timestamp() + make_interval(secs => $1::float8 / 2000) AS fresh \
             FROM publisher_lease WHERE id = 1",
        )
        .bind(millis(lease))
        .fetch_optional(&mut *self.tx)
        .await?)
    }

    async fn take_lease(&mut self, holder: &str, lease: Duration) -> Res<bool> {
        let held: Option<String> = sqlx::query_scalar(
            "INSERT INTO publisher_lease (id, holder, expires_at) \
             VALUES (1, $1, clock_timestamp() + make_interval(secs => $2::float8 / 1000)) \
             ON CONFLICT (id) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at \
             WHERE publisher_lease.holder = excluded.holder \
                OR publisher_lease.expires_at <= clock_timestamp() \
             RETURNING holder",
        )
        .bind(holder)
        .bind(millis(lease))
        .fetch_optional(&mut *self.tx)
        .await?;
        Ok(held.is_some())
    }

    async fn unpublished(&mut self, limit: i64) -> Res<Vec<EventEnvelope>> {
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE global_position IN \
             (SELECT global_position FROM outbox WHERE published_at IS NULL \
              ORDER BY global_position LIMIT $1) ORDER BY global_position"
        );
        Ok(sqlx::query_as(&sql)
            .bind(limit)
            .fetch_all(&mut *self.tx)
            .await?)
    }

    async fn mark_published(&mut self, positions: &[i64]) -> Res<()> {
        sqlx::query(
            "UPDATE outbox SET published_at = clock_timestamp() \
             WHERE global_position = ANY($1) AND published_at IS NULL",
        )
        .bind(positions)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    async fn backlog(&mut self) -> Res<i64> {
        Ok(
            sqlx::query_scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL")
                .fetch_one(&mut *self.tx)
                .await?,
        )
    }
}
