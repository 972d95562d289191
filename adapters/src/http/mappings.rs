//! `GET /api/v1/tenants/{tenant}/mappings/history` and
//! `POST /api/v1/tenants/{tenant}/mappings/rollback`: staged mapping versions. The history
//! needs the support scope; a rollback the admin scope: it changes what every sender of
//! the tenant gets mapped by.

use super::auth::Caller;
use super::error::ApiError;
use super::guard::scoped;
use super::state::HttpState;
use super::tokens::Scope;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use intake_pipeline::deploy::{self, RollbackError};
use serde::Deserialize;
use serde_json::json;

/// The mapping version routes.
pub fn routes() -> Router<HttpState> {
    Router::new()
        .route(
            "/api/v1/tenants/{tenant}/mappings/history",
            scoped(Scope::Support, get(history)),
        )
        .route(
            "/api/v1/tenants/{tenant}/mappings/rollback",
            scoped(Scope::Admin, post(rollback)),
        )
}

async fn history(
    State(s): State<HttpState>,
    Path(tenant): Path<String>,
    _caller: Caller,
) -> Result<Response, ApiError> {
    let versions = s
        .store
        .mapping_history(&tenant, 100)
        .await
        .map_err(|_| ApiError::StoreUnavailable)?;
    let live = s.ingest.tenants().get(&tenant).map(|t| t.version.clone());
    Ok(Json(json!({"live": live, "versions": versions})).into_response())
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RollbackBody {
    /// The history row to restore; default the newest other version.
    to: Option<i64>,
    /// Why (recorded in the audit entry).
    reason: Option<String>,
}

async fn rollback(
    State(s): State<HttpState>,
    Path(tenant): Path<String>,
    caller: Caller,
    body: Bytes,
) -> Result<Response, ApiError> {
    let body: RollbackBody = if body.iter().all(u8::is_ascii_whitespace) {
        RollbackBody::default()
    } else {
        serde_json::from_slice(&body).map_err(|_| {
            ApiError::InvalidBody("expected {\"to\": <history seq>, \"reason\": text} or no body")
        })?
    };
    let actor = intake_pipeline::audit::Actor::new(caller.name.clone(), body.reason)
        .map_err(ApiError::InvalidBody)?;
    let done = deploy::rollback(
        s.store.as_ref(),
        &s.mappings_dir,
        &tenant,
        body.to,
        s.mapping_history,
        &actor,
    )
    .await
    .map_err(|e| match e {
        RollbackError::NothingToRollBack(_) => ApiError::NothingToRollBack,
        RollbackError::NoSuchVersion { .. } => ApiError::MappingVersionNotFound,
        RollbackError::DoesNotLoad { .. } => ApiError::RollbackRefused,
        RollbackError::Store(_) => ApiError::StoreUnavailable,
        RollbackError::Io { .. } => ApiError::MappingsNotWritable,
    })?;
    Ok(Json(json!({"rolled_back": done})).into_response())
}
