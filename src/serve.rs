//! `intake serve`: migrate, load mappings (and watch them for edits), start the writer
//! and the listeners, and shut down cleanly on SIGTERM or Ctrl-C (stop accepting, finish
//! messages in flight, commit the last batch).

use crate::commands::{load_tenants, open_store};
use crate::config::Config;
use anyhow::{bail, Context, Result};
use intake_adapters::http::{router, Auth, HttpState};
use intake_adapters::mllp::listener::MllpListener;
use intake_pipeline::ingest::Ingest;
use intake_pipeline::mapping::reload::{spawn_watcher, TenantsHandle};
use intake_pipeline::writer::{Writer, WriterConfig};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// How long connections get to finish their current message after a shutdown signal.
const DRAIN: Duration = Duration::from_secs(10);

pub async fn serve(config: Config) -> Result<ExitCode> {
    let broker = match config.broker() {
        Some(a) => Some((a.to_adapter(), intake_adapters::amqp::parse_url(&a.url)?)),
        None => None,
    };
    config.check_fhir_pull()?;
    let pulls = config
        .fhir_pull
        .iter()
        .map(|p| {
            let adapter = p.to_adapter()?;
            intake_adapters::fhir_pull::validate(&adapter)?;
            Ok(adapter)
        })
        .collect::<Result<Vec<_>>>()?;
    let store = open_store(&config).await?;
    store
        .prepare_serving()
        .await
        .context("preparing the database")?;
    let Some(tenants) = load_tenants(&config.mappings_dir) else {
        return Ok(ExitCode::FAILURE);
    };
    for l in &config.mllp {
        if let Some(t) = &l.tenant {
            if tenants.get(t).is_none() {
                bail!(
                    "MLLP listener {} is bound to tenant {t:?}, which has no folder in {}",
                    l.addr,
                    config.mappings_dir.display()
                );
            }
        }
    }
    for p in &pulls {
        if tenants.get(&p.tenant).is_none() {
            bail!(
                "[[fhir_pull]] is for tenant {:?}, which has no folder in {}",
                p.tenant,
                config.mappings_dir.display()
            );
        }
    }
    let tenants = TenantsHandle::new(Arc::new(tenants));
    let writer_config = WriterConfig {
        max_batch: config.writer.max_batch,
        max_wait: Duration::from_micros(config.writer.max_wait_us),
        ..WriterConfig::default()
    };
    let (writer, writer_task) = Writer::spawn(store.clone(), writer_config);
    let committed = writer.committed();
    let ingest = Ingest::new(tenants.clone(), writer);
    let (stop, stopped) = watch::channel(false);
    // With a broker configured, every committed event is also in the outbox; this task
    // sends it on. Ingest never waits for it.
    let (outbox, publisher) = match broker {
        Some((settings, uri)) => {
            let (status, task) = intake_adapters::amqp::spawn(
                store.clone(),
                settings,
                uri,
                committed,
                stopped.clone(),
            );
            (Some(status), Some(task))
        }
        None => (None, None),
    };
    let watcher = match config.mappings.reload_interval_ms {
        0 => None,
        ms => Some(spawn_watcher(
            config.mappings_dir.clone(),
            tenants,
            Duration::from_millis(ms),
            config
                .mllp
                .iter()
                .filter_map(|l| l.tenant.clone())
                .collect(),
            stopped.clone(),
        )),
    };

    // Pollers feed the same ingest (and writer) as the listeners; each stops after the
    // resource in flight is committed.
    let mut pollers = Vec::new();
    for p in pulls {
        let tenant = p.tenant.clone();
        let types = p.resource_types.join(",");
        pollers.push(intake_adapters::fhir_pull::spawn(
            p,
            ingest.clone(),
            store.clone(),
            stopped.clone(),
        )?);
        out!("intake polling: fhir tenant={tenant} types={types}");
    }

    let mut listeners = tokio::task::JoinSet::new();
    for l in &config.mllp {
        let listener = MllpListener::bind(l.to_adapter())
            .await
            .with_context(|| format!("binding MLLP listener {}", l.addr))?;
        let addr = listener.local_addr()?;
        match &l.tenant {
            Some(t) => out!("intake listening: mllp {addr} tenant={t}"),
            None => out!("intake listening: mllp {addr} routed"),
        }
        listeners.spawn(listener.run(ingest.clone(), stopped.clone()));
    }

    if config.admin_token.is_none() && config.tenant_tokens.is_empty() {
        tracing::warn!(
            "no INTAKE_ADMIN_TOKEN or tenant tokens configured: every /api request will get 401"
        );
    }
    let auth = Auth {
        admin_token: config.admin_token.clone(),
        tenant_tokens: config.tenant_tokens.clone(),
    };
    let state = HttpState {
        store: store.clone(),
        ingest: ingest.clone(),
        auth: Arc::new(auth),
        outbox,
    };
    let http = tokio::net::TcpListener::bind(config.http.addr)
        .await
        .with_context(|| format!("binding HTTP {}", config.http.addr))?;
    out!("intake listening: http {}", http.local_addr()?);
    let mut http_stop = stopped.clone();
    let http_task = tokio::spawn(async move {
        axum::serve(http, router(state))
            .with_graceful_shutdown(async move {
                let _ = http_stop.changed().await;
            })
            .await
    });
    let http_abort = http_task.abort_handle();
    drop(ingest);

    shutdown_signal().await;
    tracing::info!("shutting down: finishing messages in flight");
    let _ = stop.send(true);
    let poller_aborts: Vec<_> = pollers.iter().map(|p| p.abort_handle()).collect();
    let drained = tokio::time::timeout(DRAIN, async {
        while listeners.join_next().await.is_some() {}
        let _ = http_task.await;
        for p in pollers {
            let _ = p.await;
        }
    })
    .await;
    if drained.is_err() {
        tracing::warn!("connections still busy after {DRAIN:?}; closing them");
        listeners.abort_all();
        http_abort.abort();
        for p in poller_aborts {
            p.abort();
        }
    }
    if let Some(w) = watcher {
        w.await.ok();
    }
    // Every Writer handle is gone now: the writer commits what is queued and stops.
    writer_task.await.ok();
    // The publisher ends after its round in flight; what is left waits in the outbox.
    if let Some(p) = publisher {
        if tokio::time::timeout(DRAIN, p).await.is_err() {
            tracing::warn!("publisher still waiting for the broker after {DRAIN:?}; leaving its round to the outbox");
        }
    }
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
