//! The HTTP API (axum): health, events, HL7 v2 over HTTP, and FHIR push ([`crate::fhir`]).
//!
//! Every `/api` route needs `Authorization: Bearer <token>`: an admin token sees every
//! tenant, a tenant token only its own. Errors are `{"error": {"code", "message"}}` and
//! never echo request content.

use crate::mllp::listener::ack_for;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use intake_pipeline::ingest::Ingest;
use intake_pipeline::store::{EventQuery, Store};
use intake_pipeline::{AckCode, RawMessage};
use serde::Deserialize;
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Arc;
use subtle::ConstantTimeEq;

/// Bearer tokens.
#[derive(Debug, Clone, Default)]
pub struct Auth {
    /// Sees every tenant.
    pub admin_token: Option<String>,
    /// tenant id -> token.
    pub tenant_tokens: BTreeMap<String, String>,
}

enum Caller {
    Admin,
    Tenant(String),
}

/// Shared state of the HTTP server.
#[derive(Clone)]
pub struct HttpState {
    /// Store for reads.
    pub store: Arc<dyn Store>,
    /// Processing and writes.
    pub ingest: Ingest,
    /// Tokens.
    pub auth: Arc<Auth>,
    /// The outbox publisher's state, when a broker is configured.
    pub outbox: Option<Arc<crate::amqp::PublisherStatus>>,
}

/// An API error with a stable code.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: &'static str,
}

impl ApiError {
    pub(crate) const fn new(status: StatusCode, code: &'static str, message: &'static str) -> Self {
        ApiError {
            status,
            code,
            message,
        }
    }
}

impl ApiError {
    /// The HTTP status.
    pub(crate) fn status(&self) -> StatusCode {
        self.status
    }

    /// The stable error code.
    pub(crate) fn code(&self) -> &'static str {
        self.code
    }

    /// The fixed message.
    pub(crate) fn message(&self) -> &'static str {
        self.message
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error": {"code": self.code, "message": self.message}});
        (self.status, Json(body)).into_response()
    }
}

const UNAUTHORIZED: ApiError = ApiError::new(
    StatusCode::UNAUTHORIZED,
    "UNAUTHORIZED",
    "missing or invalid bearer token",
);
const FORBIDDEN: ApiError = ApiError::new(
    StatusCode::FORBIDDEN,
    "FORBIDDEN",
    "this token does not grant access to this tenant",
);
const TENANT_NOT_FOUND: ApiError =
    ApiError::new(StatusCode::NOT_FOUND, "TENANT_NOT_FOUND", "no such tenant");
pub(crate) const STORE_UNAVAILABLE: ApiError = ApiError::new(
    StatusCode::SERVICE_UNAVAILABLE,
    "STORE_UNAVAILABLE",
    "the event store is unavailable",
);

/// Largest HL7 v2 body accepted over HTTP.
pub const MAX_BODY_BYTES: usize = 1 << 20;

/// Builds the router.
pub fn router(state: HttpState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/api/v1/tenants/{tenant}/events", get(events))
        .route("/api/v1/tenants/{tenant}/hl7v2", post(hl7v2))
        .merge(crate::dead_letters::routes())
        .merge(crate::fhir::routes())
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "NOT_FOUND", "no such route") })
        .with_state(state)
}

/// Ready when the store answers. A broker outage does not make intake unready (ingest
/// goes on into the outbox); the outbox section shows it and the backlog.
async fn readyz(State(s): State<HttpState>) -> Response {
    if s.store.ping().await.is_err() {
        return STORE_UNAVAILABLE.into_response();
    }
    let Some(status) = &s.outbox else {
        return Json(json!({"status": "ready"})).into_response();
    };
    match s.store.outbox_backlog().await {
        Ok(backlog) => Json(json!({
            "status": "ready",
            "outbox": {
                "backlog": backlog,
                "broker": if status.connected() { "connected" } else { "disconnected" },
            }
        }))
        .into_response(),
        Err(_) => STORE_UNAVAILABLE.into_response(),
    }
}

/// Counters in Prometheus text format: ids and codes only, so no token is needed.
async fn metrics(State(s): State<HttpState>) -> Response {
    let content_type = [(header::CONTENT_TYPE, "text/plain; version=0.0.4")];
    let mut text = s.ingest.metrics_text();
    if let Some(status) = &s.outbox {
        // Without the gauge when the store does not answer; the counters still show.
        text.push_str(&status.render(s.store.outbox_backlog().await.ok()));
    }
    (content_type, text).into_response()
}

fn caller(auth: &Auth, headers: &HeaderMap) -> Result<Caller, ApiError> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or(UNAUTHORIZED)?;
    let eq = |a: &str| bool::from(a.as_bytes().ct_eq(token.as_bytes()));
    if auth.admin_token.as_deref().is_some_and(eq) {
        return Ok(Caller::Admin);
    }
    auth.tenant_tokens
        .iter()
        .find(|(_, t)| eq(t))
        .map(|(tenant, _)| Caller::Tenant(tenant.clone()))
        .ok_or(UNAUTHORIZED)
}

/// Checks the token grants `tenant`, and that the tenant exists.
pub(crate) fn authorize(s: &HttpState, headers: &HeaderMap, tenant: &str) -> Result<(), ApiError> {
    match caller(&s.auth, headers)? {
        Caller::Tenant(t) if t != tenant => return Err(FORBIDDEN),
        _ => {}
    }
    if s.ingest.tenants().get(tenant).is_none() {
        return Err(TENANT_NOT_FOUND);
    }
    Ok(())
}

#[derive(Deserialize)]
struct EventsParams {
    after: Option<i64>,
    limit: Option<i64>,
    stream: Option<uuid::Uuid>,
}

async fn events(
    State(s): State<HttpState>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    params: Result<Query<EventsParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    authorize(&s, &headers, &tenant)?;
    let Query(p) = params.map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "INVALID_QUERY",
            "after and limit are integers, stream a UUID",
        )
    })?;
    let after = p.after.unwrap_or(0);
    let limit = p.limit.unwrap_or(100);
    if after < 0 || !(1..=1000).contains(&limit) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "INVALID_QUERY",
            "after >= 0 and 1 <= limit <= 1000",
        ));
    }
    let q = EventQuery {
        tenant: Some(tenant),
        stream_id: p.stream,
        after,
        limit,
    };
    let events = s
        .store
        .read_events(&q)
        .await
        .map_err(|_| STORE_UNAVAILABLE)?;
    let next_after = events.last().map(|e| e.global_position).unwrap_or(after);
    Ok(Json(json!({"events": events, "next_after": next_after})).into_response())
}

async fn hl7v2(
    State(s): State<HttpState>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, ApiError> {
    authorize(&s, &headers, &tenant)?;
    let body = body.map_err(|e| match e.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "PAYLOAD_TOO_LARGE",
            "the body exceeds the size limit (1 MiB)",
        ),
        _ => ApiError::new(
            StatusCode::BAD_REQUEST,
            "INVALID_BODY",
            "the body could not be read",
        ),
    })?;
    let result = s
        .ingest
        .ingest(RawMessage::new(Some(tenant), "http", body.to_vec()))
        .await;
    let status = match (result.stored, result.ack) {
        (None, _) => StatusCode::SERVICE_UNAVAILABLE,
        (Some(_), AckCode::Reject) => StatusCode::BAD_REQUEST,
        _ => StatusCode::OK,
    };
    let ack = ack_for(&result);
    Ok((
        status,
        [(header::CONTENT_TYPE, "x-application/hl7-v2+er7")],
        ack,
    )
        .into_response())
}
