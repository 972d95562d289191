//! Stable reason codes: why a message was dead-lettered or rejected.
//!
//! Codes are part of the public contract (README, ACK ERR segments, dead-letter rows,
//! metrics). They never carry message content: the optional detail names a field and
//! its path, never its value.

use serde::Serialize;

/// The pipeline stage at which a message stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Bytes to text: framing, charset.
    Decode,
    /// Text to segments and header fields.
    Parse,
    /// Finding the tenant that owns the message.
    Route,
    /// Applying the tenant's mapping rules.
    Map,
}

impl Stage {
    /// The stage's stable name, as stored in `dead_letters.stage`.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Decode => "decode",
            Stage::Parse => "parse",
            Stage::Route => "route",
            Stage::Map => "map",
        }
    }
}

/// Why a message could not become events. Each variant has one stable code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Reason {
    /// The bytes do not start with an MSH segment.
    NotHl7,
    /// Nothing but whitespace.
    EmptyMessage,
    /// A well-formed FHS/BHS batch reached a path that takes one message (a UTF-16 batch,
    /// or a batch given to `process` directly): it is kept whole, not split.
    BatchEnvelope,
    /// An FHS/BHS envelope without any MSH.
    BatchEmpty,
    /// A batch's envelope segments out of order, or segments outside any message
    /// (detail: the segment number).
    BatchMalformed,
    /// A batch with more messages than the limit (detail: the limit).
    BatchTooManyMessages,
    /// MSH-18 names a charset intake cannot decode.
    UnsupportedCharset,
    /// A segment id is not three upper-case letters or digits.
    MalformedSegment,
    /// The HL7 grammar could not be parsed (delimiters, structure).
    MalformedMessage,
    /// MSH-9 (message type and trigger) is empty.
    MissingMessageType,
    /// MSH-10 (message control id) is empty.
    MissingControlId,
    /// More segments than the tenant's `max_segments_per_message` (detail: the limit).
    MessageTooManySegments,
    /// A field with more repetitions than the tenant's `max_repetitions_per_field`
    /// (detail: segment number, field and the limit).
    FieldTooManyRepetitions,
    /// No tenant is bound to the listener or claims MSH-4/MSH-6 (detail: the MSH-4 and
    /// MSH-6 values seen, which are facility codes, not PHI).
    UnknownTenant,
    /// The tenant has no rule for this message type and trigger.
    UnmappedMessageType,
    /// A field the mapping marks required is empty.
    MappingRequiredField,
    /// A field's value does not fit its declared type (e.g. not an HL7 timestamp).
    MappingInvalidValue,
    /// A value is outside a plugin's validation (range or enum) that says `dead_letter`.
    PluginValidationFailed,
    /// A code-table lookup missed and the field says `on_miss: dead_letter`.
    MappingTableMiss,
    /// A rule matched but produced no event (e.g. an ORU without any OBX).
    MappingNoEvents,
    /// The message would give more events (or `for_each` items) than its tenant's
    /// `max_events_per_message` (detail: the limit).
    MappingTooManyEvents,
    /// The body is not well-formed FHIR JSON or XML (detail: line and column).
    FhirMalformed,
    /// Well-formed, but not a valid FHIR R4 resource in the tenant's strictness mode
    /// (detail: the FHIRPath expression of the offending element).
    FhirInvalid,
    /// XML with a DOCTYPE or entity declaration (refused: entity expansion, external entities).
    FhirUnsafeXml,
    /// Nesting deeper than the engine accepts.
    FhirTooDeep,
    /// More JSON values or XML elements than the tenant's `fhir.max_items` (detail: the
    /// limit), refused before any tree is built.
    FhirTooManyItems,
    /// The tenant has no rule for this FHIR resource type.
    UnmappedResourceType,
}

