//! What every request goes through before its handler, so before any body is read:
//! - [`auth_first`]: an `/api` request is refused on its headers alone (bad or missing
//!   token, another tenant's token, no such tenant): no body is read, and a client that sent
//!   `Expect: 100-continue` never gets `100 Continue`;
//! - [`json_errors`]: the framework's own plain-text rejections (a path segment that does
//!   not parse, a method the route lacks) become the JSON error shape, which never echoes
//!   the request.

use super::error::ApiError;
use super::state::{authorize, HttpState};
use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// Checks the token of an `/api` request against the tenant in its path.
pub async fn auth_first(State(s): State<HttpState>, request: Request, next: Next) -> Response {
    let path = request.uri().path();
    if let Some(rest) = path.strip_prefix("/api/") {
        let tenant = rest
            .strip_prefix("v1/tenants/")
            .and_then(|r| r.split('/').next())
            .filter(|t| !t.is_empty());
        let checked = match tenant {
            Some(t) => authorize(&s, request.headers(), t),
            None => s.auth.authenticated(request.headers()),
        };
        if let Err(e) = checked {
            return if path.ends_with("/fhir") {
                super::fhir::rejection(&e, request.headers())
            } else {
                e.into_response()
            };
        }
    }
    next.run(request).await
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
