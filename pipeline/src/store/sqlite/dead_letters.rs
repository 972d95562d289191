//! Dead-letter SQL on SQLite. Claims run in `BEGIN IMMEDIATE` units of work: the
//! database's write lock, taken up front, makes a claim exclusive for its whole
//! transaction (SQLite has one writer at a time; there is nothing to skip).

use super::{chunks, push_list, rfc3339, SqliteTx};
use crate::store::backend::{ClaimedLetter, DeadLetterSql, RawRow, Res};
use crate::store::{DeadLetter, DeadLetterFilter};
use sqlx::{QueryBuilder, Sqlite};
use uuid::Uuid;

/// Appends the WHERE clause (and order and limit) selecting open letters of `filter`.
fn push_selected(q: &mut QueryBuilder<'_, Sqlite>, filter: &DeadLetterFilter) {
    q.push(" WHERE d.status = 'open'");
    if let Some(t) = &filter.tenant {
        q.push(" AND d.tenant_id = ").push_bind(t.clone());
    }
    if !filter.ids.is_empty() {
        q.push(" AND d.id IN ");
        push_list(q, filter.ids.clone());
    }
    if let Some(c) = &filter.code {
        q.push(" AND d.reason_code = ").push_bind(c.clone());
    }
    if let Some(t) = &filter.message_type {
        q.push(" AND i.message_type = ").push_bind(t.clone());
    }
    if let Some(f) = &filter.sending_facility {
        q.push(" AND i.sending_facility = ").push_bind(f.clone());
    }
    // Times are stored in one fixed RFC 3339 format, so text order is time order.
    if let Some(t) = filter.since {
        q.push(" AND i.received_at >= ").push_bind(rfc3339(t));
    }
    if let Some(t) = filter.until {
        q.push(" AND i.received_at < ").push_bind(rfc3339(t));
    }
    if let Some(a) = filter.after {
        q.push(" AND d.id > ").push_bind(a);
    }
    q.push(" ORDER BY d.id LIMIT ").push_bind(filter.limit);
}

#[async_trait::async_trait]
impl DeadLetterSql for SqliteTx {
    async fn list_dead_letters(&mut self, tenant: Option<&str>) -> Res<Vec<DeadLetter>> {
        Ok(sqlx::query_as(
            "SELECT d.id AS id, d.tenant_id AS tenant_id, d.stage AS stage, \
             d.reason_code AS reason_code, d.detail AS detail, d.status AS status, \
             i.message_type AS message_type, i.sending_facility AS sending_facility, \
             i.control_id AS control_id, i.channel AS channel, i.received_at AS received_at, \
             d.created_at AS created_at, d.attempts AS attempts \
             FROM dead_letters d JOIN inbound_messages i ON i.id = d.inbound_id \
             WHERE (?1 IS NULL OR d.tenant_id = ?1) ORDER BY d.created_at, d.id",
        )
        .bind(tenant)
        .fetch_all(self.conn.get())
        .await?)
    }

    async fn dead_letter_raw(&mut self, tenant: Option<&str>, id: Uuid) -> Res<Option<RawRow>> {
        Ok(sqlx::query_as(
            "SELECT i.raw AS raw, i.pruned_at AS pruned_at FROM dead_letters d JOIN inbound_messages i ON i.id = d.inbound_id \
             WHERE d.id = ?1 AND (?2 IS NULL OR d.tenant_id = ?2)",
        )
        .bind(id)
        .bind(tenant)
        .fetch_optional(self.conn.get())
        .await?)
    }

    async fn select_letters(
        &mut self,
        filter: &DeadLetterFilter,
        _claim: bool,
    ) -> Res<Vec<ClaimedLetter>> {
        // A claim is exclusive by its unit of work (`BEGIN IMMEDIATE`); the read is the same.
        let mut q = QueryBuilder::new(
            "SELECT d.id AS id, i.tenant_id AS tenant_id, i.channel AS channel, i.raw AS raw, \
             i.received_at AS received_at, i.format AS format \
             FROM dead_letters d JOIN inbound_messages i ON i.id = d.inbound_id",
        );
        push_selected(&mut q, filter);
        Ok(q.build_query_as().fetch_all(self.conn.get()).await?)
    }

    async fn count_resend(&mut self, key: [&str; 3]) -> Res<()> {
        sqlx::query(
            "UPDATE dead_letters SET attempts = attempts + 1 WHERE inbound_id = \
             (SELECT id FROM inbound_messages WHERE tenant_id = ?1 AND sending_facility = ?2 \
             AND control_id = ?3)",
        )
        .bind(key[0])
        .bind(key[1])
        .bind(key[2])
        .execute(self.conn.get())
        .await?;
        Ok(())
    }

    async fn mark_replayed(&mut self, ids: &[Uuid]) -> Res<()> {
        for chunk in chunks(ids) {
            let mut q =
                QueryBuilder::new("UPDATE dead_letters SET status = 'replayed' WHERE id IN ");
            push_list(&mut q, chunk);
            q.build().execute(self.conn.get()).await?;
        }
        Ok(())
    }

    async fn discard_letters(
        &mut self,
        filter: &DeadLetterFilter,
    ) -> Res<Vec<(Uuid, Option<String>)>> {
        let mut q = QueryBuilder::new(
            "UPDATE dead_letters SET status = 'discarded' WHERE id IN \
             (SELECT d.id FROM dead_letters d JOIN inbound_messages i ON i.id = d.inbound_id",
        );
        push_selected(&mut q, filter);
        q.push(") RETURNING id, tenant_id");
        Ok(q.build_query_as().fetch_all(self.conn.get()).await?)
    }
}
