//! HL7 v2 as a path language: [`crate::hl7::path`] paths over a parsed message, rules
//! keyed by MSH-9 (`ADT^A01`), `for_each` over a repeating segment.

use super::kinds::FieldType;
use super::language::{Keys, Language, Report, SyntaxError, Typed, EVENT_KEYS_UNVERSIONED};
use super::rules::{number, Mapped, RuleSet};
use crate::hl7::path::{Path, Scope, SegmentIndex};
use crate::hl7::{structure, timestamp, Header, Hl7Message};
use crate::reason::{Reason, Rejection};
use chrono::{DateTime, FixedOffset};
use chrono_tz::Tz;
use serde::Deserialize;
use serde_json::{json, Value};
use serde_saphyr::Spanned;
use std::cell::OnceCell;
use std::sync::LazyLock;

/// The HL7 v2 path language.
#[derive(Debug, Clone, Copy, Default)]
pub struct Hl7;

/// `for_each: { segment: OBX, children: [NTE] }`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForEachSpec {
    segment: Spanned<String>,
    #[serde(default)]
    children: Vec<String>,
}

/// Iteration over a repeating segment and the child segments that follow each.
#[derive(Debug, Clone)]
pub struct ForEach {
    segment: String,
    children: Vec<String>,
}

/// Where HL7 paths are evaluated: the message, and the iterated segment if any.
#[derive(Clone, Copy)]
pub struct At<'a> {
    msg: &'a Hl7Message<'a>,
    scope: Option<Scope<'a>>,
    /// Built at the first `for_each`.
    segments: &'a OnceCell<SegmentIndex<'a>>,
}

/// Why `id` is no segment a message can hold, if it is none (with the nearest standard id).
fn unknown_segment(id: &str) -> Option<String> {
    (!structure::is_known_segment(id)).then(|| {
        format!(
            "unknown segment {id:?}{}: not an HL7 v2 segment id (site-defined ones start with Z)",
            super::catalogue::hint(id, structure::SEGMENT_IDS)
        )
    })
}

