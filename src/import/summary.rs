//! What an import did, counted as outcomes come back, and printed at the end; and the
//! progress bar (on a terminal only).

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use intake_pipeline::{Outcome, Stored};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

/// The code of a message larger than `--max-message-bytes` (not stored).
pub const MESSAGE_TOO_LARGE: &str = "MESSAGE_TOO_LARGE";
/// The code of an MLLP dump that ends inside a frame (the partial frame is not stored).
pub const TRUNCATED_FRAME: &str = "TRUNCATED_FRAME";

/// The counts of one run.
#[derive(Debug, Default)]
pub struct Summary {
    /// Inputs read (wholly or from their checkpoint).
    pub inputs: usize,
    /// Inputs skipped: a checkpoint says they were imported to their end.
    pub skipped: usize,
    /// Inputs whose reading failed.
    pub failed: usize,
    /// Messages read.
    pub read: u64,
    /// Messages whose events were appended.
    pub stored: u64,
    /// Events appended.
    pub events: u64,
    /// Messages stored that added no event (the mapping produced none, or all were
    /// stored before).
    pub filtered: u64,
    /// Messages whose idempotency key was stored before.
    pub duplicates: u64,
    /// Dead letters stored, by reason code.
    pub dead_lettered: BTreeMap<&'static str, u64>,
    /// Messages not stored, by code.
    pub not_stored: BTreeMap<&'static str, u64>,
    /// Bytes outside MLLP frames.
    pub ignored_bytes: u64,
    /// Stopped by a signal before the end.
    pub interrupted: bool,
}

impl Summary {
    /// Counts one committed (or failed) message; returns whether it was stored.
    pub fn record(&mut self, out: &Outcome) -> bool {
        match out.stored {
            Some(Stored::Filtered) => self.filtered += 1,
            Some(Stored::Events) => {
                self.stored += 1;
                self.events += out.positions.len() as u64;
            }
            Some(Stored::Duplicate) => self.duplicates += 1,
            Some(Stored::DeadLettered) => {
                *self
                    .dead_lettered
                    .entry(out.code().unwrap_or("-"))
                    .or_default() += 1
            }
            None => self.not_stored(out.code().unwrap_or("-")),
        }
        out.stored.is_some()
    }

    /// Counts a message that never reached the pipeline.
    pub fn not_stored(&mut self, code: &'static str) {
        *self.not_stored.entry(code).or_default() += 1;
    }

    /// Whether something read was not stored, or an input could not be read.
    pub fn incomplete(&self) -> bool {
        self.failed > 0 || !self.not_stored.is_empty()
    }

    /// The summary as printed, one `name: value` line each.
    pub fn render(&self, elapsed: Duration) -> String {
        let secs = elapsed.as_secs_f64();
        let rate = if secs > 0.0 {
            self.read as f64 / secs
        } else {
            0.0
        };
        let mut s = format!(
            "read: {} messages from {} inputs in {secs:.2} s ({rate:.0} msg/s)\n",
            self.read, self.inputs
        );
        let _ = writeln!(s, "stored: {} ({} events)", self.stored, self.events);
        let _ = writeln!(s, "filtered: {}", self.filtered);
        let _ = writeln!(s, "duplicates: {}", self.duplicates);
        let _ = writeln!(s, "dead-lettered: {}", by_code(&self.dead_lettered));
        let _ = writeln!(s, "not stored: {}", by_code(&self.not_stored));
        if self.skipped > 0 {
            let _ = writeln!(s, "skipped: {} inputs already imported", self.skipped);
        }
        if self.failed > 0 {
            let _ = writeln!(s, "failed: {} inputs could not be read", self.failed);
        }
        if self.ignored_bytes > 0 {
            let _ = writeln!(
                s,
                "ignored: {} bytes outside MLLP frames",
                self.ignored_bytes
            );
        }
        if self.interrupted {
            s.push_str("interrupted: run the same command again to resume\n");
        }
        s.pop();
        s
    }
}

/// `3 (NOT_HL7 2, UNKNOWN_TENANT 1)`, or `0`.
fn by_code(codes: &BTreeMap<&'static str, u64>) -> String {
    let total: u64 = codes.values().sum();
    if total == 0 {
        return "0".into();
    }
    let each: Vec<String> = codes.iter().map(|(c, n)| format!("{c} {n}")).collect();
    format!("{total} ({})", each.join(", "))
}

/// The progress bar: bytes read of the total (the ETA), messages and their rate. Hidden
/// unless `shown` (stderr is a terminal and not `--quiet`).
pub struct Progress {
    bar: ProgressBar,
    started: Instant,
}

impl Progress {
    /// A bar over `total` bytes (`None`: unknown, e.g. stdin).
    pub fn new(total: Option<u64>, shown: bool) -> Self {
        let target = if shown {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        let bar = ProgressBar::with_draw_target(total, target);
        let template = if total.is_some() {
            "{elapsed_precise} [{wide_bar}] {binary_bytes}/{binary_total_bytes} ({binary_bytes_per_sec}, ETA {eta}) {msg}"
        } else {
            "{elapsed_precise} {spinner} {binary_bytes} ({binary_bytes_per_sec}) {msg}"
        };
        if let Ok(style) = ProgressStyle::with_template(template) {
            bar.set_style(style.progress_chars("=> "));
        }
        Progress {
            bar,
            started: Instant::now(),
        }
    }

    /// Bytes read so far.
    pub fn set_bytes(&self, bytes: u64) {
        self.bar.set_position(bytes);
    }

    /// Refreshes the message count and rate.
    pub fn set_messages(&self, done: u64) {
        if self.bar.is_hidden() {
            return;
        }
        let secs = self.started.elapsed().as_secs_f64().max(0.001);
        self.bar
            .set_message(format!("{done} msgs, {:.0} msg/s", done as f64 / secs));
    }

    /// Prints a line on stderr without breaking the bar.
    pub fn println(&self, line: String) {
        self.bar.suspend(|| eprintln!("{line}"));
    }

    /// Time since the start.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Removes the bar.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
