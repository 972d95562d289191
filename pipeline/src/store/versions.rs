//! The history of mapping versions over any backend: one row each time a version of a
//! tenant's mapping files went live, pruned to the newest N per tenant.

use super::backend::{Backend, Res, Scope, Tx, VersionSql, Work};
use super::{MappingHistory, StoreError};
use serde::Serialize;
use std::collections::BTreeMap;

/// One version of a tenant's mappings that went live.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct MappingVersion {
    /// Row number: increases with every version recorded.
    pub seq: i64,
    /// The tenant.
    pub tenant_id: String,
    /// The mapping version (the hash `intake check` prints).
    pub version: String,
    /// When it went live (RFC 3339).
    pub applied_at: String,
    /// `start` (loaded at start-up), `reload` (hot reload, after its samples passed) or
    /// `rollback` (restored from an earlier row).
    pub origin: String,
}

#[async_trait::async_trait]
impl<B: Backend> MappingHistory for B {
    async fn record_mapping_version(
        &self,
        tenant: &str,
        version: &str,
        origin: &str,
        files: &BTreeMap<String, String>,
        keep: usize,
    ) -> Res<bool> {
        let files = serde_json::to_string(files).map_err(|_| {
            StoreError::Unavailable("mapping_versions.files is not a JSON object of texts".into())
        })?;
        let mut tx = self.begin(Scope::Tenant(tenant), Work::Atomic).await?;
        if tx.latest_version(tenant).await?.as_deref() == Some(version) {
            tx.rollback().await?;
            return Ok(false);
        }
        tx.insert_version(tenant, version, origin, &files).await?;
        let keep = i64::try_from(keep.max(2)).unwrap_or(i64::MAX);
        tx.prune_versions(tenant, keep).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn mapping_history(&self, tenant: &str, limit: i64) -> Res<Vec<MappingVersion>> {
        let mut tx = self.begin(Scope::Tenant(tenant), Work::Single).await?;
        let rows = tx.versions(tenant, limit).await?;
        tx.commit().await?;
        Ok(rows)
    }

    async fn mapping_files(&self, tenant: &str, seq: i64) -> Res<Option<BTreeMap<String, String>>> {
        let mut tx = self.begin(Scope::Tenant(tenant), Work::Single).await?;
        let files = tx.version_files(tenant, seq).await?;
        tx.commit().await?;
        files
            .map(|f| {
                serde_json::from_str(&f).map_err(|_| {
                    StoreError::Unavailable(
                        "mapping_versions.files is not a JSON object of texts".into(),
                    )
                })
            })
            .transpose()
    }
}
