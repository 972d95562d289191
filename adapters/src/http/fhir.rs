//! FHIR push: `POST /api/v1/tenants/{tenant}/fhir`, answered with an OperationOutcome.
//!
//! The body (a FHIR R4 resource or Bundle, JSON or XML: the body is sniffed, the content
//! type only has to be a FHIR one) goes through the same pipeline as HL7 v2 on channel
//! `fhir`, and is answered once committed:
//!
//! | outcome                                   | status | issue code                    |
//! |-------------------------------------------|--------|-------------------------------|
//! | events stored                             | 201    | `informational`               |
//! | duplicate of a stored resource            | 200    | `informational` (0 events)    |
//! | FHIR_MALFORMED                            | 400    | `structure`                   |
//! | FHIR_INVALID                              | 400    | `invalid` (+ `expression`)    |
//! | FHIR_UNSAFE_XML                           | 400    | `security`                    |
//! | FHIR_TOO_DEEP                             | 400    | `too-costly`                  |
//! | UNMAPPED_RESOURCE_TYPE                    | 422    | `not-supported`               |
//! | other mapping reasons                     | 422    | `processing`                  |
//! | missing / invalid token                   | 401    | `login`                       |
//! | token of another tenant                   | 403    | `forbidden`                   |
//! | unknown tenant                            | 404    | `not-found`                   |
//! | body over [`MAX_FHIR_BODY_BYTES`]         | 413    | `too-long`                    |
//! | content type not FHIR JSON / XML          | 415    | `not-supported`               |
//! | store unavailable                         | 503    | `transient`                   |
//!
//! Dead letters (400 and 422) are stored: the diagnostics name the dead-letter id that
//! support replays once the mapping is fixed. Nothing from the body is ever echoed:
//! diagnostics carry codes, counts, positions and element paths only.

use super::auth::Caller;
use super::error::ApiError;
use super::guard::scoped;
use super::state::HttpState;
use super::tokens::Scope;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use intake_pipeline::Outcome as Committed;
use intake_pipeline::Stored;
use intake_pipeline::{Format, RawMessage, Reason, Stage};
use serde_json::{json, Value};

/// Largest FHIR body accepted (Bundles are larger than HL7 v2 messages).
pub const MAX_FHIR_BODY_BYTES: usize = 10 << 20;

/// The FHIR push route, with its own body limit.
pub fn routes() -> Router<HttpState> {
    Router::new()
        .route(
            "/api/v1/tenants/{tenant}/fhir",
            scoped(Scope::Ingest, post(push)),
        )
        .layer(DefaultBodyLimit::max(MAX_FHIR_BODY_BYTES))
}

/// One OperationOutcome issue.
struct Issue {
    severity: &'static str,
    code: &'static str,
    diagnostics: String,
    expression: Option<String>,
}

/// An OperationOutcome with one issue and its HTTP status, as JSON or XML.
struct Outcome {
    status: StatusCode,
    issue: Issue,
    xml: bool,
}

impl Outcome {
    fn error(status: StatusCode, code: &'static str, diagnostics: impl Into<String>) -> Self {
        Outcome {
            status,
            issue: Issue {
                severity: "error",
                code,
                diagnostics: diagnostics.into(),
                expression: None,
            },
            xml: false,
        }
    }

    fn from_api(e: &ApiError) -> Self {
        let code = match e.status() {
            StatusCode::UNAUTHORIZED => "login",
            StatusCode::FORBIDDEN => "forbidden",
            StatusCode::NOT_FOUND => "not-found",
            StatusCode::SERVICE_UNAVAILABLE => "transient",
            StatusCode::TOO_MANY_REQUESTS => "throttled",
            _ => "processing",
        };
        Outcome::error(e.status(), code, format!("{}: {}", e.code(), e.message()))
    }

    fn json(&self) -> Value {
        let mut issue = json!({
            "severity": self.issue.severity,
            "code": self.issue.code,
            "diagnostics": self.issue.diagnostics,
        });
        if let Some(e) = &self.issue.expression {
            issue["expression"] = json!([e]);
        }
        json!({"resourceType": "OperationOutcome", "issue": [issue]})
    }

    fn xml(&self) -> String {
        let i = &self.issue;
        let expression = i
            .expression
            .as_deref()
            .map(|e| format!("<expression value=\"{}\"/>", escape(e)))
            .unwrap_or_default();
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<OperationOutcome xmlns=\"http://hl7.org/fhir\">\
             <issue><severity value=\"{}\"/><code value=\"{}\"/><diagnostics value=\"{}\"/>{expression}</issue>\
             </OperationOutcome>\n",
            i.severity,
            i.code,
            escape(&i.diagnostics),
        )
    }
}

