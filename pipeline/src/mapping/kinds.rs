//! The kinds a mapping file names: a field's type, its text transforms, what a table miss
//! does. Plain values, shared by the schema, the checker, the engine and both languages.

use serde::Deserialize;

/// How a field's value becomes JSON (`type:`). A language may not offer every type
/// ([`super::Keys::types`]: HL7 has no `value_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FieldType {
    /// The text (HL7: decoded; FHIR: a primitive).
    #[default]
    String,
    /// RFC 3339, in the value's own offset, else the tenant's time zone (HL7 TS/DTM,
    /// FHIR dateTime/instant/date).
    Timestamp,
    /// A calendar date without time or zone (`YYYY-MM-DD`, or `YYYY-MM` / `YYYY` when the
    /// value is less precise): birth dates must not move with time zones.
    Date,
    /// A JSON number (a FHIR Quantity gives its value).
    Number,
    /// `{code, display, system}`: from an HL7 CE/CWE's components, a FHIR
    /// CodeableConcept (first coding), Coding or code.
    Coded,
    /// A result value, typed: HL7 OBX-5 by OBX-2 of the same OBX, FHIR `value[x]` by its
    /// type. Numbers, structured numerics `{comparator, value, separator, value2}`, coded,
    /// timestamps, else text.
    ObservationValue,
    /// The HL7 v2 value type (OBX-2) of a FHIR `value[x]`: NM, SN, CWE, ST, DTM, TM, ...
    ValueType,
}

impl FieldType {
    /// Every type, by its name in mapping files; `value_type` last (HL7 offers the others).
    pub const NAMES: [&'static str; 7] = [
        "string",
        "timestamp",
        "date",
        "number",
        "coded",
        "observation_value",
        "value_type",
    ];

    /// The type of this name.
    pub(super) fn named(name: &str) -> Option<FieldType> {
        Some(match name {
            "string" => FieldType::String,
            "timestamp" => FieldType::Timestamp,
            "date" => FieldType::Date,
            "number" => FieldType::Number,
            "coded" => FieldType::Coded,
            "observation_value" => FieldType::ObservationValue,
            "value_type" => FieldType::ValueType,
            _ => return None,
        })
    }

    /// Whether the value is typed from the path itself, not from text.
    pub fn is_structured(self) -> bool {
        matches!(
            self,
            FieldType::Coded | FieldType::ObservationValue | FieldType::ValueType
        )
    }
}

/// A text transform, applied in order before table lookup and typing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Transform {
    /// Strip surrounding whitespace.
    Trim,
    /// Upper-case.
    Upper,
    /// Lower-case.
    Lower,
}

/// What a `for_each` event does with an item that cannot be mapped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnItemError {
    /// Dead-letter the whole message (the default).
    #[default]
    DeadLetter,
    /// Store the good items; record each skipped one (index and code) in the events'
    /// metadata and in `intake_items_skipped_total`.
    Skip,
}

/// What a table lookup does when the value is not in the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnMiss {
    /// Keep the raw value.
    #[default]
    Pass,
    /// Leave the field empty (then `default`, else null).
    Empty,
    /// Dead-letter the message with MAPPING_TABLE_MISS.
    DeadLetter,
}
