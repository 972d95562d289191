//! Retention SQL on SQLite (its units of work hold the write lock from their start).

use super::{chunks, push_list, rfc3339, SqliteTx};
use crate::store::backend::{Res, RetentionSql};
use chrono::{DateTime, Utc};
use sqlx::{QueryBuilder, Sqlite};
use uuid::Uuid;

#[async_trait::async_trait]
impl RetentionSql for SqliteTx {
    async fn prunable(
        &mut self,
        tenant: &str,
        cutoff: DateTime<Utc>,
        after: Option<Uuid>,
        limit: i64,
    ) -> Res<Vec<(Uuid, i64)>> {
        // By the (tenant_id, id) index, in id order; times are stored in one fixed
        // RFC 3339 format, so text order is time order.
        Ok(sqlx::query_as(
            "SELECT i.id, length(i.raw) FROM inbound_messages i \
             WHERE i.tenant_id = ?1 AND (?2 IS NULL OR i.id > ?2) AND i.pruned_at IS NULL \
             AND i.received_at < ?3 AND NOT EXISTS \
             (SELECT 1 FROM dead_letters d WHERE d.id = i.id AND d.status = 'open') \
             ORDER BY i.id LIMIT ?4",
        )
        .bind(tenant)
        .bind(after)
        .bind(rfc3339(cutoff))
        .bind(limit)
        .fetch_all(self.conn.get())
        .await?)
    }

    async fn prune(&mut self, ids: &[Uuid]) -> Res<()> {
        for chunk in chunks(ids) {
            let mut q = QueryBuilder::<Sqlite>::new("UPDATE inbound_messages SET raw = X'', ");
            q.push("pruned_at = ")
                .push_bind(self.now.clone())
                .push(" WHERE id IN ");
            push_list(&mut q, chunk);
            q.build().execute(self.conn.get()).await?;
        }
        Ok(())
    }
}
