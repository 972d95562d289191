//! `intake serve`: migrate, load mappings (and watch them for edits), start the writer
//! and every configured component, and shut down cleanly on SIGTERM or Ctrl-C (stop
//! accepting, finish messages in flight, commit the last batch).
//!
//! Components are started the same way, whatever they are: each is checked, then built
//! (ports bound, so start-up errors come before anything runs), then run with the engine's
//! `Ingest` until the stop is requested.

use crate::config::Config;
use crate::context::{load_tenants, open_store};
use anyhow::{Context, Result};
use intake_adapters::component::{ConnectionBudget, Env, Stop};
use intake_adapters::http::auth::Auth;
use intake_adapters::telemetry::Telemetry;
use intake_pipeline::ingest::Ingest;
use intake_pipeline::mapping::reload::{spawn_watcher, TenantsHandle};
use intake_pipeline::writer::{Writer, WriterConfig};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinSet;

/// How long components get to finish their work in flight after a shutdown signal.
const DRAIN: Duration = Duration::from_secs(10);

pub async fn serve(config: Config) -> Result<ExitCode> {
    let components = config.components();
    for c in &components {
        c.check()?;
    }
    let store = open_store(&config).await?;
    store
        .prepare_serving()
        .await
        .context("preparing the database")?;
    let Some(tenants) = load_tenants(&config.mappings_dir) else {
        return Ok(ExitCode::FAILURE);
    };
    let env = Env {
        store: store.clone(),
        tenants: Arc::new(tenants),
        mappings_dir: config.mappings_dir.clone(),
        mapping_history: config.mappings.history,
        auth: Arc::new(
            Auth::new(
                config.admin_token.as_deref(),
                config.tenant_tokens.clone(),
                Some(config.tokens_file.clone()),
            )
            .context("reading the tokens")?,
        ),
        telemetry: Telemetry::default(),
        connections: ConnectionBudget::new(config.max_connections_total),
    };
    // A token for a tenant that does not exist is a typo waiting to become a leak.
    for tenant in config.tenant_tokens.keys() {
        env.require_tenant("[tenant_tokens] entry", tenant)?;
    }
    for tenant in env.auth.file_tenants() {
        env.require_tenant("tokens file entry", &tenant)?;
    }
    let mut built = Vec::with_capacity(components.len());
    for c in &components {
        built.push(c.build(&env).await?);
    }

    let tenants = TenantsHandle::new(env.tenants.clone());
    let writer_config = WriterConfig {
        max_batch: config.writer.max_batch,
        max_wait: Duration::from_micros(config.writer.max_wait_us),
        max_batch_events: config.writer.max_batch_events,
        ..WriterConfig::default()
    };
    let (writer, writer_task) = Writer::spawn(store, writer_config);
    let ingest = Ingest::new(tenants.clone(), writer);
    ingest
        .metrics()
        .set_tenant_labels(config.http.metrics_tenant_labels);
    let (stop, shutdown) = Stop::new();
    // The census read model, kept current from the events as they commit.
    let census = intake_pipeline::census::spawn_runner(
        env.store.clone(),
        tenants.clone(),
        ingest.metrics().clone(),
        Duration::from_millis(200),
        shutdown.receiver(),
    );
    // Every version that goes live is kept in the history, from this start on.
    let stage = Arc::new(crate::stage::SampleStage {
        samples_dir: config.mappings.samples_dir.clone(),
        store: env.store.clone(),
        keep: config.mappings.history,
        gate: config.mappings.staged,
        runtime: tokio::runtime::Handle::current(),
    });
    for t in env.tenants.iter() {
        stage.record(t, "start").await;
    }
    let watcher = match config.mappings.reload_interval_ms {
        0 => None,
        ms => Some(spawn_watcher(
            config.mappings_dir.clone(),
            tenants,
            Duration::from_millis(ms),
            components
                .iter()
                .flat_map(|c| c.bound_tenants())
                .chain(config.tenant_tokens.keys().cloned())
                .collect(),
            Some(stage as Arc<dyn intake_pipeline::mapping::reload::Stage>),
            shutdown.receiver(),
        )),
    };
    let mut running = JoinSet::new();
    for b in built {
        for line in &b.banner {
            out!("intake {line}");
        }
        running.spawn(b.component.run(ingest.clone(), shutdown.clone()));
    }
    // The components hold the only handles now: once they end, the writer can stop.
    drop(ingest);

    shutdown_signal().await;
    tracing::info!("shutting down: finishing messages in flight");
    stop.request();
    let drained = tokio::time::timeout(DRAIN, async {
        while running.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!("components still busy after {DRAIN:?}; stopping them");
        running.abort_all();
        while running.join_next().await.is_some() {}
    }
    if let Some(w) = watcher {
        w.await.ok();
    }
    census.await.ok();
    // Every Writer handle is gone now: the writer commits what is queued and stops.
    writer_task.await.ok();
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                    return;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
