//! `intake send`: the MLLP client. Files are cut into frames (a batch file is one frame,
//! anything else one frame per MSH), sent in order on one connection, and the ACK codes
//! counted: a progress bar while it runs (only on a terminal), a summary at the end.

use crate::cli::TlsArgs;
use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressState, ProgressStyle};
use intake_adapters::mllp::client::{is_batch, read_acks, split_messages, AckRead, MllpClient};
use intake_adapters::tls::client::{TlsClient, TlsClientOptions};
use intake_pipeline::hl7::batch;
use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

/// How `intake send` connects and reports.
pub struct SendOptions {
    /// Seconds to wait for each ACK.
    pub timeout: Duration,
    /// Print nothing but errors.
    pub quiet: bool,
    /// Print every ACK, segment by segment.
    pub verbose: bool,
    /// Connect over TLS with this client, checking the server's certificate for this name.
    pub tls: Option<(TlsClient, String)>,
}

/// The TLS client `args` ask for, and the server name to check: `--server-name`, else
/// the host of `to`. None when no TLS option is given.
pub fn tls(to: &str, args: &TlsArgs) -> Result<Option<(TlsClient, String)>> {
    if !(args.tls || args.ca.is_some() || args.cert.is_some()) {
        return Ok(None);
    }
    let options = TlsClientOptions {
        ca_file: args.ca.clone(),
        cert_file: args.cert.clone(),
        key_file: args.key.clone(),
    };
    let client = TlsClient::new(&options).context("reading the TLS files")?;
    let host = match to.rsplit_once(':') {
        Some((host, _port)) => host.trim_start_matches('[').trim_end_matches(']'),
        None => to,
    };
    let name = args.server_name.clone().unwrap_or_else(|| host.to_string());
    Ok(Some((client, name)))
}

/// One frame to send: where it came from and how many messages it holds.
struct Frame<'f> {
    file: &'f Path,
    bytes: Vec<u8>,
    messages: usize,
}

/// The MSA-1 codes, in the order the summary lists them.
const CODES: [&str; 6] = ["AA", "AE", "AR", "CA", "CE", "CR"];

/// What the answers said, counted.
#[derive(Default)]
struct Tally {
    sent: usize,
    accepted: usize,
    /// Messages of a frame whose answer had no MSA for them.
    unanswered: usize,
    codes: BTreeMap<String, usize>,
    errors: BTreeMap<String, usize>,
}

impl Tally {
    fn add(&mut self, frame: &Frame<'_>, acks: &[AckRead]) {
        self.sent += frame.messages;
        self.unanswered += frame.messages.saturating_sub(acks.len());
        for a in acks.iter().take(frame.messages) {
            if a.code == "AA" || a.code == "CA" {
                self.accepted += 1;
            }
            let code = if CODES.contains(&a.code.as_str()) {
                a.code.as_str()
            } else {
                "other"
            };
            *self.codes.entry(code.to_string()).or_default() += 1;
            if let Some(e) = &a.error {
                *self.errors.entry(e.clone()).or_default() += 1;
            }
        }
    }

    /// `sent N message(s): AA n, AE n ...` and, when any, `ERR codes: CODE n, ...`.
    fn summary(&self) -> String {
        let mut parts: Vec<String> = CODES
            .iter()
            .chain(["other"].iter())
            .filter_map(|c| self.codes.get(*c).map(|n| format!("{c} {n}")))
            .collect();
        if self.unanswered > 0 {
            parts.push(format!("no ACK {}", self.unanswered));
        }
        let mut s = format!("sent {} message(s)", self.sent);
        if !parts.is_empty() {
            s.push_str(&format!(": {}", parts.join(", ")));
        }
        if !self.errors.is_empty() {
            let errors: Vec<String> = self
                .errors
                .iter()
                .map(|(c, n)| format!("{c} {n}"))
                .collect();
            s.push_str(&format!("\nERR codes: {}", errors.join(", ")));
        }
        s
    }
}

