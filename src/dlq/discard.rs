//! `intake dlq discard`: mark letters discarded, by id, filter or `--all`, with a reason.

use super::select::{in_batches, Select};
use anyhow::{bail, Result};
use intake_pipeline::store::Store;
use serde_json::json;
use std::process::ExitCode;

/// Discards (or, with `dry_run`, lists) the letters `select` takes.
pub async fn run(
    store: &dyn Store,
    select: Select,
    all: bool,
    dry_run: bool,
    reason: Option<String>,
) -> Result<ExitCode> {
    if !select.narrows() && !all {
        bail!("say which letters: --id, --code, --type, --facility, --since/--until, or --all (with --tenant to keep to one tenant)");
    }
    if reason.is_none() && !dry_run {
        bail!("say why: --reason TEXT (it is recorded in the tenant's audit stream)");
    }
    let actor = super::actor(reason)?;
    let status = if dry_run {
        "would_discard"
    } else {
        "discarded"
    };
    let progress = |n, last| {
        if !dry_run {
            eprintln!("discarded {n} so far; last id {last}");
        }
    };
    let done = in_batches(
        &select,
        |filter| {
            let actor = &actor;
            async move {
                let ids = match dry_run {
                    true => filter
                        .select(
                            store.dead_letters(filter.tenant.as_deref()).await?,
                            Some("open"),
                        )
                        .into_iter()
                        .map(|d| d.id)
                        .collect(),
                    false => store.discard_dead_letters(&filter, actor).await?,
                };
                for id in &ids {
                    out!("{}", json!({"id": id, "status": status}));
                }
                Ok(ids)
            }
        },
        progress,
    )
    .await?;
    let complete = super::report_missing(&select, &done);
    let verb = if dry_run {
        "would discard"
    } else {
        "discarded"
    };
    eprintln!("{verb} {} dead letter(s)", done.len());
    Ok(if complete {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
