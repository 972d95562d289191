//! The one entry point every adapter uses: process a raw message, commit it through the
//! batching writer, and say how to acknowledge it. It is also the single place where an
//! inbound message is logged — with ids and codes only, never content.

use crate::hl7::Header;
use crate::mapping::reload::TenantsHandle;
use crate::mapping::Tenants;
use crate::metrics::Metrics;
use crate::pipeline::{process, AckCode, RawMessage};
use crate::store::Stored;
use crate::writer::Writer;
use std::sync::Arc;
use uuid::Uuid;

/// Processing plus storage, shared by all listeners.
#[derive(Clone)]
pub struct Ingest {
    tenants: TenantsHandle,
    writer: Writer,
    metrics: Arc<Metrics>,
}

/// The committed result of one inbound message: everything an adapter needs to answer.
#[derive(Debug, Clone)]
pub struct Ingested {
    /// The inbound message id.
    pub inbound_id: Uuid,
    /// The message header, when it could be read (for the ACK).
    pub header: Option<Header>,
    /// The acknowledgement class.
    pub ack: AckCode,
    /// The stable error code when not accepted, or the dead-letter reason.
    pub code: Option<String>,
    /// The dead-letter reason's PHI-free detail (field and path, FHIRPath expression).
    pub detail: Option<String>,
    /// The message type: `ADT^A01`, or the FHIR resource type.
    pub message_type: Option<String>,
    /// What was stored; `None` when nothing was (storage failure).
    pub stored: Option<Stored>,
    /// Positions of appended events.
    pub positions: Vec<i64>,
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

    /// The counters behind `/metrics` (pollers add theirs).
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The writer (for its stats).
    pub fn writer(&self) -> &Writer {
        &self.writer
    }

    /// Processes and durably stores one message; returns once committed (or failed).
    pub async fn ingest(&self, raw: RawMessage) -> Ingested {
        let inbound_id = raw.id;
        // One snapshot per message: a reload never splits a message across versions.
        let tenants = self.tenants.current();
        let processed = process(raw, &tenants);
        let header = processed.header.clone();
        let tenant = processed.tenant.clone();
        let message_type = processed.message_code();
        let detail = match &processed.disposition {
            crate::pipeline::Disposition::DeadLetter { rejection, .. } => rejection.detail.clone(),
            crate::pipeline::Disposition::Events(_) => None,
        };
        let result = self.writer.submit(processed).await;
        let out = match result {
            Ok(o) => Ingested {
                inbound_id,
                header,
                ack: o.ack,
                code: o.reason_code,
                detail,
                message_type,
                stored: Some(o.stored),
                positions: o.positions,
            },
            Err(e) => Ingested {
                inbound_id,
                header,
                ack: AckCode::Reject,
                code: Some(e.code().to_string()),
                detail: None,
                message_type,
                stored: None,
                positions: Vec::new(),
            },
        };
        let outcome = match out.stored {
            Some(Stored::Events) => "events",
            Some(Stored::DeadLettered) => "dead_lettered",
            Some(Stored::Duplicate) => "duplicate",
            None => "not_stored",
        };
        self.metrics.record(
            tenant.as_deref(),
            outcome,
            out.code.as_deref(),
            out.positions.len(),
        );
        let h = out.header.as_ref();
        tracing::info!(
            inbound_id = %out.inbound_id,
            tenant = tenant.as_deref().unwrap_or("-"),
            message_type = out.message_type.as_deref().unwrap_or("-"),
            control_id = h.map(|h| h.control_id.as_str()).unwrap_or("-"),
            stored = out.stored.map(|s| format!("{s:?}")).as_deref().unwrap_or("nothing"),
            ack = out.ack.as_letter(),
            code = out.code.as_deref().unwrap_or("-"),
            events = out.positions.len(),
            "message"
        );
        out
    }
}
