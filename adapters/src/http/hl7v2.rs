//! `POST /api/v1/tenants/{tenant}/hl7v2`: one HL7 v2 message (ER7), answered with its
//! ACK once committed.

use super::error::ApiError;
use super::state::{authorize, HttpState};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use intake_pipeline::{AckCode, Format, RawMessage};

/// The HL7 v2 route.
pub fn routes() -> Router<HttpState> {
    Router::new().route("/api/v1/tenants/{tenant}/hl7v2", post(hl7v2))
}

async fn hl7v2(
    State(s): State<HttpState>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, ApiError> {
    authorize(&s, &headers, &tenant)?;
    let body = body.map_err(|e| match e.status() {
        StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::PayloadTooLarge("the body exceeds the size limit (1 MiB)")
        }
        _ => ApiError::InvalidBody("the body could not be read"),
    })?;
    let result = s
        .ingest
        .ingest(RawMessage::new(Some(tenant), Format::Hl7v2, "http", body.to_vec()))
        .await;
    let status = match (result.stored, result.ack) {
        (None, _) => StatusCode::SERVICE_UNAVAILABLE,
        (Some(_), AckCode::Reject) => StatusCode::BAD_REQUEST,
        _ => StatusCode::OK,
    };
    let ack = result.hl7_ack();
    Ok((
        status,
        [(header::CONTENT_TYPE, "x-application/hl7-v2+er7")],
        ack,
    )
        .into_response())
}
