//! `intake prune`: retention of raw messages by each tenant's policy
//! (`retention: raw_messages_days` in its tenant.yaml). Empties the raw bytes of messages
//! received more than that many days ago, in batches (each one transaction with its audit
//! entry), and prints one JSON line per tenant: its policy, the cutoff, the messages and
//! bytes pruned. Never message content. Rows, events and dead letters stay; a message
//! whose dead letter is open keeps its raw.

use crate::config::Config;
use crate::context::{load_tenants, open_store, parse_time};
use anyhow::{bail, Result};
use chrono::{DateTime, Duration, SecondsFormat, Utc};
use intake_pipeline::audit::Actor;
use intake_pipeline::store::{PruneRequest, Pruned, Store};
use serde_json::json;
use std::process::ExitCode;

/// What to prune.
#[derive(Debug, clap::Args)]
pub struct PruneArgs {
    /// Count what would be pruned (the same selection, batch by batch); change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Only this tenant.
    #[arg(long)]
    tenant: Option<String>,
    /// Messages per transaction.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(i64).range(1..=10000))]
    batch: i64,
    /// Take this instant (RFC 3339) as now: the cutoff is this minus each tenant's days.
    #[arg(long, hide = true, value_parser = parse_time)]
    as_of: Option<DateTime<Utc>>,
}

/// Runs `intake prune`.
pub async fn run(config: &Config, args: PruneArgs) -> Result<ExitCode> {
    let Some(tenants) = load_tenants(&config.mappings_dir) else {
        return Ok(ExitCode::FAILURE);
    };
    if let Some(t) = args.tenant.as_deref().filter(|t| tenants.get(t).is_none()) {
        bail!("{} has no tenant {t}", config.mappings_dir.display());
    }
    let actor = Actor::from_cli(None).map_err(|e| anyhow::anyhow!("{e}"))?;
    let store = open_store(config).await?;
    if config.database_url.starts_with("sqlite:") {
        store.migrate().await?;
    }
    let now = args.as_of.unwrap_or_else(Utc::now);
    let (mut messages, mut bytes) = (0, 0);
    let chosen = tenants
        .iter()
        .filter(|t| args.tenant.as_ref().is_none_or(|name| *name == t.name));
    for tenant in chosen {
        let Some(days) = tenant.raw_retention_days else {
            eprintln!(
                "{}: no retention policy; raw messages are kept",
                tenant.name
            );
            continue;
        };
        let cutoff = now - Duration::days(i64::from(days));
        let total = prune_tenant(&*store, &tenant.name, days, cutoff, &args, &actor).await?;
        out!(
            "{}",
            json!({
                "tenant": tenant.name,
                "raw_messages_days": days,
                "cutoff": cutoff.to_rfc3339_opts(SecondsFormat::Secs, true),
                "messages": total.messages,
                "bytes": total.bytes,
                "dry_run": args.dry_run,
            })
        );
        messages += total.messages;
        bytes += total.bytes;
    }
    let verb = if args.dry_run {
        "would prune"
    } else {
        "pruned"
    };
    eprintln!("{verb} {messages} raw message(s), {bytes} byte(s)");
    Ok(ExitCode::SUCCESS)
}

/// Prunes (or counts) one tenant's messages received before `cutoff`, batch by batch.
async fn prune_tenant(
    store: &dyn Store,
    tenant: &str,
    days: u32,
    cutoff: DateTime<Utc>,
    args: &PruneArgs,
    actor: &Actor,
) -> Result<Pruned> {
    let mut total = Pruned::default();
    loop {
        let request = PruneRequest {
            tenant,
            days,
            cutoff,
            after: total.last,
            limit: args.batch,
        };
        let batch = match args.dry_run {
            true => store.preview_prune(&request).await?,
            false => store.prune_raw(&request, actor).await?,
        };
        total.messages += batch.messages;
        total.bytes += batch.bytes;
        total.last = batch.last.or(total.last);
        if batch.messages < args.batch as u64 {
            return Ok(total);
        }
        if !args.dry_run {
            eprintln!("{tenant}: pruned {} so far", total.messages);
        }
    }
}
