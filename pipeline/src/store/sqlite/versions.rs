//! Mapping version history SQL on SQLite.

use super::SqliteTx;
use crate::store::backend::{Res, VersionSql};
use crate::store::MappingVersion;

#[async_trait::async_trait]
impl VersionSql for SqliteTx {
    async fn latest_version(&mut self, tenant: &str) -> Res<Option<String>> {
        Ok(sqlx::query_scalar(
            "SELECT version FROM mapping_versions WHERE tenant_id = ?1 ORDER BY seq DESC LIMIT 1",
        )
        .bind(tenant)
        .fetch_optional(self.conn.get())
        .await?)
    }

    async fn insert_version(
        &mut self,
        tenant: &str,
        version: &str,
        origin: &str,
        files: &str,
    ) -> Res<()> {
        sqlx::query(
            "INSERT INTO mapping_versions (tenant_id, version, applied_at, origin, files) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )
        .bind(tenant)
        .bind(version)
        .bind(self.now.as_str())
        .bind(origin)
        .bind(files)
        .execute(self.conn.get())
        .await?;
        Ok(())
    }

    async fn prune_versions(&mut self, tenant: &str, keep: i64) -> Res<()> {
        sqlx::query(
            "DELETE FROM mapping_versions WHERE tenant_id = ?1 AND seq NOT IN \
             (SELECT seq FROM mapping_versions WHERE tenant_id = ?1 ORDER BY seq DESC LIMIT ?2)",
        )
        .bind(tenant)
        .bind(keep)
        .execute(self.conn.get())
        .await?;
        Ok(())
    }

    async fn versions(&mut self, tenant: &str, limit: i64) -> Res<Vec<MappingVersion>> {
        Ok(sqlx::query_as(
            "SELECT seq, tenant_id, version, applied_at, origin FROM mapping_versions \
             WHERE tenant_id = ?1 ORDER BY seq DESC LIMIT ?2",
        )
        .bind(tenant)
        .bind(limit)
        .fetch_all(self.conn.get())
        .await?)
    }

    async fn version_files(&mut self, tenant: &str, seq: i64) -> Res<Option<String>> {
        Ok(sqlx::query_scalar(
            "SELECT files FROM mapping_versions WHERE tenant_id = ?1 AND seq = ?2",
        )
        .bind(tenant)
        .bind(seq)
        .fetch_optional(self.conn.get())
        .await?)
    }
}
