//! `[http]`: the API server's settings.

use crate::tls::TlsConfig;
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
    /// Whether metrics series name the tenant (default); false: all tenants count as
    /// `tenant="*"`, so whoever scrapes learns no tenant's name or volume.
    pub metrics_tenant_labels: bool,
    /// Connections served at once; one more is accepted and closed at once, so HTTP
    /// clients cannot take the file descriptors MLLP senders need.
    pub max_connections: usize,
    /// Requests per second one token may make (bursts of twice that); 0: no limit.
    pub rate_limit_per_token: u32,
    /// Requests per second one source address may make, with or without a token (bursts
    /// of twice that); 0: no limit.
    pub rate_limit_per_address: u32,
    /// `[http.tls]`: HTTPS (and mutual TLS) on `addr`; the metrics address stays plain.
    pub tls: Option<TlsConfig>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            addr: "127.0.0.1:8080".parse().expect("valid default address"),
            header_read_timeout_ms: 10_000,
            request_timeout_ms: 60_000,
            metrics_addr: None,
            metrics_tenant_labels: true,
            max_connections: 512,
            tls: None,
            rate_limit_per_token: 1000,
            rate_limit_per_address: 1000,
        }
    }
}
