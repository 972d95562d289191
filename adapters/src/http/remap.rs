//! `POST /api/v1/tenants/{tenant}/remap`: what another mapping version would make of the
//! tenant's stored messages. The version is a row of the tenant's mapping history
//! (`"seq"`), or by default the tenant's mapping folder as it is on disk (which may hold a
//! version that is not live yet). A preview needs the support scope; `"apply": true`
//! (append what the new version adds, as corrections, audited) the admin scope.

use super::auth::Caller;
use super::error::ApiError;
use super::guard::scoped;
use super::state::HttpState;
use super::tokens::Scope;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use intake_pipeline::audit::Actor;
use intake_pipeline::deploy::{self, RollbackError};
use intake_pipeline::mapping::Tenants;
use intake_pipeline::remap::{remap, RemapError};
use intake_pipeline::store::messages::MessageQuery;
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

const INVALID_BODY: ApiError = ApiError::InvalidBody(
    "expected JSON {\"seq\": history row, \"since\", \"until\", \"type\", \"before\", \"limit\": 1..1000, \"apply\": bool, \"reason\": text}",
);

/// The remap route.
pub fn routes() -> Router<HttpState> {
    Router::new().route(
        "/api/v1/tenants/{tenant}/remap",
        scoped(Scope::Support, post(run)),
    )
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Body {
    seq: Option<i64>,
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
    #[serde(rename = "type")]
    message_type: Option<String>,
    before: Option<Uuid>,
    limit: Option<i64>,
    #[serde(default)]
    apply: bool,
    reason: Option<String>,
}

async fn run(
    State(s): State<HttpState>,
    Path(tenant): Path<String>,
    caller: Caller,
    bytes: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let b: Body = match bytes.is_empty() {
        true => Body::default(),
        false => serde_json::from_slice(&bytes).map_err(|_| INVALID_BODY)?,
    };
    let limit = b.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(INVALID_BODY);
    }
    let actor = match b.apply {
        true => {
            caller.need(Scope::Admin)?;
            Some(Actor::new(caller.name.clone(), b.reason).map_err(ApiError::InvalidBody)?)
        }
        false => None,
    };
    let tenants = version(&s, &tenant, b.seq).await?;
    let query = MessageQuery {
        tenant: Some(tenant),
        message_type: b.message_type,
        since: b.since,
        until: b.until,
        before: b.before,
        limit,
        ..MessageQuery::default()
    };
    let report = remap(s.store.as_ref(), &tenants, &query, actor.as_ref())
        .await
        .map_err(|e| match e {
            RemapError::NoSuchTenant(_) => ApiError::MappingsDoNotLoad,
            RemapError::Store(_) => ApiError::StoreUnavailable,
        })?;
    Ok(Json(json!({ "remap": report })).into_response())
}

/// The mappings to compare with: history row `seq`, else the folder on disk.
async fn version(s: &HttpState, tenant: &str, seq: Option<i64>) -> Result<Tenants, ApiError> {
    let loaded = match seq {
        Some(seq) => deploy::recorded_version(s.store.as_ref(), &s.mappings_dir, tenant, seq).await,
        None => Tenants::load(&s.mappings_dir).map_err(|errors| RollbackError::DoesNotLoad {
            tenant: tenant.to_string(),
            errors,
        }),
    };
    loaded.map_err(|e| match e {
        RollbackError::NoSuchVersion { .. } => ApiError::MappingVersionNotFound,
        RollbackError::Store(_) => ApiError::StoreUnavailable,
        _ => ApiError::MappingsDoNotLoad,
    })
}
