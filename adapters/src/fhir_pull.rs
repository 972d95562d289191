//! FHIR pull: polls a tenant's FHIR R4 server for new and changed resources.
//!
//! One task per configured server (tenant). Every `interval` it searches each configured
//! resource type with `GET {base}/{Type}?_lastUpdated=gt{cursor}&_sort=_lastUpdated&_count=N`,
//! follows `Bundle.link[relation=next]` (same origin as `base` only, so the bearer token
//! never leaves for another host), and sends every entry resource of that type through
//! [`Ingest::ingest`] as a [`RawMessage`] on channel [`CHANNEL`]: the same pipeline as a
//! push, acknowledged (here: the cursor advanced) only after its commit.
//!
//! The cursor (per tenant and resource type, in the store as source `fhir:<Type>`) is the
//! greatest `meta.lastUpdated` up to which every resource is committed. After a page in the
//! middle of a result it is the greatest value seen *below* that page's last one (resources
//! sharing the last timestamp may continue on the next page); at the end of the result it
//! is the greatest value seen. A restart therefore resumes where the committed work ends;
//! what is fetched twice (a boundary group) is a duplicate by idempotency key and event ids.
//!
//! Errors back off: 429 and 503 wait for `Retry-After` (seconds or an HTTP date, at most
//! [`MAX_RETRY_AFTER`]) or else an exponential, jittered delay capped at `retry_max`; other
//! 5xx, timeouts and connection errors retry the same request the same way, up to
//! [`ATTEMPTS`] times; 4xx and unusable bodies end the round for that type, and the next
//! round waits longer each time it fails (capped). Logs name the tenant, resource type,
//! page number, HTTP status and counts: never a URL with its query, a cursor value from a
//! body, or a body.

use intake_pipeline::ingest::Ingest;
use intake_pipeline::store::{Store, Stored};
use intake_pipeline::RawMessage;
use reqwest::header::{HeaderMap, ACCEPT, RETRY_AFTER};
use reqwest::{StatusCode, Url};
use serde_json::Value;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The channel pulled resources carry (stored with the raw bytes; replay re-runs FHIR).
pub const CHANNEL: &str = "fhir-pull";
/// Tries of one request (the first and the retries) before the round is given up.
pub const ATTEMPTS: u32 = 8;
/// The longest `Retry-After` obeyed; a longer one is shortened to this.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(15 * 60);
/// Pages followed in one round; the rest waits for the next round (the cursor is saved).
pub const MAX_PAGES: usize = 1000;
/// Largest response body read (bytes).
pub const MAX_BODY: usize = 64 << 20;
const FIRST_RETRY: Duration = Duration::from_millis(200);

/// One FHIR server polled for one tenant.
#[derive(Debug, Clone)]
pub struct PullConfig {
    /// The tenant every pulled resource belongs to.
    pub tenant: String,
    /// Service base URL, e.g. `https://fhir.example.org/r4` (http or https).
    pub base_url: String,
    /// Bearer token sent with every request, if any.
    pub token: Option<String>,
    /// Resource types searched, in this order, each round.
    pub resource_types: Vec<String>,
    /// Pause between rounds.
    pub interval: Duration,
    /// `_count` asked for per page.
    pub page_size: u32,
    /// Longest back-off between retries and failed rounds.
    pub retry_max: Duration,
    /// Timeout of one HTTP request (connect to last body byte).
    pub timeout: Duration,
}