impl IntoResponse for Outcome {
    fn into_response(self) -> Response {
        if self.xml {
            let body = self.xml();
            (
                self.status,
                [(header::CONTENT_TYPE, "application/fhir+xml; charset=utf-8")],
                body,
            )
                .into_response()
        } else {
            let body = self.json().to_string();
            (
                self.status,
                [(header::CONTENT_TYPE, "application/fhir+json; charset=utf-8")],
                body,
            )
                .into_response()
        }
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The media type (lower case, without parameters) of a header value.
fn media_type(value: &str) -> String {
    value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// Whether the request's content type is one the route accepts: FHIR JSON or XML, with
/// optional `charset=utf-8` and `fhirVersion=4.0` parameters.
fn accepted_content_type(headers: &HeaderMap) -> Option<bool> {
    let value = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    let xml = match media_type(value).as_str() {
        "application/fhir+json" | "application/json" => false,
        "application/fhir+xml" | "application/xml" => true,
        _ => return None,
    };
    for param in value.split(';').skip(1) {
        let (name, v) = param.split_once('=').unwrap_or((param, ""));
        let v = v.trim().trim_matches('"').to_ascii_lowercase();
        match name.trim().to_ascii_lowercase().as_str() {
            "charset" if v != "utf-8" => return None,
            "fhirversion" if !v.starts_with("4.0") => return None,
            _ => {}
        }
    }
    Some(xml)
}

/// XML answers when the client asks for XML, or sent XML and did not ask for JSON.
/// The OperationOutcome of a request refused before its body was read (see `guard`).
pub(super) fn rejection(e: &ApiError, headers: &HeaderMap) -> Response {
    let sent_xml = accepted_content_type(headers);
    let mut outcome = Outcome::from_api(e);
    outcome.xml = answer_in_xml(headers, sent_xml.unwrap_or(false));
    let mut response = outcome.into_response();
    if let ApiError::RateLimited(seconds) = e {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, (*seconds).into());
    }
    response
}

fn answer_in_xml(headers: &HeaderMap, sent_xml: bool) -> bool {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    if accept.contains("xml") {
        return true;
    }
    if accept.contains("json") {
        return false;
    }
    sent_xml
}

async fn push(
    State(s): State<HttpState>,
    Path(tenant): Path<String>,
    _caller: Caller,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    let sent_xml = accepted_content_type(&headers);
    let xml = answer_in_xml(&headers, sent_xml.unwrap_or(false));
    let mut outcome = answer(&s, tenant, sent_xml, body).await;
    outcome.xml = xml;
    outcome.into_response()
}

async fn answer(
    s: &HttpState,
    tenant: String,
    sent_xml: Option<bool>,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Outcome {
    if sent_xml.is_none() {
        return Outcome::error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "not-supported",
            "UNSUPPORTED_MEDIA_TYPE: send application/fhir+json or application/fhir+xml \
             (charset UTF-8, FHIR R4)",
        );
    }
    let body = match body {
        Ok(b) => b,
        Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return Outcome::error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too-long",
                format!(
                    "PAYLOAD_TOO_LARGE: the body exceeds the size limit ({} MiB)",
                    MAX_FHIR_BODY_BYTES >> 20
                ),
            )
        }
        Err(_) => {
            return Outcome::error(
                StatusCode::BAD_REQUEST,
                "structure",
                "INVALID_BODY: the body could not be read",
            )
        }
    };
    let result = s
        .ingest
        .ingest(RawMessage::new(
            Some(tenant),
            Format::sniff_fhir(&body),
            "fhir",
            body.to_vec(),
        ))
        .await;
    outcome_of(&result)
}

