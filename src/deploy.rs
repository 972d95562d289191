//! `intake mappings`: the history of each tenant's mapping versions that went live, and
//! rollback to an earlier one (README, "Staged deploys").

use crate::config::Config;
use crate::context::open_store;
use anyhow::Result;
use clap::Subcommand;
use intake_pipeline::deploy;
use std::process::ExitCode;

/// What to do with a tenant's mapping versions.
#[derive(Debug, Subcommand)]
pub enum MappingsCommand {
    /// Print the versions that went live, newest first, as JSON lines: seq, version
    /// (hash), applied_at, origin (start, reload, rollback).
    History {
        /// The tenant.
        #[arg(long)]
        tenant: String,
        /// At most this many.
        #[arg(long, default_value_t = 20)]
        limit: i64,
    },
    /// Restore an earlier version's files into the tenant's mappings folder (a running
    /// engine applies them at its next reload): the newest version other than the live
    /// one, or the history row `--to`.
    Rollback {
        /// The tenant.
        #[arg(long)]
        tenant: String,
        /// The history row (`seq`) to restore.
        #[arg(long)]
        to: Option<i64>,
        /// Why (recorded in the tenant's audit stream).
        #[arg(long)]
        reason: Option<String>,
    },
}

/// Runs a `mappings` subcommand.
pub async fn run(config: &Config, command: MappingsCommand) -> Result<ExitCode> {
    let store = open_store(config).await?;
    if config.database_url.starts_with("sqlite:") {
        store.migrate().await?;
    }
    match command {
        MappingsCommand::History { tenant, limit } => {
            let rows = store.mapping_history(&tenant, limit.max(1)).await?;
            if rows.is_empty() {
                eprintln!("intake: no mapping versions recorded for tenant {tenant} (the engine records them when it starts and reloads)");
                return Ok(ExitCode::FAILURE);
            }
            for r in rows {
                out!("{}", serde_json::to_string(&r)?);
            }
            Ok(ExitCode::SUCCESS)
        }
        MappingsCommand::Rollback { tenant, to, reason } => {
            let keep = config.mappings.history;
            let actor = intake_pipeline::audit::Actor::from_cli(reason)
                .map_err(|e| anyhow::anyhow!("--reason: {e}"))?;
            match deploy::rollback(&*store, &config.mappings_dir, &tenant, to, keep, &actor).await {
                Ok(done) => {
                    out!("{}", serde_json::to_string(&done)?);
                    eprintln!(
                        "intake: tenant {tenant} rolled back from {} to {} (files in {}); a running engine applies it at its next reload",
                        done.from,
                        done.to,
                        config.mappings_dir.join(&tenant).display()
                    );
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    if let deploy::RollbackError::DoesNotLoad { errors, .. } = &e {
                        for err in errors {
                            eprintln!("{err}");
                        }
                    }
                    eprintln!("intake: {e}");
                    Ok(ExitCode::FAILURE)
                }
            }
        }
    }
}
