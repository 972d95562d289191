//! The outbox publisher: sends stored events to a RabbitMQ topic exchange (lapin).
//!
//! Events reach the outbox in their own transaction (see the store); this task claims
//! them in global order under the store's publisher lease, publishes them persistent
//! with publisher confirms, and marks only the confirmed prefix published. So every
//! event is published at least once, in order per stream, whatever happens to the broker
//! or to this process; consumers dedupe by `message_id` (= event id).
//!
//! Ingest never waits on the broker: while it is unreachable the outbox grows, this task
//! reconnects with capped exponential back-off and jitter, and drains the outbox once it
//! is back. Logs carry positions, counts and error kinds, never event bodies.

use intake_pipeline::event::EventEnvelope;
use intake_pipeline::store::Store;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::uri::AMQPUri;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Publisher settings.
#[derive(Debug, Clone)]
pub struct PublisherConfig {
    /// `amqp://user:password@host:port/vhost`.
    pub url: String,
    /// Topic exchange (declared durable on connect).
    pub exchange: String,
    /// Events claimed and published per round.
    pub batch: usize,
    /// Longest back-off between connection attempts.
    pub retry_max: Duration,
    /// Outbox poll interval when idle (commits wake the publisher sooner).
    pub poll_interval: Duration,
    /// How long to wait for the confirms of one round before giving up on the connection.
    pub confirm_timeout: Duration,
    /// Publisher lease duration (renewed on every claim).
    pub lease: Duration,
}

impl Default for PublisherConfig {
    fn default() -> Self {
        PublisherConfig {
            url: "amqp://guest:guest@127.0.0.1:5672/%2f".into(),
            exchange: "intake.events".into(),
            batch: 256,
            retry_max: Duration::from_secs(30),
            poll_interval: Duration::from_millis(200),
            confirm_timeout: Duration::from_secs(30),
            lease: Duration::from_secs(30),
        }
    }
}

/// An AMQP URL that cannot be used. The message never repeats the URL (it may hold a
/// password).
#[derive(Debug, thiserror::Error)]
pub enum InvalidUrl {
    /// It does not parse.
    #[error("the AMQP URL is not valid (expected amqp://user:password@host:port/vhost)")]
    Syntax,
    /// `amqps://`: this build has no TLS for AMQP.
    #[error("amqps:// is not supported by this build (lapin without TLS); use amqp://")]
    Tls,
}

/// Checks an AMQP URL without connecting.
pub fn parse_url(url: &str) -> Result<AMQPUri, InvalidUrl> {
    let uri = url.parse::<AMQPUri>().map_err(|_| InvalidUrl::Syntax)?;
    if uri.scheme != lapin::uri::AMQPScheme::AMQP {
        return Err(InvalidUrl::Tls);
    }
    Ok(uri)
}

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

    /// Events confirmed by the broker and marked published.
    pub fn published(&self) -> u64 {
        self.published.load(Ordering::Relaxed)
    }

    /// Failed connection attempts plus events the broker nacked or left unconfirmed
    /// (each is retried).
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
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
            self.published(),
            u8::from(self.connected()),
            self.failures(),
        ));
        out
    }
}

/// Starts the publisher on `store`. `wake` is notified after commits (the writer's
/// [`intake_pipeline::writer::Writer::committed`]); the task ends once `stop` turns true,
/// after the round in flight.
pub fn spawn(
    store: Arc<dyn Store>,
    config: PublisherConfig,
    uri: AMQPUri,
    wake: Arc<Notify>,
    stop: watch::Receiver<bool>,
) -> (Arc<PublisherStatus>, JoinHandle<()>) {
    let status = Arc::new(PublisherStatus::default());
    let publisher = Publisher {
        store,
        holder: format!("intake-{}-{}", std::process::id(), uuid::Uuid::now_v7()),
        config,
        uri,
        status: status.clone(),
        wake,
        stop,
    };
    (status, tokio::spawn(publisher.run()))
}

struct Publisher {
    store: Arc<dyn Store>,
    config: PublisherConfig,
    uri: AMQPUri,
    holder: String,
    status: Arc<PublisherStatus>,
    wake: Arc<Notify>,
    stop: watch::Receiver<bool>,
}

/// Why a connection was given up.
enum End {
    /// Shutdown was asked for.
    Stop,
    /// The connection or channel failed (or the broker nacked): reconnect.
    Broken(String),
}

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const FIRST_RETRY: Duration = Duration::from_millis(100);

