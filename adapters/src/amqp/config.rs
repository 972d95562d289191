//! `[amqp]`: the outbox publisher's settings and the broker URL's check.

use lapin::uri::AMQPUri;
use serde::Deserialize;
use std::time::Duration;

/// `[amqp]` in `intake.toml`: publish every event to a RabbitMQ topic exchange through
/// the outbox (`INTAKE_AMQP_URL` overrides `url`). Without a URL: no outbox, no publisher.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AmqpConfig {
    /// `amqp://user:password@host:5672/%2f`, or `amqps://…:5671/…` over TLS; empty: no
    /// broker.
    pub url: String,
    /// CA certificates (PEM) an `amqps://` broker's certificate must chain to; none: the
    /// system's trusted roots.
    pub ca_file: Option<std::path::PathBuf>,
    /// Topic exchange, declared durable on connect.
    pub exchange: String,
    /// Events claimed and published per round (confirms awaited per round).
    pub batch: usize,
    /// Longest wait between reconnection attempts (back-off from 100 ms doubles to this).
    pub retry_max_secs: u64,
    /// Milliseconds between outbox polls when idle (commits wake the publisher anyway).
    pub poll_interval_ms: u64,
    /// Seconds to wait for the broker's confirms of a round before reconnecting.
    pub confirm_timeout_secs: u64,
    /// Seconds a publisher lease lasts without renewal (one publisher per database).
    pub lease_secs: u64,
}

impl Default for AmqpConfig {
    fn default() -> Self {
        AmqpConfig {
            url: String::new(),
            ca_file: None,
            exchange: "intake.events".into(),
            batch: 256,
            retry_max_secs: 30,
            poll_interval_ms: 200,
            confirm_timeout_secs: 30,
            lease_secs: 30,
        }
    }
}

impl AmqpConfig {
    /// Whether a broker is configured (a non-empty URL).
    pub fn has_broker(&self) -> bool {
        !self.url.trim().is_empty()
    }

    /// Events claimed per round (at least 1).
    pub fn batch(&self) -> usize {
        self.batch.max(1)
    }

    /// Longest back-off between connection attempts.
    pub fn retry_max(&self) -> Duration {
        Duration::from_secs(self.retry_max_secs.max(1))
    }

    /// Outbox poll interval when idle.
    pub fn poll_interval(&self) -> Duration {
        Duration::from_millis(self.poll_interval_ms.max(1))
    }

    /// How long to wait for one round's confirms.
    pub fn confirm_timeout(&self) -> Duration {
        Duration::from_secs(self.confirm_timeout_secs.max(1))
    }

    /// The publisher lease's duration.
    pub fn lease(&self) -> Duration {
        Duration::from_secs(self.lease_secs.max(1))
    }
}

/// An AMQP URL that cannot be used. The message never repeats the URL (it may hold a
/// password).
#[derive(Debug, thiserror::Error)]
pub enum InvalidUrl {
    /// It does not parse.
    #[error(
        "the AMQP URL is not valid (expected amqp:// or amqps://user:password@host:port/vhost)"
    )]
    Syntax,
}

/// Checks an AMQP URL without connecting.
pub fn parse_url(url: &str) -> Result<AMQPUri, InvalidUrl> {
    url.parse::<AMQPUri>().map_err(|_| InvalidUrl::Syntax)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked_without_echoing_them() {
        assert!(parse_url("amqp://guest:guest@127.0.0.1:5672/%2f").is_ok());
        let err = parse_url("amqp://user:s3cret@[bad").unwrap_err();
        assert!(!err.to_string().contains("s3cret"));
        assert_eq!(
            parse_url("amqps://u:p@host/%2f").unwrap().scheme,
            lapin::uri::AMQPScheme::AMQPS
        );
    }

    #[test]
    fn the_table_is_optional_and_typed() {
        let c: AmqpConfig = toml::from_str("exchange = \"x\"\n").unwrap();
        assert!(!c.has_broker(), "no URL, no broker");
        let c: AmqpConfig =
            toml::from_str("url = \"amqp://127.0.0.1:5672/%2f\"\nbatch = 10\n").unwrap();
        assert!(c.has_broker());
        assert_eq!((c.exchange.as_str(), c.batch()), ("intake.events", 10));
        assert!(toml::from_str::<AmqpConfig>("urll = \"x\"\n").is_err());
    }
}
