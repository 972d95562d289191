//! `intake events`: stored events as JSON lines, in global order.

use crate::config::Config;
use crate::context::open_store;
use anyhow::Result;
use intake_pipeline::store::EventQuery;
use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

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
