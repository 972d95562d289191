//! Counters for `/metrics` (Prometheus text format). Labels are ids and codes only —
//! tenant ids, stored outcomes, reason codes — never message content.

use crate::mapping::reload::TenantsHandle;
use crate::writer::WriterStats;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// A Prometheus histogram with fixed upper bounds: lock-free to observe, cumulative when
/// rendered.
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    /// Observations per bucket (not cumulative); the last is `+Inf`.
    buckets: Vec<AtomicU64>,
    /// Sum of observations, in millionths of the unit.
    sum_micros: AtomicU64,
    count: AtomicU64,
}

/// ACK latency bounds in seconds: 0.1 ms to 10 s.
pub const LATENCY_BOUNDS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    10.0,
];

/// Batch size bounds in messages.
pub const BATCH_BOUNDS: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 4096.0,
];

impl Histogram {
    /// An empty histogram with these upper bounds (ascending).
    pub fn new(bounds: &'static [f64]) -> Self {
        Histogram {
            bounds,
            buckets: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_micros: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }

    /// Records one observation.
    pub fn observe(&self, value: f64) {
        let at = self.bounds.partition_point(|&b| b < value);
        self.buckets[at].fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add((value * 1e6) as u64, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// Records a duration in seconds.
    pub fn observe_duration(&self, d: Duration) {
        self.observe(d.as_secs_f64());
    }

    /// How many observations there were.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// Appends the exposition of this histogram as `name`.
    pub fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cumulative = 0;
        for (i, bucket) in self.buckets.iter().enumerate() {
            cumulative += bucket.load(Ordering::Relaxed);
            match self.bounds.get(i) {
                Some(b) => {
                    let _ = writeln!(out, "{name}_bucket{{le=\"{b}\"}} {cumulative}");
                }
                None => {
                    let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {cumulative}");
                }
            }
        }
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum {sum}\n{name}_count {}", self.count());
    }
}

/// Inbound message counters, by (tenant, stored outcome, code), and the ACK latency.
#[derive(Debug)]
pub struct Metrics {
    /// By tenant, then (stored outcome, code): a message of a known tenant allocates nothing.
    messages: Mutex<BTreeMap<String, BTreeMap<(&'static str, &'static str), u64>>>,
    events: Mutex<BTreeMap<String, u64>>,
    /// `for_each` items skipped (`on_item_error: skip`), by tenant and reason code.
    skipped: Mutex<BTreeMap<(String, &'static str), u64>>,
    /// From a message's receipt to its outcome (committed or failed), in seconds.
    pub ack_latency: Histogram,
    /// The census projection's position and the newest event's, as its runner last saw
    /// them (-1 until it has run: no series then).
    pub census: ProjectionGauge,
    /// Whether series carry the tenant's name (`[http] metrics_tenant_labels`); off,
    /// every tenant counts under `tenant="*"`, so a scraper learns no tenant names.
    tenant_labels: std::sync::atomic::AtomicBool,
}

/// Where a projection is, against the head of the event log.
#[derive(Debug)]
pub struct ProjectionGauge {
    position: std::sync::atomic::AtomicI64,
    head: std::sync::atomic::AtomicI64,
}

impl Default for ProjectionGauge {
    fn default() -> Self {
        ProjectionGauge {
            position: std::sync::atomic::AtomicI64::new(-1),
            head: std::sync::atomic::AtomicI64::new(-1),
        }
    }
}

impl ProjectionGauge {
    /// Records the projection's position and the log's head.
    pub fn set(&self, position: i64, head: i64) {
        self.position.store(position, Ordering::Relaxed);
        self.head.store(head, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, projection: &str) {
        let position = self.position.load(Ordering::Relaxed);
        let head = self.head.load(Ordering::Relaxed);
        if position < 0 {
            return;
        }
        let _ = writeln!(out, "# HELP intake_projection_position Global position a projection has folded up to.\n# TYPE intake_projection_position gauge");
        let _ = writeln!(
            out,
            "intake_projection_position{{projection=\"{projection}\"}} {position}"
        );
        let _ = writeln!(out, "# HELP intake_projection_lag_events Events committed that a projection has not folded yet.\n# TYPE intake_projection_lag_events gauge");
        let _ = writeln!(
            out,
            "intake_projection_lag_events{{projection=\"{projection}\"}} {}",
            (head - position).max(0)
        );
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            messages: Mutex::default(),
            events: Mutex::default(),
            skipped: Mutex::default(),
            ack_latency: Histogram::new(LATENCY_BOUNDS),
            census: ProjectionGauge::default(),
            tenant_labels: std::sync::atomic::AtomicBool::new(true),
        }
    }
}

impl Metrics {
    /// Names tenants in the series (the default), or counts them all as `tenant="*"`.
    pub fn set_tenant_labels(&self, on: bool) {
        self.tenant_labels
            .store(on, std::sync::atomic::Ordering::Relaxed);
    }

    /// The label value a tenant counts under.
    fn label<'t>(&self, tenant: Option<&'t str>) -> &'t str {
        if self
            .tenant_labels
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            tenant.unwrap_or("")
        } else {
            "*"
        }
    }

