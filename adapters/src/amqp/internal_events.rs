//! Everything the outbox publisher logs and counts, in one place. Fields are exchange
//! names, positions, counts, store codes and connection errors (lapin's describe the
//! connection or the protocol, never a frame's body): never event bodies or the URL.

use super::round::Broken;
use crate::telemetry::{Report, Unavailable};
use intake_pipeline::store::{Store, StoreError};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Live state of the publisher, for `/readyz` and `/metrics`.
#[derive(Debug, Default)]
pub struct PublisherStatus {
    connected: AtomicBool,
    published: AtomicU64,
    failures: AtomicU64,
}

impl PublisherStatus {
    /// Whether a broker connection with a confirm channel is up.
    pub fn connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }

    /// The publisher's series in Prometheus text format; `backlog` is the outbox gauge.
    pub fn render(&self, backlog: Option<i64>) -> String {
        let mut out = String::new();
        if let Some(b) = backlog {
            out.push_str(&format!(
                "# HELP intake_outbox_backlog Events waiting to be published.\n\
                 # TYPE intake_outbox_backlog gauge\nintake_outbox_backlog {b}\n"
            ));
        }
        out.push_str(&format!(
            "# HELP intake_outbox_published_total Events confirmed by the broker and marked published.\n\
             # TYPE intake_outbox_published_total counter\nintake_outbox_published_total {}\n\
             # HELP intake_amqp_connected 1 while the publisher has a broker connection.\n\
             # TYPE intake_amqp_connected gauge\nintake_amqp_connected {}\n\
             # HELP intake_amqp_publish_failures_total Failed connection attempts and nacked or unconfirmed events (all retried).\n\
             # TYPE intake_amqp_publish_failures_total counter\nintake_amqp_publish_failures_total {}\n",
            self.published.load(Ordering::Relaxed),
            u8::from(self.connected()),
            self.failures.load(Ordering::Relaxed),
        ));
        out
    }
}

/// The publisher's `/metrics` series and `/readyz` section (the outbox backlog comes from
/// the store).
pub struct OutboxReport {
    /// The publisher's counters.
    pub status: Arc<PublisherStatus>,
    /// The store holding the outbox.
    pub store: Arc<dyn Store>,
}

#[async_trait::async_trait]
impl Report for OutboxReport {
    async fn metrics(&self, out: &mut String) {
        // Without the gauge when the store does not answer; the counters still show.
        out.push_str(&self.status.render(self.store.outbox_backlog().await.ok()));
    }

    async fn readiness(&self) -> Result<Option<(&'static str, Value)>, Unavailable> {
        let backlog = self.store.outbox_backlog().await.map_err(|_| Unavailable)?;
        let broker = if self.status.connected() {
            "connected"
        } else {
            "disconnected"
        };
        Ok(Some((
            "outbox",
            json!({"backlog": backlog, "broker": broker}),
        )))
    }
}

/// The publisher started.
pub struct PublisherStarted<'a> {
    /// The exchange.
    pub exchange: &'a str,
}

impl PublisherStarted<'_> {
    /// Logs it.
    pub fn emit(self) {
        tracing::info!(exchange = %self.exchange, "outbox publisher started");
    }
}

/// The publisher stopped (shutdown).
pub struct PublisherStopped;

impl PublisherStopped {
    /// Logs it.
    pub fn emit(self) {
        tracing::info!("outbox publisher stopped");
    }
}

/// A broker connection with a confirm channel is up.
pub struct BrokerConnected<'a> {
    /// The exchange declared.
    pub exchange: &'a str,
}

impl BrokerConnected<'_> {
    /// Marks the publisher connected and logs it.
    pub fn emit(self, s: &PublisherStatus) {
        s.connected.store(true, Ordering::Relaxed);
        tracing::info!(exchange = %self.exchange, "broker connected");
    }
}

/// The connection is given up: shutdown, or `why` (then the publisher reconnects).
pub struct BrokerDisconnected<'a> {
    /// Why, unless it was shutdown.
    pub why: Option<&'a Broken>,
}

impl BrokerDisconnected<'_> {
    /// Marks the publisher disconnected; logs a broken connection.
    pub fn emit(self, s: &PublisherStatus) {
        s.connected.store(false, Ordering::Relaxed);
        if let Some(why) = self.why {
            tracing::warn!(error = %why, "broker connection lost; reconnecting");
        }
    }
}

/// A connection attempt failed (`error`) or timed out (`None`).
pub struct BrokerUnreachable<'a> {
    /// The connection error, if it did not time out.
    pub error: Option<&'a lapin::Error>,
    /// The wait before the next attempt.
    pub retry: Duration,
}

impl BrokerUnreachable<'_> {
    /// Counts a failure and logs it.
    pub fn emit(self, s: &PublisherStatus) {
        s.failures.fetch_add(1, Ordering::Relaxed);
        let retry_ms = self.retry.as_millis() as u64;
        match self.error {
            Some(e) => tracing::warn!(error = %e, retry_ms, "broker unreachable"),
            None => tracing::warn!(retry_ms, "broker connection timed out"),
        }
    }
}

/// Another instance holds the publisher lease; this one stands by.
pub struct LeaseHeldElsewhere;

impl LeaseHeldElsewhere {
    /// Logs it.
    pub fn emit(self) {
        tracing::debug!("publisher lease held elsewhere");
    }
}

/// Claiming outbox rows failed.
pub struct ClaimFailed<'a> {
    /// The store's error.
    pub error: &'a StoreError,
}

impl ClaimFailed<'_> {
    /// Logs it.
    pub fn emit(self) {
        tracing::warn!(code = self.error.code(), error = %self.error, "outbox claim failed");
    }
}

/// Confirmed events were marked published.
pub struct Published {
    /// How many.
    pub events: usize,
    /// The last one's global position.
    pub last_position: i64,
}

impl Published {
    /// Counts and logs them.
    pub fn emit(self, s: &PublisherStatus) {
        s.published.fetch_add(self.events as u64, Ordering::Relaxed);
        tracing::debug!(
            events = self.events,
            last_position = self.last_position,
            "events published"
        );
    }
}

/// Confirmed events could not be marked published (they go out again: at-least-once).
pub struct MarkFailed<'a> {
    /// The store's error.
    pub error: &'a StoreError,
}

impl MarkFailed<'_> {
    /// Logs it.
    pub fn emit(self) {
        tracing::warn!(code = self.error.code(), error = %self.error, "marking events published failed");
    }
}

/// A round stopped short: `unconfirmed` events from `from_position` on go out again.
pub struct RoundFailed {
    /// Events of the round not confirmed.
    pub unconfirmed: usize,
    /// The first of them.
    pub from_position: i64,
}

impl RoundFailed {
    /// Counts the unconfirmed events as failures and logs it.
    pub fn emit(self, s: &PublisherStatus) {
        s.failures
            .fetch_add(self.unconfirmed as u64, Ordering::Relaxed);
        tracing::warn!(
            unconfirmed = self.unconfirmed,
            from_position = self.from_position,
            "publish round failed"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_name_every_series() {
        let s = PublisherStatus::default();
        Published {
            events: 3,
            last_position: 9,
        }
        .emit(&s);
        let text = s.render(Some(7));
        for line in [
            "intake_outbox_backlog 7",
            "intake_outbox_published_total 3",
            "intake_amqp_connected 0",
            "intake_amqp_publish_failures_total 0",
        ] {
            assert!(text.contains(line), "{line} in {text}");
        }
    }
}
