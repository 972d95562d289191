//! Compiled rules and their application to a parsed message.

use super::tables::Tables;
use crate::hl7::path::{Path, Scope};
use crate::hl7::{timestamp, Header, Hl7Message};
use crate::reason::{Reason, Rejection};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
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
    /// A calendar date without time or zone (`YYYY-MM-DD`, or `YYYY-MM` / `YYYY` when the
    /// value is less precise): birth dates must not move with time zones.
    Date,
    /// A JSON number.
    Number,
    /// A coded element (CE/CWE): `{"code", "display", "system"}` from its components.
    Coded,
    /// An OBX-5 value typed by OBX-2 of the same OBX: NM → number, SN → structured,
    /// CE/CWE/CNE/CF → coded, TS/DT/DTM → timestamp, anything else → text.
    ObservationValue,
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

/// Where a field's text comes from.
#[derive(Debug, Clone)]
pub(super) enum Source {
    Path(Path),
    Value(String),
    Concat(Vec<Path>, String),
}

/// One output field.
#[derive(Debug, Clone)]
pub(super) struct FieldRule {
    pub name: String,
    pub source: Source,
    pub default: Option<String>,
    pub required: bool,
    pub field_type: FieldType,
    pub all: bool,
    pub transforms: Vec<Transform>,
    pub table: Option<(String, OnMiss)>,
}

/// A condition on a field value.
#[derive(Debug, Clone)]
pub(super) enum Condition {
    Equals(Path, String),
    In(Path, Vec<String>),
    NotIn(Path, Vec<String>),
    Present(Path, bool),
}

/// Which stream an event goes to.
#[derive(Debug, Clone)]
pub(super) struct StreamRule {
    pub stream_type: String,
    pub key: Path,
}

/// Iteration over a repeating segment.
#[derive(Debug, Clone)]
pub(super) struct ForEach {
    pub segment: String,
    pub children: Vec<String>,
}

/// One event a rule emits (once, or once per iterated segment).
#[derive(Debug, Clone)]
pub(super) struct Template {
    pub event_type: String,
    pub when: Vec<Condition>,
    pub for_each: Option<ForEach>,
    /// The first stream whose key is present is used.
    pub streams: Vec<StreamRule>,
    pub time: Path,
    pub fields: Vec<FieldRule>,
}

/// A rule for one or more message codes.
#[derive(Debug, Clone)]
pub(super) struct Rule {
    pub file: String,
    pub when: Vec<Condition>,
    pub events: Vec<Template>,
}

/// All of a tenant's rules, keyed by `TYPE^TRIGGER`; the first rule whose conditions
/// hold is applied.
#[derive(Debug, Clone, Default)]
pub struct RuleSet {
    pub(super) rules: BTreeMap<String, Vec<Rule>>,
    pub(super) tables: Tables,
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
    pub data: Value,
    /// The mapping file that produced it.
    pub file: String,
    /// A stable key of the event's own source, used for its id instead of (message key,
    /// index): FHIR events name their resource and place in it (e.g.
    /// `Encounter/e1#LocationChanged#2`), so a later version of the resource repeats the
    /// ids of events already stored. `None` for HL7 v2.
    pub source_key: Option<String>,
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
        let unmapped = || Rejection::with_detail(Reason::UnmappedMessageType, safe_code(&key));
        let rules = self.rules.get(&key).ok_or_else(unmapped)?;
        let rule = rules
            .iter()
            .find(|r| holds(&r.when, msg, None))
            .ok_or_else(unmapped)?;
        // Events follow the message: those of non-iterating templates first, then one
        // per iterated segment in segment order (templates in file order within one).
        let mut out: Vec<(usize, MappedEvent)> = Vec::new();
        for t in &rule.events {
            let scopes: Vec<Option<Scope<'_>>> = match &t.for_each {
                None => vec![None],
                Some(f) => msg
                    .segments()
                    .iter()
                    .enumerate()
                    .filter(|(_, s)| s.name == f.segment)
                    .map(|(index, _)| {
                        Some(Scope {
                            segment: &f.segment,
                            index,
                            children: &f.children,
                        })
                    })
                    .collect(),
            };
            for scope in &scopes {
                if holds(&t.when, msg, scope.as_ref()) {
                    let position = scope.as_ref().map_or(0, |s| s.index);
                    out.push((
                        position,
                        t.apply(msg, scope.as_ref(), tz, &self.tables, &rule.file)?,
                    ));
                }
            }
        }
        if out.is_empty() {
            return Err(Rejection::with_detail(
                Reason::MappingNoEvents,
                safe_code(&key),
            ));
        }
        out.sort_by_key(|(position, _)| *position);
        Ok(out.into_iter().map(|(_, e)| e).collect())
    }

    /// Every output field the rules can fill, as (message code, event type, field name):
    /// the basis of `intake test`'s field-coverage report.
    pub fn fields(&self) -> Vec<(&str, &str, &str)> {
        let mut out = Vec::new();
        for (code, rules) in &self.rules {
            for t in rules.iter().flat_map(|r| &r.events) {
                for f in &t.fields {
                    out.push((code.as_str(), t.event_type.as_str(), f.name.as_str()));
                }
            }
        }
        out
    }

    /// The `TYPE^TRIGGER` keys this set maps.
    pub fn message_codes(&self) -> impl Iterator<Item = &str> {
        self.rules.keys().map(String::as_str)
    }
}

