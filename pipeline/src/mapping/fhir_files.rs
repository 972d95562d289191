//! The YAML schema of FHIR rule files (top key `resources:`), validated into
//! [`FhirRules`].

use super::files::{at, quoted_offset, yaml_error, StreamSpec};

/// A FHIR rule file's field: FHIR field types.
type FieldSpec = super::files::FieldSpec<FieldType>;
use super::{LoadError, Tables};
use crate::fhir::path::FhirPath;
use crate::fhir::rules::{
    Condition, FhirRules, FieldRule, FieldType, Rule, Source, StreamRule, Template,
};
use serde::Deserialize;
use serde_saphyr::{Location, Spanned};
use std::collections::BTreeMap;
use std::path::Path as FsPath;

/// Whether a rules file is a FHIR one: its first top-level key is `resources:`.
pub(super) fn is_fhir(text: &str) -> bool {
    text.lines()
        .map(str::trim_end)
        .find(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with(' ') && *l != "---")
        .is_some_and(|l| l.starts_with("resources:"))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesFile {
    resources: Vec<RuleSpec>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleSpec {
    resource: Spanned<OneOrMany>,
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
    for_each: Option<Spanned<String>>,
    #[serde(default)]
    per_version: bool,
    stream: StreamSpec,
    #[serde(default)]
    or_stream: Option<StreamSpec>,
    #[serde(default)]
    time: Option<Spanned<String>>,
    fields: BTreeMap<String, Spanned<FieldSpec>>,
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

struct Checker<'a> {
    file: &'a FsPath,
    text: &'a str,
    tables: &'a Tables,
    identifiers: Vec<&'a str>,
    errors: Vec<LoadError>,
}

impl Checker<'_> {
    fn error(&mut self, loc: &Location, message: String) {
        self.errors.push(at(self.file, loc, 0, message));
    }

    fn path(&mut self, s: &Spanned<String>) -> Option<FhirPath> {
        match FhirPath::parse(&s.value, &self.identifiers) {
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
            out.push(match (c.equals, c.any_of, c.not_in, c.present) {
                (Some(v), None, None, None) => Condition::Equals(p, v),
                (None, Some(vs), None, None) => Condition::In(p, vs),
                (None, None, Some(vs), None) => Condition::NotIn(p, vs),
                (None, None, None, Some(b)) => Condition::Present(p, b),
                _ => {
                    self.error(
                        &c.path.referenced,
                        "a condition needs exactly one of equals, in, not_in, present".into(),
                    );
                    continue;
                }
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
        let structured = matches!(
            f.field_type,
            FieldType::Coded | FieldType::ObservationValue | FieldType::ValueType
        );
        if structured && !matches!(source, Source::Path(_)) {
            self.error(
                &loc,
                format!("field {name:?}: type {:?} needs a path", f.field_type),
            );
        }
        if structured
            && (f.table.is_some() || f.all || !f.transform.is_empty() || f.default.is_some())
        {
            self.error(
                &loc,
                format!("field {name:?}: coded and observation values take no table, all, transform or default"),
            );
        }
        let table = match f.table {
            Some(t) if !self.tables.contains(&t.value) => {
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
        let for_each = match &e.for_each {
            Some(p) => Some(self.path(p)?),
            None => None,
        };
        let streams: Vec<StreamRule> = [Some(e.stream), e.or_stream]
            .into_iter()
            .flatten()
            .filter_map(|s| self.stream(s))
            .collect();
        let time = match &e.time {
            Some(t) => Some(self.path(t)?),
            None => None,
        };
        let mut fields = Vec::new();
        for (name, f) in e.fields {
            fields.extend(self.field(name, f));
        }
        if streams.is_empty() {
            return None;
        }
        Some(Template {
            event_type: e.event.value,
            when,
            for_each,
            per_version: e.per_version,
            streams,
            time,
            fields,
        })
    }
}

/// Parses and validates a FHIR rules file, adding its rules to `set`.
pub(super) fn rules(file: &FsPath, text: &str, set: &mut FhirRules) -> Result<(), Vec<LoadError>> {
    let spec: RulesFile = serde_saphyr::from_str(text).map_err(|e| vec![yaml_error(file, &e)])?;
    let fname = file
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .to_string();
    let mut c = Checker {
        file,
        text,
        tables: &set.tables,
        identifiers: set.identifiers.keys().map(String::as_str).collect(),
        errors: Vec::new(),
    };
    let mut new_rules: Vec<(Vec<String>, Rule, Location)> = Vec::new();
    for r in spec.resources {
        let types = match &r.resource.value {
            OneOrMany::One(t) => vec![t.clone()],
            OneOrMany::Many(ts) => ts.clone(),
        };
        let mut valid = Vec::new();
        for t in types {
            if !crate::fhir::looks_like_type(&t) || t == "Bundle" {
                c.error(
                    &r.resource.referenced,
                    format!("resource must be a FHIR resource type such as Encounter (Bundles map their entries), found {t:?}"),
                );
            } else {
                valid.push(t);
            }
        }
        let when = c.conditions(r.when);
        let events: Vec<Template> = r.events.into_iter().filter_map(|e| c.template(e)).collect();
        let rule = Rule {
            file: fname.clone(),
            when,
            events,
        };
        new_rules.push((valid, rule, r.resource.referenced));
    }
    let mut open_ended: std::collections::BTreeSet<String> = set
        .rules
        .iter()
        .filter(|(_, rs)| rs.iter().any(|r| r.when.is_empty()))
        .map(|(k, _)| k.clone())
        .collect();
    for (types, rule, loc) in &new_rules {
        for t in types {
            if open_ended.contains(t) {
                c.error(
                    loc,
                    format!("unreachable: an earlier rule for {t} has no conditions"),
                );
            } else if rule.when.is_empty() {
                open_ended.insert(t.clone());
            }
        }
    }
    if !c.errors.is_empty() {
        return Err(c.errors);
    }
    for (types, rule, _) in new_rules {
        for t in types {
            set.rules.entry(t).or_default().push(rule.clone());
        }
    }
    Ok(())
}
