//! Mapping version history SQL on PostgreSQL, in the tenant's scope (row-level security).

use super::PgTx;
use crate::store::backend::{Res, VersionSql};
use crate::store::MappingVersion;

#[async_trait::async_trait]
impl VersionSql for PgTx {
    async fn latest_version(&mut self, tenant: &str) -> Res<Option<String>> {
        Ok(sqlx::query_scalar(
            "SELECT version FROM mapping_versions WHERE tenant_id = $1 ORDER BY seq DESC LIMIT 1",
        )
        .bind(tenant)
        .fetch_optional(&mut *self.tx)
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
             VALUES ($1, $2, clock_timestamp(), $3, $4)",
        )
        .bind(tenant)
        .bind(version)
        .bind(origin)
        .bind(files)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    async fn prune_versions(&mut self, tenant: &str, keep: i64) -> Res<()> {
        sqlx::query(
            "DELETE FROM mapping_versions WHERE tenant_id = $1 AND seq NOT IN \
             (SELECT seq FROM mapping_versions WHERE tenant_id = $1 ORDER BY seq DESC LIMIT $2)",
        )
        .bind(tenant)
        .bind(keep)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    async fn versions(&mut self, tenant: &str, limit: i64) -> Res<Vec<MappingVersion>> {
        Ok(sqlx::query_as(
            "SELECT seq, tenant_id, version, \
             to_char(applied_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') AS applied_at, \
             origin FROM mapping_versions WHERE tenant_id = $1 ORDER BY seq DESC LIMIT $2",
        )
        .bind(tenant)
        .bind(limit)
        .fetch_all(&mut *self.tx)
        .await?)
    }

    async fn version_files(&mut self, tenant: &str, seq: i64) -> Res<Option<String>> {
        Ok(sqlx::query_scalar(
            "SELECT files FROM mapping_versions WHERE tenant_id = $1 AND seq = $2",
        )
        .bind(tenant)
        .bind(seq)
        .fetch_optional(&mut *self.tx)
        .await?)
    }
}
