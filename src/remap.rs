//! `intake remap`: what another mapping version would make of messages already stored.
//! Prints one JSON line per message that would change (added, removed and changed events,
//! by type, stream and field name, never values), then a summary; `--apply` appends the
//! added events as corrections, audited. Nothing else is ever changed.

use crate::config::Config;
use crate::context::{load_tenants, open_store, parse_time};
use anyhow::{bail, Result};
use chrono::{DateTime, Utc};
use intake_pipeline::audit::Actor;
use intake_pipeline::remap::{remap, RemapError};
use intake_pipeline::store::messages::MessageQuery;
use std::path::PathBuf;
use std::process::ExitCode;
use uuid::Uuid;

/// Which messages to re-map, and with which mappings.
#[derive(Debug, clap::Args)]
pub struct RemapArgs {
    /// The tenant whose messages to re-map.
    #[arg(long)]
    tenant: String,
    /// The mappings folder holding the version to try (a checkout, a staged copy).
    #[arg(long)]
    mappings: PathBuf,
    /// Only messages received at or after this time (RFC 3339).
    #[arg(long, value_parser = parse_time)]
    since: Option<DateTime<Utc>>,
    /// Only messages received before this time (RFC 3339).
    #[arg(long, value_parser = parse_time)]
    until: Option<DateTime<Utc>>,
    /// Only this message type.
    #[arg(long = "type")]
    message_type: Option<String>,
    /// Messages older than this one (the next page).
    #[arg(long)]
    before: Option<Uuid>,
    /// At most this many messages, newest first.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(i64).range(1..=10000))]
    limit: i64,
    /// Append the events the new version adds, as corrections (audited).
    #[arg(long)]
    apply: bool,
    /// Why (recorded in the audit entry with --apply).
    #[arg(long)]
    reason: Option<String>,
}

/// Runs `intake remap`.
pub async fn run(config: &Config, r: RemapArgs) -> Result<ExitCode> {
    let Some(tenants) = load_tenants(&r.mappings) else {
        return Ok(ExitCode::FAILURE);
    };
    let actor = match r.apply {
        true => Some(Actor::from_cli(r.reason).map_err(|e| anyhow::anyhow!("--reason: {e}"))?),
        false => None,
    };
    let store = open_store(config).await?;
    if config.database_url.starts_with("sqlite:") {
        store.migrate().await?;
    }
    let query = MessageQuery {
        tenant: Some(r.tenant.clone()),
        message_type: r.message_type,
        since: r.since,
        until: r.until,
        before: r.before,
        limit: r.limit,
        ..MessageQuery::default()
    };
    let report = match remap(&*store, &tenants, &query, actor.as_ref()).await {
        Ok(report) => report,
        Err(RemapError::NoSuchTenant(t)) => {
            bail!("{} has no tenant {t}", r.mappings.display())
        }
        Err(e) => return Err(e.into()),
    };
    for d in &report.diffs {
        out!("{}", serde_json::to_string(d)?);
    }
    let count = |f: fn(&intake_pipeline::remap::MessageDiff) -> usize| {
        report.diffs.iter().map(f).sum::<usize>()
    };
    eprintln!(
        "{} message(s) compared with version {}: {} unchanged, {} would change \
         ({} event(s) added, {} removed, {} changed); {} appended; {} skipped (raw pruned)",
        report.messages,
        report.version,
        report.unchanged,
        report.diffs.len(),
        count(|d| d.added.len()),
        count(|d| d.removed.len()),
        count(|d| d.changed.len()),
        report.appended,
        report.pruned,
    );
    if let Some(next) = report.next_before {
        eprintln!("more with --before {next}");
    }
    Ok(ExitCode::SUCCESS)
}
