//! The message browser: by facts (GET) or by business key (POST, phi scope).

use super::super::html::{csrf_field, esc, table};
use super::super::{problem, Viewer};
use super::{link, opt, unavailable};
use crate::http::state::HttpState;
use crate::http::tokens::Scope;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Form;
use chrono::{DateTime, Utc};
use intake_pipeline::store::messages::{KeyKind, MessageOutcome, MessageQuery};
use serde::Deserialize;
use uuid::Uuid;

/// Filters of the message browser (and the key of a search).
#[derive(Deserialize, Default)]
pub struct MessageFilter {
    outcome: Option<String>,
    #[serde(rename = "type")]
    message_type: Option<String>,
    facility: Option<String>,
    control_id: Option<String>,
    since: Option<String>,
    until: Option<String>,
    before: Option<Uuid>,
    mrn: Option<String>,
    visit: Option<String>,
    csrf: Option<String>,
}

fn nonempty(v: Option<String>) -> Option<String> {
    v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
}

fn time(v: Option<String>) -> Result<Option<DateTime<Utc>>, Response> {
    match nonempty(v) {
        None => Ok(None),
        Some(t) => DateTime::parse_from_rfc3339(&t)
            .map(|t| Some(t.to_utc()))
            .map_err(|_| {
                problem(
                    StatusCode::BAD_REQUEST,
                    "Times are RFC 3339, such as 2026-12-01T00:00:00Z.",
                )
            }),
    }
}

/// The message browser (GET: by facts).
pub async fn messages(
    State(s): State<HttpState>,
    Path(tenant): Path<String>,
    viewer: Viewer,
    Query(f): Query<MessageFilter>,
) -> Response {
    if f.mrn.is_some() || f.visit.is_some() {
        return problem(
            StatusCode::BAD_REQUEST,
            "Search by MRN or visit with the search form.",
        );
    }
    browse(s, tenant, viewer, f).await
}

/// The message browser (POST: by business key, phi scope, CSRF-checked).
pub async fn search(
    State(s): State<HttpState>,
    Path(tenant): Path<String>,
    viewer: Viewer,
    Form(f): Form<MessageFilter>,
) -> Response {
    if let Err(r) = viewer.csrf(f.csrf.as_deref().unwrap_or("")) {
        return r;
    }
    if !viewer.caller.has(Scope::Phi) {
        return problem(
            StatusCode::FORBIDDEN,
            "Searching by MRN or visit needs a token with the phi scope.",
        );
    }
    browse(s, tenant, viewer, f).await
}

async fn browse(s: HttpState, tenant: String, viewer: Viewer, f: MessageFilter) -> Response {
    if let Err(r) = viewer.check(&s, &tenant) {
        return r;
    }
    let outcome = match nonempty(f.outcome.clone()) {
        None => None,
        Some(o) => match MessageOutcome::from_name(&o) {
            Some(o) => Some(o),
            None => {
                return problem(
                    StatusCode::BAD_REQUEST,
                    "Outcome is events, filtered or dead_lettered.",
                )
            }
        },
    };
    let (since, until) = match (time(f.since.clone()), time(f.until.clone())) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(r), _) | (_, Err(r)) => return r,
    };
    let key = match (nonempty(f.mrn), nonempty(f.visit)) {
        (Some(m), _) => Some((KeyKind::Mrn, m)),
        (None, Some(v)) => Some((KeyKind::Visit, v)),
        _ => None,
    };
    let query = MessageQuery {
        tenant: Some(tenant.clone()),
        outcome,
        message_type: nonempty(f.message_type.clone()),
        sending_facility: nonempty(f.facility.clone()),
        control_id: nonempty(f.control_id.clone()),
        since,
        until,
        key,
        before: f.before,
        limit: 50,
    };
    let Ok(hits) = s.store.find_messages(&query).await else {
        return unavailable();
    };
    let rows: Vec<Vec<String>> = hits
        .iter()
        .map(|h| {
            let events: Vec<String> = h
                .events
                .iter()
                .map(|e| {
                    link(
                        &tenant,
                        &format!("/streams/{}", e.stream_id),
                        &format!("{} (v{})", e.event_type, e.event_version),
                    )
                })
                .collect();
            let letter = h
                .dead_letter
                .as_ref()
                .map(|d| {
                    link(
                        &tenant,
                        &format!("/dead-letters/{}", h.id),
                        &format!("{} ({})", d.reason_code, d.status),
                    )
                })
                .unwrap_or_else(|| "—".into());
            vec![
                esc(&h.received_at),
                opt(&h.message_type),
                opt(&h.control_id),
                opt(&h.sending_facility),
                match h.raw_pruned_at {
                    None => esc(h.outcome),
                    Some(_) => format!("{} (raw pruned)", esc(h.outcome)),
                },
                opt(&h.reason),
                events.join("<br>"),
                letter,
            ]
        })
        .collect();
    let v = |o: &Option<String>| esc(o.as_deref().unwrap_or(""));
    let field = |id: &str, label: &str, value: String| {
        format!("<label for=\"{id}\">{label}</label><input id=\"{id}\" name=\"{id}\" value=\"{value}\">")
    };
    let mut body = format!(
        "<form method=\"get\">{}{}{}{}{}{}<button type=\"submit\">Find</button></form>",
        field("outcome", "Outcome", v(&f.outcome)),
        field("type", "Type", v(&f.message_type)),
        field("facility", "Facility", v(&f.facility)),
        field("control_id", "Control id", v(&f.control_id)),
        field("since", "Received since", v(&f.since)),
        field("until", "until", v(&f.until)),
    );
    if viewer.caller.has(Scope::Phi) {
        body.push_str(&format!(
            "<form method=\"post\">{}<label for=\"mrn\">MRN</label><input id=\"mrn\" name=\"mrn\" autocomplete=\"off\">\
             <label for=\"visit\">or visit number</label><input id=\"visit\" name=\"visit\" autocomplete=\"off\">\
             <button type=\"submit\">Search by key</button></form>",
            csrf_field(&viewer.session.csrf)
        ));
    }
    body.push_str(&table(
        "Messages, newest first",
        &[
            "received",
            "type",
            "control id",
            "facility",
            "outcome",
            "reason",
            "events",
            "dead letter",
        ],
        &rows,
    ));
    if hits.len() == 50 {
        if let Some(last) = hits.last() {
            body.push_str(&link(
                &tenant,
                &format!("/messages?before={}", last.id),
                "Older messages",
            ));
        }
    }
    viewer.page(&format!("{tenant}: messages"), &tenant, &body)
}
