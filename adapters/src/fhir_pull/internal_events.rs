//! Everything the FHIR poller logs and counts, in one place. Fields are tenant ids,
//! resource type names, page numbers, HTTP statuses, counts and typed failures: never a
//! URL (its query holds the cursor), a token or a body.

use crate::telemetry::Report;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

/// Why a round for one resource type ended early, or a request is retried.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    /// The saved cursor could not be read.
    #[error("reading the cursor: {0}")]
    ReadCursor(&'static str),
    /// The cursor could not be saved.
    #[error("saving the cursor: {0}")]
    SaveCursor(&'static str),
    /// A page is not a searchset Bundle.
    #[error("page {0} is not a Bundle")]
    NotBundle(usize),
    /// A resource could not be written back to JSON.
    #[error("re-serialising a resource")]
    Reserialise,
    /// A resource could not be stored.
    #[error("storing a resource of page {page}: {code}")]
    NotStored {
        /// The page.
        page: usize,
        /// The store's code.
        code: &'static str,
    },
    /// The next link points at another origin.
    #[error("page {0} links to another origin; not followed")]
    ForeignOrigin(usize),
    /// A request failed and is not retried (4xx other than 408 and 429).
    #[error("page {page}: {attempt}")]
    Refused {
        /// The page.
        page: usize,
        /// What the server answered.
        attempt: Attempt,
    },
    /// Every try of a request failed.
    #[error("page {page}: {last} ({attempts} attempts)")]
    GaveUp {
        /// The page.
        page: usize,
        /// The last try's failure.
        last: Attempt,
        /// How many tries were made.
        attempts: u32,
    },
}

/// How one try of a request failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Attempt {
    /// The server answered with this status.
    #[error("HTTP {0}")]
    Status(u16),
    /// No answer: the kind of transport failure (timeout, connect, ...).
    #[error("{0}")]
    Transport(&'static str),
    /// The body could not be used.
    #[error(transparent)]
    Body(#[from] super::client::BodyError),
}

impl Attempt {
    /// A reqwest error by kind (its text may name the URL, whose query holds the cursor).
    pub fn transport(e: &reqwest::Error) -> Self {
        Attempt::Transport(if e.is_timeout() {
            "request timed out"
        } else if e.is_connect() {
            "connection failed"
        } else if e.is_redirect() {
            "redirect not followed"
        } else if e.is_body() || e.is_decode() {
            "reading the response failed"
        } else {
            "request failed"
        })
    }
}

/// The pollers' series: requests by (tenant, resource type, status) and the time of the
/// last completed round by (tenant, resource type).
#[derive(Debug, Default)]
pub struct PullMetrics {
    requests: Mutex<BTreeMap<(String, String, String), u64>>,
    last_success: Mutex<BTreeMap<(String, String), i64>>,
}

#[async_trait::async_trait]
impl Report for PullMetrics {
    async fn metrics(&self, out: &mut String) {
        if let Ok(m) = self.requests.lock() {
            if !m.is_empty() {
                let _ = writeln!(out, "# HELP intake_fhir_pull_requests_total Requests to polled FHIR servers by tenant, resource type and HTTP status (error: no response).");
                let _ = writeln!(out, "# TYPE intake_fhir_pull_requests_total counter");
            }
            for ((tenant, t, status), n) in m.iter() {
                let _ = writeln!(out, "intake_fhir_pull_requests_total{{tenant=\"{tenant}\",resource_type=\"{t}\",status=\"{status}\"}} {n}");
            }
        }
        if let Ok(m) = self.last_success.lock() {
            if !m.is_empty() {
                let _ = writeln!(out, "# HELP intake_fhir_pull_last_success_seconds Unix time of the last completed pull round by tenant and resource type.");
                let _ = writeln!(out, "# TYPE intake_fhir_pull_last_success_seconds gauge");
            }
            for ((tenant, t), at) in m.iter() {
                let _ = writeln!(out, "intake_fhir_pull_last_success_seconds{{tenant=\"{tenant}\",resource_type=\"{t}\"}} {at}");
            }
        }
    }
}

/// A poller started.
pub struct PullStarted<'a> {
    /// The tenant.
    pub tenant: &'a str,
    /// How many resource types it searches.
    pub resource_types: usize,
}

impl PullStarted<'_> {
    /// Logs it.
    pub fn emit(self) {
        tracing::info!(tenant = %self.tenant, resource_types = self.resource_types, "FHIR pull started");
    }
}

/// A poller stopped (shutdown).
pub struct PullStopped<'a> {
    /// The tenant.
    pub tenant: &'a str,
}

impl PullStopped<'_> {
    /// Logs it.
    pub fn emit(self) {
        tracing::info!(tenant = %self.tenant, "FHIR pull stopped");
    }
}

