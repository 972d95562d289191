//! The support console, served by `intake serve` under `/console`: server-rendered pages,
//! assets embedded, the API's tokens. Logging in with a token opens a session
//! (`session.rs`); every page checks that the session's token still exists, has the
//! support scope and sees the page's tenant (another tenant's pages are 404); every form
//! carries the session's CSRF token, and the cookie is `SameSite=Strict`.
//!
//! - `pages`: what support reads (dashboard, dead letters, messages, a stream, mapping
//!   versions, the audit log), masked: no message content without the phi scope;
//! - `actions`: what support does (replay preview, replay, discard, a raw view), audited
//!   under the token's name as over the API.

mod actions;
pub mod html;
mod pages;
pub mod session;

use super::auth::Caller;
use super::state::HttpState;
use super::tokens::Scope;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use html::{esc, page};
use serde::Deserialize;
use session::{Session, COOKIE};

/// The console's routes (merged into the API router; not under `/api`).
pub fn routes() -> Router<HttpState> {
    let t = "/console/t/{tenant}";
    Router::new()
        .route("/console", get(pages::home))
        .route("/console/login", get(login_form).post(login))
        .route("/console/logout", post(logout))
        .route(t, get(pages::dashboard))
        .route(&format!("{t}/dead-letters"), get(pages::dead_letters))
        .route(&format!("{t}/dead-letters/{{id}}"), get(pages::dead_letter))
        .route(
            &format!("{t}/dead-letters/{{id}}/preview"),
            post(actions::preview),
        )
        .route(
            &format!("{t}/dead-letters/{{id}}/replay"),
            post(actions::replay),
        )
        .route(
            &format!("{t}/dead-letters/{{id}}/discard"),
            post(actions::discard),
        )
        .route(&format!("{t}/dead-letters/{{id}}/raw"), post(actions::raw))
        .route(
            &format!("{t}/messages"),
            get(pages::messages).post(pages::search),
        )
        .route(&format!("{t}/streams/{{id}}"), get(pages::stream))
        .route(&format!("{t}/mappings"), get(pages::mappings))
        .route(&format!("{t}/audit"), get(pages::audit))
}

/// The logged-in user of a console request: the session and its token's caller.
pub struct Viewer {
    /// Who, with which tenant and scopes (found again from the token on every request).
    pub caller: Caller,
    /// The session.
    pub session: Session,
    session_id: String,
}

impl Viewer {
    /// A 404 page unless this viewer may see `tenant` and it exists.
    pub fn check(&self, s: &HttpState, tenant: &str) -> Result<(), Response> {
        match self.caller.sees(tenant) && s.ingest.tenants().get(tenant).is_some() {
            true => Ok(()),
            false => Err(not_found()),
        }
    }

    /// A page of `tenant` for this viewer: its navigation and log-out form.
    pub fn page(&self, title: &str, tenant: &str, body: &str) -> Response {
        page(title, Some(tenant), Some(&self.session.csrf), body).into_response()
    }

    /// A 403 page unless the form's CSRF token is this session's.
    pub fn csrf(&self, token: &str) -> Result<(), Response> {
        match self.session.csrf_ok(token) {
            true => Ok(()),
            false => Err(problem(StatusCode::FORBIDDEN, "This form has expired or did not come from this console. Go back, reload the page and try again.")),
        }
    }
}

/// The session cookie's value, if the request has one.
fn cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_string())
}

impl FromRequestParts<HttpState> for Viewer {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, s: &HttpState) -> Result<Self, Response> {
        let to_login = || Redirect::to("/console/login").into_response();
        let id = cookie(&parts.headers).ok_or_else(to_login)?;
        let session = s.sessions.get(&id).ok_or_else(to_login)?;
        match s.auth.caller_by_digest(&session.digest) {
            Ok(caller) if caller.has(Scope::Support) => Ok(Viewer {
                caller,
                session,
                session_id: id,
            }),
            _ => {
                s.sessions.close(&id);
                Err(to_login())
            }
        }
    }
}

/// A page saying what went wrong, with its status (never echoing the request).
pub fn problem(status: StatusCode, message: &str) -> Response {
    let body = format!("<p class=\"error\" role=\"alert\">{}</p>", esc(message));
    (status, page("Sorry", None, None, &body)).into_response()
}

/// The 404 page: also for another tenant's pages.
pub fn not_found() -> Response {
    problem(StatusCode::NOT_FOUND, "There is no such page.")
}

fn login_page(error: Option<&str>) -> Html<String> {
    let error = error
        .map(|e| format!("<p class=\"error\" role=\"alert\">{}</p>", esc(e)))
        .unwrap_or_default();
    page(
        "Log in",
        None,
        None,
        &format!(
            "{error}<form method=\"post\" action=\"/console/login\">\
             <label for=\"token\">API token</label>\
             <input id=\"token\" name=\"token\" type=\"password\" autocomplete=\"off\" required autofocus>\
             <button type=\"submit\">Log in</button></form>\
             <p>Use a token with the <code>support</code> scope (<code>intake token create</code>).</p>"
        ),
    )
}

async fn login_form() -> Html<String> {
    login_page(None)
}

#[derive(Deserialize)]
struct Login {
    token: String,
}

async fn login(
    State(s): State<HttpState>,
    form: Result<Form<Login>, axum::extract::rejection::FormRejection>,
) -> Response {
    let Ok(Form(login)) = form else {
        return (StatusCode::BAD_REQUEST, login_page(Some("Enter a token."))).into_response();
    };
    let caller = match s.auth.caller_of(login.token.trim()) {
        Ok(c) if c.has(Scope::Support) => c,
        Ok(_) => {
            let e = "This token lacks the support scope.";
            return (StatusCode::FORBIDDEN, login_page(Some(e))).into_response();
        }
        Err(_) => {
            let e = "That token is not valid.";
            return (StatusCode::UNAUTHORIZED, login_page(Some(e))).into_response();
        }
    };
    let id = s.sessions.open(super::tokens::hash(login.token.trim()));
    let cookie = format!("{COOKIE}={id}; HttpOnly; SameSite=Strict; Path=/console");
    let mut response = Redirect::to(&home_of(&caller)).into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, v);
    }
    response
}

/// Where a caller lands: its tenant's dashboard, or the list of tenants.
fn home_of(caller: &Caller) -> String {
    match caller.tenant.as_str() {
        super::tokens::EVERY_TENANT => "/console".into(),
        t => format!("/console/t/{}", html::url(t)),
    }
}

#[derive(Deserialize)]
struct CsrfOnly {
    csrf: String,
}

async fn logout(State(s): State<HttpState>, viewer: Viewer, Form(f): Form<CsrfOnly>) -> Response {
    if let Err(r) = viewer.csrf(&f.csrf) {
        return r;
    }
    s.sessions.close(&viewer.session_id);
    let mut response = Redirect::to("/console/login").into_response();
    let gone = format!("{COOKIE}=; HttpOnly; SameSite=Strict; Path=/console; Max-Age=0");
    if let Ok(v) = HeaderValue::from_str(&gone) {
        response.headers_mut().insert(header::SET_COOKIE, v);
    }
    response
}