impl Publisher {
    async fn run(mut self) {
        let mut delay = FIRST_RETRY;
        tracing::info!(exchange = %self.config.exchange, "outbox publisher started");
        while !self.stopping() {
            let mut stop = self.stop.clone();
            let attempt = tokio::select! {
                a = tokio::time::timeout(CONNECT_TIMEOUT, self.connect()) => a,
                _ = stop.wait_for(|s| *s) => break,
            };
            match attempt {
                Ok(Ok((conn, channel))) => {
                    self.status.connected.store(true, Ordering::Relaxed);
                    tracing::info!(exchange = %self.config.exchange, "broker connected");
                    delay = FIRST_RETRY;
                    let end = self.publish(&conn, &channel).await;
                    self.status.connected.store(false, Ordering::Relaxed);
                    let _ = tokio::time::timeout(
                        Duration::from_secs(2),
                        conn.close(200, "intake publisher stopping".into()),
                    )
                    .await;
                    match end {
                        End::Stop => break,
                        End::Broken(why) => {
                            tracing::warn!(error = %why, "broker connection lost; reconnecting")
                        }
                    }
                }
                Ok(Err(e)) => {
                    self.status.failures.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(error = %e, retry_ms = delay.as_millis() as u64, "broker unreachable");
                }
                Err(_) => {
                    self.status.failures.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(
                        retry_ms = delay.as_millis() as u64,
                        "broker connection timed out"
                    );
                }
            }
            if self.pause(jitter(delay)).await {
                break;
            }
            delay = (delay * 2).min(self.config.retry_max);
        }
        tracing::info!("outbox publisher stopped");
    }

    fn stopping(&self) -> bool {
        *self.stop.borrow()
    }

    /// Sleeps for `d`; true when shutdown was asked for meanwhile.
    async fn pause(&mut self, d: Duration) -> bool {
        let slept = tokio::select! {
            _ = tokio::time::sleep(d) => true,
            _ = self.stop.wait_for(|s| *s) => false,
        };
        !slept || self.stopping()
    }

