//! The YAML schema of mapping files, and its validation into compiled rules.

use super::rules::{FieldRule, FieldType, Rule, RuleSet, Template};
use super::{DeadLetterAck, LoadError};
use crate::hl7::path::Path;
use serde::Deserialize;
use serde_saphyr::Spanned;
use std::collections::BTreeMap;
use std::path::Path as FsPath;

/// `tenant.yaml`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SettingsFile {
    timezone: Spanned<String>,
    #[serde(default)]
    ack_on_dead_letter: DeadLetterAck,
    #[serde(default)]
    routing: Routing,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Routing {
    #[serde(default)]
    sending_facilities: Vec<String>,
    #[serde(default)]
    receiving_facilities: Vec<String>,
}

/// Validated tenant settings.
pub(super) struct Settings {
    pub timezone: chrono_tz::Tz,
    pub ack_on_dead_letter: DeadLetterAck,
    pub sending_facilities: Vec<String>,
    pub receiving_facilities: Vec<String>,
}

/// A rules file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesFile {
    rules: Vec<RuleSpec>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleSpec {
    /// `ADT^A01`
    message: Spanned<String>,
    events: Vec<EventSpec>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EventSpec {
    event: Spanned<String>,
    stream: StreamSpec,
    /// The event's own time, for its id; default `EVN.2 | MSH.7`.
    #[serde(default)]
    time: Option<Spanned<String>>,
    fields: BTreeMap<String, Spanned<FieldSpec>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StreamSpec {
    #[serde(rename = "type")]
    stream_type: Spanned<String>,
    key: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FieldSpec {
    path: Spanned<String>,
    #[serde(default)]
    required: bool,
    #[serde(default, rename = "type")]
    field_type: FieldType,
}

fn at(file: &FsPath, loc: &serde_saphyr::Location, offset: usize, message: String) -> LoadError {
    LoadError {
        file: file.to_path_buf(),
        line: loc.line() as u32,
        column: loc.column() as u32 + offset as u32,
        message,
    }
}

fn yaml_error(file: &FsPath, e: &serde_saphyr::Error) -> LoadError {
    let (line, column) = e
        .location()
        .map(|l| (l.line() as u32, l.column() as u32))
        .unwrap_or((0, 0));
    // The first line of the error is the message; the rest is a rendered snippet. Drop
    // the library's own "error: line N column M: " prefix: we print the location.
    let text = e.to_string();
    let first = text.lines().next().unwrap_or("invalid YAML").trim();
    let mut message = first.strip_prefix("error: ").unwrap_or(first);
    if let Some((head, rest)) = message.split_once(": ") {
        if head.starts_with("line ") && head.contains(" column ") {
            message = rest;
        }
    }
    let message = message.to_string();
    LoadError {
        file: file.to_path_buf(),
        line,
        column,
        message,
    }
}

/// Parses and validates `tenant.yaml`.
pub(super) fn settings(file: &FsPath, text: &str) -> Result<Settings, Vec<LoadError>> {
    let s: SettingsFile = serde_saphyr::from_str(text).map_err(|e| vec![yaml_error(file, &e)])?;
    let timezone = s.timezone.value.parse::<chrono_tz::Tz>().map_err(|_| {
        vec![at(
            file,
            &s.timezone.referenced,
            0,
            format!(
                "unknown time zone {:?} (use an IANA name such as Europe/Berlin)",
                s.timezone.value
            ),
        )]
    })?;
    Ok(Settings {
        timezone,
        ack_on_dead_letter: s.ack_on_dead_letter,
        sending_facilities: s.routing.sending_facilities,
        receiving_facilities: s.routing.receiving_facilities,
    })
}

fn is_pascal(s: &str) -> bool {
    s.chars().next().is_some_and(|c| c.is_ascii_uppercase())
        && s.chars().all(|c| c.is_ascii_alphanumeric())
}

fn is_snake(s: &str) -> bool {
    s.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// Parses and validates a rules file, adding its rules to `set`.
pub(super) fn rules(file: &FsPath, text: &str, set: &mut RuleSet) -> Result<(), Vec<LoadError>> {
    let spec: RulesFile = serde_saphyr::from_str(text).map_err(|e| vec![yaml_error(file, &e)])?;
    let mut errors = Vec::new();
    let fname = file
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .to_string();
    let path = |s: &Spanned<String>, errors: &mut Vec<LoadError>| match Path::parse(&s.value) {
        Ok(p) => Some(p),
        Err(e) => {
            // In a quoted scalar the text starts one column after the quote.
            let quoted = text
                .lines()
                .nth((s.referenced.line() as usize).saturating_sub(1))
                .and_then(|l| {
                    l.chars()
                        .nth((s.referenced.column() as usize).saturating_sub(1))
                })
                .is_some_and(|c| c == '"' || c == '\'');
            errors.push(at(
                file,
                &s.referenced,
                e.offset + usize::from(quoted),
                e.to_string(),
            ));
            None
        }
    };
    for r in spec.rules {
        let Some((mtype, trigger)) = r.message.value.split_once('^').filter(|(m, t)| {
            [m, t].iter().all(|x| {
                !x.is_empty()
                    && x.bytes()
                        .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
            })
        }) else {
            errors.push(at(
                file,
                &r.message.referenced,
                0,
                format!(
                    "message must look like ADT^A01, found {:?}",
                    r.message.value
                ),
            ));
            continue;
        };
        let key = format!("{mtype}^{trigger}");
        if set.rules.contains_key(&key) {
            errors.push(at(
                file,
                &r.message.referenced,
                0,
                format!("a rule for {key} is already defined"),
            ));
            continue;
        }
        let mut templates = Vec::new();
        for e in r.events {
            if !is_pascal(&e.event.value) {
                errors.push(at(
                    file,
                    &e.event.referenced,
                    0,
                    format!("event type {:?} must be PascalCase", e.event.value),
                ));
            }
            if !is_pascal(&e.stream.stream_type.value) {
                errors.push(at(
                    file,
                    &e.stream.stream_type.referenced,
                    0,
                    format!(
                        "stream type {:?} must be PascalCase",
                        e.stream.stream_type.value
                    ),
                ));
            }
            let stream_key = path(&e.stream.key, &mut errors);
            let time_spec = e.time.unwrap_or_else(|| {
                Spanned::new("EVN.2 | MSH.7".into(), e.event.referenced, e.event.defined)
            });
            let time = path(&time_spec, &mut errors);
            let mut fields = Vec::new();
            for (name, f) in e.fields {
                if !is_snake(&name) {
                    errors.push(at(
                        file,
                        &f.referenced,
                        0,
                        format!("field name {name:?} must be snake_case"),
                    ));
                }
                if let Some(p) = path(&f.value.path, &mut errors) {
                    fields.push(FieldRule {
                        name,
                        path: p,
                        required: f.value.required,
                        field_type: f.value.field_type,
                    });
                }
            }
            if let (Some(stream_key), Some(time)) = (stream_key, time) {
                templates.push(Template {
                    event_type: e.event.value,
                    stream_type: e.stream.stream_type.value,
                    stream_key,
                    time,
                    fields,
                });
            }
        }
        set.rules.insert(
            key,
            Rule {
                file: fname.clone(),
                events: templates,
            },
        );
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}