/// A pull configuration that cannot be used. Messages never repeat the token; the URL is
/// named only by its problem.
#[derive(Debug, thiserror::Error)]
pub enum InvalidPull {
    /// The base URL does not parse, is not http(s) or carries credentials or a query.
    #[error("FHIR pull for tenant {tenant:?}: base_url must be an http:// or https:// URL without user info, query or fragment")]
    BaseUrl {
        /// The tenant.
        tenant: String,
    },
    /// A resource type is not shaped like one.
    #[error(
        "FHIR pull for tenant {tenant:?}: resource type {index} is not a FHIR resource type name"
    )]
    ResourceType {
        /// The tenant.
        tenant: String,
        /// Its index in `resource_types`.
        index: usize,
    },
    /// No resource type to poll.
    #[error("FHIR pull for tenant {tenant:?}: resource_types is empty")]
    NoResourceTypes {
        /// The tenant.
        tenant: String,
    },
    /// The HTTP client could not be built (TLS set-up).
    #[error("FHIR pull for tenant {tenant:?}: HTTP client: {reason}")]
    Client {
        /// The tenant.
        tenant: String,
        /// What failed.
        reason: String,
    },
}

/// Checks `config` and builds its client without connecting.
fn prepare(config: &PullConfig) -> Result<(Url, reqwest::Client), InvalidPull> {
    let tenant = config.tenant.clone();
    let base = Url::parse(config.base_url.trim_end_matches('/'))
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https"))
        .filter(|u| u.host_str().is_some() && u.username().is_empty() && u.password().is_none())
        .filter(|u| u.query().is_none() && u.fragment().is_none())
        .ok_or(InvalidPull::BaseUrl {
            tenant: tenant.clone(),
        })?;
    if config.resource_types.is_empty() {
        return Err(InvalidPull::NoResourceTypes { tenant });
    }
    if let Some(index) = config
        .resource_types
        .iter()
        .position(|t| !intake_pipeline::fhir::looks_like_type(t))
    {
        return Err(InvalidPull::ResourceType { tenant, index });
    }
    let origin = base.clone();
    let client = reqwest::Client::builder()
        .user_agent(concat!("intake/", env!("CARGO_PKG_VERSION")))
        .timeout(config.timeout)
        .connect_timeout(config.timeout.min(Duration::from_secs(10)))
        // Redirects only within the server's origin: the token stays with it.
        .redirect(reqwest::redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() >= 5 || !same_origin(&origin, attempt.url()) {
                attempt.stop()
            } else {
                attempt.follow()
            }
        }))
        .build()
        .map_err(|e| InvalidPull::Client {
            tenant,
            reason: e.without_url().to_string(),
        })?;
    Ok((base, client))
}

/// Checks `config` (so `intake serve` can refuse to start on a bad one).
pub fn validate(config: &PullConfig) -> Result<(), InvalidPull> {
    prepare(config).map(|_| ())
}

/// Starts polling for `config`; the task ends once `stop` turns true (after the message in
/// flight is committed).
pub fn spawn(
    config: PullConfig,
    ingest: Ingest,
    store: Arc<dyn Store>,
    stop: watch::Receiver<bool>,
) -> Result<JoinHandle<()>, InvalidPull> {
    let (base, client) = prepare(&config)?;
    let poller = Poller {
        config,
        base,
        client,
        ingest,
        store,
        stop,
    };
    Ok(tokio::spawn(poller.run()))
}

struct Poller {
    config: PullConfig,
    base: Url,
    client: reqwest::Client,
    ingest: Ingest,
    store: Arc<dyn Store>,
    stop: watch::Receiver<bool>,
}

/// Why a round for one resource type ended early.
enum End {
    /// Shutdown was asked for.
    Stop,
    /// Something failed; the next round tries again from the saved cursor.
    Failed(String),
}

/// What one round for one resource type did.
#[derive(Debug, Default)]
struct Round {
    pages: usize,
    events: usize,
    dead_lettered: usize,
    duplicates: usize,
    skipped: usize,
}

/// `meta.lastUpdated` values seen in a result: the greatest, and the greatest below it.
#[derive(Debug, Default)]
struct Seen {
    max: Option<(chrono::DateTime<chrono::FixedOffset>, String)>,
    below_max: Option<(chrono::DateTime<chrono::FixedOffset>, String)>,
}

