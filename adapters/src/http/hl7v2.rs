//! `POST /api/v1/tenants/{tenant}/hl7v2`: one HL7 v2 message (ER7) or an FHS/BHS batch,
//! answered with its ACK (for a batch: the batch acknowledgement) once committed.

use super::auth::Caller;
use super::error::ApiError;
use super::guard::scoped;
use super::state::HttpState;
use super::tokens::Scope;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use intake_pipeline::{AckCode, Format, FrameOutcome, RawMessage};

/// The HL7 v2 route.
pub fn routes() -> Router<HttpState> {
    Router::new().route(
        "/api/v1/tenants/{tenant}/hl7v2",
        scoped(Scope::Ingest, post(hl7v2)),
    )
}

async fn hl7v2(
    State(s): State<HttpState>,
    Path(tenant): Path<String>,
    _caller: Caller,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body.map_err(|e| match e.status() {
        StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::PayloadTooLarge("the body exceeds the size limit (1 MiB)")
        }
        _ => ApiError::InvalidBody("the body could not be read"),
    })?;
    let result = s
        .ingest
        .ingest_frame(RawMessage::new(
            Some(tenant),
            Format::Hl7v2,
            "http",
            body.to_vec(),
        ))
        .await;
    let status = status(&result);
    let ack = result.hl7_ack();
    Ok((
        status,
        [(header::CONTENT_TYPE, "x-application/hl7-v2+er7")],
        ack,
    )
        .into_response())
}

/// 503 when a message could not be stored (for a batch: any of them; resending the whole
/// batch is safe, what was stored is not stored twice); 400 for a message rejected (AR)
/// though stored; else 200, dead letters included.
fn status(result: &FrameOutcome) -> StatusCode {
    let outcomes = result.outcomes();
    if outcomes.iter().any(|o| o.stored.is_none()) {
        StatusCode::SERVICE_UNAVAILABLE
    } else if !result.is_batch() && outcomes.iter().any(|o| o.ack == AckCode::Reject) {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    }
}