    /// Counts one inbound message and the events it appended.
    pub fn record(
        &self,
        tenant: Option<&str>,
        outcome: &'static str,
        code: Option<&'static str>,
        events: usize,
    ) {
        let tenant = self.label(tenant);
        if let Ok(mut m) = self.messages.lock() {
            if !m.contains_key(tenant) {
                m.insert(tenant.to_string(), BTreeMap::new());
            }
            if let Some(by_code) = m.get_mut(tenant) {
                *by_code.entry((outcome, code.unwrap_or(""))).or_default() += 1;
            }
        }
        if events > 0 {
            if let Ok(mut e) = self.events.lock() {
                match e.get_mut(tenant) {
                    Some(n) => *n += events as u64,
                    None => {
                        e.insert(tenant.to_string(), events as u64);
                    }
                }
            }
        }
    }

    /// Counts the skipped items of one stored message, by reason code.
    pub fn skipped(&self, tenant: Option<&str>, codes: &[&'static str]) {
        if codes.is_empty() {
            return;
        }
        if let Ok(mut s) = self.skipped.lock() {
            for code in codes {
                *s.entry((self.label(tenant).to_string(), *code))
                    .or_default() += 1;
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
            let rows = m
                .iter()
                .flat_map(|(t, by)| by.iter().map(move |(k, n)| (t, k, n)));
            for (tenant, (outcome, code), n) in rows {
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
        let _ = writeln!(
            out,
            "# HELP intake_items_skipped_total for_each items left out by on_item_error: skip, by tenant and reason code."
        );
        let _ = writeln!(out, "# TYPE intake_items_skipped_total counter");
        if let Ok(s) = self.skipped.lock() {
            for ((tenant, code), n) in s.iter() {
                let _ = writeln!(
                    out,
                    "intake_items_skipped_total{{tenant=\"{tenant}\",code=\"{code}\"}} {n}"
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
        self.ack_latency.render(
            &mut out,
            "intake_ack_latency_seconds",
            "From receipt to the outcome that the acknowledgement reports.",
        );
        writer.batch_sizes.render(
            &mut out,
            "intake_writer_batch_messages",
            "Messages per committed transaction.",
        );
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
        self.census.render(&mut out, "census");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_render_cumulative_buckets() {
        let h = Histogram::new(&[1.0, 4.0]);
        for v in [0.5, 1.0, 3.0, 9.0] {
            h.observe(v);
        }
        let mut out = String::new();
        h.render(&mut out, "x", "help");
        assert!(out.contains("x_bucket{le=\"1\"} 2\n"), "{out}");
        assert!(out.contains("x_bucket{le=\"4\"} 3\n"), "{out}");
        assert!(out.contains("x_bucket{le=\"+Inf\"} 4\n"), "{out}");
        assert!(out.contains("x_sum 13.5\nx_count 4\n"), "{out}");
    }

    #[test]
    fn without_tenant_labels_every_tenant_counts_as_one() {
        let m = Metrics::default();
        m.record(Some("demo"), "stored", None, 2);
        m.set_tenant_labels(false);
        m.record(Some("demo"), "stored", None, 1);
        m.record(Some("other"), "stored", None, 1);
        m.skipped(Some("other"), &["MAPPING_INVALID_VALUE"]);
        let tenants: Vec<String> = m.messages.lock().unwrap().keys().cloned().collect();
        assert_eq!(
            tenants,
            ["*", "demo"],
            "only what was counted before the switch names it"
        );
        assert_eq!(m.events.lock().unwrap().get("*"), Some(&2));
        assert!(m.skipped.lock().unwrap().keys().all(|(t, _)| t == "*"));
    }
}