/// Cuts the files into frames.
fn frames(files: &[PathBuf]) -> Result<Vec<Frame<'_>>> {
    let mut out = Vec::new();
    for file in files {
        let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
        if is_batch(&bytes) {
            // Counted as the engine will split it; a batch it refuses is one message.
            let messages =
                batch::split(&bytes, batch::MAX_BATCH_MESSAGES).map_or(1, |b| b.message_count());
            out.push(Frame {
                file,
                bytes,
                messages,
            });
        } else {
            out.extend(split_messages(&bytes).into_iter().map(|bytes| Frame {
                file,
                bytes,
                messages: 1,
            }));
        }
    }
    Ok(out)
}

fn progress_bar(total: usize, quiet: bool) -> ProgressBar {
    if quiet || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let style = ProgressStyle::with_template("{wide_bar} {pos}/{len} messages  {rate}  ETA {eta}")
        .expect("valid template")
        .with_key("rate", |s: &ProgressState, w: &mut dyn std::fmt::Write| {
            let _ = write!(w, "{:.0} msg/s", s.per_sec());
        });
    ProgressBar::new(total as u64).with_style(style)
}

/// Sends the messages in `files` to `to` in order; fails unless every one was accepted.
pub async fn send(to: &str, opts: SendOptions, files: &[PathBuf]) -> Result<ExitCode> {
    let frames = frames(files)?;
    let client = match &opts.tls {
        None => MllpClient::connect(to, opts.timeout).await,
        Some((tls, name)) => MllpClient::connect_tls(to, opts.timeout, tls, name).await,
    };
    let mut client = client.with_context(|| format!("connecting to {to}"))?;
    let bar = progress_bar(frames.iter().map(|f| f.messages).sum(), opts.quiet);
    let mut tally = Tally::default();
    let mut failure = None;
    for frame in &frames {
        let ack = match client.send(&frame.bytes).await {
            Ok(ack) => ack,
            Err(e) => {
                failure = Some(
                    anyhow::Error::new(e).context(format!("sending {}", frame.file.display())),
                );
                break;
            }
        };
        let acks = read_acks(&ack);
        if opts.verbose {
            bar.suspend(|| {
                let codes: Vec<&str> = acks.iter().map(|a| a.code.as_str()).collect();
                out!("{}: {}", frame.file.display(), codes.join(" "));
                for segment in ack.split('\r').filter(|s| !s.is_empty()) {
                    out!("  {segment}");
                }
            });
        }
        tally.add(frame, &acks);
        bar.inc(frame.messages as u64);
    }
    bar.finish_and_clear();
    let all_accepted = failure.is_none() && tally.accepted == tally.sent;
    if !opts.quiet {
        out!("{}", tally.summary());
    } else if !all_accepted && tally.sent > 0 {
        eprintln!("{}", tally.summary());
    }
    if let Some(e) = failure {
        return Err(e);
    }
    Ok(if all_accepted {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_counts_codes_and_errors() {
        let file = Path::new("f");
        let mut t = Tally::default();
        let read = |code: &str, error: Option<&str>| AckRead {
            code: code.into(),
            error: error.map(str::to_string),
        };
        let batch = Frame {
            file,
            bytes: Vec::new(),
            messages: 3,
        };
        t.add(
            &batch,
            &[
                read("AA", None),
                read("AE", Some("X_CODE")),
                read("AE", Some("X_CODE")),
            ],
        );
        let refused = Frame {
            file,
            bytes: Vec::new(),
            messages: 2,
        };
        t.add(&refused, &[read("AR", Some("BATCH_EMPTY"))]);
        assert_eq!(
            t.summary(),
            "sent 5 message(s): AA 1, AE 2, AR 1, no ACK 1\nERR codes: BATCH_EMPTY 1, X_CODE 2"
        );
        assert_eq!(t.accepted, 1);
    }
}
