//! What support does in the console: preview a replay, replay, discard with a reason,
//! and (phi scope) view a raw message. Every form is CSRF-checked; every change and raw
//! view is audited under the token's name, exactly as over the API.

use super::html::{csrf_field, esc, table, url};
use super::{not_found, problem, Viewer};
use crate::http::state::HttpState;
use crate::http::tokens::Scope;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Form;
use intake_pipeline::audit::{self, Actor};
use intake_pipeline::process;
use intake_pipeline::store::{DeadLetterFilter, ExpectedVersion, StoredRaw};
use serde::Deserialize;
use uuid::Uuid;

/// A form's fields: the CSRF token and, for some, a reason.
#[derive(Deserialize)]
pub struct ActionForm {
    csrf: String,
    reason: Option<String>,
}

fn one(tenant: &str, id: Uuid) -> DeadLetterFilter {
    DeadLetterFilter {
        tenant: Some(tenant.to_string()),
        ids: vec![id],
        limit: 1,
        ..DeadLetterFilter::default()
    }
}

/// The checks every action makes; the actor with the form's reason.
fn admit(
    s: &HttpState,
    viewer: &Viewer,
    tenant: &str,
    form: &ActionForm,
) -> Result<Actor, Response> {
    viewer.check(s, tenant)?;
    viewer.csrf(&form.csrf)?;
    let reason = form.reason.clone().filter(|r| !r.trim().is_empty());
    Actor::new(viewer.caller.name.clone(), reason).map_err(|e| problem(StatusCode::BAD_REQUEST, e))
}

fn unavailable() -> Response {
    problem(
        StatusCode::SERVICE_UNAVAILABLE,
        "The event store did not answer. Nothing was changed.",
    )
}

/// The answer for a raw message that retention emptied.
pub(super) fn pruned() -> Response {
    problem(
        StatusCode::GONE,
        "RAW_PRUNED: the tenant's retention policy emptied this raw message; its facts and events remain.",
    )
}

fn back(tenant: &str, id: Uuid) -> String {
    format!("<p><a href=\"/console/t/{}/dead-letters/{id}\">Back to the dead letter</a> · <a href=\"/console/t/{}/audit\">Audit log</a></p>", url(tenant), url(tenant))
}

/// What a replay would do: the events and what would be appended. Changes nothing.
pub async fn preview(
    State(s): State<HttpState>,
    Path((tenant, id)): Path<(String, Uuid)>,
    viewer: Viewer,
    Form(form): Form<ActionForm>,
) -> Response {
    if let Err(r) = admit(&s, &viewer, &tenant, &form) {
        return r;
    }
    let tenants = s.ingest.tenants();
    let remap = move |raw| process(raw, &tenants);
    let Ok(previews) = s
        .store
        .preview_dead_letters(&one(&tenant, id), &remap)
        .await
    else {
        return unavailable();
    };
    let Some(p) = previews.into_iter().next() else {
        return not_found();
    };
    let rows: Vec<Vec<String>> = p
        .events
        .iter()
        .map(|e| {
            let fields: Vec<String> = e
                .data
                .as_object()
                .map(|o| o.keys().cloned().collect())
                .unwrap_or_default();
            vec![
                esc(&e.event_type),
                esc(&e.stream_type),
                esc(&fields.join(", ")),
            ]
        })
        .collect();
    let verdict = match &p.still_failing {
        Some(code) => format!("<p class=\"error\" role=\"status\">It still fails: <code>{}</code>. Fix the mapping first.</p>", esc(code)),
        None => format!("<p class=\"note\" role=\"status\">It maps now: would append {} event(s).</p>", p.would_append),
    };
    let form = match p.still_failing {
        Some(_) => String::new(),
        None => format!(
            "<form method=\"post\" action=\"/console/t/{}/dead-letters/{id}/replay\">{}\
             <label for=\"replay-reason\">Reason</label><input id=\"replay-reason\" name=\"reason\" maxlength=\"500\">\
             <button type=\"submit\">Replay</button></form>",
            url(&tenant),
            csrf_field(&viewer.session.csrf)
        ),
    };
    let body = format!(
        "{verdict}{}{form}{}",
        table(
            "Events it would produce",
            &["event", "stream", "fields"],
            &rows
        ),
        back(&tenant, id)
    );
    viewer.page("Replay preview", &tenant, &body)
}

