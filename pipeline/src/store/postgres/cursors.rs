//! Poll cursor SQL on PostgreSQL. Cursors are read and saved in their tenant's scope, so
//! row-level security applies to them as to every other row.

use super::PgTx;
use crate::store::backend::{CursorSql, Res};

#[async_trait::async_trait]
impl CursorSql for PgTx {
    async fn cursor(&mut self, tenant: &str, source: &str) -> Res<Option<String>> {
        Ok(sqlx::query_scalar(
            "SELECT cursor FROM poll_cursors WHERE tenant_id = $1 AND source = $2",
        )
        .bind(tenant)
        .bind(source)
        .fetch_optional(&mut *self.tx)
        .await?)
    }

    async fn save_cursor(&mut self, tenant: &str, source: &str, cursor: &str) -> Res<()> {
        sqlx::query(
            "INSERT INTO poll_cursors (tenant_id, source, cursor, updated_at) \
             VALUES ($1, $2, $3, clock_timestamp()) ON CONFLICT (tenant_id, source) \
             DO UPDATE SET cursor = excluded.cursor, updated_at = excluded.updated_at",
        )
        .bind(tenant)
        .bind(source)
        .bind(cursor)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }
}
