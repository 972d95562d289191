//! The one entry point every adapter uses: process a raw message, commit it through the
//! batching writer, and say how to acknowledge it. It is also the single place where an
//! inbound message is logged — with ids and codes only, never content.

use crate::mapping::reload::TenantsHandle;
use crate::mapping::Tenants;
use crate::message::RawMessage;
use crate::metrics::Metrics;
use crate::outcome::{Outcome, Stored};
use crate::pipeline::process;
use crate::writer::Writer;
use std::sync::Arc;

/// Messages larger than this are parsed and mapped on the blocking pool, so a huge one
/// never holds up a runtime worker that other connections are served by.
const OFF_WORKER_BYTES: usize = 64 * 1024;

/// Processing plus storage, shared by all listeners.
#[derive(Clone)]
pub struct Ingest {
    tenants: TenantsHandle,
    writer: Writer,
    metrics: Arc<Metrics>,
}

impl Ingest {
    /// Binds the tenants' mappings (reloadable through the handle) and a writer.
    pub fn new(tenants: TenantsHandle, writer: Writer) -> Self {
        Ingest {
            tenants,
            writer,
            metrics: Arc::default(),
        }
    }

    /// The counters in Prometheus text format (for `/metrics`).
    pub fn metrics_text(&self) -> String {
        self.metrics.render(self.writer.stats(), &self.tenants)
    }

    /// The current snapshot of the tenants this engine serves.
    pub fn tenants(&self) -> Arc<Tenants> {
        self.tenants.current()
    }

    /// The handle through which the mappings are reloaded.
    pub fn tenants_handle(&self) -> &TenantsHandle {
        &self.tenants
    }

    /// The counters (the projection runner reports its lag here).
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The writer (for its stats).
    pub fn writer(&self) -> &Writer {
        &self.writer
    }

    /// Processes and durably stores one message; returns once committed (or failed).
    pub async fn ingest(&self, raw: RawMessage) -> Outcome {
        // One snapshot per message: a reload never splits a message across versions.
        let started = std::time::Instant::now();
        let tenants = self.tenants.current();
        let processed = if raw.bytes.len() > OFF_WORKER_BYTES {
            match tokio::task::spawn_blocking(move || process(raw, &tenants)).await {
                Ok(processed) => processed,
                Err(e) => std::panic::resume_unwind(e.into_panic()),
            }
        } else {
            process(raw, &tenants)
        };
        let skipped: Vec<&'static str> = processed.skipped.iter().map(|s| s.code).collect();
        let out = self.writer.submit(processed).await;
        self.metrics.ack_latency.observe_duration(started.elapsed());
        // Skipped items count once, when their message is first stored.
        if out.stored == Some(Stored::Events) {
            self.metrics.skipped(out.tenant.as_deref(), &skipped);
        }
        self.metrics.record(
            out.tenant.as_deref(),
            out.stored.map_or("not_stored", Stored::as_str),
            out.code(),
            out.positions.len(),
        );
        let h = out.header.as_ref();
        tracing::info!(
            inbound_id = %out.inbound_id,
            tenant = out.tenant.as_deref().unwrap_or("-"),
            message_type = out.message_type.as_deref().unwrap_or("-"),
            control_id = h.map(|h| h.control_id.as_str()).unwrap_or("-"),
            stored = out.stored.map(|s| format!("{s:?}")).as_deref().unwrap_or("nothing"),
            ack = out.ack.as_letter(),
            code = out.code().unwrap_or("-"),
            events = out.positions.len(),
            "message"
        );
        out
    }
}
