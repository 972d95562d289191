//! `[http]`: the API server's settings.

use serde::Deserialize;
use std::net::SocketAddr;

/// `[http]` in `intake.toml` (`INTAKE_HTTP_ADDR` overrides `addr`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Address to bind.
    pub addr: SocketAddr,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            addr: "127.0.0.1:8080".parse().expect("valid default address"),
        }
    }
}
