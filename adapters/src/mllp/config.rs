//! `[[mllp]]`: one MLLP listener's settings.

use super::frame::FrameLimits;
use crate::tls::TlsConfig;
use serde::Deserialize;
use std::net::SocketAddr;
use std::time::Duration;

/// One `[[mllp]]` table in `intake.toml` (`INTAKE_MLLP_ADDR` overrides the first one's
/// `addr`). Without any table, one default listener runs: 127.0.0.1:2575, tenant `demo`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MllpConfig {
    /// Address to bind (port 0 picks a free port).
    pub addr: SocketAddr,
    /// The tenant every message on this listener belongs to; absent: route by MSH-4/MSH-6.
    #[serde(default)]
    pub tenant: Option<String>,
    /// Largest frame accepted (bytes).
    #[serde(default = "default_max_frame")]
    pub max_frame_bytes: usize,
    /// Seconds a connection may be idle between messages.
    #[serde(default = "default_idle")]
    pub idle_timeout_secs: u64,
    /// Seconds one frame may take from start to end.
    #[serde(default = "default_frame_timeout")]
    pub frame_timeout_secs: u64,
    /// Connections served at once; one more is accepted and closed at once
    /// (`CONNECTION_LIMIT`), so open sockets and their buffers stay bounded.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Bytes of unfinished frames all connections of this listener may hold together
    /// (at least one full frame); a connection whose frame would pass it waits.
    #[serde(default = "default_max_buffered")]
    pub max_buffered_bytes: usize,
    /// Messages per second one source address may send over all its connections (bursts
    /// of twice that); past it the listener reads the next frame later (the senders wait
    /// for their ACKs a little longer: nothing is refused). 0: no limit.
    #[serde(default)]
    pub max_messages_per_second_per_address: u32,
    /// TLS (and mutual TLS) on this listener; absent: plain TCP.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
}

fn default_max_frame() -> usize {
    1 << 20
}
fn default_idle() -> u64 {
    3600
}
fn default_frame_timeout() -> u64 {
    30
}
fn default_max_connections() -> usize {
    256
}
fn default_max_buffered() -> usize {
    64 << 20
}

impl Default for MllpConfig {
    fn default() -> Self {
        MllpConfig {
            addr: "127.0.0.1:2575".parse().expect("valid default address"),
            tenant: Some("demo".into()),
            max_frame_bytes: default_max_frame(),
            idle_timeout_secs: default_idle(),
            frame_timeout_secs: default_frame_timeout(),
            max_connections: default_max_connections(),
            max_buffered_bytes: default_max_buffered(),
            max_messages_per_second_per_address: 0,
            tls: None,
        }
    }
}

impl MllpConfig {
    /// The listener's shared frame budget, in KiB permits: at least one whole frame and
    /// one read buffer, so a single frame can always complete.
    pub fn frame_budget(&self) -> std::sync::Arc<tokio::sync::Semaphore> {
        let floor = self.max_frame_bytes + 2 * super::frame::READ_BUF_SIZE;
        let kib = self.max_buffered_bytes.max(floor).div_ceil(1024);
        let kib = kib.min(tokio::sync::Semaphore::MAX_PERMITS);
        std::sync::Arc::new(tokio::sync::Semaphore::new(kib))
    }

    /// The framing limits of every connection.
    pub fn frame_limits(&self) -> FrameLimits {
        FrameLimits {
            max_frame_bytes: self.max_frame_bytes,
            idle_timeout: Duration::from_secs(self.idle_timeout_secs),
            frame_timeout: Duration::from_secs(self.frame_timeout_secs),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_needs_an_address_and_knows_its_keys() {
        let c: MllpConfig =
            toml::from_str("addr = \"0.0.0.0:2576\"\nmax_frame_bytes = 10\n").unwrap();
        assert_eq!(c.tenant, None, "a configured listener routes unless bound");
        assert_eq!(
            (c.max_frame_bytes, c.idle_timeout_secs, c.frame_timeout_secs),
            (10, 3600, 30)
        );
        assert!(toml::from_str::<MllpConfig>("tenant = \"demo\"\n").is_err());
        assert!(toml::from_str::<MllpConfig>("addr = \"0.0.0.0:1\"\nmax_frame = 1\n").is_err());
    }
}