    async fn connect(&self) -> Result<(Connection, Channel), lapin::Error> {
        let props = ConnectionProperties::default().with_connection_name("intake".into());
        let conn = Connection::connect_uri(self.uri.clone(), props).await?;
        let channel = conn.create_channel().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        channel
            .exchange_declare(
                self.config.exchange.as_str().into(),
                ExchangeKind::Topic,
                ExchangeDeclareOptions {
                    durable: true,
                    ..ExchangeDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await?;
        Ok((conn, channel))
    }

    /// Publishes rounds until the connection breaks or shutdown is asked for.
    async fn publish(&mut self, conn: &Connection, channel: &Channel) -> End {
        let limit = self.config.batch.max(1) as i64;
        loop {
            if self.stopping() {
                return End::Stop;
            }
            if !conn.status().connected() || !channel.status().connected() {
                return End::Broken("connection closed".into());
            }
            let claimed = self
                .store
                .outbox_claim(&self.holder, self.config.lease, limit)
                .await;
            let events = match claimed {
                Ok(Some(events)) => events,
                Ok(None) => {
                    // Another instance holds the lease: it publishes; we stand by.
                    tracing::debug!("publisher lease held elsewhere");
                    let d = (self.config.lease / 3).max(self.config.poll_interval);
                    if self.pause(d).await {
                        return End::Stop;
                    }
                    continue;
                }
                Err(e) => {
                    tracing::warn!(code = e.code(), error = %e, "outbox claim failed");
                    if self
                        .pause(self.config.poll_interval.max(FIRST_RETRY * 10))
                        .await
                    {
                        return End::Stop;
                    }
                    continue;
                }
            };
            if events.is_empty() {
                if self.idle().await {
                    return End::Stop;
                }
                continue;
            }
            let (confirmed, failure) = self.round(channel, &events).await;
            if !confirmed.is_empty() {
                match self.store.outbox_mark_published(&confirmed).await {
                    Ok(()) => {
                        self.status
                            .published
                            .fetch_add(confirmed.len() as u64, Ordering::Relaxed);
                        tracing::debug!(
                            events = confirmed.len(),
                            last_position = confirmed.last().copied().unwrap_or(0),
                            "events published"
                        );
                    }
                    // They stay in the outbox and go out again: at-least-once.
                    Err(e) => {
                        tracing::warn!(code = e.code(), error = %e, "marking events published failed")
                    }
                }
            }
            if let Some(why) = failure {
                let lost = events.len() - confirmed.len();
                self.status
                    .failures
                    .fetch_add(lost as u64, Ordering::Relaxed);
                let first = events.get(confirmed.len()).map(|e| e.global_position);
                tracing::warn!(
                    unconfirmed = lost,
                    from_position = first.unwrap_or(0),
                    "publish round failed"
                );
                return End::Broken(why);
            }
        }
    }

    /// Waits for a commit, the poll interval or shutdown; true on shutdown.
    async fn idle(&mut self) -> bool {
        tokio::select! {
            _ = self.wake.notified() => false,
            _ = tokio::time::sleep(self.config.poll_interval) => false,
            _ = self.stop.wait_for(|s| *s) => true,
        }
    }

    /// Publishes `events` and waits for their confirms; returns the positions of the
    /// confirmed prefix and why the round stopped short, if it did.
    async fn round(
        &self,
        channel: &Channel,
        events: &[EventEnvelope],
    ) -> (Vec<i64>, Option<String>) {
        let exchange: ShortString = self.config.exchange.as_str().into();
        let mut pending = Vec::with_capacity(events.len());
        let mut failure = None;
        for e in events {
            let body = match serde_json::to_vec(e) {
                Ok(b) => b,
                Err(_) => {
                    failure = Some(format!(
                        "event at position {} did not serialise",
                        e.global_position
                    ));
                    break;
                }
            };
            let key: ShortString = format!("{}.{}", e.tenant_id, e.event_type).into();
            let published = channel
                .basic_publish(
                    exchange.clone(),
                    key,
                    BasicPublishOptions::default(),
                    &body,
                    properties(e),
                )
                .await;
            match published {
                Ok(confirm) => pending.push((e.global_position, confirm)),
                Err(err) => {
                    failure = Some(err.to_string());
                    break;
                }
            }
        }
        let deadline = Instant::now() + self.config.confirm_timeout;
        let mut confirmed = Vec::with_capacity(pending.len());
        for (position, confirm) in pending {
            match tokio::time::timeout_at(deadline, confirm).await {
                Ok(Ok(c)) if c.is_ack() => confirmed.push(position),
                Ok(Ok(_)) => {
                    failure = Some(format!("broker nacked the event at position {position}"));
                    break;
                }
                Ok(Err(err)) => {
                    failure = Some(err.to_string());
                    break;
                }
                Err(_) => {
                    failure = Some("publisher confirms timed out".into());
                    break;
                }
            }
        }
        (confirmed, failure)
    }
}

/// AMQP properties of one event: persistent, `message_id` = event id, ids in headers.
fn properties(e: &EventEnvelope) -> BasicProperties {
    let mut headers = FieldTable::default();
    let text = |s: &str| AMQPValue::LongString(LongString::from(s));
    headers.insert("tenant_id".into(), text(&e.tenant_id));
    headers.insert("stream_id".into(), text(&e.stream_id.to_string()));
    headers.insert("stream_type".into(), text(&e.stream_type));
    headers.insert(
        "event_version".into(),
        AMQPValue::LongLongInt(e.event_version),
    );
    headers.insert(
        "global_position".into(),
        AMQPValue::LongLongInt(e.global_position),
    );
    let mut props = BasicProperties::default()
        .with_message_id(e.event_id.to_string().into())
        .with_content_type("application/json".into())
        .with_delivery_mode(2)
        .with_type(e.event_type.as_str().into())
        .with_app_id("intake".into())
        .with_headers(headers);
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(&e.created_at) {
        props = props.with_timestamp(t.timestamp().max(0) as u64);
    }
    props
}

/// Between half and all of `d`, so that many instances do not retry in step.
fn jitter(d: Duration) -> Duration {
    let r = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    let fraction = 0.5 + (r % 1000) as f64 / 2000.0;
    d.mul_f64(fraction)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked_without_echoing_them() {
        assert!(parse_url("amqp://guest:guest@127.0.0.1:5672/%2f").is_ok());
        let err = parse_url("amqp://user:s3cret@[bad").unwrap_err();
        assert!(!err.to_string().contains("s3cret"));
        assert!(matches!(
            parse_url("amqps://u:p@host/%2f"),
            Err(InvalidUrl::Tls)
        ));
    }

    #[test]
    fn jitter_stays_within_half_and_all() {
        for _ in 0..100 {
            let j = jitter(Duration::from_millis(1000));
            assert!((500..=1000).contains(&(j.as_millis() as u64)), "{j:?}");
        }
    }

    #[test]
    fn metrics_name_every_series() {
        let s = PublisherStatus::default();
        s.published.store(3, Ordering::Relaxed);
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
