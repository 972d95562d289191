//! `GET /api/v1/tenants/{tenant}/events`: a tenant's events in global order, paged by
//! position.

use super::error::ApiError;
use super::state::{authorize, HttpState};
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use intake_pipeline::store::EventQuery;
use serde::Deserialize;
use serde_json::json;

/// The events route.
pub fn routes() -> Router<HttpState> {
    Router::new().route("/api/v1/tenants/{tenant}/events", get(events))
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
    let Query(p) = params
        .map_err(|_| ApiError::InvalidQuery("after and limit are integers, stream a UUID"))?;
    let after = p.after.unwrap_or(0);
    let limit = p.limit.unwrap_or(100);
    if after < 0 || !(1..=1000).contains(&limit) {
        return Err(ApiError::InvalidQuery("after >= 0 and 1 <= limit <= 1000"));
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
        .map_err(|_| ApiError::StoreUnavailable)?;
    let next_after = events.last().map(|e| e.global_position).unwrap_or(after);
    Ok(Json(json!({"events": events, "next_after": next_after})).into_response())
}
