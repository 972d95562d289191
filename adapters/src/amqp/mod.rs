//! The outbox publisher: sends stored events to a RabbitMQ topic exchange (lapin).
//!
//! Events reach the outbox in their own transaction (see the store); this task claims
//! them in global order under the store's publisher lease, publishes them persistent
//! with publisher confirms, and marks only the confirmed prefix published. So every
//! event is published at least once, in order per stream, whatever happens to the broker
//! or to this process; consumers dedupe by `message_id` (= event id).
//!
//! Ingest never waits on the broker: while it is unreachable the outbox grows, this task
//! reconnects with capped exponential back-off and jitter ([`crate::backoff`]), and drains
//! the outbox once it is back. What is logged and counted is in `internal_events.rs`.
//!
//! It is a [`Component`] like the sources: it takes the engine's [`Ingest`] only to be
//! woken by the writer's commits, and drops it at once (it never ingests, and must not
//! keep the writer alive at shutdown).

pub mod config;
mod internal_events;
mod publisher;
mod round;

use crate::component::{Built, Component, ComponentConfig, Env, Shutdown, StartError};
use config::{parse_url, AmqpConfig};
use intake_pipeline::ingest::Ingest;
use internal_events::{OutboxReport, PublisherStatus};
use publisher::Publisher;
use std::sync::Arc;

#[async_trait::async_trait]
impl ComponentConfig for AmqpConfig {
    fn check(&self) -> Result<(), StartError> {
        parse_url(&self.url)
            .map(|_| ())
            .map_err(|e| StartError::Invalid(e.into()))
    }

    async fn build(&self, env: &Env) -> Result<Built, StartError> {
        let uri = parse_url(&self.url).map_err(|e| StartError::Invalid(e.into()))?;
        let ca_pem = match &self.ca_file {
            None => None,
            Some(path) => {
                // Read and checked now, so a bad file stops serve with its name and reason.
                crate::tls::read_certificates("AMQP CA", path)
                    .map_err(|e| StartError::Invalid(e.into()))?;
                Some(std::fs::read_to_string(path).map_err(|e| {
                    StartError::Invalid(format!("AMQP CA {}: {e}", path.display()).into())
                })?)
            }
        };
        let status = Arc::new(PublisherStatus::default());
        env.telemetry.register(Arc::new(OutboxReport {
            status: status.clone(),
            store: env.store.clone(),
        }));
        let publisher = Publisher {
            config: self.clone(),
            uri,
            ca_pem,
            store: env.store.clone(),
            holder: format!("intake-{}-{}", std::process::id(), uuid::Uuid::now_v7()),
            status,
        };
        Ok(Built {
            component: Box::new(publisher),
            banner: Vec::new(),
        })
    }
}

#[async_trait::async_trait]
impl Component for Publisher {
    /// Publishes until shutdown, after the round in flight; what is left waits in the
    /// outbox.
    async fn run(self: Box<Self>, ingest: Ingest, shutdown: Shutdown) {
        let wake = ingest.writer().committed();
        drop(ingest);
        self.run_until_shutdown(wake, shutdown).await;
    }
}
