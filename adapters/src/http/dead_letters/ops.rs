//! Replay and discard, of one letter or many by filter. A bulk body takes the list's
//! filters plus `ids`, `dry_run` and `reason`; a discard needs a reason and, in bulk, a
//! narrowing filter or `"all": true`. Each page is one transaction with its audit entry;
//! `next_after` in the answer continues a selection larger than `limit`.

use super::super::auth::Caller;
use super::super::error::ApiError;
use super::super::state::HttpState;
use super::{actor, Filters};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use intake_pipeline::process;
use intake_pipeline::store::DeadLetterFilter;
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

const INVALID_BODY: ApiError = ApiError::InvalidBody(
    "expected JSON {\"ids\": [uuid], \"code\", \"type\", \"facility\", \"since\", \"until\", \"after\", \"limit\": 1..1000, \"dry_run\": bool, \"reason\": text}",
);

const REASON_REQUIRED: ApiError = ApiError::InvalidBody(
    "a discard needs {\"reason\": text} (it is recorded in the audit stream)",
);

const FILTER_REQUIRED: ApiError = ApiError::InvalidBody(
    "say which letters: ids, code, type, facility, since or until, or \"all\": true",
);

/// A bulk operation's body.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct Bulk {
    #[serde(default)]
    ids: Vec<Uuid>,
    #[serde(flatten)]
    filters: Filters,
    #[serde(default)]
    dry_run: bool,
    #[serde(default)]
    all: bool,
    reason: Option<String>,
}

/// A single letter's body: an optional reason.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct One {
    reason: Option<String>,
}

/// JSON whatever the Content-Type says; an empty body means the defaults.
fn body<T: for<'de> Deserialize<'de> + Default>(bytes: &[u8]) -> Result<T, ApiError> {
    match bytes.is_empty() {
        true => Ok(T::default()),
        false => serde_json::from_slice(bytes).map_err(|_| INVALID_BODY),
    }
}

/// Whether a bulk body narrows the selection beyond the tenant.
fn narrows(b: &Bulk) -> bool {
    let f = &b.filters;
    !b.ids.is_empty()
        || f.code.is_some()
        || f.message_type.is_some()
        || f.facility.is_some()
        || f.since.is_some()
        || f.until.is_some()
}

fn one(tenant: String, id: Uuid) -> DeadLetterFilter {
    DeadLetterFilter {
        tenant: Some(tenant),
        ids: vec![id],
        limit: 1,
        ..DeadLetterFilter::default()
    }
}

/// The id to continue after when a page came back full.
fn next_after(ids: &[Uuid], filter: &DeadLetterFilter) -> Option<Uuid> {
    (ids.len() as i64 == filter.limit)
        .then(|| ids.iter().max().copied())
        .flatten()
}

pub(super) async fn replay_one(
    State(s): State<HttpState>,
    Path((tenant, id)): Path<(String, Uuid)>,
    caller: Caller,
    bytes: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let b: One = body(&bytes)?;
    let who = actor(&caller, b.reason)?;
    let tenants = s.ingest.tenants();
    let remap = move |raw| process(raw, &tenants);
    let r = s
        .store
        .replay_dead_letters(&one(tenant, id), &remap, &who)
        .await
        .map_err(|_| ApiError::StoreUnavailable)?
        .into_iter()
        .next()
        .ok_or(ApiError::DeadLetterNotOpen)?;
    let status = match r.still_failing {
        None => StatusCode::OK,
        Some(_) => StatusCode::UNPROCESSABLE_ENTITY,
    };
    Ok((status, Json(json!({ "replayed": r }))).into_response())
}

pub(super) async fn discard_one(
    State(s): State<HttpState>,
    Path((tenant, id)): Path<(String, Uuid)>,
    caller: Caller,
    bytes: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let b: One = body(&bytes)?;
    let who = actor(&caller, Some(b.reason.ok_or(REASON_REQUIRED)?))?;
    let ids = s
        .store
        .discard_dead_letters(&one(tenant, id), &who)
        .await
        .map_err(|_| ApiError::StoreUnavailable)?;
    ids.first().ok_or(ApiError::DeadLetterNotOpen)?;
    Ok(Json(json!({ "id": id, "status": "discarded" })).into_response())
}

pub(super) async fn replay_many(
    State(s): State<HttpState>,
    Path(tenant): Path<String>,
    caller: Caller,
    bytes: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let b: Bulk = body(&bytes)?;
    if b.all || b.filters.status.is_some() {
        return Err(INVALID_BODY);
    }
    let who = actor(&caller, b.reason)?;
    let filter = b.filters.filter(tenant, b.ids).ok_or(INVALID_BODY)?;
    let tenants = s.ingest.tenants();
    let remap = move |raw| process(raw, &tenants);
    if b.dry_run {
        let previews = s
            .store
            .preview_dead_letters(&filter, &remap)
            .await
            .map_err(|_| ApiError::StoreUnavailable)?;
        let failing = previews
            .iter()
            .filter(|p| p.still_failing.is_some())
            .count();
        let ids: Vec<Uuid> = previews.iter().map(|p| p.id).collect();
        return Ok(Json(json!({
            "dry_run": true,
            "would_replay": previews.len() - failing,
            "still_failing": failing,
            "would_append": previews.iter().map(|p| p.would_append).sum::<usize>(),
            "next_after": next_after(&ids, &filter),
            "results": previews,
        }))
        .into_response());
    }
    let results = s
        .store
        .replay_dead_letters(&filter, &remap, &who)
        .await
        .map_err(|_| ApiError::StoreUnavailable)?;
    let failing = results.iter().filter(|r| r.still_failing.is_some()).count();
    let ids: Vec<Uuid> = results.iter().map(|r| r.id).collect();
    Ok(Json(json!({
        "dry_run": false,
        "replayed": results.len() - failing,
        "still_failing": failing,
        "appended": results.iter().map(|r| r.appended).sum::<usize>(),
        "next_after": next_after(&ids, &filter),
        "results": results,
    }))
    .into_response())
}

pub(super) async fn discard_many(
    State(s): State<HttpState>,
    Path(tenant): Path<String>,
    caller: Caller,
    bytes: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let b: Bulk = body(&bytes)?;
    if b.filters.status.is_some() {
        return Err(INVALID_BODY);
    }
    if !narrows(&b) && !b.all {
        return Err(FILTER_REQUIRED);
    }
    if b.all && narrows(&b) {
        return Err(INVALID_BODY);
    }
    let dry_run = b.dry_run;
    let reason = match (b.reason, dry_run) {
        (Some(r), _) => Some(r),
        (None, true) => None,
        (None, false) => return Err(REASON_REQUIRED),
    };
    let who = actor(&caller, reason)?;
    let filter = b.filters.filter(tenant, b.ids).ok_or(INVALID_BODY)?;
    let ids = match dry_run {
        true => {
            let letters = s
                .store
                .dead_letters(filter.tenant.as_deref())
                .await
                .map_err(|_| ApiError::StoreUnavailable)?;
            let open = filter.select(letters, Some("open"));
            open.into_iter().map(|d| d.id).collect()
        }
        false => s
            .store
            .discard_dead_letters(&filter, &who)
            .await
            .map_err(|_| ApiError::StoreUnavailable)?,
    };
    Ok(Json(json!({
        "dry_run": dry_run,
        "discarded": if dry_run { 0 } else { ids.len() },
        "would_discard": if dry_run { ids.len() } else { 0 },
        "next_after": next_after(&ids, &filter),
        "ids": ids,
    }))
    .into_response())
}
