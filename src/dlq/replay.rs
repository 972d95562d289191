//! `intake dlq replay`: map letters again with the current mappings, in batches, or
//! preview what that would do.

use super::select::{in_batches, Select};
use crate::config::Config;
use crate::context::load_tenants;
use anyhow::Result;
use intake_pipeline::process;
use intake_pipeline::store::Store;
use std::cell::Cell;
use std::process::ExitCode;

/// Replays (or previews) the letters `select` takes.
pub async fn run(
    config: &Config,
    store: &dyn Store,
    select: Select,
    dry_run: bool,
    reason: Option<String>,
) -> Result<ExitCode> {
    let actor = super::actor(reason)?;
    let Some(tenants) = load_tenants(&config.mappings_dir) else {
        return Ok(ExitCode::FAILURE);
    };
    let remap = move |raw| process(raw, &tenants);
    // Running totals, counted inside each page's future.
    let (events, failing) = (Cell::new(0), Cell::new(0));
    let done = if dry_run {
        in_batches(
            &select,
            |filter| {
                let (remap, events, failing) = (&remap, &events, &failing);
                async move {
                    let previews = store.preview_dead_letters(&filter, remap).await?;
                    for p in &previews {
                        events.set(events.get() + p.would_append);
                        failing.set(failing.get() + usize::from(p.still_failing.is_some()));
                        out!("{}", serde_json::to_string(p)?);
                    }
                    Ok(previews.into_iter().map(|p| p.id).collect())
                }
            },
            |_, _| {},
        )
        .await?
    } else {
        in_batches(
            &select,
            |filter| {
                let (remap, actor, events, failing) = (&remap, &actor, &events, &failing);
                async move {
                    let results = store.replay_dead_letters(&filter, remap, actor).await?;
                    for r in &results {
                        events.set(events.get() + r.appended);
                        failing.set(failing.get() + usize::from(r.still_failing.is_some()));
                        out!("{}", serde_json::to_string(r)?);
                    }
                    Ok(results.into_iter().map(|r| r.id).collect())
                }
            },
            |n, last| eprintln!("replayed {n} so far; last id {last} (resume with --after {last})"),
        )
        .await?
    };
    let (events, failing) = (events.get(), failing.get());
    let complete = super::report_missing(&select, &done);
    let (verb, appended) = match dry_run {
        true => ("would replay", "would append"),
        false => ("replayed", "appended"),
    };
    eprintln!(
        "{verb} {} dead letter(s), {appended} {events} event(s); {failing} still failing",
        done.len() - failing
    );
    Ok(if failing == 0 && complete {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
