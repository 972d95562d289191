//! `intake messages`: find inbound messages (newest first) by tenant, outcome, type,
//! facility, control id, time received or business key, each with its outcome, reason,
//! events (by stream) and dead letter. Never their content.

use crate::config::Config;
use crate::context::{open_store, parse_time};
use anyhow::{bail, Result};
use chrono::{DateTime, Utc};
use intake_pipeline::store::messages::{KeyKind, MessageOutcome, MessageQuery};
use std::process::ExitCode;
use uuid::Uuid;

/// Which messages to find.
#[derive(Debug, clap::Args)]
pub struct Find {
    /// Only this tenant's.
    #[arg(long)]
    tenant: Option<String>,
    /// events, filtered or dead_lettered.
    #[arg(long)]
    outcome: Option<String>,
    /// Only this message type (`ADT^A01`, or a FHIR resource type).
    #[arg(long = "type")]
    message_type: Option<String>,
    /// Only from this sending facility (MSH-4).
    #[arg(long)]
    facility: Option<String>,
    /// Only with this control id (MSH-10).
    #[arg(long)]
    control_id: Option<String>,
    /// Received at or after this time (RFC 3339).
    #[arg(long, value_parser = parse_time)]
    since: Option<DateTime<Utc>>,
    /// Received before this time (RFC 3339).
    #[arg(long, value_parser = parse_time)]
    until: Option<DateTime<Utc>>,
    /// Whose events carry this MRN (needs --tenant).
    #[arg(long, conflicts_with = "visit")]
    mrn: Option<String>,
    /// Whose events carry this visit number (needs --tenant).
    #[arg(long)]
    visit: Option<String>,
    /// Older than this message (the next page after the last id printed).
    #[arg(long)]
    before: Option<Uuid>,
    /// At most this many.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(i64).range(1..=1000))]
    limit: i64,
}

/// Prints the messages `find` selects as JSON lines.
pub async fn run(config: &Config, find: Find) -> Result<ExitCode> {
    let outcome = match find.outcome.as_deref() {
        None => None,
        Some(o) => match MessageOutcome::from_name(o) {
            Some(o) => Some(o),
            None => bail!("--outcome must be events, filtered or dead_lettered"),
        },
    };
    let key = match (find.mrn, find.visit) {
        (Some(m), _) => Some((KeyKind::Mrn, m)),
        (None, Some(v)) => Some((KeyKind::Visit, v)),
        (None, None) => None,
    };
    if key.is_some() && find.tenant.is_none() {
        bail!("--mrn and --visit search one tenant's index: give --tenant");
    }
    let store = open_store(config).await?;
    if config.database_url.starts_with("sqlite:") {
        store.migrate().await?;
    }
    let query = MessageQuery {
        tenant: find.tenant,
        outcome,
        message_type: find.message_type,
        sending_facility: find.facility,
        control_id: find.control_id,
        since: find.since,
        until: find.until,
        key,
        before: find.before,
        limit: find.limit,
    };
    let hits = store.find_messages(&query).await?;
    for h in &hits {
        out!("{}", serde_json::to_string(h)?);
    }
    match hits.last() {
        Some(last) if hits.len() as i64 == query.limit => {
            eprintln!("{} message(s); more with --before {}", hits.len(), last.id);
        }
        _ => eprintln!("{} message(s)", hits.len()),
    }
    Ok(ExitCode::SUCCESS)
}
