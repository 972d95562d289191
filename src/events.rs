//! `intake events`: stored events as JSON lines, in global order; `intake streams`: one
//! stream found by its type and natural key, or by its id, with its state folded from
//! its events, now or at an instant (`--as-of`, `--as-recorded`).

use crate::config::Config;
use crate::context::{open_store, parse_time};
use anyhow::Result;
use intake_pipeline::mapping::catalogue::Catalogue;
use intake_pipeline::mapping::Tenants;
use intake_pipeline::store::EventQuery;
use intake_pipeline::timeline::{self, At, Clock};
use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

/// A point in time asked for on the command line: `--as-of` (the events' own time) or
/// `--as-recorded` (what the store knew), never both.
pub fn instant(as_of: Option<&str>, as_recorded: Option<&str>) -> Result<Option<At>> {
    Ok(match (as_of, as_recorded) {
        (Some(_), Some(_)) => anyhow::bail!("give --as-of or --as-recorded, not both"),
        (Some(t), None) => Some(At {
            clock: Clock::Effective,
            time: parse_time(t)?,
        }),
        (None, Some(t)) => Some(At {
            clock: Clock::Recorded,
            time: parse_time(t)?,
        }),
        (None, None) => None,
    })
}

/// Prints the stream `stream_id` of `tenant`: its id, version, events (those that count
/// at `at`) and its state folded from them, as one JSON object. Exit 1 when it holds no
/// event at all.
pub async fn show(
    config: &Config,
    tenant: &str,
    stream_id: uuid::Uuid,
    at: Option<At>,
) -> Result<ExitCode> {
    let store = open_store(config).await?;
    if config.database_url.starts_with("sqlite:") {
        store.migrate().await?;
    }
    let events = timeline::read_stream(store.as_ref(), tenant, stream_id).await?;
    // The fold follows the tenant's catalogue (its plugins and extension) when its
    // mappings load here; the shipped catalogue otherwise.
    let tenants = Tenants::load(&config.mappings_dir).ok();
    let catalogue = tenants
        .as_ref()
        .and_then(|t| t.get(tenant))
        .map(|t| t.catalogue.clone());
    let catalogue = catalogue.as_deref().unwrap_or(Catalogue::shipped());
    let found = !events.is_empty();
    let mut answer = timeline::describe(catalogue, stream_id, &events, at);
    answer["tenant"] = serde_json::json!(tenant);
    out!("{}", serde_json::to_string_pretty(&answer)?);
    if !found {
        eprintln!("intake: no events in stream {stream_id} of tenant {tenant}");
    }
    Ok(if found {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `intake streams --type --key`: the stream found by its type and natural key (its id
/// is the documented UUIDv5), shown as [`show`] shows it.
pub async fn stream(
    config: &Config,
    tenant: &str,
    stream_type: &str,
    key: &str,
    at: Option<At>,
) -> Result<ExitCode> {
    let stream_id = intake_pipeline::event::stream_id(tenant, stream_type, key);
    show(config, tenant, stream_id, at).await
}

/// Prints events after `after` (of one tenant or stream), then waits for more if `follow`.
pub async fn events(
    config: &Config,
    tenant: Option<String>,
    stream: Option<uuid::Uuid>,
    mut after: i64,
    follow: bool,
) -> Result<ExitCode> {
    let store = open_store(config).await?;
    if config.database_url.starts_with("sqlite:") {
        store.migrate().await?; // a fresh embedded database starts empty
    }
    let mut out = std::io::stdout();
    loop {
        let q = EventQuery {
            tenant: tenant.clone(),
            stream_id: stream,
            after,
            limit: 1000,
        };
        let batch = store.read_events(&q).await?;
        for e in &batch {
            writeln!(out, "{}", serde_json::to_string(e)?)?;
            after = e.global_position;
        }
        out.flush()?;
        if batch.len() < 1000 {
            if !follow {
                return Ok(ExitCode::SUCCESS);
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}
