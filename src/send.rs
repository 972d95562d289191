//! `intake send`: the MLLP client, printing each ACK.

use anyhow::{Context, Result};
use intake_adapters::mllp::client::{split_messages, MllpClient};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Sends the messages in `files` to `to` in order; fails unless every one was accepted.
pub async fn send(to: &str, timeout: Duration, files: &[PathBuf]) -> Result<ExitCode> {
    let mut client = MllpClient::connect(to, timeout)
        .await
        .with_context(|| format!("connecting to {to}"))?;
    let (mut sent, mut accepted) = (0, 0);
    for file in files {
        let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
        for message in split_messages(&bytes) {
            let ack = client
                .send(&message)
                .await
                .with_context(|| format!("sending {}", file.display()))?;
            sent += 1;
            let code = ack
                .split('\r')
                .find(|s| s.starts_with("MSA"))
                .and_then(|s| s.get(4..6))
                .unwrap_or("");
            if code == "AA" || code == "CA" {
                accepted += 1;
            }
            out!("{}: {}", file.display(), code);
            for segment in ack.split('\r').filter(|s| !s.is_empty()) {
                out!("  {segment}");
            }
        }
    }
    eprintln!("sent {sent} message(s), {accepted} accepted");
    Ok(if sent == accepted {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
