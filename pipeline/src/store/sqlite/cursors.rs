//! Poll cursor SQL on SQLite: one statement each, in autocommit mode.

use super::SqliteTx;
use crate::store::backend::{CursorSql, Res};

#[async_trait::async_trait]
impl CursorSql for SqliteTx {
    async fn cursor(&mut self, tenant: &str, source: &str) -> Res<Option<String>> {
        Ok(sqlx::query_scalar(
            "SELECT cursor FROM poll_cursors WHERE tenant_id = ?1 AND source = ?2",
        )
        .bind(tenant)
        .bind(source)
        .fetch_optional(self.conn.get())
        .await?)
    }

    async fn save_cursor(&mut self, tenant: &str, source: &str, cursor: &str) -> Res<()> {
        sqlx::query(
            "INSERT INTO poll_cursors (tenant_id, source, cursor, updated_at) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT (tenant_id, source) DO UPDATE SET cursor = excluded.cursor, updated_at = excluded.updated_at",
        )
        .bind(tenant)
        .bind(source)
        .bind(cursor)
        .bind(self.now.as_str())
        .execute(self.conn.get())
        .await?;
        Ok(())
    }
}
