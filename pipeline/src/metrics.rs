//! Counters for `/metrics` (Prometheus text format). Labels are ids and codes only —
//! tenant ids, stored outcomes, reason codes — never message content.

use crate::mapping::reload::TenantsHandle;
use crate::writer::WriterStats;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::Ordering;
use std::sync::Mutex;

/// Inbound message counters, by (tenant, stored outcome, code).
#[derive(Debug, Default)]
pub struct Metrics {
    messages: Mutex<BTreeMap<(String, &'static str, String), u64>>,
    events: Mutex<BTreeMap<String, u64>>,
}

impl Metrics {
    /// Counts one inbound message and the events it appended.
    pub fn record(
        &self,
        tenant: Option<&str>,
        outcome: &'static str,
        code: Option<&str>,
        events: usize,
    ) {
        let tenant = tenant.unwrap_or("").to_string();
        if let Ok(mut m) = self.messages.lock() {
            *m.entry((tenant.clone(), outcome, code.unwrap_or("").to_string()))
                .or_default() += 1;
        }
        if events > 0 {
            if let Ok(mut e) = self.events.lock() {
                *e.entry(tenant).or_default() += events as u64;
            }
        }
    }

    /// The Prometheus text exposition of these counters plus the writer's and the
    /// mapping reloader's.
    pub fn render(&self, writer: &WriterStats, tenants: &TenantsHandle) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "# HELP intake_messages_total Inbound messages by tenant, stored outcome and reason code.");
        let _ = writeln!(out, "# TYPE intake_messages_total counter");
        if let Ok(m) = self.messages.lock() {
            for ((tenant, outcome, code), n) in m.iter() {
                let _ = writeln!(out, "intake_messages_total{{tenant=\"{tenant}\",outcome=\"{outcome}\",code=\"{code}\"}} {n}");
            }
        }
        let _ = writeln!(
            out,
            "# HELP intake_events_appended_total Events appended, by tenant."
        );
        let _ = writeln!(out, "# TYPE intake_events_appended_total counter");
        if let Ok(e) = self.events.lock() {
            for (tenant, n) in e.iter() {
                let _ = writeln!(
                    out,
                    "intake_events_appended_total{{tenant=\"{tenant}\"}} {n}"
                );
            }
        }
        let counters = [
            (
                "intake_writer_batches_total",
                "Transactions committed by the batching writer.",
                &writer.batches,
            ),
            (
                "intake_writer_messages_total",
                "Messages committed by the batching writer.",
                &writer.messages,
            ),
            (
                "intake_writer_failed_batches_total",
                "Batches whose transaction failed.",
                &writer.failed_batches,
            ),
        ];
        for (name, help, value) in counters {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                value.load(Ordering::Relaxed)
            );
        }
        let reloads = tenants.stats();
        let _ = writeln!(
            out,
            "# HELP intake_mapping_reloads_total Mapping reloads by result."
        );
        let _ = writeln!(out, "# TYPE intake_mapping_reloads_total counter");
        let _ = writeln!(
            out,
            "intake_mapping_reloads_total{{result=\"ok\"}} {}",
            reloads.ok
        );
        let _ = writeln!(
            out,
            "intake_mapping_reloads_total{{result=\"refused\"}} {}",
            reloads.refused
        );
        out
    }
}