fn outcome_of(r: &Committed) -> Outcome {
    let Some(stored) = r.stored else {
        return Outcome::error(
            StatusCode::SERVICE_UNAVAILABLE,
            "transient",
            "STORE_UNAVAILABLE: nothing was stored; retry later",
        );
    };
    let resource = r.message_type.as_deref().unwrap_or("resource");
    match (stored, r.reason) {
        (Stored::Events, _) => {
            let n = r.positions.len();
            Outcome {
                status: StatusCode::CREATED,
                issue: Issue {
                    severity: "information",
                    code: "informational",
                    diagnostics: format!(
                        "{n} event{} stored from {resource}; inbound message {}",
                        if n == 1 { "" } else { "s" },
                        r.inbound_id
                    ),
                    expression: None,
                },
                xml: false,
            }
        }
        (Stored::Filtered, _) => Outcome {
            status: StatusCode::OK,
            issue: Issue {
                severity: "information",
                code: "informational",
                diagnostics: format!(
                    "0 events stored: {resource} filtered by the mapping ({}); inbound message {}",
                    r.detail.as_deref().unwrap_or("ignored"),
                    r.inbound_id
                ),
                expression: None,
            },
            xml: false,
        },
        (Stored::Duplicate, None) => Outcome {
            status: StatusCode::OK,
            issue: Issue {
                severity: "information",
                code: "informational",
                diagnostics: format!(
                    "0 events stored: duplicate of a stored resource ({resource})"
                ),
                expression: None,
            },
            xml: false,
        },
        (Stored::Duplicate, Some(reason)) => {
            let mut o = rejected(reason, None);
            o.issue.diagnostics = format!(
                "{}: {}; duplicate of a stored resource that was dead-lettered",
                reason.code(),
                reason.text()
            );
            o
        }
        (Stored::DeadLettered, Some(reason)) => {
            let mut o = rejected(reason, r.detail.as_deref());
            o.issue.diagnostics.push_str(&format!(
                "; dead letter {} (replay: POST .../dead-letters/{}/replay)",
                r.inbound_id, r.inbound_id
            ));
            o
        }
        (Stored::DeadLettered, None) => Outcome::error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "processing",
            format!("dead letter {}", r.inbound_id),
        ),
    }
}

/// The status and issue of a dead-lettered body: input errors (decode, parse) are 400,
/// mapping errors 422.
fn rejected(reason: Reason, detail: Option<&str>) -> Outcome {
    let (status, code) = match reason {
        Reason::FhirMalformed => (StatusCode::BAD_REQUEST, "structure"),
        Reason::FhirInvalid => (StatusCode::BAD_REQUEST, "invalid"),
        Reason::FhirUnsafeXml => (StatusCode::BAD_REQUEST, "security"),
        Reason::FhirTooDeep | Reason::FhirTooManyItems => (StatusCode::BAD_REQUEST, "too-costly"),
        Reason::UnmappedResourceType => (StatusCode::UNPROCESSABLE_ENTITY, "not-supported"),
        r if matches!(r.stage(), Stage::Decode | Stage::Parse) => {
            (StatusCode::BAD_REQUEST, "structure")
        }
        _ => (StatusCode::UNPROCESSABLE_ENTITY, "processing"),
    };
    let mut diagnostics = format!("{}: {}", reason.code(), reason.text());
    if let Some(d) = detail {
        diagnostics.push_str(&format!(" ({d})"));
    }
    let expression = match reason {
        Reason::FhirInvalid => detail.map(str::to_string),
        _ => None,
    };
    Outcome {
        status,
        issue: Issue {
            severity: "error",
            code,
            diagnostics,
            expression,
        },
        xml: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn ct(v: &str) -> Option<bool> {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_str(v).unwrap());
        accepted_content_type(&h)
    }

    #[test]
    fn content_types() {
        assert_eq!(ct("application/fhir+json"), Some(false));
        assert_eq!(ct("application/json; charset=utf-8"), Some(false));
        assert_eq!(ct("application/fhir+json; fhirVersion=4.0"), Some(false));
        assert_eq!(ct("Application/FHIR+XML;charset=UTF-8"), Some(true));
        assert_eq!(ct("application/xml"), Some(true));
        assert_eq!(ct("text/plain"), None);
        assert_eq!(ct("application/fhir+json; charset=iso-8859-1"), None);
        assert_eq!(ct("application/fhir+json; fhirVersion=5.0"), None);
        assert_eq!(accepted_content_type(&HeaderMap::new()), None);
    }

    #[test]
    fn xml_outcome_escapes() {
        let mut o = rejected(Reason::FhirInvalid, Some("Patient.name[0]"));
        o.issue.diagnostics.push_str(" <&>");
        let x = o.xml();
        assert!(x.contains("<expression value=\"Patient.name[0]\"/>"), "{x}");
        assert!(x.contains("&lt;&amp;&gt;"), "{x}");
        assert_eq!(o.json()["issue"][0]["code"], "invalid");
    }
}
