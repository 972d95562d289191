//! What every request goes through before its handler, so before any body is read:
//! - [`auth_first`]: over a rate limit (per source address, then per token) a request
//!   gets 429; an `/api` request is refused on its headers alone (bad or missing
//!   token, another tenant's token, no such tenant): no body is read, and a client that sent
//!   `Expect: 100-continue` never gets `100 Continue`. The [`Caller`] goes into the
//!   request for the route's scope check and its handler;
//! - [`scoped`]: each route declares the scope it needs, and a token without it gets 403;
//! - [`json_errors`]: the framework's own plain-text rejections (a path segment that does
//!   not parse, a method the route lacks) become the JSON error shape, which never echoes
//!   the request.

use super::auth::Caller;
use super::error::ApiError;
use super::state::HttpState;
use super::tokens::Scope;
use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;

/// Finds the caller of a request and, for an `/api` route, checks it sees the tenant in
/// the path and that the tenant exists. Other routes (health, metrics) get the caller when
/// the request names one.
pub async fn auth_first(State(s): State<HttpState>, mut request: Request, next: Next) -> Response {
    if let Err(e) = s.rates.address(&request) {
        return refuse(e, &request);
    }
    let path = request.uri().path();
    let caller = s.auth.caller(request.headers());
    if let Ok(c) = &caller {
        if let Err(e) = s.rates.token(c, &request) {
            return refuse(e, &request);
        }
    }
    if let Some(rest) = path.strip_prefix("/api/") {
        let tenant = rest
            .strip_prefix("v1/tenants/")
            .and_then(|r| r.split('/').next())
            .filter(|t| !t.is_empty());
        let checked = caller.clone().and_then(|c| match tenant {
            Some(t) if !c.sees(t) => Err(ApiError::Forbidden),
            Some(t) if s.ingest.tenants().get(t).is_none() => Err(ApiError::TenantNotFound),
            _ => Ok(()),
        });
        if let Err(e) = checked {
            return refuse(e, &request);
        }
    }
    if let Ok(c) = caller {
        request.extensions_mut().insert(c);
    }
    next.run(request).await
}

/// Declares the scope a route needs: `.route(path, scoped(Scope::Read, get(handler)))`.
/// A caller without it gets 403 before the handler runs (so before the body is read).
pub fn scoped(scope: Scope, route: MethodRouter<HttpState>) -> MethodRouter<HttpState> {
    route.route_layer(axum::middleware::from_fn_with_state(scope, require))
}

async fn require(State(scope): State<Scope>, request: Request, next: Next) -> Response {
    let checked = match request.extensions().get::<Caller>() {
        None => Err(ApiError::Unauthorized),
        Some(c) => c.need(scope),
    };
    match checked {
        Ok(()) => next.run(request).await,
        Err(e) => refuse(e, &request),
    }
}

fn refuse(e: ApiError, request: &Request) -> Response {
    if request.uri().path().ends_with("/fhir") {
        super::fhir::rejection(&e, request.headers())
    } else {
        e.into_response()
    }
}

/// Replaces an error answer in plain text or without a body type (the framework's
/// rejections: our handlers answer JSON, XML or an HL7 ACK) by the JSON error of its status.
pub async fn json_errors(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    let framework = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_none_or(|t| t.starts_with("text/plain"));
    if !framework || !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let error = match status {
        StatusCode::NOT_FOUND => ApiError::RouteNotFound,
        StatusCode::METHOD_NOT_ALLOWED => ApiError::MethodNotAllowed,
        StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::PayloadTooLarge("the body exceeds this route's limit")
        }
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::UnsupportedMediaType,
        StatusCode::REQUEST_TIMEOUT => ApiError::RequestTimeout,
        _ => ApiError::InvalidRequest,
    };
    let mut answer = error.into_response();
    *answer.status_mut() = status;
    answer
}