fn holds(conditions: &[Condition], msg: &Hl7Message<'_>, scope: Option<&Scope<'_>>) -> bool {
    conditions.iter().all(|c| match c {
        Condition::Equals(p, v) => p.first_in(msg, scope).as_deref() == Some(v.as_str()),
        Condition::In(p, vs) => p.first_in(msg, scope).is_some_and(|x| vs.contains(&x)),
        Condition::NotIn(p, vs) => p.first_in(msg, scope).is_none_or(|x| !vs.contains(&x)),
        Condition::Present(p, want) => p.first_in(msg, scope).is_some() == *want,
    })
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
        scope: Option<&Scope<'_>>,
        tz: chrono_tz::Tz,
        tables: &Tables,
        file: &str,
    ) -> Result<MappedEvent, Rejection> {
        let (stream, stream_key) = self
            .streams
            .iter()
            .find_map(|s| s.key.first_in(msg, scope).map(|k| (s, k)))
            .ok_or_else(|| {
                let keys: Vec<&str> = self.streams.iter().map(|s| s.key.as_str()).collect();
                Rejection::with_detail(
                    Reason::MappingRequiredField,
                    format!("stream key of {} ({})", self.event_type, keys.join(" / ")),
                )
            })?;
        let time = self
            .time
            .first_in(msg, scope)
            .and_then(|v| timestamp::parse_hl7_timestamp(&v, tz).ok())
            .map(|t| t.to_utc());
        let mut data = serde_json::Map::with_capacity(self.fields.len());
        for f in &self.fields {
            data.insert(f.name.clone(), f.value(msg, scope, tz, tables)?);
        }
        Ok(MappedEvent {
            event_type: self.event_type.clone(),
            stream_type: stream.stream_type.clone(),
            stream_key,
            time,
            data: Value::Object(data),
            file: file.to_string(),
            source_key: None,
        })
    }
}

impl FieldRule {
    fn describe(&self) -> String {
        match &self.source {
            Source::Path(p) => format!("field {} ({})", self.name, p),
            Source::Value(_) => format!("field {} (constant)", self.name),
            Source::Concat(ps, _) => {
                let ps: Vec<&str> = ps.iter().map(Path::as_str).collect();
                format!("field {} ({})", self.name, ps.join(" + "))
            }
        }
    }

    /// The raw text values (several only with `all`), after transforms and table.
    fn texts(
        &self,
        msg: &Hl7Message<'_>,
        scope: Option<&Scope<'_>>,
        tables: &Tables,
    ) -> Result<Vec<String>, Rejection> {
        let raw: Vec<String> = match &self.source {
            Source::Value(v) => vec![v.clone()],
            Source::Path(p) if self.all => p.all_in(msg, scope),
            Source::Path(p) => p.first_in(msg, scope).into_iter().collect(),
            Source::Concat(ps, sep) => {
                let parts: Vec<String> = ps.iter().filter_map(|p| p.first_in(msg, scope)).collect();
                if parts.is_empty() {
                    vec![]
                } else {
                    vec![parts.join(sep)]
                }
            }
        };
        let mut out = Vec::with_capacity(raw.len());
        for mut v in raw {
            for t in &self.transforms {
                v = match t {
                    Transform::Trim => v.trim().to_string(),
                    Transform::Upper => v.to_uppercase(),
                    Transform::Lower => v.to_lowercase(),
                };
            }
            if let Some((table, on_miss)) = &self.table {
                match tables.lookup(table, &v) {
                    Some(mapped) => v = mapped.to_string(),
                    None if *on_miss == OnMiss::DeadLetter => {
                        return Err(Rejection::with_detail(
                            Reason::MappingTableMiss,
                            format!("table {table}, {}", self.describe()),
                        ))
                    }
                    None if *on_miss == OnMiss::Empty => v.clear(),
                    None => {}
                }
            }
            if !v.is_empty() {
                out.push(v);
            }
        }
        if out.is_empty() {
            if let Some(d) = &self.default {
                out.push(d.clone());
            }
        }
        Ok(out)
    }

