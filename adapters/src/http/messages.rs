//! The message browser: `GET /api/v1/tenants/{tenant}/messages` finds a tenant's inbound
//! messages (newest first) by outcome, type, facility, control id and time received;
//! `POST …/messages/search` takes the same filters in a JSON body, plus a business key
//! (`mrn` or `visit`), which needs the phi scope and stays out of URLs (and so out of
//! access logs and browser history). Each hit has its outcome, reason, events (by stream)
//! and dead letter, never the message's content.

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
use intake_pipeline::store::messages::{KeyKind, MessageOutcome, MessageQuery};
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

const INVALID: &str = "outcome is events|filtered|dead_lettered, since/until RFC 3339, before a UUID, 1 <= limit <= 1000; mrn or visit only in POST …/messages/search";

/// The message routes.
pub fn routes() -> Router<HttpState> {
    let base = "/api/v1/tenants/{tenant}/messages";
    Router::new()
        .route(base, scoped(Scope::Support, get(list)))
        .route(
            &format!("{base}/search"),
            scoped(Scope::Support, post(search)),
        )
}

/// The filters, in a query string or a search body.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Filters {
    outcome: Option<String>,
    #[serde(rename = "type")]
    message_type: Option<String>,
    facility: Option<String>,
    control_id: Option<String>,
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
    before: Option<Uuid>,
    limit: Option<i64>,
    mrn: Option<String>,
    visit: Option<String>,
}

impl Filters {
    /// The store's query for `tenant`.
    fn query(self, tenant: String) -> Result<MessageQuery, ApiError> {
        let invalid = ApiError::InvalidQuery(INVALID);
        let outcome = match self.outcome.as_deref() {
            None => None,
            Some(o) => Some(MessageOutcome::from_name(o).ok_or(invalid)?),
        };
        let limit = self.limit.unwrap_or(50);
        if !(1..=1000).contains(&limit) {
            return Err(invalid);
        }
        let key = match (self.mrn, self.visit) {
            (Some(_), Some(_)) => return Err(invalid),
            (Some(m), None) => Some((KeyKind::Mrn, m)),
            (None, Some(v)) => Some((KeyKind::Visit, v)),
            (None, None) => None,
        };
        Ok(MessageQuery {
            tenant: Some(tenant),
            outcome,
            message_type: self.message_type,
            sending_facility: self.facility,
            control_id: self.control_id,
            since: self.since,
            until: self.until,
            key,
            before: self.before,
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
    let Query(f) = params.map_err(|_| ApiError::InvalidQuery(INVALID))?;
    if f.mrn.is_some() || f.visit.is_some() {
        return Err(ApiError::InvalidQuery(INVALID));
    }
    find(&s, f.query(tenant)?).await
}

async fn search(
    State(s): State<HttpState>,
    Path(tenant): Path<String>,
    caller: Caller,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let f: Filters = match body.is_empty() {
        true => Filters::default(),
        false => serde_json::from_slice(&body).map_err(|_| ApiError::InvalidBody(INVALID))?,
    };
    if f.mrn.is_some() || f.visit.is_some() {
        caller.need(Scope::Phi)?;
    }
    find(&s, f.query(tenant)?).await
}

async fn find(s: &HttpState, query: MessageQuery) -> Result<Response, ApiError> {
    let hits = s
        .store
        .find_messages(&query)
        .await
        .map_err(|_| ApiError::StoreUnavailable)?;
    let next = match hits.last() {
        Some(last) if hits.len() as i64 == query.limit => Some(last.id),
        _ => None,
    };
    Ok(Json(json!({"messages": hits, "next_before": next})).into_response())
}
