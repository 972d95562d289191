//! The state every HTTP handler shares.

use super::auth::Auth;
use crate::telemetry::Telemetry;
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
    /// Rate limits per source address and per token.
    pub rates: Arc<super::rate_limit::RateLimits>,
    /// The console's logged-in sessions.
    pub sessions: Arc<super::console::session::Sessions>,
}
