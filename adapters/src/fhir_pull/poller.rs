//! One server's poller: rounds over its resource types, each a paged search from the
//! saved cursor, every resource ingested before the cursor moves past it.

use super::bundle::{next_link, resources_of, Seen};
use super::client::{read_json, retry_after, same_origin, search_url};
use super::config::PullConfig;
use super::internal_events::{
    Attempt, Failure, PullMetrics, PullStarted, PullStopped, RequestDone, RequestRetried, Round,
    RoundDone, RoundFailed,
};
use crate::backoff::Backoff;
use crate::component::Shutdown;
use intake_pipeline::ingest::Ingest;
use intake_pipeline::outcome::STORE_UNAVAILABLE;
use intake_pipeline::store::Store;
use intake_pipeline::{Format, RawMessage, Stored};
use reqwest::header::ACCEPT;
use reqwest::{StatusCode, Url};
use serde_json::Value;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// The channel pulled resources carry (stored with the raw bytes; replay re-runs FHIR).
pub const CHANNEL: &str = "fhir-pull";
/// Tries of one request (the first and the retries) before the round is given up.
pub const ATTEMPTS: u32 = 8;
/// Pages followed in one round; the rest waits for the next round (the cursor is saved).
pub const MAX_PAGES: usize = 1000;
/// The first retry's delay (doubling to `retry_max`).
const FIRST_RETRY: Duration = Duration::from_millis(200);

/// Polls one server for one tenant.
pub struct Poller {
    /// The settings.
    pub config: PullConfig,
    /// The checked base URL.
    pub base: Url,
    /// Its bearer token.
    pub token: Option<String>,
    /// The client (same-origin redirects only).
    pub client: reqwest::Client,
    /// Cursors.
    pub store: Arc<dyn Store>,
    /// The pollers' series.
    pub metrics: Arc<PullMetrics>,
}

/// Why a round for one resource type ended early.
enum End {
    /// Shutdown was requested.
    Stop,
    /// Something failed; the next round tries again from the saved cursor.
    Failed(Failure),
}

impl From<Failure> for End {
    fn from(f: Failure) -> Self {
        End::Failed(f)
    }
}

