//! `intake dlq`: support operations on dead letters (list, show, replay, discard).

use crate::config::Config;
use crate::context::{load_tenants, open_store};
use anyhow::{bail, Result};
use clap::Subcommand;
use intake_pipeline::process;
use intake_pipeline::store::DeadLetterFilter;
use serde_json::json;
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
    /// no values); `--raw` writes the message's exact bytes to stdout instead.
    Show {
        /// The letter.
        id: Uuid,
        /// Only if it is this tenant's.
        #[arg(long)]
        tenant: Option<String>,
        /// The original bytes, unchanged (PHI: for a terminal you may show them on).
        #[arg(long)]
        raw: bool,
    },
    /// Map open dead letters again with the current mappings; store the events of those
    /// that map now and mark them replayed. Prints one JSON line per letter.
    Replay {
        #[command(flatten)]
        select: Select,
        /// Show what would happen; store nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Mark open dead letters discarded (they stay stored, with their raw message). Needs
    /// `--id`, `--code` or `--all`: a bare discard takes nothing.
    Discard {
        #[command(flatten)]
        select: Select,
        /// Every open letter the other options (tenant, limit) allow.
        #[arg(long, conflicts_with_all = ["ids", "code"])]
        all: bool,
        /// List what would be discarded; change nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

/// Which open dead letters an operation takes.
#[derive(Debug, clap::Args)]
pub struct Select {
    /// Only this tenant's.
    #[arg(long)]
    tenant: Option<String>,
    /// Only these letters (repeatable).
    #[arg(long = "id")]
    ids: Vec<Uuid>,
    /// Only letters with this reason code.
    #[arg(long)]
    code: Option<String>,
    /// At most this many.
    #[arg(long, default_value_t = 1000)]
    limit: i64,
}

impl Select {
    fn filter(self) -> DeadLetterFilter {
        DeadLetterFilter {
            tenant: self.tenant,
            ids: self.ids,
            code: self.code,
            limit: self.limit,
        }
    }
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
        DlqCommand::Replay { select, dry_run } => {
            let Some(tenants) = load_tenants(&config.mappings_dir) else {
                return Ok(ExitCode::FAILURE);
            };
            let remap = move |raw| process(raw, &tenants);
            let results = store
                .replay_dead_letters(&select.filter(), &remap, dry_run)
                .await?;
            let failing = results.iter().filter(|r| r.still_failing.is_some()).count();
            for r in &results {
                out!("{}", serde_json::to_string(r)?);
            }
            let verb = if dry_run { "would replay" } else { "replayed" };
            eprintln!(
                "{verb} {} dead letter(s), {} appended event(s); {failing} still failing",
                results.len() - failing,
                results.iter().map(|r| r.appended).sum::<usize>()
            );
            Ok(if failing == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        DlqCommand::Show { id, tenant, raw } => {
            let letter = store
                .dead_letters(tenant.as_deref())
                .await?
                .into_iter()
                .find(|d| d.id == id);
            let message = store.dead_letter_message(tenant.as_deref(), id).await?;
            let (Some(letter), Some(message)) = (letter, message) else {
                bail!(
                    "no dead letter {id}{}",
                    tenant
                        .map(|t| format!(" of tenant {t}"))
                        .unwrap_or_default()
                );
            };
            if raw {
                use std::io::Write as _;
                std::io::stdout().write_all(&message)?;
                return Ok(ExitCode::SUCCESS);
            }
            let shape = intake_pipeline::hl7::mask::masked_structure(&message);
            out!(
                "{}",
                serde_json::to_string_pretty(
                    &json!({"dead_letter": letter, "bytes": message.len(), "structure": shape})
                )?
            );
            Ok(ExitCode::SUCCESS)
        }
        DlqCommand::Discard {
            select,
            all,
            dry_run,
        } => {
            if select.ids.is_empty() && select.code.is_none() && !all {
                bail!("say which letters: --id ID, --code CODE or --all (with --tenant to keep to one tenant)");
            }
            let filter = select.filter();
            let done = match dry_run {
                true => filter
                    .select(store.dead_letters(filter.tenant.as_deref()).await?)
                    .into_iter()
                    .map(|d| d.id)
                    .collect(),
                false => store.discard_dead_letters(&filter).await?,
            };
            let status = if dry_run {
                "would_discard"
            } else {
                "discarded"
            };
            for id in &done {
                out!("{}", json!({"id": id, "status": status}));
            }
            let missing: Vec<_> = filter.ids.iter().filter(|i| !done.contains(i)).collect();
            for id in &missing {
                eprintln!(
                    "{id}: not an open dead letter{}",
                    filter
                        .tenant
                        .as_ref()
                        .map(|t| format!(" of tenant {t}"))
                        .unwrap_or_default()
                );
            }
            let verb = if dry_run {
                "would discard"
            } else {
                "discarded"
            };
            eprintln!("{verb} {} dead letter(s)", done.len());
            Ok(if missing.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
    }
}