impl Reason {
    /// Every reason, in documentation order.
    pub const ALL: [Reason; 27] = [
        Reason::NotHl7,
        Reason::EmptyMessage,
        Reason::BatchEnvelope,
        Reason::BatchEmpty,
        Reason::BatchMalformed,
        Reason::BatchTooManyMessages,
        Reason::UnsupportedCharset,
        Reason::MalformedSegment,
        Reason::MalformedMessage,
        Reason::MissingMessageType,
        Reason::MissingControlId,
        Reason::MessageTooManySegments,
        Reason::FieldTooManyRepetitions,
        Reason::UnknownTenant,
        Reason::UnmappedMessageType,
        Reason::MappingRequiredField,
        Reason::MappingInvalidValue,
        Reason::PluginValidationFailed,
        Reason::MappingTableMiss,
        Reason::MappingNoEvents,
        Reason::MappingTooManyEvents,
        Reason::FhirMalformed,
        Reason::FhirInvalid,
        Reason::FhirUnsafeXml,
        Reason::FhirTooDeep,
        Reason::FhirTooManyItems,
        Reason::UnmappedResourceType,
    ];
}

impl Reason {
    /// The stable code string.
    pub fn code(self) -> &'static str {
        match self {
            Reason::NotHl7 => "NOT_HL7",
            Reason::EmptyMessage => "EMPTY_MESSAGE",
            Reason::BatchEnvelope => "BATCH_ENVELOPE",
            Reason::BatchEmpty => "BATCH_EMPTY",
            Reason::BatchMalformed => "BATCH_MALFORMED",
            Reason::BatchTooManyMessages => "BATCH_TOO_MANY_MESSAGES",
            Reason::UnsupportedCharset => "UNSUPPORTED_CHARSET",
            Reason::MalformedSegment => "MALFORMED_SEGMENT",
            Reason::MalformedMessage => "MALFORMED_MESSAGE",
            Reason::MissingMessageType => "MISSING_MESSAGE_TYPE",
            Reason::MissingControlId => "MISSING_CONTROL_ID",
            Reason::UnknownTenant => "UNKNOWN_TENANT",
            Reason::UnmappedMessageType => "UNMAPPED_MESSAGE_TYPE",
            Reason::MappingRequiredField => "MAPPING_REQUIRED_FIELD",
            Reason::MappingInvalidValue => "MAPPING_INVALID_VALUE",
            Reason::PluginValidationFailed => "PLUGIN_VALIDATION_FAILED",
            Reason::MappingTableMiss => "MAPPING_TABLE_MISS",
            Reason::MappingNoEvents => "MAPPING_NO_EVENTS",
            Reason::MappingTooManyEvents => "MAPPING_TOO_MANY_EVENTS",
            Reason::FhirMalformed => "FHIR_MALFORMED",
            Reason::FhirInvalid => "FHIR_INVALID",
            Reason::FhirUnsafeXml => "FHIR_UNSAFE_XML",
            Reason::FhirTooDeep => "FHIR_TOO_DEEP",
            Reason::FhirTooManyItems => "FHIR_TOO_MANY_ITEMS",
            Reason::MessageTooManySegments => "MESSAGE_TOO_MANY_SEGMENTS",
            Reason::FieldTooManyRepetitions => "FIELD_TOO_MANY_REPETITIONS",
            Reason::UnmappedResourceType => "UNMAPPED_RESOURCE_TYPE",
        }
    }

    /// The reason with this stable code (as stored in `reason_code` columns).
    pub fn from_code(code: &str) -> Option<Reason> {
        Reason::ALL.into_iter().find(|r| r.code() == code)
    }

    /// The stage this reason belongs to.
    pub fn stage(self) -> Stage {
        match self {
            Reason::NotHl7 | Reason::EmptyMessage | Reason::BatchEnvelope => Stage::Decode,
            Reason::BatchEmpty | Reason::BatchMalformed | Reason::BatchTooManyMessages => {
                Stage::Decode
            }
            Reason::UnsupportedCharset => Stage::Decode,
            Reason::MalformedSegment
            | Reason::MalformedMessage
            | Reason::MissingMessageType
            | Reason::MissingControlId
            | Reason::MessageTooManySegments
            | Reason::FieldTooManyRepetitions => Stage::Parse,
            Reason::FhirUnsafeXml | Reason::FhirTooDeep | Reason::FhirTooManyItems => Stage::Decode,
            Reason::FhirMalformed | Reason::FhirInvalid => Stage::Parse,
            Reason::UnknownTenant => Stage::Route,
            Reason::UnmappedMessageType
            | Reason::MappingRequiredField
            | Reason::MappingInvalidValue
            | Reason::PluginValidationFailed
            | Reason::MappingTableMiss
            | Reason::MappingNoEvents
            | Reason::MappingTooManyEvents
            | Reason::UnmappedResourceType => Stage::Map,
        }
    }

    /// The HL7 table 0357 error code for ACK ERR segments.
    pub fn hl7_error_code(self) -> &'static str {
        match self {
            Reason::NotHl7 | Reason::EmptyMessage | Reason::BatchEnvelope => "100",
            Reason::BatchEmpty | Reason::BatchMalformed => "100",
            Reason::BatchTooManyMessages => "207",
            Reason::MalformedSegment | Reason::MalformedMessage => "100",
            Reason::UnsupportedCharset => "203",
            Reason::MissingMessageType | Reason::MissingControlId => "101",
            Reason::UnknownTenant => "204",
            Reason::UnmappedMessageType => "201",
            Reason::MappingRequiredField => "101",
            Reason::MappingInvalidValue => "102",
            Reason::PluginValidationFailed => "102",
            Reason::MappingTableMiss => "103",
            Reason::MappingNoEvents => "101",
            Reason::MappingTooManyEvents => "207",
            Reason::FhirMalformed | Reason::FhirUnsafeXml | Reason::FhirTooDeep => "100",
            Reason::FhirTooManyItems => "207",
            Reason::MessageTooManySegments | Reason::FieldTooManyRepetitions => "207",
            Reason::FhirInvalid => "102",
            Reason::UnmappedResourceType => "201",
        }
    }

    /// A short fixed English description (safe for ACKs and logs).
    pub fn text(self) -> &'static str {
        match self {
            Reason::NotHl7 => "Not an HL7 v2 message",
            Reason::EmptyMessage => "Empty message",
            Reason::BatchEnvelope => "Batch not split on this path",
            Reason::BatchEmpty => "Batch holds no message",
            Reason::BatchMalformed => "Batch envelope malformed",
            Reason::BatchTooManyMessages => "Batch holds too many messages",
            Reason::UnsupportedCharset => "Unsupported character set",
            Reason::MalformedSegment => "Malformed segment",
            Reason::MalformedMessage => "Malformed message",
            Reason::MissingMessageType => "Required field missing: MSH-9",
            Reason::MissingControlId => "Required field missing: MSH-10",
            Reason::UnknownTenant => "Unknown tenant",
            Reason::UnmappedMessageType => "Unsupported message type or trigger",
            Reason::MappingRequiredField => "Required field missing",
            Reason::MappingInvalidValue => "Data type error",
            Reason::PluginValidationFailed => "Data type error",
            Reason::MappingTableMiss => "Table value not found",
            Reason::MappingNoEvents => "No data to map",
            Reason::MappingTooManyEvents => "Too many events for one message",
            Reason::FhirMalformed => "Not well-formed FHIR JSON or XML",
            Reason::FhirInvalid => "Not a valid FHIR R4 resource",
            Reason::FhirUnsafeXml => "XML with a DOCTYPE or entity declaration",
            Reason::FhirTooDeep => "Nesting too deep",
            Reason::FhirTooManyItems => "Too many elements",
            Reason::MessageTooManySegments => "Too many segments",
            Reason::FieldTooManyRepetitions => "Too many repetitions in a field",
            Reason::UnmappedResourceType => "Unsupported FHIR resource type",
        }
    }
}

/// A reason with an optional PHI-free detail (a field name and path, a segment index).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rejection {
    /// The stable reason.
    pub reason: Reason,
    /// e.g. `field visit_number (PV1.19.1)` or `segment 4`; never a value from the message,
    /// except the facility codes of an UNKNOWN_TENANT (routing identifiers, not PHI).
    pub detail: Option<String>,
}

impl Rejection {
    /// A rejection without detail.
    pub fn new(reason: Reason) -> Self {
        Rejection {
            reason,
            detail: None,
        }
    }

    /// A rejection with a PHI-free detail.
    pub fn with_detail(reason: Reason, detail: impl Into<String>) -> Self {
        Rejection {
            reason,
            detail: Some(detail.into()),
        }
    }
}