impl Seen {
    fn add(&mut self, text: &str) {
        let Ok(t) = chrono::DateTime::parse_from_rfc3339(text) else {
            return;
        };
        let value = Some((t, text.to_string()));
        match &self.max {
            Some((m, _)) if t == *m => {}
            Some((m, _)) if t < *m => {
                if self.below_max.as_ref().is_none_or(|(b, _)| t > *b) {
                    self.below_max = value;
                }
            }
            _ => self.below_max = std::mem::replace(&mut self.max, value),
        }
    }
}

impl Poller {
    async fn run(mut self) {
        let tenant = self.config.tenant.clone();
        tracing::info!(
            tenant = %tenant,
            resource_types = self.config.resource_types.len(),
            "FHIR pull started"
        );
        let mut failed_rounds = 0u32;
        'rounds: while !self.stopping() {
            let mut failed = false;
            for resource_type in self.config.resource_types.clone() {
                let result = self.round(&resource_type).await;
                if result.is_ok() {
                    let now = chrono::Utc::now().timestamp();
                    self.ingest
                        .metrics()
                        .record_pull_success(&tenant, &resource_type, now);
                }
                match result {
                    Ok(r) if r.pages > 0 && r.events + r.dead_lettered + r.duplicates > 0 => {
                        tracing::info!(
                            tenant = %tenant,
                            resource_type = %resource_type,
                            pages = r.pages,
                            events = r.events,
                            dead_lettered = r.dead_lettered,
                            duplicates = r.duplicates,
                            skipped = r.skipped,
                            "FHIR pull round"
                        );
                    }
                    Ok(_) => {}
                    Err(End::Stop) => break 'rounds,
                    Err(End::Failed(why)) => {
                        failed = true;
                        tracing::warn!(
                            tenant = %tenant,
                            resource_type = %resource_type,
                            error = %why,
                            "FHIR pull round failed; resuming from the saved cursor"
                        );
                    }
                }
            }
            let wait = if failed {
                failed_rounds = failed_rounds.saturating_add(1);
                let backoff = FIRST_RETRY
                    .saturating_mul(1 << failed_rounds.min(16))
                    .min(self.config.retry_max);
                self.config.interval.max(jitter(backoff))
            } else {
                failed_rounds = 0;
                self.config.interval
            };
            if self.pause(wait).await {
                break;
            }
        }
        tracing::info!(tenant = %tenant, "FHIR pull stopped");
    }

    fn stopping(&self) -> bool {
        *self.stop.borrow()
    }

    /// Sleeps for `d`; true when shutdown was asked for meanwhile.
    async fn pause(&mut self, d: Duration) -> bool {
        let slept = tokio::select! {
            _ = tokio::time::sleep(d) => true,
            _ = self.stop.wait_for(|s| *s) => false,
        };
        !slept || self.stopping()
    }

    /// Fetches and ingests everything of `resource_type` changed since the saved cursor.
    async fn round(&mut self, resource_type: &str) -> Result<Round, End> {
        let tenant = self.config.tenant.clone();
        let source = format!("fhir:{resource_type}");
        let saved = self
            .store
            .poll_cursor(&tenant, &source)
            .await
            .map_err(|e| End::Failed(format!("reading the cursor: {}", e.code())))?;
        let mut url = search_url(
            &self.base,
            resource_type,
            saved.as_deref(),
            self.config.page_size,
        );
        let mut seen = Seen::default();
        if let Some(c) = &saved {
            seen.add(c);
        }
        let mut cursor = saved;
        let mut round = Round::default();
        while round.pages < MAX_PAGES {
            let bundle = self.fetch(&url, resource_type, round.pages + 1).await?;
            round.pages += 1;
            let (resources, skipped) = resources_of(&bundle, resource_type)
                .ok_or_else(|| End::Failed(format!("page {} is not a Bundle", round.pages)))?;
            round.skipped += skipped;
            for resource in resources {
                if self.stopping() {
                    return Err(End::Stop);
                }
                let bytes = serde_json::to_vec(resource)
                    .map_err(|_| End::Failed("re-serialising a resource".into()))?;
                let raw = RawMessage::new(Some(tenant.clone()), CHANNEL, bytes);
                let done = self.ingest.ingest(raw).await;
                match done.stored {
                    Some(Stored::Events) => round.events += 1,
                    Some(Stored::DeadLettered) => round.dead_lettered += 1,
                    Some(Stored::Duplicate) => round.duplicates += 1,
                    None => {
                        return Err(End::Failed(format!(
                            "storing a resource of page {}: {}",
                            round.pages,
                            done.code.as_deref().unwrap_or("STORE_UNAVAILABLE")
                        )))
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
                    .map_err(|e| End::Failed(format!("saving the cursor: {}", e.code())))?;
                cursor = Some(text);
            }
            match next {
                None => break,
                Some(n) if same_origin(&self.base, &n) => url = n,
                Some(_) => {
                    return Err(End::Failed(format!(
                        "page {} links to another origin; not followed",
                        round.pages
                    )))
                }
            }
        }
        Ok(round)
    }

    /// GETs one search page, retrying in place on 429, 5xx, timeouts and connection errors.
    async fn fetch(&mut self, url: &Url, resource_type: &str, page: usize) -> Result<Value, End> {
        let tenant = self.config.tenant.clone();
        let mut delay = FIRST_RETRY;
        for attempt in 1..=ATTEMPTS {
            let mut request = self
                .client
                .get(url.clone())
                .header(ACCEPT, "application/fhir+json");
            if let Some(token) = &self.config.token {
                request = request.bearer_auth(token);
            }
            // A request in flight does not hold up shutdown.
            let mut stop = self.stop.clone();
            let sent = tokio::select! {
                r = request.send() => r,
                _ = stop.wait_for(|s| *s) => return Err(End::Stop),
            };
            let status = match &sent {
                Ok(resp) => resp.status().as_u16().to_string(),
                Err(_) => "error".to_string(),
            };
            self.ingest
                .metrics()
                .record_pull_request(&tenant, resource_type, &status);
            let (retry_after, why) = match sent {
                Ok(resp) if resp.status().is_success() => match read_json(resp).await {
                    Ok(v) => return Ok(v),
                    Err(why) => (None, why),
                },
                Ok(resp) => {
                    let status = resp.status();
                    let retry_after = match status {
                        StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE => {
                            retry_after(resp.headers(), SystemTime::now())
                        }
                        _ => None,
                    };
                    let retryable = status.is_server_error()
                        || status == StatusCode::TOO_MANY_REQUESTS
                        || status == StatusCode::REQUEST_TIMEOUT;
                    if !retryable {
                        return Err(End::Failed(format!(
                            "page {page}: HTTP {}",
                            status.as_u16()
                        )));
                    }
                    (retry_after, format!("HTTP {}", status.as_u16()))
                }
                // Without the URL: its query holds the cursor.
                Err(e) => (None, e.without_url().to_string()),
            };
            if attempt == ATTEMPTS {
                return Err(End::Failed(format!(
                    "page {page}: {why} ({ATTEMPTS} attempts)"
                )));
            }
            let wait = match retry_after {
                Some(d) => d,
                None => jitter(delay),
            };
            delay = (delay * 2).min(self.config.retry_max);
            tracing::warn!(
                tenant = %tenant,
                resource_type = %resource_type,
                page,
                attempt,
                error = %why,
                retry_after = retry_after.is_some(),
                retry_ms = wait.as_millis() as u64,
                "FHIR server request failed; retrying"
            );
            if self.pause(wait).await {
                return Err(End::Stop);
            }
        }
        Err(End::Failed(format!("page {page}: no attempt made")))
    }
}

/// `{base}/{Type}?_lastUpdated=gt{cursor}&_sort=_lastUpdated&_count=N`.
fn search_url(base: &Url, resource_type: &str, cursor: Option<&str>, page_size: u32) -> Url {
    let mut url = base.clone();
    url.path_segments_mut()
        .expect("http(s) URLs have paths")
        .pop_if_empty()
        .push(resource_type);
    {
        let mut q = url.query_pairs_mut();
        if let Some(c) = cursor {
            q.append_pair("_lastUpdated", &format!("gt{c}"));
        }
        q.append_pair("_sort", "_lastUpdated");
        q.append_pair("_count", &page_size.max(1).to_string());
    }
    url
}

/// Reads a JSON body of at most [`MAX_BODY`] bytes; errors name only the position.
async fn read_json(mut resp: reqwest::Response) -> Result<Value, String> {
    if resp.content_length().is_some_and(|n| n > MAX_BODY as u64) {
        return Err(format!("body larger than {MAX_BODY} bytes"));
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| e.without_url().to_string())?
    {
        if body.len() + chunk.len() > MAX_BODY {
            return Err(format!("body larger than {MAX_BODY} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    // serde_json's messages may quote input: keep only the position.
    serde_json::from_slice(&body)
        .map_err(|e| format!("body is not JSON (line {} column {})", e.line(), e.column()))
}

/// The entry resources of `resource_type` in a searchset Bundle, and how many entries
/// were skipped (included resources, OperationOutcomes, entries without a resource);
/// `None` when `bundle` is not a Bundle.
fn resources_of<'a>(bundle: &'a Value, resource_type: &str) -> Option<(Vec<&'a Value>, usize)> {
    if bundle.get("resourceType").and_then(Value::as_str) != Some("Bundle") {
        return None;
    }
    let entries = match bundle.get("entry") {
        None => return Some((Vec::new(), 0)),
        Some(e) => e.as_array()?,
    };
    let mut out = Vec::with_capacity(entries.len());
    for e in entries {
        let mode = e.pointer("/search/mode").and_then(Value::as_str);
        match e.get("resource") {
            Some(r)
                if r.get("resourceType").and_then(Value::as_str) == Some(resource_type)
                    && matches!(mode, None | Some("match")) =>
            {
                out.push(r)
            }
            _ => {}
        }
    }
    let skipped = entries.len() - out.len();
    Some((out, skipped))
}

/// `Bundle.link[relation=next].url`.
fn next_link(bundle: &Value) -> Option<&str> {
    bundle
        .get("link")?
        .as_array()?
        .iter()
        .find(|l| l.get("relation").and_then(Value::as_str) == Some("next"))?
        .get("url")?
        .as_str()
        .filter(|u| !u.is_empty())
}

/// Same scheme, host and port.
fn same_origin(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme()
        && a.host_str() == b.host_str()
        && a.port_or_known_default() == b.port_or_known_default()
}

/// `Retry-After` as a delay: delta-seconds or an HTTP date (relative to `now`), capped at
/// [`MAX_RETRY_AFTER`].
fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    let d = match value.parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => {
            let at = httpdate::parse_http_date(value).ok()?;
            at.duration_since(now).unwrap_or(Duration::ZERO)
        }
    };
    Some(d.min(MAX_RETRY_AFTER))
}

/// Between half and all of `d`, so that many pollers do not retry in step.
fn jitter(d: Duration) -> Duration {
    let r = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    d.mul_f64(0.5 + (r % 1000) as f64 / 2000.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn config(base: &str) -> PullConfig {
        PullConfig {
            tenant: "demo".into(),
            base_url: base.into(),
            token: Some("secret".into()),
            resource_types: vec!["Patient".into()],
            interval: Duration::from_secs(60),
            page_size: 50,
            retry_max: Duration::from_secs(30),
            timeout: Duration::from_secs(30),
        }
    }

    #[test]
    fn base_urls_and_types_are_checked() {
        assert!(validate(&config("https://fhir.example.org/r4/")).is_ok());
        for bad in [
            "ftp://x/r4",
            "https://user:pw@x/r4",
            "https://x/r4?a=b",
            "not a url",
        ] {
            let e = validate(&config(bad)).unwrap_err();
            assert!(matches!(e, InvalidPull::BaseUrl { .. }), "{bad}");
            assert!(!e.to_string().contains("pw"));
        }
        let mut c = config("http://x");
        c.resource_types = vec!["Patient".into(), "patient; DROP".into()];
        assert!(matches!(
            validate(&c),
            Err(InvalidPull::ResourceType { index: 1, .. })
        ));
        c.resource_types.clear();
        assert!(validate(&c).is_err());
    }

    #[test]
    fn search_urls_encode_the_cursor() {
        let (base, _) = prepare(&config("http://127.0.0.1:9/fhir/r4/")).unwrap();
        assert_eq!(
            search_url(&base, "Patient", Some("2026-01-02T03:04:05.678+01:00"), 20).as_str(),
            "http://127.0.0.1:9/fhir/r4/Patient?_lastUpdated=gt2026-01-02T03%3A04%3A05.678%2B01%3A00&_sort=_lastUpdated&_count=20"
        );
        assert_eq!(
            search_url(&base, "Encounter", None, 0).as_str(),
            "http://127.0.0.1:9/fhir/r4/Encounter?_sort=_lastUpdated&_count=1"
        );
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, "3".parse().unwrap());
        assert_eq!(retry_after(&h, now), Some(Duration::from_secs(3)));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(7));
        h.insert(RETRY_AFTER, later.parse().unwrap());
        assert_eq!(retry_after(&h, now), Some(Duration::from_secs(7)));
        let past = httpdate::fmt_http_date(now - Duration::from_secs(7));
        h.insert(RETRY_AFTER, past.parse().unwrap());
        assert_eq!(retry_after(&h, now), Some(Duration::ZERO));
        h.insert(RETRY_AFTER, "999999".parse().unwrap());
        assert_eq!(retry_after(&h, now), Some(MAX_RETRY_AFTER));
        h.insert(RETRY_AFTER, "soon".parse().unwrap());
        assert_eq!(retry_after(&h, now), None);
    }

    #[test]
    fn bundles_yield_matches_of_the_type_and_the_next_link() {
        let b = json!({
            "resourceType": "Bundle", "type": "searchset",
            "link": [{"relation": "self", "url": "a"}, {"relation": "next", "url": "http://h/next"}],
            "entry": [
                {"resource": {"resourceType": "Patient", "id": "1"}, "search": {"mode": "match"}},
                {"resource": {"resourceType": "Patient", "id": "2"}},
                {"resource": {"resourceType": "Organization", "id": "o"}, "search": {"mode": "include"}},
                {"resource": {"resourceType": "OperationOutcome"}, "search": {"mode": "outcome"}},
                {"fullUrl": "x"}
            ]
        });
        let (r, skipped) = resources_of(&b, "Patient").unwrap();
        assert_eq!((r.len(), skipped), (2, 3));
        assert_eq!(next_link(&b), Some("http://h/next"));
        assert!(resources_of(&json!({"resourceType": "Patient"}), "Patient").is_none());
        assert_eq!(
            resources_of(&json!({"resourceType": "Bundle"}), "Patient")
                .unwrap()
                .0
                .len(),
            0
        );
    }

    #[test]
    fn origins_compare_scheme_host_and_port() {
        let u = |s: &str| Url::parse(s).unwrap();
        assert!(same_origin(&u("http://h/a"), &u("http://h:80/b?x")));
        assert!(!same_origin(&u("http://h/a"), &u("https://h/a")));
        assert!(!same_origin(&u("http://h/a"), &u("http://evil/a")));
        assert!(!same_origin(&u("http://h:8080/a"), &u("http://h:8081/a")));
    }

    #[test]
    fn the_cursor_mid_result_stays_below_the_last_timestamp() {
        let mut s = Seen::default();
        for t in [
            "2026-01-01T00:00:01Z",
            "2026-01-01T00:00:03Z",
            "2026-01-01T01:00:02+01:00",
            "2026-01-01T00:00:03Z",
            "garbage",
        ] {
            s.add(t);
        }
        assert_eq!(s.max.as_ref().unwrap().1, "2026-01-01T00:00:03Z");
        assert_eq!(s.below_max.as_ref().unwrap().1, "2026-01-01T01:00:02+01:00");
    }
}
