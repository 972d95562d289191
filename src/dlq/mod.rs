//! `intake dlq`: support operations on dead letters (list, show, replay, discard). Replays
//! and discards work in batches, each its own transaction with its audit entry, so a bulk
//! operation shows progress and resumes where it stopped; the actor is `cli:<user>`.

mod discard;
mod replay;
mod select;
mod show;

use crate::config::Config;
use crate::context::open_store;
use anyhow::{bail, Result};
use clap::Subcommand;
use select::Select;
use std::process::ExitCode;
use uuid::Uuid;

/// What to do with dead letters.
#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// Print dead letters as JSON lines (no message content), oldest first.
    List {
        /// Only this tenant's.
        #[arg(long)]
        tenant: Option<String>,
        /// open, replayed, discarded, or all.
        #[arg(long, default_value = "open")]
        status: String,
    },
    /// One dead letter: its facts and the message's shape (segments and field lengths,
    /// no values); `--raw` writes the message's exact bytes to stdout instead (audited).
    Show {
        /// The letter.
        id: Uuid,
        /// Only if it is this tenant's.
        #[arg(long)]
        tenant: Option<String>,
        /// The original bytes, unchanged (PHI: for a terminal you may show them on).
        #[arg(long)]
        raw: bool,
        /// Why you look at the raw message (recorded in the audit entry).
        #[arg(long)]
        reason: Option<String>,
    },
    /// Map open dead letters again with the current mappings; store the events of those
    /// that map now and mark them replayed. Prints one JSON line per letter.
    Replay {
        #[command(flatten)]
        select: Select,
        /// Print the events each letter would produce and what would be appended; store
        /// nothing, lock nothing.
        #[arg(long)]
        dry_run: bool,
        /// Why (recorded in the audit entry).
        #[arg(long)]
        reason: Option<String>,
    },
    /// Mark open dead letters discarded (they stay stored, with their raw message). Needs
    /// a filter (`--id`, `--code`, `--type`, `--facility`, `--since`, `--until`) or `--all`,
    /// and a `--reason`.
    Discard {
        #[command(flatten)]
        select: Select,
        /// Every open letter the other options (tenant, limit) allow.
        #[arg(long, conflicts_with_all = ["ids", "code", "message_type", "facility", "since", "until"])]
        all: bool,
        /// List what would be discarded; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Why (required; recorded in the audit entry).
        #[arg(long)]
        reason: Option<String>,
    },
}

/// Runs one `intake dlq` operation.
pub async fn run(config: &Config, command: DlqCommand) -> Result<ExitCode> {
    let store = open_store(config).await?;
    if config.database_url.starts_with("sqlite:") {
        store.migrate().await?;
    }
    match command {
        DlqCommand::List { tenant, status } => {
            if !["open", "replayed", "discarded", "all"].contains(&status.as_str()) {
                bail!("--status must be open, replayed, discarded or all");
            }
            for d in store.dead_letters(tenant.as_deref()).await? {
                if status == "all" || d.status == status {
                    out!("{}", serde_json::to_string(&d)?);
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        DlqCommand::Show {
            id,
            tenant,
            raw,
            reason,
        } => show::run(&*store, id, tenant, raw, reason).await,
        DlqCommand::Replay {
            select,
            dry_run,
            reason,
        } => replay::run(config, &*store, select, dry_run, reason).await,
        DlqCommand::Discard {
            select,
            all,
            dry_run,
            reason,
        } => discard::run(&*store, select, all, dry_run, reason).await,
    }
}

/// The CLI's actor, with `reason`; a bad reason is a usage error.
fn actor(reason: Option<String>) -> Result<intake_pipeline::audit::Actor> {
    intake_pipeline::audit::Actor::from_cli(reason).map_err(|e| anyhow::anyhow!("--reason: {e}"))
}

/// Names on stderr each asked-for id that was not taken (not an open letter); true when
/// every one was.
fn report_missing(select: &Select, done: &[Uuid]) -> bool {
    let missing: Vec<_> = select.ids.iter().filter(|i| !done.contains(i)).collect();
    for id in &missing {
        eprintln!("{id}: not an open dead letter{}", select.of_tenant());
    }
    missing.is_empty()
}
