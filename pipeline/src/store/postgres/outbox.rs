//! The outbox and poll cursors on PostgreSQL. Outbox rows are written with their events
//! (in `batch.rs`, under the append lock), so they become visible in position order and
//! the publisher never passes over a row that commits late.

use super::{begin_scoped, envelope, EVENT_COLUMNS};
use crate::event::EventEnvelope;
use sqlx::PgPool;
use std::time::Duration;

/// Takes or renews the publisher lease for `holder` and returns up to `limit`
/// unpublished events in global order; `None` while another holder's lease is valid.
pub(super) async fn claim(
    pool: &PgPool,
    holder: &str,
    lease: Duration,
    limit: i64,
) -> Result<Option<Vec<EventEnvelope>>, sqlx::Error> {
    let lease_ms = lease.as_millis().min(i64::MAX as u128) as i64;
    let mut tx = begin_scoped(pool, "*").await?;
    // (holder, still valid, more than half left): a lease of ours with more than half
    // its time left needs no write, so idle polls stay reads.
    let current: Option<(String, bool, bool)> = sqlx::query_as(
        "SELECT holder, expires_at > clock_timestamp(), \
         expires_at > clock_timestamp() + make_interval(secs => $1::float8 / 2000) \
         FROM publisher_lease WHERE id = 1",
    )
    .bind(lease_ms)
    .fetch_optional(&mut *tx)
    .await?;
    let renew = match &current {
        Some((h, _, fresh)) if h == holder => !fresh,
        Some((_, valid, _)) if *valid => return Ok(None),
        _ => true,
    };
    if renew {
        let held: Option<String> = sqlx::query_scalar(
            "INSERT INTO publisher_lease (id, holder, expires_at) \
             VALUES (1, $1, clock_timestamp() + make_interval(secs => $2::float8 / 1000)) \
             ON CONFLICT (id) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at \
             WHERE publisher_lease.holder = excluded.holder \
                OR publisher_lease.expires_at <= clock_timestamp() \
             RETURNING holder",
        )
        .bind(holder)
        .bind(lease_ms)
        .fetch_optional(&mut *tx)
        .await?;
        if held.is_none() {
            tx.rollback().await?;
            return Ok(None);
        }
    }
    let rows = sqlx::query(&format!(
        "SELECT {EVENT_COLUMNS} FROM events WHERE global_position IN \
         (SELECT global_position FROM outbox WHERE published_at IS NULL \
          ORDER BY global_position LIMIT $1) ORDER BY global_position"
    ))
    .bind(limit)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Some(rows.iter().map(envelope).collect::<Result<_, _>>()?))
}

/// Marks events published.
pub(super) async fn mark_published(pool: &PgPool, positions: &[i64]) -> Result<(), sqlx::Error> {
    let mut tx = begin_scoped(pool, "*").await?;
    sqlx::query(
        "UPDATE outbox SET published_at = clock_timestamp() \
         WHERE global_position = ANY($1) AND published_at IS NULL",
    )
    .bind(positions)
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}

/// Events waiting to be published.
pub(super) async fn backlog(pool: &PgPool) -> Result<i64, sqlx::Error> {
    let mut tx = begin_scoped(pool, "*").await?;
    let n = sqlx::query_scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL")
        .fetch_one(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(n)
}

/// A polling source's saved position (read in the tenant's scope).
pub(super) async fn cursor(
    pool: &PgPool,
    tenant: &str,
    source: &str,
) -> Result<Option<String>, sqlx::Error> {
    let mut tx = begin_scoped(pool, tenant).await?;
    let c =
        sqlx::query_scalar("SELECT cursor FROM poll_cursors WHERE tenant_id = $1 AND source = $2")
            .bind(tenant)
            .bind(source)
            .fetch_optional(&mut *tx)
            .await?;
    tx.commit().await?;
    Ok(c)
}

/// Saves a polling source's position (in the tenant's scope).
pub(super) async fn set_cursor(
    pool: &PgPool,
    tenant: &str,
    source: &str,
    cursor: &str,
) -> Result<(), sqlx::Error> {
    let mut tx = begin_scoped(pool, tenant).await?;
    sqlx::query(
        "INSERT INTO poll_cursors (tenant_id, source, cursor, updated_at) \
         VALUES ($1, $2, $3, clock_timestamp()) ON CONFLICT (tenant_id, source) \
         DO UPDATE SET cursor = excluded.cursor, updated_at = excluded.updated_at",
    )
    .bind(tenant)
    .bind(source)
    .bind(cursor)
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}
