//! Compiled rules and their application to a parsed message.

use crate::hl7::{path::Path, timestamp, Header, Hl7Message};
use crate::reason::{Reason, Rejection};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// How a field's text becomes a JSON value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldType {
    /// The decoded text.
    #[default]
    String,
    /// An HL7 TS/DTM, written as RFC 3339 (tenant time zone when it has no offset).
    Timestamp,
}

/// One output field.
#[derive(Debug, Clone)]
pub(super) struct FieldRule {
    pub name: String,
    pub path: Path,
    pub required: bool,
    pub field_type: FieldType,
}

/// One event a rule emits.
#[derive(Debug, Clone)]
pub(super) struct Template {
    pub event_type: String,
    pub stream_type: String,
    pub stream_key: Path,
    pub time: Path,
    pub fields: Vec<FieldRule>,
}

/// The rules for one message type and trigger.
#[derive(Debug, Clone)]
pub(super) struct Rule {
    pub file: String,
    pub events: Vec<Template>,
}

/// All of a tenant's rules, keyed by `TYPE^TRIGGER`.
#[derive(Debug, Clone, Default)]
pub struct RuleSet {
    pub(super) rules: BTreeMap<String, Rule>,
}

/// An event as the mapping produced it; the pipeline adds ids and metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct MappedEvent {
    /// e.g. `AdmissionCreated`.
    pub event_type: String,
    /// e.g. `Admission`.
    pub stream_type: String,
    /// The stream's natural key.
    pub stream_key: String,
    /// The event's own time, when the message carries one.
    pub time: Option<DateTime<Utc>>,
    /// The fields.
    pub data: serde_json::Value,
    /// The mapping file that produced it.
    pub file: String,
}

impl RuleSet {
    /// Maps a message to events, or says precisely why it cannot be.
    pub fn apply(
        &self,
        msg: &Hl7Message<'_>,
        header: &Header,
        tz: chrono_tz::Tz,
    ) -> Result<Vec<MappedEvent>, Rejection> {
        let key = header.message_code();
        let rule = self.rules.get(&key).ok_or_else(|| {
            // Message type codes are from HL7 table 0076/0003, not patient data.
            Rejection::with_detail(Reason::UnmappedMessageType, safe_code(&key))
        })?;
        rule.events
            .iter()
            .map(|t| t.apply(msg, tz, &rule.file))
            .collect()
    }

    /// Every output field the rules can fill, as (message code, event type, field name):
    /// the basis of `intake test`'s field-coverage report.
    pub fn fields(&self) -> Vec<(&str, &str, &str)> {
        self.rules
            .iter()
            .flat_map(|(code, rule)| {
                rule.events.iter().flat_map(move |t| {
                    t.fields
                        .iter()
                        .map(move |f| (code.as_str(), t.event_type.as_str(), f.name.as_str()))
                })
            })
            .collect()
    }

    /// The `TYPE^TRIGGER` keys this set maps.
    pub fn message_codes(&self) -> impl Iterator<Item = &str> {
        self.rules.keys().map(String::as_str)
    }
}

/// Keeps a message code only when it looks like one (it is echoed in dead-letter details).
fn safe_code(code: &str) -> String {
    if code.len() <= 16
        && code
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'^' || b == b'_')
    {
        code.to_string()
    } else {
        "unrecognised message code".to_string()
    }
}

impl Template {
    fn apply(
        &self,
        msg: &Hl7Message<'_>,
        tz: chrono_tz::Tz,
        file: &str,
    ) -> Result<MappedEvent, Rejection> {
        let stream_key = self.stream_key.first(msg).ok_or_else(|| {
            Rejection::with_detail(
                Reason::MappingRequiredField,
                format!("stream key of {} ({})", self.event_type, self.stream_key),
            )
        })?;
        let time = self
            .time
            .first(msg)
            .and_then(|v| timestamp::parse_hl7_timestamp(&v, tz).ok())
            .map(|t| t.to_utc());
        let mut data = serde_json::Map::with_capacity(self.fields.len());
        for f in &self.fields {
            let value = match f.path.first(msg) {
                None if f.required => {
                    return Err(Rejection::with_detail(
                        Reason::MappingRequiredField,
                        format!("field {} ({})", f.name, f.path),
                    ))
                }
                None => serde_json::Value::Null,
                Some(v) => match f.field_type {
                    FieldType::String => serde_json::Value::String(v),
                    FieldType::Timestamp => timestamp::to_rfc3339(&v, tz)
                        .map(serde_json::Value::String)
                        .map_err(|_| {
                            Rejection::with_detail(
                                Reason::MappingInvalidValue,
                                format!("field {} ({}) is not an HL7 timestamp", f.name, f.path),
                            )
                        })?,
                },
            };
            data.insert(f.name.clone(), value);
        }
        Ok(MappedEvent {
            event_type: self.event_type.clone(),
            stream_type: self.stream_type.clone(),
            stream_key,
            time,
            data: serde_json::Value::Object(data),
            file: file.to_string(),
        })
    }
}
