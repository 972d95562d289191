//! What several commands share: the store, the mappings, and small helpers for messages
//! and files. Commands import this, never each other.

use crate::config::Config;
use anyhow::{Context, Result};
use intake_pipeline::mapping::Tenants;
use intake_pipeline::store::{self, Store, StoreOptions};
use std::path::Path;
use std::sync::Arc;

/// Opens the configured store: SQLite (the embedded default) or PostgreSQL.
pub async fn open_store(config: &Config) -> Result<Arc<dyn Store>> {
    let options = StoreOptions {
        outbox: config.broker().is_some(),
    };
    store::open(&config.database_url, options)
        .await
        .with_context(|| format!("opening the database {}", redact_url(&config.database_url)))
}

/// A database URL without its password, for messages.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let creds = &url[scheme + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// Loads mappings, printing every error as `file:line:col: message`.
pub fn load_tenants(dir: &Path) -> Option<Tenants> {
    match Tenants::load(dir) {
        Ok(t) => Some(t),
        Err(errors) => {
            for e in &errors {
                eprintln!("{e}");
            }
            eprintln!("{} error(s) in {}", errors.len(), dir.display());
            None
        }
    }
}

/// Whether a file holds FHIR (a resource or Bundle): its extension is .json or .xml.
pub fn is_fhir_file(path: &Path) -> bool {
    path.extension()
        .and_then(|x| x.to_str())
        .is_some_and(|x| x.eq_ignore_ascii_case("json") || x.eq_ignore_ascii_case("xml"))
}

/// An RFC 3339 time, as the `--since` / `--until` options take it.
pub fn parse_time(s: &str) -> Result<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| t.to_utc())
        .map_err(|_| anyhow::anyhow!("expected an RFC 3339 time such as 2026-12-01T00:00:00Z"))
}
