//! `GET /api/v1/tenants/{tenant}/census`: the visits admitted now, by location and bed
//! (the read model the projection runner keeps), `?location=` for one unit; `?as_of=` or
//! `?as_recorded=` for the census at an instant, folded from the tenant's events. The
//! answer's `clock` says which time it uses; `position` is how far the read model had
//! folded (a census "now" is as fresh as that).

use super::auth::Caller;
use super::error::ApiError;
use super::guard::scoped;
use super::state::HttpState;
use super::streams::AtParams;
use super::tokens::Scope;
use axum::extract::{Path, Query, State};
use axum::routing::get;
use axum::{Json, Router};
use intake_pipeline::census;
use intake_pipeline::mapping::catalogue::Catalogue;
use intake_pipeline::timeline::Clock;
use serde::Deserialize;
use serde_json::{json, Value};

/// The census route.
pub fn routes() -> Router<HttpState> {
    Router::new().route(
        "/api/v1/tenants/{tenant}/census",
        scoped(Scope::Read, get(census_of)),
    )
}

#[derive(Deserialize)]
struct CensusParams {
    location: Option<String>,
    as_of: Option<String>,
    as_recorded: Option<String>,
}

async fn census_of(
    State(s): State<HttpState>,
    Path(tenant): Path<String>,
    _caller: Caller,
    params: Result<Query<CensusParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(p) = params.map_err(|_| {
        ApiError::InvalidQuery("location is text; as_of and as_recorded are RFC 3339 times")
    })?;
    let at = AtParams {
        as_of: p.as_of,
        as_recorded: p.as_recorded,
    }
    .at()?;
    let location = p.location.as_deref().filter(|l| !l.is_empty());
    let unavailable = |_| ApiError::StoreUnavailable;
    let (visits, position) = match at {
        Some(at) => {
            let tenants = s.ingest.tenants();
            let catalogue = tenants.get(&tenant).map(|t| t.catalogue.clone());
            let catalogue = catalogue.as_deref().unwrap_or(Catalogue::shipped());
            let visits = census::census_at(s.store.as_ref(), &tenant, catalogue, at, location)
                .await
                .map_err(unavailable)?;
            (visits, None)
        }
        None => {
            // The position first: the states read after it hold at least that much.
            let (position, _) = s.store.projection_lag().await.map_err(unavailable)?;
            let states = s
                .store
                .census_states(&tenant, location)
                .await
                .map_err(unavailable)?;
            (census::from_projection(states), Some(position))
        }
    };
    Ok(Json(json!({
        "tenant": tenant,
        "clock": at.map_or(Clock::Recorded, |a| a.clock),
        "at": at.map(|a| a.time.to_rfc3339()),
        "position": position,
        "count": visits.len(),
        "visits": visits,
    })))
}
