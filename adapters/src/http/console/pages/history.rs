//! What happened over time: one stream's events, the mapping versions, the audit log.

use super::super::html::{esc, table};
use super::super::{not_found, Viewer};
use super::unavailable;
use crate::http::state::HttpState;
use crate::http::tokens::Scope;
use axum::extract::{Path, State};
use axum::response::Response;
use intake_pipeline::audit::audit_stream_id;
use intake_pipeline::store::EventQuery;
use uuid::Uuid;

/// One stream's events in order: types, versions and field names (values with phi).
pub async fn stream(
    State(s): State<HttpState>,
    Path((tenant, id)): Path<(String, Uuid)>,
    viewer: Viewer,
) -> Response {
    if let Err(r) = viewer.check(&s, &tenant) {
        return r;
    }
    let q = EventQuery {
        tenant: Some(tenant.clone()),
        stream_id: Some(id),
        after: 0,
        limit: 1000,
    };
    let Ok(events) = s.store.read_events(&q).await else {
        return unavailable();
    };
    if events.is_empty() {
        return not_found();
    }
    let phi = viewer.caller.has(Scope::Phi);
    let rows: Vec<Vec<String>> = events
        .iter()
        .map(|e| {
            let fields = match (phi, e.data.as_object()) {
                (true, _) => format!("<code>{}</code>", esc(&e.data.to_string())),
                (false, Some(o)) => esc(&o.keys().cloned().collect::<Vec<_>>().join(", ")),
                (false, None) => String::new(),
            };
            vec![
                e.event_version.to_string(),
                esc(&e.event_type),
                esc(&e.created_at),
                esc(&e.created_by),
                fields,
            ]
        })
        .collect();
    let what = if phi {
        "values"
    } else {
        "fields (values need the phi scope)"
    };
    let body = table(
        &format!("{} {id}", events[0].stream_type),
        &["version", "event", "stored", "by", what],
        &rows,
    );
    viewer.page(
        &format!("Stream: {}", events[0].stream_type),
        &tenant,
        &body,
    )
}

/// The tenant's mapping versions.
pub async fn mappings(
    State(s): State<HttpState>,
    Path(tenant): Path<String>,
    viewer: Viewer,
) -> Response {
    if let Err(r) = viewer.check(&s, &tenant) {
        return r;
    }
    let Ok(rows) = s.store.mapping_history(&tenant, 100).await else {
        return unavailable();
    };
    let live = s
        .ingest
        .tenants()
        .get(&tenant)
        .map(|t| t.version.clone())
        .unwrap_or_default();
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.seq.to_string(),
                esc(&r.version),
                esc(&r.applied_at),
                esc(&r.origin),
            ]
        })
        .collect();
    let body = format!(
        "<p>Live version: <code>{}</code></p>{}",
        esc(&live),
        table(
            "Versions, newest first",
            &["seq", "version", "went live", "origin"],
            &rows
        )
    );
    viewer.page(&format!("{tenant}: mapping versions"), &tenant, &body)
}

/// The tenant's audit log, newest first.
pub async fn audit(
    State(s): State<HttpState>,
    Path(tenant): Path<String>,
    viewer: Viewer,
) -> Response {
    if let Err(r) = viewer.check(&s, &tenant) {
        return r;
    }
    let q = EventQuery {
        tenant: Some(tenant.clone()),
        stream_id: Some(audit_stream_id(&tenant)),
        after: 0,
        limit: 1000,
    };
    let Ok(events) = s.store.read_events(&q).await else {
        return unavailable();
    };
    let rows: Vec<Vec<String>> = events
        .iter()
        .rev()
        .map(|e| {
            let d = &e.data;
            let ids = d["ids"].as_array().map_or(0, Vec::len);
            vec![
                esc(d["at"].as_str().unwrap_or(&e.created_at)),
                esc(&e.event_type),
                esc(d["actor"].as_str().unwrap_or("")),
                esc(d["reason"].as_str().unwrap_or("—")),
                esc(&d["counts"].to_string().replace("null", "—")),
                ids.to_string(),
            ]
        })
        .collect();
    let body = table(
        "Audit log, newest first",
        &["at", "action", "actor", "reason", "counts", "ids"],
        &rows,
    );
    viewer.page(&format!("{tenant}: audit log"), &tenant, &body)
}
