//! Retention SQL on PostgreSQL (row-level security keeps each unit to its tenant; the
//! engine's role may update only `raw` and `pruned_at` of inbound messages).

use super::PgTx;
use crate::store::backend::{Res, RetentionSql};
use chrono::{DateTime, Utc};
use uuid::Uuid;

#[async_trait::async_trait]
impl RetentionSql for PgTx {
    async fn prunable(
        &mut self,
        tenant: &str,
        cutoff: DateTime<Utc>,
        after: Option<Uuid>,
        limit: i64,
    ) -> Res<Vec<(Uuid, i64)>> {
        let rows: Vec<(Uuid, i32)> = sqlx::query_as(
            "SELECT i.id, octet_length(i.raw) FROM inbound_messages i \
             WHERE i.tenant_id = $1 AND ($2::uuid IS NULL OR i.id > $2) AND i.pruned_at IS NULL \
             AND i.received_at < $3 AND NOT EXISTS \
             (SELECT 1 FROM dead_letters d WHERE d.id = i.id AND d.status = 'open') \
             ORDER BY i.id LIMIT $4",
        )
        .bind(tenant)
        .bind(after)
        .bind(cutoff)
        .bind(limit)
        .fetch_all(&mut *self.tx)
        .await?;
        Ok(rows.into_iter().map(|(id, n)| (id, i64::from(n))).collect())
    }

    async fn prune(&mut self, ids: &[Uuid]) -> Res<()> {
        sqlx::query(
            "UPDATE inbound_messages SET raw = '\\x'::bytea, pruned_at = now() \
             WHERE id = ANY($1)",
        )
        .bind(ids)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }
}
