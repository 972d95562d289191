//! The HTTP API (axum): health, events, HL7 v2 over HTTP, FHIR push and dead letters.
//!
//! Every `/api` route needs `Authorization: Bearer <token>` ([`auth`], [`tokens`]): a
//! token sees one tenant or every one, and each route declares the scope it needs. Errors are [`error::ApiError`]s,
//! `{"error": {"code", "message"}}`, and never echo request content (FHIR routes answer
//! an OperationOutcome). This file assembles the routes each resource file declares and
//! runs the server; the resource files import [`state`], [`auth`] and [`error`], never
//! this file.

pub mod auth;
pub mod census;
pub mod config;
pub mod console;
pub mod dead_letters;
pub mod error;
pub mod events;
pub mod fhir;
mod guard;
pub mod health;
pub mod hl7v2;
mod internal_events;
pub mod mappings;
pub mod messages;
pub mod rate_limit;
pub mod remap;
mod serve;
pub mod state;
pub mod streams;
pub mod tokens;

use crate::component::{Built, Component, ComponentConfig, Env, Shutdown, StartError};
use crate::telemetry::Telemetry;
use crate::tls::server::TlsServer;
use auth::Auth;
use axum::extract::DefaultBodyLimit;
use axum::{middleware, Router};
use config::HttpConfig;
use error::ApiError;
use intake_pipeline::ingest::Ingest;
use intake_pipeline::store::Store;
use internal_events::NoTokens;
use state::HttpState;
use std::sync::Arc;
use tokio::net::TcpListener;

/// Largest body accepted by the routes that set no limit of their own (HL7 v2: 1 MiB).
pub const MAX_BODY_BYTES: usize = 1 << 20;

/// Builds the router; `request_timeout` bounds each request.
pub fn router(state: HttpState, request_timeout: std::time::Duration) -> Router {
    Router::new()
        .merge(health::routes())
        .merge(events::routes())
        .merge(streams::routes())
        .merge(census::routes())
        .merge(hl7v2::routes())
        .merge(dead_letters::routes())
        .merge(messages::routes())
        .merge(remap::routes())
        .merge(console::routes())
        .merge(mappings::routes())
        .merge(fhir::routes())
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .fallback(|| async { ApiError::RouteNotFound })
        .layer(middleware::from_fn_with_state(
            state.clone(),
            guard::auth_first,
        ))
        .layer(middleware::from_fn_with_state(
            request_timeout,
            serve::time_limit,
        ))
        .layer(middleware::from_fn(guard::json_errors))
        .with_state(state)
}

/// The bound API server.
pub struct HttpServer {
    listener: TcpListener,
    metrics_listener: Option<TcpListener>,
    store: Arc<dyn Store>,
    auth: Arc<Auth>,
    telemetry: Telemetry,
    mappings_dir: std::path::PathBuf,
    mapping_history: usize,
    limits: serve::Limits,
    tls: Option<Arc<TlsServer>>,
    rates: Arc<rate_limit::RateLimits>,
    request_timeout: std::time::Duration,
}

#[async_trait::async_trait]
impl ComponentConfig for HttpConfig {
    async fn build(&self, env: &Env) -> Result<Built, StartError> {
        if env.auth.is_empty() {
            NoTokens.emit();
        }
        let listener = TcpListener::bind(self.addr)
            .await
            .map_err(|source| StartError::Bind {
                what: "HTTP",
                addr: self.addr,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| StartError::Bind {
            what: "HTTP",
            addr: self.addr,
            source,
        })?;
        let tls = match &self.tls {
            None => None,
            Some(tls) => Some(Arc::new(
                TlsServer::load(
                    tls.clone(),
                    &[b"h2", b"http/1.1"],
                    format!("http {}", self.addr),
                )
                .map_err(|source| StartError::Tls {
                    what: "HTTP",
                    addr: self.addr,
                    source,
                })?,
            )),
        };
        let scheme = if tls.is_some() { "https" } else { "http" };
        let mut banner = vec![format!("listening: {scheme} {addr}")];
        let metrics_listener = match self.metrics_addr {
            None => None,
            Some(at) => {
                let bind_error = |source| StartError::Bind {
                    what: "metrics",
                    addr: at,
                    source,
                };
                let l = TcpListener::bind(at).await.map_err(bind_error)?;
                banner.push(format!(
                    "listening: metrics {}",
                    l.local_addr().map_err(bind_error)?
                ));
                Some(l)
            }
        };
        let server = HttpServer {
            listener,
            metrics_listener,
            store: env.store.clone(),
            auth: env.auth.clone(),
            telemetry: env.telemetry.clone(),
            mappings_dir: env.mappings_dir.clone(),
            mapping_history: env.mapping_history,
            limits: serve::Limits {
                header_read: std::time::Duration::from_millis(self.header_read_timeout_ms.max(1)),
                max_connections: self.max_connections,
                total: env.connections.clone(),
            },
            tls,
            rates: Arc::new(rate_limit::RateLimits::new(
                self.rate_limit_per_token,
                self.rate_limit_per_address,
            )),
            request_timeout: std::time::Duration::from_millis(self.request_timeout_ms.max(1)),
        };
        Ok(Built {
            component: Box::new(server),
            banner,
        })
    }
}

#[async_trait::async_trait]
impl Component for HttpServer {
    /// Serves until shutdown, then lets the requests in flight finish.
    async fn run(self: Box<Self>, ingest: Ingest, mut shutdown: Shutdown) {
        let state = HttpState {
            store: self.store,
            ingest,
            auth: self.auth,
            telemetry: self.telemetry,
            mappings_dir: self.mappings_dir,
            mapping_history: self.mapping_history,
            sessions: Arc::default(),
            rates: self.rates,
        };
        let metrics = self.metrics_listener.map(|listener| {
            let app = health::open_routes()
                .fallback(|| async { ApiError::RouteNotFound })
                .with_state(state.clone());
            let mut stop = shutdown.clone();
            tokio::spawn(serve::serve(
                listener,
                None,
                app,
                self.limits.clone(),
                async move {
                    stop.requested().await;
                },
            ))
        });
        let app = router(state, self.request_timeout);
        serve::serve(self.listener, self.tls, app, self.limits, async move {
            shutdown.requested().await;
        })
        .await;
        if let Some(task) = metrics {
            let _ = task.await;
        }
    }
}
