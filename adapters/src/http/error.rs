//! The one API error type: a stable code, an HTTP status and a fixed message, answered as
//! `{"error": {"code": "...", "message": "..."}}`. Messages are `&'static str`, so an
//! error can never carry request content or an internal error's text.

use super::tokens::Scope;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

/// An API error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiError {
    /// No bearer token, or not a known one.
    Unauthorized,
    /// The token does not grant this tenant.
    Forbidden,
    /// The tenant has no mappings.
    TenantNotFound,
    /// No route matches.
    RouteNotFound,
    /// The store did not answer.
    StoreUnavailable,
    /// No dead letter with this id for this tenant.
    DeadLetterNotFound,
    /// No open dead letter with this id for this tenant.
    DeadLetterNotOpen,
    /// No event of this tenant is on this stream.
    StreamNotFound,
    /// The tenant's retention policy emptied this message's raw bytes.
    RawPruned,
    /// The query string is not valid; the message says what is expected.
    InvalidQuery(&'static str),
    /// The body is not valid; the message says what is expected.
    InvalidBody(&'static str),
    /// The body exceeds the route's size limit; the message names the limit.
    PayloadTooLarge(&'static str),
    /// The token lacks the scope the route declares.
    ScopeMissing(Scope),
    /// The history holds no other version to go back to.
    NothingToRollBack,
    /// No such row in the tenant's mapping history.
    MappingVersionNotFound,
    /// The version to restore does not load with today's other tenants.
    RollbackRefused,
    /// The tenant's mapping folder could not be written.
    MappingsNotWritable,
    /// The mapping version a re-map asks for does not load (or lacks the tenant).
    MappingsDoNotLoad,
    /// The path, query or body does not fit the route (the framework refused it).
    InvalidRequest,
    /// The route exists, not with this method.
    MethodNotAllowed,
    /// The request took longer than its time limit.
    RequestTimeout,
    /// The body's content type is not one the route reads.
    UnsupportedMediaType,
    /// Over the rate limit of the token or of the source address; retry after this many
    /// seconds (also in `Retry-After`).
    RateLimited(u64),
}

impl ApiError {
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden => StatusCode::FORBIDDEN,
            ApiError::TenantNotFound
            | ApiError::RouteNotFound
            | ApiError::DeadLetterNotFound
            | ApiError::DeadLetterNotOpen
            | ApiError::StreamNotFound => StatusCode::NOT_FOUND,
            ApiError::RawPruned => StatusCode::GONE,
            ApiError::StoreUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::InvalidQuery(_) | ApiError::InvalidBody(_) => StatusCode::BAD_REQUEST,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::ScopeMissing(_) => StatusCode::FORBIDDEN,
            ApiError::NothingToRollBack => StatusCode::CONFLICT,
            ApiError::MappingVersionNotFound => StatusCode::NOT_FOUND,
            ApiError::RollbackRefused => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::MappingsNotWritable => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::MappingsDoNotLoad => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::InvalidRequest => StatusCode::BAD_REQUEST,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
        }
    }

    /// The stable error code.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Unauthorized => "UNAUTHORIZED",
            ApiError::Forbidden => "FORBIDDEN",
            ApiError::TenantNotFound => "TENANT_NOT_FOUND",
            ApiError::RouteNotFound => "NOT_FOUND",
            ApiError::StoreUnavailable => "STORE_UNAVAILABLE",
            ApiError::DeadLetterNotFound | ApiError::DeadLetterNotOpen => "DEAD_LETTER_NOT_FOUND",
            ApiError::StreamNotFound => "STREAM_NOT_FOUND",
            ApiError::RawPruned => intake_pipeline::store::RAW_PRUNED,
            ApiError::InvalidQuery(_) => "INVALID_QUERY",
            ApiError::InvalidBody(_) => "INVALID_BODY",
            ApiError::PayloadTooLarge(_) => "PAYLOAD_TOO_LARGE",
            ApiError::ScopeMissing(_) => "FORBIDDEN",
            ApiError::NothingToRollBack => "NOTHING_TO_ROLL_BACK",
            ApiError::MappingVersionNotFound => "MAPPING_VERSION_NOT_FOUND",
            ApiError::RollbackRefused => "ROLLBACK_REFUSED",
            ApiError::MappingsNotWritable => "MAPPINGS_NOT_WRITABLE",
            ApiError::MappingsDoNotLoad => "MAPPINGS_DO_NOT_LOAD",
            ApiError::InvalidRequest => "INVALID_REQUEST",
            ApiError::MethodNotAllowed => "METHOD_NOT_ALLOWED",
            ApiError::RequestTimeout => "REQUEST_TIMEOUT",
            ApiError::UnsupportedMediaType => "UNSUPPORTED_MEDIA_TYPE",
            ApiError::RateLimited(_) => "RATE_LIMITED",
        }
    }

    /// The fixed message.
    pub fn message(&self) -> &'static str {
        match self {
            ApiError::Unauthorized => "missing or invalid bearer token",
            ApiError::Forbidden => "this token does not grant access to this tenant",
            ApiError::TenantNotFound => "no such tenant",
            ApiError::RouteNotFound => "no such route",
            ApiError::StoreUnavailable => "the event store is unavailable",
            ApiError::DeadLetterNotFound => "no dead letter with this id for this tenant",
            ApiError::DeadLetterNotOpen => "no open dead letter with this id for this tenant",
            ApiError::RawPruned => {
                "the raw message was pruned by the tenant's retention policy; its facts and events remain"
            }
            ApiError::StreamNotFound => "this tenant has no events on this stream",
            ApiError::InvalidQuery(m) | ApiError::InvalidBody(m) | ApiError::PayloadTooLarge(m) => {
                m
            }
            ApiError::ScopeMissing(scope) => match scope {
                Scope::Ingest => "this route needs a token with the ingest scope",
                Scope::Read => "this route needs a token with the read scope",
                Scope::Support => "this route needs a token with the support scope",
                Scope::Phi => "this needs a token with the phi scope",
                Scope::Admin => "this route needs a token with the admin scope",
            },
            ApiError::NothingToRollBack => "the history holds no earlier mapping version",
            ApiError::MappingVersionNotFound => "no such version in this tenant's mapping history",
            ApiError::RollbackRefused => {
                "the earlier version does not load with the other tenants' mappings (see intake mappings rollback)"
            }
            ApiError::MappingsNotWritable => "the tenant's mapping folder could not be written",
            ApiError::MappingsDoNotLoad => {
                "that mapping version does not load beside the other tenants' mappings, or lacks the tenant (see intake check)"
            }
            ApiError::InvalidRequest => {
                "the request's path, query or body does not fit this route (an id is a UUID)"
            }
            ApiError::MethodNotAllowed => "this route does not take this method",
            ApiError::RequestTimeout => "the request took longer than its time limit",
            ApiError::UnsupportedMediaType => "this route does not read this content type",
            ApiError::RateLimited(_) => "too many requests from this token or address; retry later",
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error": {"code": self.code(), "message": self.message()}});
        let mut response = (self.status(), Json(body)).into_response();
        if let ApiError::RateLimited(seconds) = self {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, seconds.into());
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_statuses_and_messages() {
        let e = ApiError::InvalidQuery("after >= 0");
        assert_eq!(
            (e.status(), e.code(), e.message()),
            (StatusCode::BAD_REQUEST, "INVALID_QUERY", "after >= 0")
        );
        assert_eq!(
            ApiError::DeadLetterNotOpen.code(),
            ApiError::DeadLetterNotFound.code()
        );
        assert_eq!(
            ApiError::StoreUnavailable.status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
    }
}
