//! The one shape of every inbound source and background task.
//!
//! A component's settings ([`ComponentConfig`], the serde struct `intake.toml` reads) are
//! checked on their own first, then built against the engine ([`Env`]): what can fail at
//! start-up (a port, a tenant without mappings, a missing secret) fails there, before
//! anything runs. The built [`Component`] then runs until shutdown is requested, with the
//! engine's [`Ingest`] to send messages through.

use crate::http::auth::Auth;
use crate::telemetry::Telemetry;
use intake_pipeline::ingest::Ingest;
use intake_pipeline::mapping::Tenants;
use intake_pipeline::store::Store;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// A built component (settings checked, ports bound), ready to run.
#[async_trait::async_trait]
pub trait Component: Send {
    /// Runs until `shutdown` is requested, then finishes the work in flight (the message
    /// being processed, the round being published) and returns.
    async fn run(self: Box<Self>, ingest: Ingest, shutdown: Shutdown);
}

/// A component's settings: the serde struct one `intake.toml` table is read into.
#[async_trait::async_trait]
pub trait ComponentConfig: Send + Sync {
    /// Checks the settings on their own, before the store is opened (URLs, secrets).
    fn check(&self) -> Result<(), StartError> {
        Ok(())
    }

    /// Builds the component: checks the settings against the engine (tenants) and binds
    /// what can fail (ports). Nothing runs yet.
    async fn build(&self, env: &Env) -> Result<Built, StartError>;

    /// Tenants that every mapping reload must keep while this component runs.
    fn bound_tenants(&self) -> Vec<String> {
        Vec::new()
    }
}

/// What [`ComponentConfig::build`] gives back.
pub struct Built {
    /// The component, to run.
    pub component: Box<dyn Component>,
    /// Start-up lines for stdout, each without the leading `intake `
    /// (e.g. `listening: mllp 127.0.0.1:2575 tenant=demo`).
    pub banner: Vec<String>,
}

/// The engine parts components are built from (no component's own settings).
pub struct Env {
    /// The store (reads, cursors, the outbox).
    pub store: Arc<dyn Store>,
    /// The tenants loaded at start-up (bound tenants must be among them).
    pub tenants: Arc<Tenants>,
    /// Where the tenants' mapping folders are (for messages, and for a rollback).
    pub mappings_dir: PathBuf,
    /// How many mapping versions per tenant the history keeps.
    pub mapping_history: usize,
    /// The API's bearer tokens (the top-level `admin_token` and `[tenant_tokens]`).
    pub auth: Arc<Auth>,
    /// Where components register their `/metrics` series and `/readyz` sections.
    pub telemetry: Telemetry,
    /// The connections all listeners may hold together.
    pub connections: ConnectionBudget,
}

/// The connections all listeners of a process may hold together (`max_connections_total`):
/// each accepted socket takes a permit and gives it back when it closes.
#[derive(Debug, Clone)]
pub struct ConnectionBudget {
    permits: Arc<tokio::sync::Semaphore>,
    limit: usize,
}

impl ConnectionBudget {
    /// A budget of `limit` connections (at least 1).
    pub fn new(limit: usize) -> Self {
        let limit = limit.clamp(1, tokio::sync::Semaphore::MAX_PERMITS);
        ConnectionBudget {
            permits: Arc::new(tokio::sync::Semaphore::new(limit)),
            limit,
        }
    }

    /// A permit for one more connection, or none when all are taken.
    pub fn try_take(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        self.permits.clone().try_acquire_owned().ok()
    }

    /// The limit.
    pub fn limit(&self) -> usize {
        self.limit
    }
}

impl Env {
    /// Checks that `tenant` has a mapping folder; `what` names the component in the error.
    pub fn require_tenant(&self, what: &str, tenant: &str) -> Result<(), StartError> {
        match self.tenants.get(tenant) {
            Some(_) => Ok(()),
            None => Err(StartError::UnknownTenant {
                what: what.to_string(),
                tenant: tenant.to_string(),
                dir: self.mappings_dir.display().to_string(),
            }),
        }
    }
}

/// Why a component could not be started. Messages never repeat a secret or a URL's
/// credentials.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// An address could not be bound.
    #[error("binding {what} {addr}")]
    Bind {
        /// The component, e.g. `MLLP listener`.
        what: &'static str,
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The component is bound to a tenant that has no mapping folder.
    #[error("{what} is bound to tenant {tenant:?}, which has no folder in {dir}")]
    UnknownTenant {
        /// The component, e.g. `MLLP listener 127.0.0.1:2575`.
        what: String,
        /// The tenant.
        tenant: String,
        /// The mappings folder.
        dir: String,
    },
    /// A listener's TLS files do not load.
    #[error("TLS for {what} {addr}: {source}")]
    Tls {
        /// The component, e.g. `MLLP listener`.
        what: &'static str,
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: crate::tls::TlsError,
    },
    /// The settings cannot be used (the component's own error type).
    #[error(transparent)]
    Invalid(Box<dyn std::error::Error + Send + Sync>),
}

/// Requests shutdown of every component holding one of its [`Shutdown`]s.
pub struct Stop(watch::Sender<bool>);

impl Stop {
    /// A stop switch and the signal components watch.
    pub fn new() -> (Stop, Shutdown) {
        let (tx, rx) = watch::channel(false);
        (Stop(tx), Shutdown(rx))
    }

    /// Requests shutdown (once; later calls change nothing).
    pub fn request(&self) {
        let _ = self.0.send(true);
    }
}

/// A component's view of the shutdown request: it turns on once and stays on. A dropped
/// [`Stop`] counts as a request.
#[derive(Debug, Clone)]
pub struct Shutdown(watch::Receiver<bool>);

impl Shutdown {
    /// Whether shutdown has been requested.
    pub fn is_requested(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves once shutdown is requested (at once if it already was).
    pub async fn requested(&mut self) {
        let _ = self.0.wait_for(|on| *on).await;
    }

    /// Sleeps for `d`; true when shutdown was requested meanwhile (the sleep is cut short).
    pub async fn sleep(&mut self, d: Duration) -> bool {
        tokio::select! {
            _ = tokio::time::sleep(d) => self.is_requested(),
            _ = self.requested() => true,
        }
    }

    /// The underlying receiver, for APIs that take one (the mapping watcher).
    pub fn receiver(&self) -> watch::Receiver<bool> {
        self.0.clone()
    }
}
