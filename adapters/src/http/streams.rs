//! `GET /api/v1/tenants/{tenant}/streams/{id}`: one stream's events and its state folded
//! from them; `?as_of=RFC3339` for the state by the events' own time at that instant,
//! `?as_recorded=RFC3339` for what the store knew then (`pipeline/src/timeline.rs`). The
//! answer's `clock` says which one it uses.

use super::auth::Caller;
use super::error::ApiError;
use super::guard::scoped;
use super::state::HttpState;
use super::tokens::Scope;
use axum::extract::{Path, Query, State};
use axum::routing::get;
use axum::{Json, Router};
use intake_pipeline::mapping::catalogue::Catalogue;
use intake_pipeline::timeline::{self, At, Clock};
use serde::Deserialize;
use serde_json::Value;
use uuid::Uuid;

/// The stream route.
pub fn routes() -> Router<HttpState> {
    Router::new().route(
        "/api/v1/tenants/{tenant}/streams/{id}",
        scoped(Scope::Read, get(stream)),
    )
}

/// `as_of` / `as_recorded`, shared with the census route.
#[derive(Deserialize, Default)]
pub(super) struct AtParams {
    pub as_of: Option<String>,
    pub as_recorded: Option<String>,
}

impl AtParams {
    /// The instant asked for, if any.
    pub(super) fn at(&self) -> Result<Option<At>, ApiError> {
        let parse = |t: &str| {
            chrono::DateTime::parse_from_rfc3339(t)
                .map(|t| t.to_utc())
                .map_err(|_| ApiError::InvalidQuery("as_of and as_recorded are RFC 3339 times"))
        };
        Ok(match (&self.as_of, &self.as_recorded) {
            (Some(_), Some(_)) => {
                return Err(ApiError::InvalidQuery(
                    "give as_of or as_recorded, not both",
                ))
            }
            (Some(t), None) => Some(At {
                clock: Clock::Effective,
                time: parse(t)?,
            }),
            (None, Some(t)) => Some(At {
                clock: Clock::Recorded,
                time: parse(t)?,
            }),
            (None, None) => None,
        })
    }
}

async fn stream(
    State(s): State<HttpState>,
    Path((tenant, id)): Path<(String, Uuid)>,
    _caller: Caller,
    params: Result<Query<AtParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(p) =
        params.map_err(|_| ApiError::InvalidQuery("as_of and as_recorded are RFC 3339 times"))?;
    let at = p.at()?;
    let events = timeline::read_stream(s.store.as_ref(), &tenant, id)
        .await
        .map_err(|_| ApiError::StoreUnavailable)?;
    if events.is_empty() {
        return Err(ApiError::StreamNotFound);
    }
    let tenants = s.ingest.tenants();
    let catalogue = tenants.get(&tenant).map(|t| t.catalogue.clone());
    Ok(Json(timeline::describe(
        catalogue.as_deref().unwrap_or(Catalogue::shipped()),
        id,
        &events,
        at,
    )))
}