    fn value(
        &self,
        msg: &Hl7Message<'_>,
        scope: Option<&Scope<'_>>,
        tz: chrono_tz::Tz,
        tables: &Tables,
    ) -> Result<Value, Rejection> {
        let invalid = |what: &str| {
            Rejection::with_detail(
                Reason::MappingInvalidValue,
                format!("{} is not {what}", self.describe()),
            )
        };
        let required = || Rejection::with_detail(Reason::MappingRequiredField, self.describe());
        let value = match (self.field_type, &self.source) {
            (FieldType::Coded, Source::Path(p)) => match p.components_in(msg, scope) {
                Some(c) => coded(&c),
                None => Value::Null,
            },
            (FieldType::ObservationValue, Source::Path(p)) => {
                observation_value(p, msg, scope, tz).map_err(&invalid)?
            }
            _ => {
                let texts = self.texts(msg, scope, tables)?;
                let typed: Vec<Value> = texts
                    .iter()
                    .map(|t| match self.field_type {
                        FieldType::Timestamp => timestamp::to_rfc3339(t, tz)
                            .map(Value::String)
                            .map_err(|_| invalid("an HL7 timestamp")),
                        FieldType::Number => number(t).ok_or_else(|| invalid("a number")),
                        FieldType::Date => date(t).ok_or_else(|| invalid("an HL7 date")),
                        _ => Ok(Value::String(t.clone())),
                    })
                    .collect::<Result<_, _>>()?;
                match (self.all, typed.len()) {
                    (true, 0) => Value::Null,
                    (true, _) => Value::Array(typed),
                    (false, _) => typed.into_iter().next().unwrap_or(Value::Null),
                }
            }
        };
        if value.is_null() && self.required {
            return Err(required());
        }
        Ok(value)
    }
}

fn number(s: &str) -> Option<Value> {
    let s = s.trim();
    if let Ok(i) = s.parse::<i64>() {
        return Some(json!(i));
    }
    s.parse::<f64>()
        .ok()
        .filter(|f| f.is_finite())
        .map(|f| json!(f))
}

/// `YYYY[MM[DD[...]]]` → `YYYY[-MM[-DD]]`; any time part is dropped.
fn date(s: &str) -> Option<Value> {
    let digits: String = s
        .trim()
        .chars()
        .take_while(char::is_ascii_digit)
        .take(8)
        .collect();
    let (y, m, d) = (digits.get(..4), digits.get(4..6), digits.get(6..8));
    let text = match (y, m, d) {
        (Some(y), Some(m), Some(d)) => {
            chrono::NaiveDate::parse_from_str(&digits, "%Y%m%d").ok()?;
            format!("{y}-{m}-{d}")
        }
        (Some(y), Some(m), None) if (1..=12).contains(&m.parse::<u32>().ok()?) => {
            format!("{y}-{m}")
        }
        (Some(y), None, None) if digits.len() == 4 => y.to_string(),
        _ => return None,
    };
    Some(json!(text))
}

fn coded(c: &[String]) -> Value {
    let get = |i: usize| {
        c.get(i)
            .filter(|v| !v.is_empty())
            .map(|v| json!(v))
            .unwrap_or(Value::Null)
    };
    json!({"code": get(0), "display": get(1), "system": get(2)})
}

/// OBX-5 typed by OBX-2 of the same OBX.
fn observation_value(
    path: &Path,
    msg: &Hl7Message<'_>,
    scope: Option<&Scope<'_>>,
    tz: chrono_tz::Tz,
) -> Result<Value, &'static str> {
    let value_type = Path::parse("OBX.2")
        .ok()
        .and_then(|p| p.first_in(msg, scope))
        .unwrap_or_default();
    let Some(components) = path.components_in(msg, scope) else {
        return Ok(Value::Null);
    };
    Ok(match value_type.as_str() {
        "NM" => number(&components.join("")).ok_or("a number (OBX-2 is NM)")?,
        "SN" => {
            let num = |i: usize| {
                components
                    .get(i)
                    .filter(|v| !v.is_empty())
                    .map(|v| number(v).ok_or("a structured numeric (OBX-2 is SN)"))
            };
            let text = |i: usize| {
                components
                    .get(i)
                    .filter(|v| !v.is_empty())
                    .map(|v| json!(v))
                    .unwrap_or(Value::Null)
            };
            json!({
                "comparator": text(0),
                "value": num(1).transpose()?,
                "separator": text(2),
                "value2": num(3).transpose()?,
            })
        }
        "CE" | "CWE" | "CNE" | "CF" => coded(&components),
        "TS" | "DT" | "DTM" => {
            let raw = components.first().cloned().unwrap_or_default();
            json!(timestamp::to_rfc3339(&raw, tz)
                .map_err(|_| "an HL7 timestamp (OBX-2 is TS/DT/DTM)")?)
        }
        _ => {
            // Text: every repetition, one line each (TX/FT results often repeat).
            let lines = path.repetitions_in(msg, scope);
            json!(lines.join("\n"))
        }
    })
}