fn is_segment_id(s: &str) -> bool {
    s.len() == 3
        && s.bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

impl Language for Hl7 {
    type Path = Path;
    type Scope<'a> = At<'a>;
    type Value<'a> = String;
    type ForEachSpec = ForEachSpec;
    type ForEach = ForEach;

    const KEYS: Keys = Keys {
        file: "rules",
        rule: &["message", "when", "events", "ignore", "reason"],
        event: &EVENT_KEYS_UNVERSIONED,
        types: FieldType::NAMES.split_at(6).0, // all but value_type
    };
    const DEFAULT_TIME: Option<&'static str> = Some("EVN.2 | MSH.7");
    const TIMESTAMP: &'static str = "an HL7 timestamp";
    const DATE: &'static str = "an HL7 date";

    fn parse_path(&self, expr: &str) -> Result<Path, SyntaxError> {
        let path = Path::parse(expr).map_err(|e| SyntaxError {
            offset: e.offset,
            message: e.to_string(),
        })?;
        for at in path.locations() {
            if let Some(message) = unknown_segment(at.segment) {
                return Err(SyntaxError {
                    offset: at.segment_at,
                    message,
                });
            }
            if let Some((most, version)) = structure::max_fields(at.segment) {
                if at.field > usize::from(most) {
                    return Err(SyntaxError {
                        offset: at.field_at,
                        message: format!(
                            "{} has {most} fields at most (HL7 v{version}): there is no {}-{}",
                            at.segment, at.segment, at.field
                        ),
                    });
                }
            }
        }
        Ok(path)
    }

    fn check_key(m: &str) -> Result<(), String> {
        let ok = m.split_once('^').is_some_and(|(t, g)| {
            [t, g].iter().all(|x| {
                !x.is_empty()
                    && x.bytes()
                        .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
            })
        });
        if ok {
            Ok(())
        } else {
            Err(format!("message must look like ADT^A01, found {m:?}"))
        }
    }

    fn for_each(check: &mut dyn Report<Self>, f: ForEachSpec) -> Option<ForEach> {
        if !is_segment_id(&f.segment.value) || !f.children.iter().all(|c| is_segment_id(c)) {
            check.error(
                &f.segment.referenced,
                "for_each names segment ids such as OBX".into(),
            );
            return None;
        }
        let named = std::iter::once(&f.segment.value).chain(&f.children);
        if let Some(message) = named.filter_map(|s| unknown_segment(s)).next() {
            check.error(&f.segment.referenced, format!("for_each: {message}"));
            return None;
        }
        Some(ForEach {
            segment: f.segment.value,
            children: f.children,
        })
    }

    fn each<'a>(&'a self, f: &'a ForEach, at: &At<'a>) -> Vec<(usize, At<'a>)> {
        let segments = at.segments.get_or_init(|| SegmentIndex::new(at.msg));
        at.msg
            .segments()
            .iter()
            .enumerate()
            .filter(|(_, s)| s.name == f.segment)
            .map(|(index, _)| {
                let scope = Scope {
                    segment: &f.segment,
                    index,
                    children: &f.children,
                    segments,
                };
                (
                    index,
                    At {
                        scope: Some(scope),
                        ..*at
                    },
                )
            })
            .collect()
    }

    fn values<'a>(&'a self, path: &'a Path, at: &At<'a>) -> Vec<String> {
        path.all_in(at.msg, at.scope.as_ref())
    }

    fn first<'a>(&'a self, path: &'a Path, at: &At<'a>) -> Option<String> {
        path.first_in(at.msg, at.scope.as_ref())
    }

    fn text(value: String, _: FieldType) -> Option<String> {
        Some(value)
    }

    fn timestamp(text: &str, tz: chrono_tz::Tz) -> Result<DateTime<FixedOffset>, String> {
        timestamp::parse_hl7_timestamp(text, tz)
            .map_err(|why| format!("{}: {why}", Self::TIMESTAMP))
    }

    fn date(text: &str) -> Option<Value> {
        date(text)
    }

    /// Coded from the components of the first repetition found; an observation value
    /// typed by OBX-2 (HL7 has no `value_type`).
    fn structured<'a>(&'a self, ty: FieldType, path: &'a Path, at: &At<'a>, tz: Tz) -> Typed {
        if ty == FieldType::ObservationValue {
            return observation_value(path, at, tz);
        }
        let components = path.components_in(at.msg, at.scope.as_ref());
        Ok(components.map_or(Value::Null, |c| coded(&c)))
    }

    fn source_key(&self, _: &str, _: bool, _: &At<'_>) -> Option<String> {
        None
    }

    /// The key paths: `PV1.19 / PID.3.1`.
    fn streams_in_detail(streams: &[(&str, &Path)]) -> String {
        let keys: Vec<&str> = streams.iter().map(|(_, p)| p.as_str()).collect();
        keys.join(" / ")
    }
}

impl RuleSet<Hl7> {
    /// Maps a message to events, or says precisely why it cannot be.
    pub fn apply(
        &self,
        msg: &Hl7Message<'_>,
        header: &Header,
        tz: chrono_tz::Tz,
    ) -> Result<Mapped, Rejection> {
        let key = header.message_code();
        let segments = OnceCell::new();
        let root = At {
            msg,
            scope: None,
            segments: &segments,
        };
        match self.map(&key, &root, tz)? {
            None => Err(Rejection::with_detail(
                Reason::UnmappedMessageType,
                safe_code(&key),
            )),
            Some(Mapped::Events { events, .. }) if events.is_empty() => Err(
                Rejection::with_detail(Reason::MappingNoEvents, safe_code(&key)),
            ),
            Some(mapped) => Ok(mapped),
        }
    }

    /// The `TYPE^TRIGGER` keys this set maps.
    pub fn message_codes(&self) -> impl Iterator<Item = &str> {
        self.keys()
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

/// OBX-2, the value type of an OBX-5.
static OBX_2: LazyLock<Path> = LazyLock::new(|| Path::parse("OBX.2").expect("a valid path"));

/// OBX-5 typed by OBX-2 of the same OBX.
fn observation_value(path: &Path, at: &At<'_>, tz: Tz) -> Typed {
    let scope = at.scope.as_ref();
    let value_type = OBX_2.first_in(at.msg, scope).unwrap_or_default();
    let Some(components) = path.components_in(at.msg, scope) else {
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
                .map_err(|why| format!("an HL7 timestamp (OBX-2 is TS/DT/DTM): {why}"))?)
        }
        _ => {
            // Text: every repetition, one line each (TX/FT results often repeat).
            let lines = path.repetitions_in(at.msg, scope);
            json!(lines.join("\n"))
        }
    })
}
