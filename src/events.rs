//! `intake events`: stored events as JSON lines, in global order; `intake streams`: one
//! stream found by its type and natural key.

use crate::config::Config;
use crate::context::open_store;
use anyhow::Result;
use intake_pipeline::store::EventQuery;
use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

/// Prints the stream of `tenant` with this type and key: its id (the documented UUIDv5),
/// its version and its events, as one JSON object. Exit 1 when it holds no event.
pub async fn stream(
    config: &Config,
    tenant: &str,
    stream_type: &str,
    key: &str,
) -> Result<ExitCode> {
    let store = open_store(config).await?;
    if config.database_url.starts_with("sqlite:") {
        store.migrate().await?;
    }
    let stream_id = intake_pipeline::event::stream_id(tenant, stream_type, key);
    let mut events = Vec::new();
    let mut after = 0;
    loop {
        let q = EventQuery {
            tenant: Some(tenant.to_string()),
            stream_id: Some(stream_id),
            after,
            limit: 1000,
        };
        let batch = store.read_events(&q).await?;
        let full = batch.len() == 1000;
        after = batch.last().map_or(after, |e| e.global_position);
        events.extend(batch);
        if !full {
            break;
        }
    }
    let version = events.last().map_or(0, |e| e.event_version);
    let found = !events.is_empty();
    out!(
        "{}",
        serde_json::to_string_pretty(&serde_json::json!({
            "tenant": tenant,
            "stream_type": stream_type,
            "stream_id": stream_id,
            "version": version,
            "events": events,
        }))?
    );
    if !found {
        eprintln!("intake: no events in stream {stream_id} of tenant {tenant}");
    }
    Ok(if found {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
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
