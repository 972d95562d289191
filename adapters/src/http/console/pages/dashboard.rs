//! The tenants a token sees, and a tenant's dashboard.

use super::super::html::{esc, page, table, url};
use super::super::Viewer;
use super::{link, opt, unavailable};
use crate::http::state::HttpState;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{Duration, Utc};
use intake_pipeline::store::messages::{MessageHit, MessageQuery};
use std::collections::BTreeMap;

/// `/console`: the tenants this token sees.
pub async fn home(State(s): State<HttpState>, viewer: Viewer) -> Response {
    let tenants = s.ingest.tenants();
    let seen: Vec<_> = tenants
        .iter()
        .filter(|t| viewer.caller.sees(&t.name))
        .collect();
    if let [only] = seen.as_slice() {
        return Redirect::to(&format!("/console/t/{}", url(&only.name))).into_response();
    }
    let rows: Vec<Vec<String>> = seen
        .iter()
        .map(|t| vec![link(&t.name, "", &t.name), esc(&t.version)])
        .collect();
    let body = table("Tenants", &["tenant", "mapping version"], &rows);
    page("Tenants", None, Some(&viewer.session.csrf), &body).into_response()
}

/// A tenant's dashboard: the last hour by minute and outcome, open dead letters by code,
/// the last message per listener, the outbox backlog.
pub async fn dashboard(
    State(s): State<HttpState>,
    Path(tenant): Path<String>,
    viewer: Viewer,
) -> Response {
    if let Err(r) = viewer.check(&s, &tenant) {
        return r;
    }
    let recent = MessageQuery {
        tenant: Some(tenant.clone()),
        limit: 1000,
        ..Default::default()
    };
    let Ok(hits) = s.store.find_messages(&recent).await else {
        return unavailable();
    };
    let Ok(letters) = s.store.dead_letters(Some(&tenant)).await else {
        return unavailable();
    };
    let hour_ago =
        (Utc::now() - Duration::hours(1)).to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let mut minutes: BTreeMap<String, [usize; 3]> = BTreeMap::new();
    for h in hits.iter().filter(|h| h.received_at >= hour_ago) {
        let minute = h.received_at.get(..16).unwrap_or("").replace('T', " ");
        let slot = match h.outcome {
            "events" => 0,
            "filtered" => 1,
            _ => 2,
        };
        minutes.entry(minute).or_default()[slot] += 1;
    }
    let per_minute: Vec<Vec<String>> = minutes
        .iter()
        .rev()
        .map(|(m, c)| vec![esc(m), c[0].to_string(), c[1].to_string(), c[2].to_string()])
        .collect();
    let mut by_code: BTreeMap<&str, usize> = BTreeMap::new();
    for d in letters.iter().filter(|d| d.status == "open") {
        *by_code.entry(&d.reason_code).or_default() += 1;
    }
    let codes: Vec<Vec<String>> = by_code
        .iter()
        .map(|(c, n)| {
            vec![
                link(&tenant, &format!("/dead-letters?code={}", url(c)), c),
                n.to_string(),
            ]
        })
        .collect();
    let mut last: BTreeMap<&str, &MessageHit> = BTreeMap::new();
    for h in &hits {
        last.entry(&h.channel).or_insert(h);
    }
    let listeners: Vec<Vec<String>> = last
        .iter()
        .map(|(c, h)| {
            vec![
                esc(c),
                esc(&h.received_at),
                opt(&h.message_type),
                esc(h.outcome),
            ]
        })
        .collect();
    let backlog = match viewer.caller.tenant.as_str() {
        crate::http::tokens::EVERY_TENANT => match s.store.outbox_backlog().await {
            Ok(n) => format!("<p>Outbox backlog (all tenants): <strong>{n}</strong> event(s) waiting for the broker.</p>"),
            Err(_) => "<p>Outbox backlog: the store did not answer.</p>".into(),
        },
        _ => "<p>The outbox is shared by every tenant: its backlog shows to an all-tenant token.</p>".into(),
    };
    let body = format!(
        "{}{}{}{backlog}<p>Counts come from the newest 1,000 messages.</p>",
        table(
            "Messages a minute, last hour",
            &["minute (UTC)", "events", "filtered", "dead-lettered"],
            &per_minute
        ),
        table("Open dead letters by code", &["code", "open"], &codes),
        table(
            "Last message per listener",
            &["channel", "received", "type", "outcome"],
            &listeners
        ),
    );
    viewer.page(&format!("{tenant}: dashboard"), &tenant, &body)
}
