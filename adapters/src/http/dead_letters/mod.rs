//! The dead-letter API: list and inspect a tenant's dead letters, replay them once the
//! mapping is fixed (one, or many by filter, with a preview), or discard them with a
//! reason. Every change and every raw view is audited under the caller's token name.
//!
//! - `show`: one letter, masked; its raw message with `?raw=true` and the phi scope.
//! - `ops`: replay and discard, one or by filter.
//!
//! Replays map the stored raw message again with the mappings in force now; claims are
//! exclusive (see `DeadLetters::replay_dead_letters`), so two support people or two
//! instances never replay one letter twice. Everything runs in the tenant's scope.

mod ops;
mod show;

pub(crate) use show::decoded;

use super::auth::Caller;
use super::error::ApiError;
use super::guard::scoped;
use super::state::HttpState;
use super::tokens::Scope;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use intake_pipeline::audit::Actor;
use intake_pipeline::store::DeadLetterFilter;
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

const INVALID_QUERY: ApiError = ApiError::InvalidQuery(
    "status is open|replayed|discarded|all, since/until RFC 3339, after a UUID, 1 <= limit <= 1000",
);

/// The dead-letter routes (merged into the API router).
pub fn routes() -> Router<HttpState> {
    let base = "/api/v1/tenants/{tenant}/dead-letters";
    Router::new()
        .route(base, scoped(Scope::Support, get(list)))
        .route(
            &format!("{base}/replay"),
            scoped(Scope::Support, post(ops::replay_many)),
        )
        .route(
            &format!("{base}/discard"),
            scoped(Scope::Support, post(ops::discard_many)),
        )
        .route(
            &format!("{base}/{{id}}"),
            scoped(Scope::Support, get(show::show)),
        )
        .route(
            &format!("{base}/{{id}}/replay"),
            scoped(Scope::Support, post(ops::replay_one)),
        )
        .route(
            &format!("{base}/{{id}}/discard"),
            scoped(Scope::Support, post(ops::discard_one)),
        )
}

/// The filters of the list and of bulk operations: the same names in a query string and
/// in a JSON body (`status` only in the list: bulk operations take open letters).
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Filters {
    status: Option<String>,
    code: Option<String>,
    #[serde(rename = "type")]
    message_type: Option<String>,
    facility: Option<String>,
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
    after: Option<Uuid>,
    limit: Option<i64>,
}

impl Filters {
    /// The store's filter for `tenant`, or None when the limit is out of range.
    fn filter(self, tenant: String, ids: Vec<Uuid>) -> Option<DeadLetterFilter> {
        let limit = self.limit.unwrap_or(100);
        (1..=1000).contains(&limit).then(|| DeadLetterFilter {
            tenant: Some(tenant),
            ids,
            code: self.code,
            message_type: self.message_type,
            sending_facility: self.facility,
            since: self.since,
            until: self.until,
            after: self.after,
            limit,
        })
    }
}

async fn list(
    State(s): State<HttpState>,
    Path(tenant): Path<String>,
    _caller: Caller,
    params: Result<Query<Filters>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(mut p) = params.map_err(|_| INVALID_QUERY)?;
    let status = p.status.take().unwrap_or_else(|| "open".into());
    if !["open", "replayed", "discarded", "all"].contains(&status.as_str()) {
        return Err(INVALID_QUERY);
    }
    let filter = p.filter(tenant.clone(), Vec::new()).ok_or(INVALID_QUERY)?;
    let letters = s
        .store
        .dead_letters(Some(&tenant))
        .await
        .map_err(|_| ApiError::StoreUnavailable)?;
    let status = (status != "all").then_some(status.as_str());
    let letters = filter.select(letters, status);
    let next = (letters.len() as i64 == filter.limit)
        .then(|| letters.last().map(|d| d.id))
        .flatten();
    Ok(Json(json!({ "dead_letters": letters, "next_after": next })).into_response())
}

/// The caller as the audit names it, with `reason`; a bad reason is an invalid body.
fn actor(caller: &Caller, reason: Option<String>) -> Result<Actor, ApiError> {
    Actor::new(caller.name.clone(), reason).map_err(ApiError::InvalidBody)
}
