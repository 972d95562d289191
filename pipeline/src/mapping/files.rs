//! The YAML schema of mapping files, and its validation into compiled rules.

use super::rules::{
    Condition, FieldRule, FieldType, ForEach, OnMiss, Rule, RuleSet, Source, StreamRule, Template,
    Transform,
};
use super::{DeadLetterAck, LoadError};
use crate::hl7::path::Path;
use serde::Deserialize;
use serde_saphyr::{Location, Spanned};
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
    #[serde(default)]
    fhir: FhirSpec,
}

/// The `fhir:` block of `tenant.yaml`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FhirSpec {
    #[serde(default)]
    mode: crate::fhir::Mode,
    /// Identifier systems by name (`mrn`, `visit`), used in paths as `%mrn`.
    #[serde(default)]
    identifiers: BTreeMap<String, Vec<String>>,
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
    pub fhir_mode: crate::fhir::Mode,
    pub identifiers: BTreeMap<String, Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesFile {
    rules: Vec<RuleSpec>,
}

/// One value or a list (`message: ADT^A06` or `message: [ADT^A06, ADT^A07]`).
#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleSpec {
    message: Spanned<OneOrMany>,
    #[serde(default)]
    when: Vec<ConditionSpec>,
    events: Vec<EventSpec>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConditionSpec {
    path: Spanned<String>,
    #[serde(default)]
    equals: Option<String>,
    #[serde(default, rename = "in")]
    any_of: Option<Vec<String>>,
    #[serde(default)]
    not_in: Option<Vec<String>>,
    #[serde(default)]
    present: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EventSpec {
    event: Spanned<String>,
    #[serde(default)]
    when: Vec<ConditionSpec>,
    #[serde(default)]
    for_each: Option<ForEachSpec>,
    stream: StreamSpec,
    /// Used when `stream`'s key is empty.
    #[serde(default)]
    or_stream: Option<StreamSpec>,
    /// The event's own time, for its id; default `EVN.2 | MSH.7`.
    #[serde(default)]
    time: Option<Spanned<String>>,
    fields: BTreeMap<String, Spanned<FieldSpec>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ForEachSpec {
    segment: Spanned<String>,
    #[serde(default)]
    children: Vec<String>,
}

/// `stream:` of an event, in HL7 and FHIR rule files alike.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct StreamSpec {
    #[serde(rename = "type")]
    pub(super) stream_type: Spanned<String>,
    pub(super) key: Spanned<String>,
}

/// One output field, in HL7 and FHIR rule files alike; `T` is the language's field type.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FieldSpec<T = FieldType> {
    #[serde(default)]
    pub(super) path: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) value: Option<String>,
    #[serde(default)]
    pub(super) concat: Option<Vec<Spanned<String>>>,
    #[serde(default = "space")]
    pub(super) separator: String,
    #[serde(default)]
    pub(super) default: Option<String>,
    #[serde(default)]
    pub(super) required: bool,
    #[serde(default, rename = "type")]
    pub(super) field_type: T,
    #[serde(default)]
    pub(super) all: bool,
    #[serde(default)]
    pub(super) transform: Vec<Transform>,
    #[serde(default)]
    pub(super) table: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) on_miss: OnMiss,
}

fn space() -> String {
    " ".into()
}

pub(super) fn at(file: &FsPath, loc: &Location, offset: usize, message: String) -> LoadError {
    LoadError {
        file: file.to_path_buf(),
        line: loc.line() as u32,
        column: loc.column() as u32 + offset as u32,
        message,
    }
}

/// 1 when the scalar at `loc` is quoted: its text starts one column after the quote.
pub(super) fn quoted_offset(text: &str, loc: &Location) -> usize {
    let quoted = text
        .lines()
        .nth((loc.line() as usize).saturating_sub(1))
        .and_then(|l| l.chars().nth((loc.column() as usize).saturating_sub(1)))
        .is_some_and(|c| c == '"' || c == '\'');
    usize::from(quoted)
}

