//! What enters the pipeline: a raw message, its format, and the key that makes storing it
//! idempotent.
//!
//! The format is decided once, where the message enters (an MLLP frame is HL7 v2; a FHIR
//! body is sniffed for JSON or XML), and travels as a type. The channel is only a label
//! for provenance and metrics: nothing downstream decides by it.

use chrono::{DateTime, Utc};
use std::fmt;
use uuid::Uuid;

/// How a message's bytes are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// HL7 v2 in ER7 (pipe-delimited) encoding.
    Hl7v2,
    /// A FHIR R4 resource or Bundle in JSON.
    FhirJson,
    /// A FHIR R4 resource or Bundle in XML.
    FhirXml,
}

impl Format {
    /// Every format, in documentation order.
    pub const ALL: [Format; 3] = [Format::Hl7v2, Format::FhirJson, Format::FhirXml];

    /// A FHIR body's syntax from its first character after an optional BOM and
    /// whitespace: `<` is XML, anything else is taken as JSON (and fails to decode as
    /// such when it is not).
    pub fn sniff_fhir(bytes: &[u8]) -> Format {
        let body = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
        match body.iter().find(|b| !b.is_ascii_whitespace()) {
            Some(b'<') => Format::FhirXml,
            _ => Format::FhirJson,
        }
    }

    /// The stable name stored with every inbound message: `hl7v2`, `fhir+json`, `fhir+xml`.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Hl7v2 => "hl7v2",
            Format::FhirJson => "fhir+json",
            Format::FhirXml => "fhir+xml",
        }
    }

    /// Inverse of [`Format::as_str`].
    pub fn from_name(name: &str) -> Option<Format> {
        Format::ALL.into_iter().find(|f| f.as_str() == name)
    }

    /// Whether this is one of the FHIR syntaxes.
    pub fn is_fhir(self) -> bool {
        matches!(self, Format::FhirJson | Format::FhirXml)
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A message as it came off the wire.
#[derive(Debug, Clone)]
pub struct RawMessage {
    /// Inbound message id (UUIDv7, assigned on receipt); events carry it as correlation id.
    pub id: Uuid,
    /// The tenant the listener or URL is bound to, if any.
    pub tenant: Option<String>,
    /// How the bytes are written.
    pub format: Format,
    /// Where it came from, e.g. `mllp:127.0.0.1:2575` or `http`: a label, never a decision.
    pub channel: String,
    /// The bytes, verbatim.
    pub bytes: Vec<u8>,
    /// When it was received.
    pub received_at: DateTime<Utc>,
}

impl RawMessage {
    /// A freshly received message.
    pub fn new(
        tenant: Option<String>,
        format: Format,
        channel: impl Into<String>,
        bytes: Vec<u8>,
    ) -> Self {
        RawMessage {
            id: Uuid::now_v7(),
            tenant,
            format,
            channel: channel.into(),
            bytes,
            received_at: Utc::now(),
        }
    }
}

/// The idempotency key of a message: (tenant, source, control id). For HL7 v2 the source
/// is MSH-4 and the control id MSH-10; for FHIR they are `fhir:<ResourceType>` and
/// `<id>/_history/<versionId>` (or a content hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey {
    /// Tenant id.
    pub tenant: String,
    /// MSH-4 as sent, or `fhir:<ResourceType>`.
    pub sending_facility: String,
    /// MSH-10 as sent, or the FHIR resource's version key.
    pub control_id: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fhir_syntax_is_sniffed_after_bom_and_whitespace() {
        assert_eq!(
            Format::sniff_fhir(b"\xEF\xBB\xBF \n<Patient/>"),
            Format::FhirXml
        );
        assert_eq!(
            Format::sniff_fhir(b"  {\"resourceType\":1}"),
            Format::FhirJson
        );
        assert_eq!(Format::sniff_fhir(b"MSH|"), Format::FhirJson);
        assert_eq!(Format::sniff_fhir(b""), Format::FhirJson);
    }

    #[test]
    fn names_round_trip() {
        for f in Format::ALL {
            assert_eq!(Format::from_name(f.as_str()), Some(f));
        }
        assert_eq!(Format::from_name("fhir"), None);
    }
}