/// A request got an answer (`status`: the HTTP status) or none (`None`: connection,
/// timeout).
pub struct RequestDone<'a> {
    /// The tenant.
    pub tenant: &'a str,
    /// The resource type searched.
    pub resource_type: &'a str,
    /// The HTTP status, if an answer came.
    pub status: Option<u16>,
}

impl RequestDone<'_> {
    /// Counts it.
    pub fn emit(self, m: &PullMetrics) {
        let status = self
            .status
            .map_or_else(|| "error".to_string(), |s| s.to_string());
        if let Ok(mut r) = m.requests.lock() {
            *r.entry((self.tenant.into(), self.resource_type.into(), status))
                .or_default() += 1;
        }
    }
}

/// A request failed and is tried again after `wait`.
pub struct RequestRetried<'a> {
    /// The tenant.
    pub tenant: &'a str,
    /// The resource type searched.
    pub resource_type: &'a str,
    /// The page (from 1).
    pub page: usize,
    /// The try that failed (from 1).
    pub attempt: u32,
    /// How it failed.
    pub error: &'a Attempt,
    /// Whether the wait is the server's `Retry-After`.
    pub retry_after: bool,
    /// The wait.
    pub wait: Duration,
}

impl RequestRetried<'_> {
    /// Logs it.
    pub fn emit(self) {
        tracing::warn!(
            tenant = %self.tenant,
            resource_type = %self.resource_type,
            page = self.page,
            attempt = self.attempt,
            error = %self.error,
            retry_after = self.retry_after,
            retry_ms = self.wait.as_millis() as u64,
            "FHIR server request failed; retrying"
        );
    }
}

/// What one completed round for one resource type did.
#[derive(Debug, Default)]
pub struct Round {
    /// Pages read.
    pub pages: usize,
    /// Resources stored as events.
    pub events: usize,
    /// Resources dead-lettered.
    pub dead_lettered: usize,
    /// Resources already stored.
    pub duplicates: usize,
    /// Resources an ignoring rule filtered.
    pub filtered: usize,
    /// Entries skipped (other types, includes, outcomes).
    pub skipped: usize,
}

/// A round for one resource type completed.
pub struct RoundDone<'a> {
    /// The tenant.
    pub tenant: &'a str,
    /// The resource type.
    pub resource_type: &'a str,
    /// What it did.
    pub round: &'a Round,
}

impl RoundDone<'_> {
    /// Notes the time of success; logs the round when it stored something.
    pub fn emit(self, m: &PullMetrics) {
        if let Ok(mut s) = m.last_success.lock() {
            let now = chrono::Utc::now().timestamp();
            s.insert((self.tenant.into(), self.resource_type.into()), now);
        }
        let r = self.round;
        if r.pages > 0 && r.events + r.dead_lettered + r.duplicates + r.filtered > 0 {
            tracing::info!(
                tenant = %self.tenant,
                resource_type = %self.resource_type,
                pages = r.pages,
                events = r.events,
                dead_lettered = r.dead_lettered,
                duplicates = r.duplicates,
                filtered = r.filtered,
                skipped = r.skipped,
                "FHIR pull round"
            );
        }
    }
}

/// A round for one resource type failed; the next resumes from the saved cursor.
pub struct RoundFailed<'a> {
    /// The tenant.
    pub tenant: &'a str,
    /// The resource type.
    pub resource_type: &'a str,
    /// Why.
    pub error: &'a Failure,
}

impl RoundFailed<'_> {
    /// Logs it.
    pub fn emit(self) {
        tracing::warn!(
            tenant = %self.tenant,
            resource_type = %self.resource_type,
            error = %self.error,
            "FHIR pull round failed; resuming from the saved cursor"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn series_keep_their_names_and_labels() {
        let m = PullMetrics::default();
        let mut empty = String::new();
        m.metrics(&mut empty).await;
        assert!(empty.is_empty(), "no poller, no series");
        let done = |status| RequestDone {
            tenant: "demo",
            resource_type: "Patient",
            status,
        };
        done(Some(200)).emit(&m);
        done(Some(200)).emit(&m);
        done(None).emit(&m);
        let round = Round::default();
        RoundDone {
            tenant: "demo",
            resource_type: "Encounter",
            round: &round,
        }
        .emit(&m);
        let mut text = String::new();
        m.metrics(&mut text).await;
        for line in [
            "intake_fhir_pull_requests_total{tenant=\"demo\",resource_type=\"Patient\",status=\"200\"} 2",
            "intake_fhir_pull_requests_total{tenant=\"demo\",resource_type=\"Patient\",status=\"error\"} 1",
            "intake_fhir_pull_last_success_seconds{tenant=\"demo\",resource_type=\"Encounter\"} ",
        ] {
            assert!(text.contains(line), "{line} in {text}");
        }
    }
}