/// A YAML syntax or schema error, located.
pub(super) fn yaml_error(file: &FsPath, e: &serde_saphyr::Error) -> LoadError {
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
    LoadError {
        file: file.to_path_buf(),
        line,
        column,
        message: message.to_string(),
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
    if let Some(bad) = s.fhir.identifiers.keys().find(|k| !is_snake(k)) {
        return Err(vec![LoadError {
            file: file.to_path_buf(),
            line: 0,
            column: 0,
            message: format!("fhir.identifiers: name {bad:?} must be snake_case"),
        }]);
    }
    Ok(Settings {
        fhir_mode: s.fhir.mode,
        identifiers: s.fhir.identifiers,
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

fn is_segment_id(s: &str) -> bool {
    s.len() == 3
        && s.bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

/// Validates one rules file against the tenant's tables.
struct Checker<'a> {
    file: &'a FsPath,
    text: &'a str,
    set: &'a RuleSet,
    errors: Vec<LoadError>,
}

impl Checker<'_> {
    fn error(&mut self, loc: &Location, message: String) {
        self.errors.push(at(self.file, loc, 0, message));
    }

    fn path(&mut self, s: &Spanned<String>) -> Option<Path> {
        match Path::parse(&s.value) {
            Ok(p) => Some(p),
            Err(e) => {
                let offset = e.offset + quoted_offset(self.text, &s.referenced);
                self.errors
                    .push(at(self.file, &s.referenced, offset, e.to_string()));
                None
            }
        }
    }

    fn conditions(&mut self, specs: Vec<ConditionSpec>) -> Vec<Condition> {
        let mut out = Vec::new();
        for c in specs {
            let Some(p) = self.path(&c.path) else {
                continue;
            };
            let ops = [
                c.equals.is_some(),
                c.any_of.is_some(),
                c.not_in.is_some(),
                c.present.is_some(),
            ];
            if ops.iter().filter(|x| **x).count() != 1 {
                self.error(
                    &c.path.referenced,
                    "a condition needs exactly one of equals, in, not_in, present".into(),
                );
                continue;
            }
            out.push(match (c.equals, c.any_of, c.not_in, c.present) {
                (Some(v), ..) => Condition::Equals(p, v),
                (_, Some(vs), ..) => Condition::In(p, vs),
                (_, _, Some(vs), _) => Condition::NotIn(p, vs),
                (.., Some(b)) => Condition::Present(p, b),
                _ => unreachable!("exactly one operator checked above"),
            });
        }
        out
    }

    fn stream(&mut self, s: StreamSpec) -> Option<StreamRule> {
        if !is_pascal(&s.stream_type.value) {
            self.error(
                &s.stream_type.referenced,
                format!("stream type {:?} must be PascalCase", s.stream_type.value),
            );
        }
        Some(StreamRule {
            stream_type: s.stream_type.value,
            key: self.path(&s.key)?,
        })
    }

    fn field(&mut self, name: String, f: Spanned<FieldSpec>) -> Option<FieldRule> {
        let loc = f.referenced;
        let f = f.value;
        if !is_snake(&name) {
            self.error(&loc, format!("field name {name:?} must be snake_case"));
        }
        let source = match (f.path, f.value, f.concat) {
            (Some(p), None, None) => Source::Path(self.path(&p)?),
            (None, Some(v), None) => Source::Value(v),
            (None, None, Some(ps)) => Source::Concat(
                ps.iter().filter_map(|p| self.path(p)).collect(),
                f.separator,
            ),
            _ => {
                self.error(
                    &loc,
                    format!("field {name:?} needs exactly one of path, value, concat"),
                );
                return None;
            }
        };
        let structured = matches!(f.field_type, FieldType::Coded | FieldType::ObservationValue);
        if structured && !matches!(source, Source::Path(_)) {
            self.error(
                &loc,
                format!("field {name:?}: type {:?} needs a path", f.field_type),
            );
        }
        if structured
            && (f.table.is_some() || f.all || !f.transform.is_empty() || f.default.is_some())
        {
            self.error(&loc, format!("field {name:?}: coded and observation values take no table, all, transform or default"));
        }
        let table = match f.table {
            Some(t) if !self.set.tables.contains(&t.value) => {
                self.error(
                    &t.referenced,
                    format!("no table {:?} in this tenant's tables/ folder", t.value),
                );
                None
            }
            Some(t) => Some((t.value, f.on_miss)),
            None => None,
        };
        Some(FieldRule {
            name,
            source,
            default: f.default,
            required: f.required,
            field_type: f.field_type,
            all: f.all,
            transforms: f.transform,
            table,
        })
    }

    fn template(&mut self, e: EventSpec) -> Option<Template> {
        if !is_pascal(&e.event.value) {
            self.error(
                &e.event.referenced,
                format!("event type {:?} must be PascalCase", e.event.value),
            );
        }
        let when = self.conditions(e.when);
        let for_each = match e.for_each {
            Some(f)
                if !is_segment_id(&f.segment.value)
                    || !f.children.iter().all(|c| is_segment_id(c)) =>
            {
                self.error(
                    &f.segment.referenced,
                    "for_each names segment ids such as OBX".into(),
                );
                None
            }
            Some(f) => Some(ForEach {
                segment: f.segment.value,
                children: f.children,
            }),
            None => None,
        };
        let mut streams: Vec<StreamRule> = [Some(e.stream), e.or_stream]
            .into_iter()
            .flatten()
            .filter_map(|s| self.stream(s))
            .collect();
        let time_spec = e.time.unwrap_or_else(|| {
            Spanned::new("EVN.2 | MSH.7".into(), e.event.referenced, e.event.defined)
        });
        let time = self.path(&time_spec);
        let mut fields = Vec::new();
        for (name, f) in e.fields {
            fields.extend(self.field(name, f));
        }
        if streams.is_empty() {
            return None;
        }
        streams.shrink_to_fit();
        Some(Template {
            event_type: e.event.value,
            when,
            for_each,
            streams,
            time: time?,
            fields,
        })
    }
}

/// Parses and validates a rules file, adding its rules to `set`.
pub(super) fn rules(file: &FsPath, text: &str, set: &mut RuleSet) -> Result<(), Vec<LoadError>> {
    let spec: RulesFile = serde_saphyr::from_str(text).map_err(|e| vec![yaml_error(file, &e)])?;
    let fname = file
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .to_string();
    let mut new_rules: Vec<(Vec<String>, Rule)> = Vec::new();
    let mut locations: Vec<Location> = Vec::new();
    let mut c = Checker {
        file,
        text,
        set,
        errors: Vec::new(),
    };
    for r in spec.rules {
        let codes = match &r.message.value {
            OneOrMany::One(m) => vec![m.clone()],
            OneOrMany::Many(ms) => ms.clone(),
        };
        let mut valid = Vec::new();
        for m in codes {
            let ok = m.split_once('^').is_some_and(|(t, g)| {
                [t, g].iter().all(|x| {
                    !x.is_empty()
                        && x.bytes()
                            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
                })
            });
            if ok {
                valid.push(m);
            } else {
                c.error(
                    &r.message.referenced,
                    format!("message must look like ADT^A01, found {m:?}"),
                );
            }
        }
        let when = c.conditions(r.when);
        let events: Vec<Template> = r.events.into_iter().filter_map(|e| c.template(e)).collect();
        locations.push(r.message.referenced);
        new_rules.push((
            valid,
            Rule {
                file: fname.clone(),
                when,
                events,
            },
        ));
    }
    // A rule after an unconditioned rule for the same message code can never apply.
    let mut open_ended: std::collections::BTreeSet<String> = c
        .set
        .rules
        .iter()
        .filter(|(_, rs)| rs.iter().any(|r| r.when.is_empty()))
        .map(|(k, _)| k.clone())
        .collect();
    for ((codes, rule), loc) in new_rules.iter().zip(&locations) {
        for code in codes {
            if open_ended.contains(code) {
                c.error(
                    loc,
                    format!("unreachable: an earlier rule for {code} has no conditions"),
                );
            } else if rule.when.is_empty() {
                open_ended.insert(code.clone());
            }
        }
    }
    let errors = c.errors;
    if !errors.is_empty() {
        return Err(errors);
    }
    for (codes, rule) in new_rules {
        for code in codes {
            set.rules.entry(code).or_default().push(rule.clone());
        }
    }
    Ok(())
}
