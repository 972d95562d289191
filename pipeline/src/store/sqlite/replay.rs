//! Dead-letter support operations on SQLite. `BEGIN IMMEDIATE` takes the database's
//! write lock up front, so a claim is exclusive for its whole transaction (SQLite has one
//! writer at a time; there is nothing to skip).

use super::batch::append_events;
use super::now;
use crate::store::replay::{event_rows, finish, format, remap_all, Claimed};
use crate::store::{DeadLetterFilter, Remap, Replayed};
use chrono::DateTime;
use sqlx::{QueryBuilder, Row, Sqlite, SqlitePool};
use uuid::Uuid;

/// Appends the WHERE clause (and order and limit) selecting open letters of `filter`.
fn push_selected(q: &mut QueryBuilder<'_, Sqlite>, filter: &DeadLetterFilter) {
    q.push(" WHERE d.status = 'open'");
    if let Some(t) = &filter.tenant {
        q.push(" AND d.tenant_id = ").push_bind(t.clone());
    }
    if !filter.ids.is_empty() {
        q.push(" AND d.id IN (");
        let mut list = q.separated(", ");
        for id in &filter.ids {
            list.push_bind(*id);
        }
        q.push(")");
    }
    if let Some(c) = &filter.code {
        q.push(" AND d.reason_code = ").push_bind(c.clone());
    }
    q.push(" ORDER BY d.created_at, d.id LIMIT ")
        .push_bind(filter.limit);
}

pub(super) async fn replay(
    pool: &SqlitePool,
    filter: &DeadLetterFilter,
    remap: &Remap,
    dry_run: bool,
    outbox: bool,
) -> Result<Vec<Replayed>, sqlx::Error> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let mut q = QueryBuilder::new(
        "SELECT d.id, i.tenant_id, i.channel, i.raw, i.received_at, i.format \
         FROM dead_letters d JOIN inbound_messages i ON i.id = d.inbound_id",
    );
    push_selected(&mut q, filter);
    let rows = q.build().fetch_all(&mut *tx).await?;
    let claimed = rows
        .iter()
        .map(|r| {
            let received: String = r.try_get(4)?;
            Ok(Claimed {
                id: r.try_get(0)?,
                tenant: r.try_get(1)?,
                channel: r.try_get(2)?,
                raw: r.try_get(3)?,
                format: format(r.try_get(5)?)?,
                received_at: DateTime::parse_from_rfc3339(&received)
                    .map_err(|e| sqlx::Error::Decode(Box::new(e)))?
                    .to_utc(),
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
    let results = remap_all(claimed, remap);
    if dry_run {
        tx.rollback().await?;
        return Ok(results.into_iter().map(|(r, _)| r).collect());
    }
    let positions = append_events(&mut tx, &event_rows(&results), &now(), outbox)
        .await
        .map_err(|e| sqlx::Error::Protocol(e.to_string()))?;
    let (results, replayed) = finish(results, &positions);
    for id in replayed {
        sqlx::query("UPDATE dead_letters SET status = 'replayed' WHERE id = ?")
            .bind(id)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(results)
}

pub(super) async fn discard(
    pool: &SqlitePool,
    filter: &DeadLetterFilter,
) -> Result<Vec<Uuid>, sqlx::Error> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let mut q = QueryBuilder::new(
        "UPDATE dead_letters SET status = 'discarded' WHERE id IN (SELECT d.id FROM dead_letters d",
    );
    push_selected(&mut q, filter);
    q.push(") RETURNING id");
    let ids: Vec<Uuid> = q.build_query_scalar().fetch_all(&mut *tx).await?;
    tx.commit().await?;
    Ok(ids)
}