impl Poller {
    /// Polls until shutdown, after the resource in flight is committed.
    pub async fn run(self, ingest: Ingest, mut shutdown: Shutdown) {
        let tenant = self.config.tenant.clone();
        PullStarted {
            tenant: &tenant,
            resource_types: self.config.resource_types.len(),
        }
        .emit();
        // Failed rounds wait longer each time (from twice the first retry), but never
        // less than the interval.
        let mut rounds = Backoff::new(FIRST_RETRY * 2, self.config.retry_max());
        'rounds: while !shutdown.is_requested() {
            let mut failed = false;
            for resource_type in &self.config.resource_types {
                match self.round(resource_type, &ingest, &mut shutdown).await {
                    Ok(round) => RoundDone {
                        tenant: &tenant,
                        resource_type,
                        round: &round,
                    }
                    .emit(&self.metrics),
                    Err(End::Stop) => break 'rounds,
                    Err(End::Failed(error)) => {
                        failed = true;
                        RoundFailed {
                            tenant: &tenant,
                            resource_type,
                            error: &error,
                        }
                        .emit();
                    }
                }
            }
            let wait = if failed {
                self.config.interval().max(rounds.next_delay(None))
            } else {
                rounds.reset();
                self.config.interval()
            };
            if shutdown.sleep(wait).await {
                break;
            }
        }
        PullStopped { tenant: &tenant }.emit();
    }

    /// Fetches and ingests everything of `resource_type` changed since the saved cursor.
    async fn round(
        &self,
        resource_type: &str,
        ingest: &Ingest,
        shutdown: &mut Shutdown,
    ) -> Result<Round, End> {
        let tenant = self.config.tenant.clone();
        let source = format!("fhir:{resource_type}");
        let saved = self
            .store
            .poll_cursor(&tenant, &source)
            .await
            .map_err(|e| Failure::ReadCursor(e.code()))?;
        let mut url = search_url(
            &self.base,
            resource_type,
            saved.as_deref(),
            self.config.page_size(),
        );
        let mut seen = Seen::default();
        if let Some(c) = &saved {
            seen.add(c);
        }
        let mut cursor = saved;
        let mut round = Round::default();
        while round.pages < MAX_PAGES {
            let bundle = self
                .fetch(&url, resource_type, round.pages + 1, shutdown)
                .await?;
            round.pages += 1;
            let (resources, skipped) =
                resources_of(&bundle, resource_type).ok_or(Failure::NotBundle(round.pages))?;
            round.skipped += skipped;
            for resource in resources {
                if shutdown.is_requested() {
                    return Err(End::Stop);
                }
                let bytes = serde_json::to_vec(resource).map_err(|_| Failure::Reserialise)?;
                let raw = RawMessage::new(Some(tenant.clone()), Format::FhirJson, CHANNEL, bytes);
                let done = ingest.ingest(raw).await;
                match done.stored {
                    Some(Stored::Events) => round.events += 1,
                    Some(Stored::DeadLettered) => round.dead_lettered += 1,
                    Some(Stored::Duplicate) => round.duplicates += 1,
                    Some(Stored::Filtered) => round.filtered += 1,
                    None => {
                        return Err(End::Failed(Failure::NotStored {
                            page: round.pages,
                            code: done.code().unwrap_or(STORE_UNAVAILABLE),
                        }))
                    }
                }
                if let Some(t) = resource
                    .pointer("/meta/lastUpdated")
                    .and_then(Value::as_str)
                {
                    seen.add(t);
                }
            }
            let next = next_link(&bundle).and_then(|n| url.join(n).ok());
            // Mid-result, resources sharing this page's last timestamp may follow on the
            // next page: only what lies strictly below it is known to be complete.
            let safe = match next {
                Some(_) => seen.below_max.as_ref(),
                None => seen.max.as_ref(),
            };
            let safe = safe.map(|(_, text)| text.clone());
            if safe.is_some() && safe != cursor {
                let text = safe.unwrap_or_default();
                self.store
                    .set_poll_cursor(&tenant, &source, &text)
                    .await
                    .map_err(|e| Failure::SaveCursor(e.code()))?;
                cursor = Some(text);
            }
            match next {
                None => break,
                Some(n) if same_origin(&self.base, &n) => url = n,
                Some(_) => return Err(End::Failed(Failure::ForeignOrigin(round.pages))),
            }
        }
        Ok(round)
    }

    /// GETs one search page, retrying in place on 429, 5xx, timeouts and connection errors.
    async fn fetch(
        &self,
        url: &Url,
        resource_type: &str,
        page: usize,
        shutdown: &mut Shutdown,
    ) -> Result<Value, End> {
        let tenant = self.config.tenant.as_str();
        let mut backoff = Backoff::new(FIRST_RETRY, self.config.retry_max());
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut request = self
                .client
                .get(url.clone())
                .header(ACCEPT, "application/fhir+json");
            if let Some(token) = &self.token {
                request = request.bearer_auth(token);
            }
            // A request in flight does not hold up shutdown.
            let sent = tokio::select! {
                r = request.send() => r,
                _ = shutdown.requested() => return Err(End::Stop),
            };
            RequestDone {
                tenant,
                resource_type,
                status: sent.as_ref().ok().map(|r| r.status().as_u16()),
            }
            .emit(&self.metrics);
            let (server_delay, error) = match sent {
                Ok(resp) if resp.status().is_success() => match read_json(resp).await {
                    Ok(v) => return Ok(v),
                    Err(e) => (None, Attempt::Body(e)),
                },
                Ok(resp) => {
                    let status = resp.status();
                    let delay = match status {
                        StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE => {
                            retry_after(resp.headers(), SystemTime::now())
                        }
                        _ => None,
                    };
                    let retryable = status.is_server_error()
                        || status == StatusCode::TOO_MANY_REQUESTS
                        || status == StatusCode::REQUEST_TIMEOUT;
                    let attempt = Attempt::Status(status.as_u16());
                    if !retryable {
                        return Err(End::Failed(Failure::Refused { page, attempt }));
                    }
                    (delay, attempt)
                }
                Err(e) => (None, Attempt::transport(&e)),
            };
            if attempt >= ATTEMPTS {
                return Err(End::Failed(Failure::GaveUp {
                    page,
                    last: error,
                    attempts: ATTEMPTS,
                }));
            }
            let wait = backoff.next_delay(server_delay);
            RequestRetried {
                tenant,
                resource_type,
                page,
                attempt,
                error: &error,
                retry_after: server_delay.is_some(),
                wait,
            }
            .emit();
            if shutdown.sleep(wait).await {
                return Err(End::Stop);
            }
        }
    }
}
