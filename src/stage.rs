//! Staged deploys in `intake serve`: a tenant's edited mappings go live on hot reload only
//! once its golden samples pass, and every version that goes live is kept in the store's
//! history (with its files) for `intake mappings rollback`.

use intake_pipeline::mapping::reload::Stage;
use intake_pipeline::mapping::{Tenant, Tenants};
use intake_pipeline::store::Store;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::runtime::Handle;

/// The stage: golden samples as the gate, the store as the history.
pub struct SampleStage {
    /// Folder of `<tenant>/` golden samples.
    pub samples_dir: PathBuf,
    /// Where the history is kept.
    pub store: Arc<dyn Store>,
    /// Versions kept per tenant.
    pub keep: usize,
    /// Whether the samples gate reloads (`[mappings] staged`); the history is kept anyway.
    pub gate: bool,
    /// The runtime the store's calls run on (the stage is called from a blocking thread).
    pub runtime: Handle,
}

impl SampleStage {
    /// Records `tenant`'s version as live (`origin`), unless it already is the newest row.
    pub async fn record(&self, tenant: &Tenant, origin: &str) {
        let recorded = self
            .store
            .record_mapping_version(
                &tenant.name,
                &tenant.version,
                origin,
                &tenant.files,
                self.keep,
            )
            .await;
        if let Err(e) = recorded {
            tracing::error!(tenant = %tenant.name, version = %tenant.version, error = %e, "mapping version not recorded in the history");
        }
    }

    /// Whether `tenant`'s version went live before (it is in the history): a rollback.
    fn known(&self, tenant: &Tenant) -> bool {
        let history = self.runtime.block_on(
            self.store
                .mapping_history(&tenant.name, i64::try_from(self.keep).unwrap_or(i64::MAX)),
        );
        history.is_ok_and(|rows| rows.iter().any(|r| r.version == tenant.version))
    }
}

impl Stage for SampleStage {
    fn admit(&self, tenant: &Tenant, all: &Tenants) -> Vec<String> {
        if !self.gate {
            return Vec::new();
        }
        // A version that was live before goes live again without its samples: that is a
        // rollback, and the samples may since have moved on with the newer version.
        if self.known(tenant) {
            tracing::info!(tenant = %tenant.name, version = %tenant.version, "a version from the history: restored without its samples");
            return Vec::new();
        }
        crate::golden::tenant_problems(&self.samples_dir, all, &tenant.name)
    }

    fn applied(&self, tenants: &[Arc<Tenant>]) {
        for t in tenants {
            self.runtime.block_on(self.record(t, "reload"));
        }
    }
}
