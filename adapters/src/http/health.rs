//! `GET /healthz`, `/readyz` and `/metrics`: ids and codes only. Health needs no token;
//! `/metrics` names every tenant and its volume, so on the API address it needs the admin
//! token, and only the separate metrics address (`[http] metrics_addr`) serves it openly.

use super::error::ApiError;
use super::guard::scoped;
use super::state::HttpState;
use super::tokens::Scope;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

/// The health routes of the API address: `/metrics` needs the admin scope.
pub fn routes() -> Router<HttpState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", scoped(Scope::Admin, get(metrics)))
}

/// The routes of the metrics address (`[http] metrics_addr`): no token.
pub fn open_routes() -> Router<HttpState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
}

async fn healthz() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

/// Ready when the store answers. Components add their sections (the outbox: its backlog
/// and the broker's state); a broker outage does not make intake unready.
async fn readyz(State(s): State<HttpState>) -> Response {
    if s.store.ping().await.is_err() {
        return ApiError::StoreUnavailable.into_response();
    }
    let Ok(sections) = s.telemetry.readiness().await else {
        return ApiError::StoreUnavailable.into_response();
    };
    let mut body = json!({"status": "ready"});
    for (key, value) in sections {
        body[key] = value;
    }
    Json(body).into_response()
}

/// The pipeline's counters, then every component's series (Prometheus text format).
async fn metrics(State(s): State<HttpState>) -> Response {
    let content_type = [(header::CONTENT_TYPE, "text/plain; version=0.0.4")];
    let mut text = s.ingest.metrics_text();
    text.push_str(&s.telemetry.metrics().await);
    (content_type, text).into_response()
}
