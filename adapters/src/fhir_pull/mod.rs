//! FHIR pull: polls tenants' FHIR R4 servers for new and changed resources.
//!
//! One poller per `[[fhir_pull]]` table (tenant). Every `interval` it searches each
//! configured resource type with
//! `GET {base}/{Type}?_lastUpdated=gt{cursor}&_sort=_lastUpdated&_count=N`, follows
//! `Bundle.link[relation=next]` (same origin as `base` only, so the bearer token never
//! leaves for another host), and sends every entry resource of that type through
//! [`Ingest::ingest`] as a [`intake_pipeline::RawMessage`] on channel [`CHANNEL`]: the
//! same pipeline as a push, acknowledged (here: the cursor advanced) only after its commit.
//!
//! The cursor (per tenant and resource type, in the store as source `fhir:<Type>`) is the
//! greatest `meta.lastUpdated` up to which every resource is committed. After a page in the
//! middle of a result it is the greatest value seen *below* that page's last one (resources
//! sharing the last timestamp may continue on the next page); at the end of the result it
//! is the greatest value seen. A restart therefore resumes where the committed work ends;
//! what is fetched twice (a boundary group) is a duplicate by idempotency key and event ids.
//!
//! Errors back off ([`crate::backoff`]): 429 and 503 wait for `Retry-After` (seconds or an
//! HTTP date, at most [`client::MAX_RETRY_AFTER`]) or else an exponential, jittered delay
//! capped at `retry_max`; other 5xx, timeouts and connection errors retry the same request
//! the same way, up to [`ATTEMPTS`] times; 4xx and unusable bodies end the round for that
//! type, and the next round waits longer each time it fails (capped). What is logged and
//! counted is in `internal_events.rs`.

pub mod bundle;
pub mod client;
pub mod config;
mod internal_events;
mod poller;

use crate::component::{Built, Component, ComponentConfig, Env, Shutdown, StartError};
use config::PullServers;
use intake_pipeline::ingest::Ingest;
use internal_events::PullMetrics;
use poller::Poller;
use std::sync::Arc;
use tokio::task::JoinSet;

pub use poller::{ATTEMPTS, CHANNEL, MAX_PAGES};

/// Every configured server's poller, run side by side.
pub struct FhirPull {
    pollers: Vec<Poller>,
}

#[async_trait::async_trait]
impl ComponentConfig for PullServers {
    fn check(&self) -> Result<(), StartError> {
        PullServers::check(self).map_err(|e| StartError::Invalid(e.into()))
    }

    async fn build(&self, env: &Env) -> Result<Built, StartError> {
        let invalid = |e: config::InvalidPull| StartError::Invalid(e.into());
        PullServers::check(self).map_err(invalid)?;
        let metrics = Arc::new(PullMetrics::default());
        env.telemetry.register(metrics.clone());
        let mut pollers = Vec::new();
        let mut banner = Vec::new();
        for config in &self.0 {
            env.require_tenant("[[fhir_pull]]", &config.tenant)?;
            let base = config.base().map_err(invalid)?;
            pollers.push(Poller {
                token: config.bearer_token().map_err(invalid)?,
                client: client::client(config, &base).map_err(invalid)?,
                base,
                config: config.clone(),
                store: env.store.clone(),
                metrics: metrics.clone(),
            });
            banner.push(format!(
                "polling: fhir tenant={} types={}",
                config.tenant,
                config.resource_types.join(",")
            ));
        }
        Ok(Built {
            component: Box::new(FhirPull { pollers }),
            banner,
        })
    }
}

#[async_trait::async_trait]
impl Component for FhirPull {
    /// Runs every poller; each stops after the resource in flight is committed.
    async fn run(self: Box<Self>, ingest: Ingest, shutdown: Shutdown) {
        let mut running = JoinSet::new();
        for p in self.pollers {
            running.spawn(p.run(ingest.clone(), shutdown.clone()));
        }
        drop(ingest);
        while running.join_next().await.is_some() {}
    }
}
