//! The state every HTTP handler shares, and the per-tenant access check.

use super::auth::Auth;
use super::error::ApiError;
use crate::telemetry::Telemetry;
use axum::http::HeaderMap;
use intake_pipeline::ingest::Ingest;
use intake_pipeline::store::Store;
use std::sync::Arc;

/// Shared state of the HTTP server.
#[derive(Clone)]
pub struct HttpState {
    /// Store for reads.
    pub store: Arc<dyn Store>,
    /// Processing and writes.
    pub ingest: Ingest,
    /// Tokens.
    pub auth: Arc<Auth>,
    /// The other components' `/metrics` series and `/readyz` sections.
    pub telemetry: Telemetry,
    /// The tenants' mapping folders (a rollback writes into them).
    pub mappings_dir: std::path::PathBuf,
    /// Mapping versions the history keeps per tenant.
    pub mapping_history: usize,
    /// Whether `/metrics` is served without a token (the metrics address only).
    pub metrics_open: bool,
}

/// Checks the token grants `tenant`, and that the tenant exists.
pub fn authorize(s: &HttpState, headers: &HeaderMap, tenant: &str) -> Result<(), ApiError> {
    s.auth.grants(headers, tenant)?;
    if s.ingest.tenants().get(tenant).is_none() {
        return Err(ApiError::TenantNotFound);
    }
    Ok(())
}
