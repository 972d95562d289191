//! Where components register what they add to `/metrics` and `/readyz`.
//!
//! Each component keeps its series next to its log events (its `internal_events.rs`) and
//! registers a [`Report`] here when it is built; the HTTP server renders them after the
//! pipeline's own counters, in registration order. Labels are ids and codes only.

use serde_json::Value;
use std::sync::{Arc, Mutex};

/// The store did not answer, so a `/readyz` section cannot be given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unavailable;

/// A component's part of `/metrics` and `/readyz`.
#[async_trait::async_trait]
pub trait Report: Send + Sync {
    /// Appends the component's series (Prometheus text format) to `out`.
    async fn metrics(&self, out: &mut String);

    /// The component's `/readyz` section as (key, value); `Ok(None)`: it adds none.
    async fn readiness(&self) -> Result<Option<(&'static str, Value)>, Unavailable> {
        Ok(None)
    }
}

/// The registered reports (cheap to clone: one shared list).
#[derive(Clone, Default)]
pub struct Telemetry {
    reports: Arc<Mutex<Vec<Arc<dyn Report>>>>,
}

impl Telemetry {
    /// Adds a component's report.
    pub fn register(&self, report: Arc<dyn Report>) {
        self.reports
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(report);
    }

    fn snapshot(&self) -> Vec<Arc<dyn Report>> {
        self.reports
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Every component's series, in registration order.
    pub async fn metrics(&self) -> String {
        let mut out = String::new();
        for r in self.snapshot() {
            r.metrics(&mut out).await;
        }
        out
    }

    /// Every component's `/readyz` section, in registration order.
    pub async fn readiness(&self) -> Result<Vec<(&'static str, Value)>, Unavailable> {
        let mut sections = Vec::new();
        for r in self.snapshot() {
            sections.extend(r.readiness().await?);
        }
        Ok(sections)
    }
}
