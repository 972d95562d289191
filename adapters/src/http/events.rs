//! `GET /api/v1/tenants/{tenant}/events`: a tenant's events in global order, paged by
//! position. One stream's events by its id (`?stream=`) or by its type and natural key
//! (`?stream_type=Admission&key=V123`), which the server turns into the same UUIDv5.

use super::auth::Caller;
use super::error::ApiError;
use super::guard::scoped;
use super::state::HttpState;
use super::tokens::Scope;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use intake_pipeline::event;
use intake_pipeline::store::EventQuery;
use serde::Deserialize;
use serde_json::json;

/// The events route.
pub fn routes() -> Router<HttpState> {
    Router::new().route(
        "/api/v1/tenants/{tenant}/events",
        scoped(Scope::Read, get(events)),
    )
}

#[derive(Deserialize)]
struct EventsParams {
    after: Option<i64>,
    limit: Option<i64>,
    stream: Option<uuid::Uuid>,
    stream_type: Option<String>,
    key: Option<String>,
}

impl EventsParams {
    /// The stream asked for, by id or by type and key; errors never echo the key (it is
    /// an MRN or a visit number).
    fn stream(&self, tenant: &str) -> Result<Option<uuid::Uuid>, ApiError> {
        match (
            self.stream,
            self.stream_type.as_deref(),
            self.key.as_deref(),
        ) {
            (id, None, None) => Ok(id),
            (None, Some(ty), Some(key)) if !ty.is_empty() && !key.is_empty() => {
                Ok(Some(event::stream_id(tenant, ty, key)))
            }
            (Some(_), _, _) => Err(ApiError::InvalidQuery(
                "give either stream, or stream_type and key, not both",
            )),
            _ => Err(ApiError::InvalidQuery(
                "stream_type and key go together, and neither may be empty",
            )),
        }
    }
}

async fn events(
    State(s): State<HttpState>,
    Path(tenant): Path<String>,
    _caller: Caller,
    params: Result<Query<EventsParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(p) = params
        .map_err(|_| ApiError::InvalidQuery("after and limit are integers, stream a UUID"))?;
    let after = p.after.unwrap_or(0);
    let limit = p.limit.unwrap_or(100);
    if after < 0 || !(1..=1000).contains(&limit) {
        return Err(ApiError::InvalidQuery("after >= 0 and 1 <= limit <= 1000"));
    }
    let stream_id = p.stream(&tenant)?;
    let q = EventQuery {
        tenant: Some(tenant),
        stream_id,
        after,
        limit,
    };
    let events = s
        .store
        .read_events(&q)
        .await
        .map_err(|_| ApiError::StoreUnavailable)?;
    let next_after = events.last().map(|e| e.global_position).unwrap_or(after);
    let mut body = json!({"events": events, "next_after": next_after});
    if let Some(id) = stream_id {
        body["stream_id"] = json!(id);
    }
    Ok(Json(body).into_response())
}
