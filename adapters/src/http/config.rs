//! `[http]`: the API server's settings.

use serde::Deserialize;
use std::net::SocketAddr;

/// `[http]` in `intake.toml` (`INTAKE_HTTP_ADDR` overrides `addr`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Address to bind.
    pub addr: SocketAddr,
    /// Milliseconds a client may take to send a request's headers (then the connection is
    /// closed: a slow loris holds no socket).
    pub header_read_timeout_ms: u64,
    /// Milliseconds one request may take, body and answer included (then 408).
    pub request_timeout_ms: u64,
    /// A second address serving `/metrics`, `/healthz` and `/readyz` without a token (for
    /// a scraper; keep it on loopback or a management network). On the API address
    /// `/metrics` needs the admin token.
    pub metrics_addr: Option<SocketAddr>,
    /// Connections served at once; one more is accepted and closed at once, so HTTP
    /// clients cannot take the file descriptors MLLP senders need.
    pub max_connections: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            addr: "127.0.0.1:8080".parse().expect("valid default address"),
            header_read_timeout_ms: 10_000,
            request_timeout_ms: 60_000,
            metrics_addr: None,
            max_connections: 512,
        }
    }
}
