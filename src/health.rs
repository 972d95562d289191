//! `intake healthcheck` (hidden): asks a running `intake serve` for `GET /healthz` on its
//! HTTP address and exits 0 when it answers 200, 1 otherwise. It is the container image's
//! HEALTHCHECK, so the image needs no HTTP client of its own.

use anyhow::{bail, Context, Result};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The largest answer read: a status line and headers are far smaller.
const MAX_ANSWER: u64 = 16 * 1024;

/// The address to ask: an unspecified listen address (`0.0.0.0`, `::`) is asked on the
/// loopback of the same family.
pub fn target(listen: SocketAddr) -> SocketAddr {
    match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => (Ipv4Addr::LOCALHOST, listen.port()).into(),
        IpAddr::V6(ip) if ip.is_unspecified() => (Ipv6Addr::LOCALHOST, listen.port()).into(),
        _ => listen,
    }
}

/// Runs the probe; prints `healthy` or why not.
pub async fn run(addr: SocketAddr, timeout: Duration) -> Result<ExitCode> {
    match tokio::time::timeout(timeout, probe(target(addr))).await {
        Ok(Ok(())) => {
            out!("healthy");
            Ok(ExitCode::SUCCESS)
        }
        Ok(Err(e)) => {
            eprintln!("intake healthcheck: {e:#}");
            Ok(ExitCode::FAILURE)
        }
        Err(_) => {
            eprintln!("intake healthcheck: no answer from {addr} within {timeout:?}");
            Ok(ExitCode::FAILURE)
        }
    }
}

async fn probe(addr: SocketAddr) -> Result<()> {
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .with_context(|| format!("connecting to {addr}"))?;
    let request = format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut answer = Vec::new();
    (&mut stream)
        .take(MAX_ANSWER)
        .read_to_end(&mut answer)
        .await?;
    let status_line = answer.split(|&b| b == b'\n').next().unwrap_or_default();
    let status = String::from_utf8_lossy(status_line);
    match status.split_whitespace().nth(1) {
        Some("200") => Ok(()),
        Some(code) => bail!("GET /healthz on {addr} answered {code}"),
        None => bail!("GET /healthz on {addr}: no HTTP answer"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unspecified_listen_address_is_asked_on_loopback() {
        let t = |s: &str| target(s.parse().unwrap()).to_string();
        assert_eq!(t("0.0.0.0:8080"), "127.0.0.1:8080");
        assert_eq!(t("[::]:8080"), "[::1]:8080");
        assert_eq!(t("10.1.2.3:8080"), "10.1.2.3:8080");
    }
}
