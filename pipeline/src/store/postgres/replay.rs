//! Dead-letter support operations on PostgreSQL. Claims are exclusive: `FOR UPDATE SKIP
//! LOCKED` lets two replays (on two instances, or two support people) run at once, each
//! taking letters the other does not hold, and none waits for the other.

use super::batch::append_events;
use super::begin_scoped;
use crate::store::replay::{event_rows, finish, format, remap_all, Claimed};
use crate::store::{DeadLetterFilter, Remap, Replayed};
use sqlx::{PgPool, Row};
use uuid::Uuid;

/// Open letters `filter` selects; `$1` tenant, `$2` ids, `$3` code, `$4` limit.
const SELECTED: &str = "d.status = 'open' AND ($1::text IS NULL OR d.tenant_id = $1) \
     AND (cardinality($2::uuid[]) = 0 OR d.id = ANY($2)) \
     AND ($3::text IS NULL OR d.reason_code = $3) ORDER BY d.created_at, d.id LIMIT $4";

pub(super) async fn replay(
    pool: &PgPool,
    filter: &DeadLetterFilter,
    remap: &Remap,
    dry_run: bool,
    outbox: bool,
) -> Result<Vec<Replayed>, sqlx::Error> {
    let mut tx = begin_scoped(pool, filter.tenant.as_deref().unwrap_or("*")).await?;
    let rows = sqlx::query(&format!(
        "SELECT d.id, i.tenant_id, i.channel, i.raw, i.received_at, i.format \
         FROM dead_letters d JOIN inbound_messages i ON i.id = d.inbound_id \
         WHERE {SELECTED} FOR UPDATE OF d SKIP LOCKED"
    ))
    .bind(filter.tenant.as_deref())
    .bind(&filter.ids)
    .bind(filter.code.as_deref())
    .bind(filter.limit)
    .fetch_all(&mut *tx)
    .await?;
    let claimed = rows
        .iter()
        .map(|r| {
            Ok(Claimed {
                id: r.try_get(0)?,
                tenant: r.try_get(1)?,
                channel: r.try_get(2)?,
                raw: r.try_get(3)?,
                format: format(r.try_get(5)?)?,
                received_at: r.try_get(4)?,
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
    let results = remap_all(claimed, remap);
    if dry_run {
        tx.rollback().await?;
        return Ok(results.into_iter().map(|(r, _)| r).collect());
    }
    let positions = append_events(&mut tx, &event_rows(&results), outbox).await?;
    let (results, replayed) = finish(results, &positions);
    sqlx::query("UPDATE dead_letters SET status = 'replayed' WHERE id = ANY($1)")
        .bind(&replayed)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(results)
}

pub(super) async fn discard(
    pool: &PgPool,
    filter: &DeadLetterFilter,
) -> Result<Vec<Uuid>, sqlx::Error> {
    let mut tx = begin_scoped(pool, filter.tenant.as_deref().unwrap_or("*")).await?;
    let ids: Vec<Uuid> = sqlx::query_scalar(&format!(
        "UPDATE dead_letters SET status = 'discarded' WHERE id IN \
         (SELECT d.id FROM dead_letters d WHERE {SELECTED} FOR UPDATE SKIP LOCKED) RETURNING id"
    ))
    .bind(filter.tenant.as_deref())
    .bind(&filter.ids)
    .bind(filter.code.as_deref())
    .bind(filter.limit)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(ids)
}
