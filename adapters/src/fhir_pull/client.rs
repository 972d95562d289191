//! The HTTP side of a pull: the client (redirects within the server's origin only), the
//! search URL, bounded JSON bodies and `Retry-After`.

use super::config::{InvalidPull, PullConfig};
use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::Url;
use serde_json::Value;
use std::time::{Duration, SystemTime};

/// The longest `Retry-After` obeyed; a longer one is shortened to this.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(15 * 60);
/// Largest response body read (bytes).
pub const MAX_BODY: usize = 64 << 20;

/// The client for `config`'s server: its timeouts, and redirects only within `origin`
/// (so the token stays with it).
pub fn client(config: &PullConfig, origin: &Url) -> Result<reqwest::Client, InvalidPull> {
    let origin = origin.clone();
    reqwest::Client::builder()
        .user_agent(concat!("intake/", env!("CARGO_PKG_VERSION")))
        .timeout(config.timeout())
        .connect_timeout(config.timeout().min(Duration::from_secs(10)))
        .redirect(reqwest::redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() >= 5 || !same_origin(&origin, attempt.url()) {
                attempt.stop()
            } else {
                attempt.follow()
            }
        }))
        .build()
        .map_err(|e| InvalidPull::Client {
            tenant: config.tenant.clone(),
            reason: e.without_url().to_string(),
        })
}

/// `{base}/{Type}?_lastUpdated=gt{cursor}&_sort=_lastUpdated&_count=N`.
pub fn search_url(base: &Url, resource_type: &str, cursor: Option<&str>, page_size: u32) -> Url {
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

/// Why a body could not be used; never quotes it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    /// Over [`MAX_BODY`].
    #[error("body larger than {MAX_BODY} bytes")]
    TooLarge,
    /// The connection failed while reading it.
    #[error("reading the body failed")]
    Read,
    /// Not JSON; the position of the first error.
    #[error("body is not JSON (line {line} column {column})")]
    NotJson {
        /// Line of the error.
        line: usize,
        /// Column of the error.
        column: usize,
    },
}

/// Reads a JSON body of at most [`MAX_BODY`] bytes.
pub async fn read_json(mut resp: reqwest::Response) -> Result<Value, BodyError> {
    if resp.content_length().is_some_and(|n| n > MAX_BODY as u64) {
        return Err(BodyError::TooLarge);
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|_| BodyError::Read)? {
        if body.len() + chunk.len() > MAX_BODY {
            return Err(BodyError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    // serde_json's messages may quote input: keep only the position.
    serde_json::from_slice(&body).map_err(|e| BodyError::NotJson {
        line: e.line(),
        column: e.column(),
    })
}

/// Same scheme, host and port.
pub fn same_origin(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme()
        && a.host_str() == b.host_str()
        && a.port_or_known_default() == b.port_or_known_default()
}

/// `Retry-After` as a delay: delta-seconds or an HTTP date (relative to `now`), capped at
/// [`MAX_RETRY_AFTER`].
pub fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_urls_encode_the_cursor() {
        let base = Url::parse("http://127.0.0.1:9/fhir/r4").unwrap();
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
    fn origins_compare_scheme_host_and_port() {
        let u = |s: &str| Url::parse(s).unwrap();
        assert!(same_origin(&u("http://h/a"), &u("http://h:80/b?x")));
        assert!(!same_origin(&u("http://h/a"), &u("https://h/a")));
        assert!(!same_origin(&u("http://h/a"), &u("http://evil/a")));
        assert!(!same_origin(&u("http://h:8080/a"), &u("http://h:8081/a")));
    }
}
