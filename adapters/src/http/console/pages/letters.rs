//! Dead letters grouped by code, and one letter (masked) with its actions.

use super::super::html::{csrf_field, esc, table, url};
use super::super::{not_found, Viewer};
use super::{link, opt, unavailable};
use crate::http::state::HttpState;
use crate::http::tokens::Scope;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use intake_pipeline::store::StoredRaw;
use serde::Deserialize;
use std::collections::BTreeMap;
use uuid::Uuid;

/// Filters of the dead-letter page.
#[derive(Deserialize, Default)]
pub struct LetterFilter {
    code: Option<String>,
    status: Option<String>,
}

/// Dead letters grouped by code, and the list the filter selects.
pub async fn dead_letters(
    State(s): State<HttpState>,
    Path(tenant): Path<String>,
    viewer: Viewer,
    Query(f): Query<LetterFilter>,
) -> Response {
    if let Err(r) = viewer.check(&s, &tenant) {
        return r;
    }
    let Ok(letters) = s.store.dead_letters(Some(&tenant)).await else {
        return unavailable();
    };
    let status = f
        .status
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "open".into());
    let code = f.code.filter(|c| !c.is_empty());
    let mut groups: BTreeMap<&str, usize> = BTreeMap::new();
    for d in letters
        .iter()
        .filter(|d| status == "all" || d.status == status)
    {
        *groups.entry(&d.reason_code).or_default() += 1;
    }
    let group_rows: Vec<Vec<String>> = groups
        .iter()
        .map(|(c, n)| {
            vec![
                link(
                    &tenant,
                    &format!("/dead-letters?code={}&status={}", url(c), url(&status)),
                    c,
                ),
                n.to_string(),
            ]
        })
        .collect();
    let rows: Vec<Vec<String>> = letters
        .iter()
        .rev()
        .filter(|d| status == "all" || d.status == status)
        .filter(|d| code.as_deref().is_none_or(|c| d.reason_code == c))
        .take(500)
        .map(|d| {
            vec![
                link(
                    &tenant,
                    &format!("/dead-letters/{}", d.id),
                    &d.id.to_string(),
                ),
                esc(&d.received_at),
                opt(&d.message_type),
                opt(&d.control_id),
                opt(&d.sending_facility),
                esc(&d.reason_code),
                opt(&d.detail),
                d.attempts.to_string(),
                esc(&d.status),
            ]
        })
        .collect();
    let selected = |v: &str| if v == status { " selected" } else { "" };
    let form = format!(
        "<form method=\"get\"><label for=\"code\">Code</label><input id=\"code\" name=\"code\" value=\"{}\">\
         <label for=\"status\">Status</label><select id=\"status\" name=\"status\">\
         <option{}>open</option><option{}>replayed</option><option{}>discarded</option><option{}>all</option></select>\
         <button type=\"submit\">Filter</button></form>",
        esc(code.as_deref().unwrap_or("")),
        selected("open"), selected("replayed"), selected("discarded"), selected("all"),
    );
    let body = format!(
        "{form}{}{}",
        table("By code", &["code", "letters"], &group_rows),
        table(
            "Dead letters, newest first",
            &[
                "id",
                "received",
                "type",
                "control id",
                "facility",
                "code",
                "field",
                "attempts",
                "status"
            ],
            &rows
        ),
    );
    viewer.page(&format!("{tenant}: dead letters"), &tenant, &body)
}

/// One letter, masked, with its actions.
pub async fn dead_letter(
    State(s): State<HttpState>,
    Path((tenant, id)): Path<(String, Uuid)>,
    viewer: Viewer,
) -> Response {
    if let Err(r) = viewer.check(&s, &tenant) {
        return r;
    }
    let Ok(letters) = s.store.dead_letters(Some(&tenant)).await else {
        return unavailable();
    };
    let Some(d) = letters.into_iter().find(|d| d.id == id) else {
        return not_found();
    };
    let (raw, pruned_at) = match s.store.dead_letter_message(Some(&tenant), id).await {
        Ok(Some(StoredRaw::Kept(raw))) => (raw, None),
        Ok(Some(StoredRaw::Pruned(at))) => (Vec::new(), Some(at)),
        _ => return not_found(),
    };
    let facts: Vec<Vec<String>> = [
        ("status", esc(&d.status)),
        ("reason code", esc(&d.reason_code)),
        ("stage", esc(&d.stage)),
        ("field", opt(&d.detail)),
        ("type", opt(&d.message_type)),
        ("control id", opt(&d.control_id)),
        ("facility", opt(&d.sending_facility)),
        ("channel", esc(&d.channel)),
        ("received", esc(&d.received_at)),
        ("attempts", d.attempts.to_string()),
        match &pruned_at {
            None => ("bytes", raw.len().to_string()),
            Some(at) => ("raw message", format!("pruned at {} (retention)", esc(at))),
        },
    ]
    .into_iter()
    .map(|(k, v)| vec![esc(k), v])
    .collect();
    let shape: Vec<Vec<String>> = intake_pipeline::hl7::mask::masked_structure(&raw)
        .iter()
        .map(|seg| {
            let lengths: Vec<String> = seg.field_lengths.iter().map(ToString::to_string).collect();
            vec![esc(&seg.segment), esc(&lengths.join(", "))]
        })
        .collect();
    let base = format!("/console/t/{}/dead-letters/{id}", url(&tenant));
    let csrf = csrf_field(&viewer.session.csrf);
    let mut actions = String::new();
    if d.status == "open" {
        actions.push_str(&format!(
            "<h2>Replay</h2><form method=\"post\" action=\"{base}/preview\">{csrf}\
             <button type=\"submit\">Preview replay</button></form>\
             <h2>Discard</h2><form method=\"post\" action=\"{base}/discard\">{csrf}\
             <label for=\"discard-reason\">Reason</label>\
             <input id=\"discard-reason\" name=\"reason\" required maxlength=\"500\">\
             <button type=\"submit\">Discard</button></form>"
        ));
    }
    if viewer.caller.has(Scope::Phi) && pruned_at.is_none() {
        actions.push_str(&format!(
            "<h2>Raw message</h2><form method=\"post\" action=\"{base}/raw\">{csrf}\
             <label for=\"raw-reason\">Reason (recorded in the audit log)</label>\
             <input id=\"raw-reason\" name=\"reason\" maxlength=\"500\">\
             <button type=\"submit\">Show the raw message</button></form>"
        ));
    }
    let body = format!(
        "{}{}{actions}",
        table("Facts", &["", ""], &facts),
        table(
            "Structure (values masked)",
            &["segment", "field lengths"],
            &shape
        ),
    );
    viewer.page(&format!("Dead letter {id}"), &tenant, &body)
}
