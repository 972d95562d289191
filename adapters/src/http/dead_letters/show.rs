//! `GET …/dead-letters/{id}`: a letter's facts and its message's masked structure. With
//! `?raw=true` (phi scope) also the message itself: decoded by its own MSH-18 charset,
//! and as the exact original bytes in base64. A raw view is audited before it is sent.
//! Once retention pruned the message, the letter shows `raw_pruned_at` and no structure,
//! and a raw view answers 410 `RAW_PRUNED`.

use super::super::auth::Caller;
use super::super::error::ApiError;
use super::super::state::HttpState;
use super::super::tokens::Scope;
use super::actor;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine as _;
use intake_pipeline::audit;
use intake_pipeline::hl7::charset;
use intake_pipeline::store::{ExpectedVersion, StoredRaw};
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ShowParams {
    #[serde(default)]
    raw: bool,
    reason: Option<String>,
}

/// One letter of the tenant.
pub(super) async fn show(
    State(s): State<HttpState>,
    Path((tenant, id)): Path<(String, Uuid)>,
    caller: Caller,
    params: Result<Query<ShowParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(p) =
        params.map_err(|_| ApiError::InvalidQuery("raw is true|false; reason is text"))?;
    if p.raw {
        caller.need(Scope::Phi)?;
    }
    let letter = s
        .store
        .dead_letters(Some(&tenant))
        .await
        .map_err(|_| ApiError::StoreUnavailable)?
        .into_iter()
        .find(|d| d.id == id)
        .ok_or(ApiError::DeadLetterNotFound)?;
    let raw = s
        .store
        .dead_letter_message(Some(&tenant), id)
        .await
        .map_err(|_| ApiError::StoreUnavailable)?
        .ok_or(ApiError::DeadLetterNotFound)?;
    let raw = match raw {
        StoredRaw::Kept(raw) => raw,
        StoredRaw::Pruned(_) if p.raw => return Err(ApiError::RawPruned),
        StoredRaw::Pruned(at) => {
            let body = json!({"dead_letter": letter, "raw_pruned_at": at, "structure": null});
            return Ok(Json(body).into_response());
        }
    };
    let structure = intake_pipeline::hl7::mask::masked_structure(&raw);
    let mut body = json!({
        "dead_letter": letter,
        "bytes": raw.len(),
        "structure": structure,
    });
    if p.raw {
        let who = actor(&caller, p.reason)?;
        let event = audit::raw_view(&who, &tenant, id, "http");
        s.store
            .append(ExpectedVersion::Any, &[event], audit::AUDIT_CREATED_BY)
            .await
            .map_err(|_| ApiError::StoreUnavailable)?;
        let (text, charset) = decoded(&raw);
        body["message"] = json!(text);
        body["charset"] = json!(charset);
        body["raw_base64"] = json!(base64::engine::general_purpose::STANDARD.encode(&raw));
    }
    Ok(Json(body).into_response())
}

/// The message as text, by its own charset (HL7 v2: MSH-18, a UTF-16 byte order mark),
/// and the charset's name. What does not decode as HL7 v2 is shown as UTF-16 when its
/// first character is ASCII in UTF-16 (a NUL byte beside it), else as UTF-8. Segments end
/// in `\r`, as HL7 has them; the exact bytes are always in `raw_base64`.
pub(crate) fn decoded(raw: &[u8]) -> (String, &'static str) {
    if let Ok(d) = charset::decode(raw) {
        return (d.text, d.charset.name());
    }
    let unit = |pair: &[u8], little: bool| match little {
        true => u16::from_le_bytes([pair[0], pair[1]]),
        false => u16::from_be_bytes([pair[0], pair[1]]),
    };
    let utf16 = |little: bool| {
        let units = raw.chunks_exact(2).map(|p| unit(p, little));
        char::decode_utf16(units)
            .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
            .collect::<String>()
    };
    match raw {
        [a, 0, ..] if *a != 0 && raw.len() % 2 == 0 => (utf16(true), "UTF-16LE"),
        [0, b, ..] if *b != 0 && raw.len() % 2 == 0 => (utf16(false), "UTF-16BE"),
        _ => (String::from_utf8_lossy(raw).into_owned(), "UTF-8"),
    }
}
