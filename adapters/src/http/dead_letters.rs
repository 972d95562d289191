//! The dead-letter API: list and inspect a tenant's dead letters, replay them once the
//! mapping is fixed (one, or many by filter, with a dry run), or discard them.
//!
//! Replays map the stored raw message again with the mappings in force now; claims are
//! exclusive (see `DeadLetters::replay_dead_letters`), so two support people or two
//! instances never replay one letter twice. Everything runs in the tenant's scope.

use super::auth::Caller;
use super::error::ApiError;
use super::guard::scoped;
use super::state::HttpState;
use super::tokens::Scope;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use intake_pipeline::process;
use intake_pipeline::store::{DeadLetterFilter, Replayed};
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

const INVALID_QUERY: ApiError = ApiError::InvalidQuery(
    "status is open|replayed|discarded|all, since/until RFC 3339, 1 <= limit <= 1000",
);
const INVALID_BODY: ApiError = ApiError::InvalidBody(
    "expected JSON {\"ids\": [uuid], \"code\": string, \"limit\": 1..1000, \"dry_run\": bool}",
);

/// The dead-letter routes (merged into the API router).
pub fn routes() -> Router<HttpState> {
    let base = "/api/v1/tenants/{tenant}/dead-letters";
    Router::new()
        .route(base, scoped(Scope::Support, get(list)))
        .route(
            &format!("{base}/replay"),
            scoped(Scope::Support, post(replay_many)),
        )
        .route(&format!("{base}/{{id}}"), scoped(Scope::Support, get(show)))
        .route(
            &format!("{base}/{{id}}/replay"),
            scoped(Scope::Support, post(replay_one)),
        )
        .route(
            &format!("{base}/{{id}}/discard"),
            scoped(Scope::Support, post(discard_one)),
        )
}

#[derive(Deserialize)]
struct ListParams {
    status: Option<String>,
    code: Option<String>,
    since: Option<String>,
    until: Option<String>,
    limit: Option<usize>,
}

async fn list(
    State(s): State<HttpState>,
    Path(tenant): Path<String>,
    _caller: Caller,
    params: Result<Query<ListParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(p) = params.map_err(|_| INVALID_QUERY)?;
    let status = p.status.as_deref().unwrap_or("open");
    let limit = p.limit.unwrap_or(100);
    if !["open", "replayed", "discarded", "all"].contains(&status) || !(1..=1000).contains(&limit) {
        return Err(INVALID_QUERY);
    }
    let time = |t: &Option<String>| -> Result<Option<DateTime<Utc>>, ApiError> {
        t.as_deref()
            .map(|t| DateTime::parse_from_rfc3339(t).map(|t| t.to_utc()))
            .transpose()
            .map_err(|_| INVALID_QUERY)
    };
    let (since, until) = (time(&p.since)?, time(&p.until)?);
    let in_range = |created: &str| {
        let Ok(t) = DateTime::parse_from_rfc3339(created) else {
            return false;
        };
        since.is_none_or(|s| t >= s) && until.is_none_or(|u| t < u)
    };
    let letters: Vec<_> = s
        .store
        .dead_letters(Some(&tenant))
        .await
        .map_err(|_| ApiError::StoreUnavailable)?
        .into_iter()
        .filter(|d| status == "all" || d.status == status)
        .filter(|d| p.code.as_deref().is_none_or(|c| d.reason_code == c))
        .filter(|d| in_range(&d.created_at))
        .take(limit)
        .collect();
    Ok(Json(json!({ "dead_letters": letters })).into_response())
}

async fn show(
    State(s): State<HttpState>,
    Path((tenant, id)): Path<(String, Uuid)>,
    caller: Caller,
) -> Result<Response, ApiError> {
    let letter = s
        .store
        .dead_letters(Some(&tenant))
        .await
        .map_err(|_| ApiError::StoreUnavailable)?
        .into_iter()
        .find(|d| d.id == id)
        .ok_or(ApiError::DeadLetterNotFound)?;
    let raw = s
        .store
        .dead_letter_message(Some(&tenant), id)
        .await
        .map_err(|_| ApiError::StoreUnavailable)?
        .ok_or(ApiError::DeadLetterNotFound)?;
    // Masked for support staff; the message itself only for a token with the phi scope.
    let structure = intake_pipeline::hl7::mask::masked_structure(&raw);
    let message = caller
        .has(Scope::Phi)
        .then(|| String::from_utf8_lossy(&raw).replace('\r', "\n"));
    Ok(Json(json!({
        "dead_letter": letter,
        "bytes": raw.len(),
        "structure": structure,
        "message": message,
    }))
    .into_response())
}

/// Replays the letters `filter` selects with the mappings in force now.
async fn replay(
    s: &HttpState,
    filter: &DeadLetterFilter,
    dry_run: bool,
) -> Result<Vec<Replayed>, ApiError> {
    let tenants = s.ingest.tenants();
    let remap = move |raw| process(raw, &tenants);
    s.store
        .replay_dead_letters(filter, &remap, dry_run)
        .await
        .map_err(|_| ApiError::StoreUnavailable)
}

fn one(tenant: String, id: Uuid) -> DeadLetterFilter {
    DeadLetterFilter {
        tenant: Some(tenant),
        ids: vec![id],
        code: None,
        limit: 1,
    }
}

async fn replay_one(
    State(s): State<HttpState>,
    Path((tenant, id)): Path<(String, Uuid)>,
    _caller: Caller,
) -> Result<Response, ApiError> {
    let result = replay(&s, &one(tenant, id), false).await?;
    let r = result
        .into_iter()
        .next()
        .ok_or(ApiError::DeadLetterNotOpen)?;
    let status = match r.still_failing {
        None => StatusCode::OK,
        Some(_) => StatusCode::UNPROCESSABLE_ENTITY,
    };
    Ok((status, Json(json!({ "replayed": r }))).into_response())
}

async fn discard_one(
    State(s): State<HttpState>,
    Path((tenant, id)): Path<(String, Uuid)>,
    _caller: Caller,
) -> Result<Response, ApiError> {
    let ids = s
        .store
        .discard_dead_letters(&one(tenant, id))
        .await
        .map_err(|_| ApiError::StoreUnavailable)?;
    ids.first().ok_or(ApiError::DeadLetterNotOpen)?;
    Ok(Json(json!({ "id": id, "status": "discarded" })).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReplayMany {
    #[serde(default)]
    ids: Vec<Uuid>,
    code: Option<String>,
    limit: Option<i64>,
    #[serde(default)]
    dry_run: bool,
}

async fn replay_many(
    State(s): State<HttpState>,
    Path(tenant): Path<String>,
    _caller: Caller,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    // JSON whatever the Content-Type says; an empty body means the defaults.
    let b: ReplayMany = match body.is_empty() {
        true => serde_json::from_slice(b"{}"),
        false => serde_json::from_slice(&body),
    }
    .map_err(|_| INVALID_BODY)?;
    let limit = b.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(INVALID_BODY);
    }
    let filter = DeadLetterFilter {
        tenant: Some(tenant),
        ids: b.ids,
        code: b.code,
        limit,
    };
    let results = replay(&s, &filter, b.dry_run).await?;
    let failing = results.iter().filter(|r| r.still_failing.is_some()).count();
    Ok(Json(json!({
        "dry_run": b.dry_run,
        "replayed": results.len() - failing,
        "still_failing": failing,
        "appended": results.iter().map(|r| r.appended).sum::<usize>(),
        "results": results,
    }))
    .into_response())
}