/// Replays the letter (audited).
pub async fn replay(
    State(s): State<HttpState>,
    Path((tenant, id)): Path<(String, Uuid)>,
    viewer: Viewer,
    Form(form): Form<ActionForm>,
) -> Response {
    let actor = match admit(&s, &viewer, &tenant, &form) {
        Ok(a) => a,
        Err(r) => return r,
    };
    let tenants = s.ingest.tenants();
    let remap = move |raw| process(raw, &tenants);
    let Ok(done) = s
        .store
        .replay_dead_letters(&one(&tenant, id), &remap, &actor)
        .await
    else {
        return unavailable();
    };
    let Some(r) = done.into_iter().next() else {
        return problem(StatusCode::NOT_FOUND, "That dead letter is no longer open.");
    };
    let body = match r.still_failing {
        Some(code) => format!("<p class=\"error\" role=\"status\">Still failing: <code>{}</code>; the letter stays open.</p>", esc(&code)),
        None => format!("<p class=\"note\" role=\"status\">Replayed: {} event(s) appended.</p>", r.appended),
    };
    viewer.page("Replay", &tenant, &(body + &back(&tenant, id)))
}

/// Discards the letter; a reason is required (audited).
pub async fn discard(
    State(s): State<HttpState>,
    Path((tenant, id)): Path<(String, Uuid)>,
    viewer: Viewer,
    Form(form): Form<ActionForm>,
) -> Response {
    let actor = match admit(&s, &viewer, &tenant, &form) {
        Ok(a) => a,
        Err(r) => return r,
    };
    if actor.reason.is_none() {
        return problem(StatusCode::BAD_REQUEST, "A discard needs a reason.");
    }
    let Ok(done) = s
        .store
        .discard_dead_letters(&one(&tenant, id), &actor)
        .await
    else {
        return unavailable();
    };
    if done.is_empty() {
        return problem(StatusCode::NOT_FOUND, "That dead letter is no longer open.");
    }
    let body = format!(
        "<p class=\"note\" role=\"status\">Discarded.</p>{}",
        back(&tenant, id)
    );
    viewer.page("Discard", &tenant, &body)
}

/// The raw message, for a token with the phi scope; the view is audited first.
pub async fn raw(
    State(s): State<HttpState>,
    Path((tenant, id)): Path<(String, Uuid)>,
    viewer: Viewer,
    Form(form): Form<ActionForm>,
) -> Response {
    let actor = match admit(&s, &viewer, &tenant, &form) {
        Ok(a) => a,
        Err(r) => return r,
    };
    if !viewer.caller.has(Scope::Phi) {
        return problem(
            StatusCode::FORBIDDEN,
            "The raw message needs a token with the phi scope.",
        );
    }
    let bytes = match s.store.dead_letter_message(Some(&tenant), id).await {
        Ok(Some(StoredRaw::Kept(bytes))) => bytes,
        Ok(Some(StoredRaw::Pruned(_))) => return pruned(),
        _ => return not_found(),
    };
    let event = audit::raw_view(&actor, &tenant, id, "console");
    if s.store
        .append(ExpectedVersion::Any, &[event], audit::AUDIT_CREATED_BY)
        .await
        .is_err()
    {
        return unavailable();
    }
    let (text, charset) = crate::http::dead_letters::decoded(&bytes);
    let body = format!(
        "<p>Decoded as {}; {} bytes. This view is in the audit log.</p><pre>{}</pre>{}",
        esc(charset),
        bytes.len(),
        esc(&text.replace('\r', "\n")),
        back(&tenant, id)
    );
    viewer.page("Raw message", &tenant, &body)
}
