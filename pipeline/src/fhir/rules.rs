//! A tenant's FHIR mapping rules, and their application to a resource or Bundle.
//!
//! Rules are keyed by resource type; the first rule whose conditions hold is applied (as
//! HL7 rules are keyed by message type). A Bundle maps every entry: entries of types
//! without a (holding) rule, the MessageHeader of a message Bundle and entries without a
//! resource are skipped; one failing entry fails the whole Bundle, named by index and type.
//! The files are read by `mapping::fhir_files`; values are typed by [`super::values`].

use super::path::{node_text, Env, FhirPath, Index};
use super::values;
use crate::mapping::{MappedEvent, OnMiss, Tables, Transform};
use crate::reason::{Reason, Rejection};
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};

/// How a FHIR field's value becomes JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldType {
    /// A primitive as text.
    #[default]
    String,
    /// A FHIR dateTime/instant (or date) as RFC 3339; the tenant's zone when it has none.
    Timestamp,
    /// `YYYY[-MM[-DD]]`, never shifted by a time zone (a dateTime gives its date part).
    Date,
    /// A JSON number (a Quantity gives its value).
    Number,
    /// `{code, display, system}` from a CodeableConcept (first coding), Coding or code.
    Coded,
    /// An Observation `value[x]` shaped like HL7's OBX-5: Quantity a number, Range/Ratio
    /// or a Quantity with a comparator `{comparator, value, separator, value2}`,
    /// CodeableConcept coded, dateTime a timestamp, anything else text.
    ObservationValue,
    /// The HL7 v2 value type of `value[x]`: NM, SN, CWE, ST, DTM, TM, ...
    ValueType,
}

/// Where a field's value comes from.
#[derive(Debug, Clone)]
pub(crate) enum Source {
    Path(FhirPath),
    Value(String),
    Concat(Vec<FhirPath>, String),
}

/// One output field.
#[derive(Debug, Clone)]
pub(crate) struct FieldRule {
    pub name: String,
    pub source: Source,
    pub default: Option<String>,
    pub required: bool,
    pub field_type: FieldType,
    pub all: bool,
    pub transforms: Vec<Transform>,
    pub table: Option<(String, OnMiss)>,
}

/// A condition; it holds when any value found satisfies it (`not_in`: when none is in the
/// list; `present`: whether anything is found).
#[derive(Debug, Clone)]
pub(crate) enum Condition {
    Equals(FhirPath, String),
    In(FhirPath, Vec<String>),
    NotIn(FhirPath, Vec<String>),
    Present(FhirPath, bool),
}

/// A stream and the path of its key.
#[derive(Debug, Clone)]
pub(crate) struct StreamRule {
    pub stream_type: String,
    pub key: FhirPath,
}

/// One event a rule emits (once, or once per element of `for_each`).
#[derive(Debug, Clone)]
pub(crate) struct Template {
    pub event_type: String,
    pub when: Vec<Condition>,
    pub for_each: Option<FhirPath>,
    /// One event per version of the resource (its source key names the version).
    pub per_version: bool,
    pub streams: Vec<StreamRule>,
    pub time: Option<FhirPath>,
    pub fields: Vec<FieldRule>,
}

/// A rule for one or more resource types.
#[derive(Debug, Clone)]
pub(crate) struct Rule {
    pub file: String,
    pub when: Vec<Condition>,
    pub events: Vec<Template>,
}

/// The compiled FHIR rules of one tenant.
#[derive(Debug, Clone, Default)]
pub struct FhirRules {
    pub(crate) rules: BTreeMap<String, Vec<Rule>>,
    pub(crate) tables: Tables,
    pub(crate) identifiers: BTreeMap<String, Vec<String>>,
}

/// One resource being mapped and what its paths can see.
struct Target<'a> {
    resource: &'a Value,
    resource_type: &'a str,
    full_url: Option<&'a str>,
    index: &'a Index<'a>,
}

impl FhirRules {
    /// Maps a resource or Bundle to events, or says precisely why it cannot be.
    pub fn apply(
        &self,
        resource: &Value,
        tz: chrono_tz::Tz,
    ) -> Result<Vec<MappedEvent>, Rejection> {
        let t = resource
            .get("resourceType")
            .and_then(Value::as_str)
            .unwrap_or("");
        let index = Index::new(resource);
        if t != "Bundle" {
            let target = Target {
                resource,
                resource_type: t,
                full_url: None,
                index: &index,
            };
            let unmapped = || Rejection::with_detail(Reason::UnmappedResourceType, safe_type(t));
            let out = self.map_one(&target, tz)?.ok_or_else(unmapped)?;
            if out.is_empty() {
                return Err(Rejection::with_detail(
                    Reason::MappingNoEvents,
                    safe_type(t),
                ));
            }
            return Ok(out);
        }
        let mut out = Vec::new();
        let kind = resource.get("type").and_then(Value::as_str).unwrap_or("");
        let entries = resource.get("entry").and_then(Value::as_array);
        if !kind.ends_with("-response") {
            for (i, entry) in entries.into_iter().flatten().enumerate() {
                let Some(r) = entry.get("resource").filter(|r| r.is_object()) else {
                    continue;
                };
                let rt = r.get("resourceType").and_then(Value::as_str).unwrap_or("");
                if rt == "MessageHeader" || rt == "Bundle" {
                    continue;
                }
                let target = Target {
                    resource: r,
                    resource_type: rt,
                    full_url: entry.get("fullUrl").and_then(Value::as_str),
                    index: &index,
                };
                match self.map_one(&target, tz) {
                    Ok(events) => out.extend(events.into_iter().flatten()),
                    Err(e) => {
                        let detail = e.detail.unwrap_or_default();
                        let detail = format!("entry[{i}] {}: {detail}", safe_type(rt));
                        return Err(Rejection::with_detail(e.reason, detail.trim_end()));
                    }
                }
            }
        }
        // A result both listed by a DiagnosticReport and sent as an entry maps once.
        let mut seen = BTreeSet::new();
        out.retain(|e| e.source_key.as_ref().is_none_or(|k| seen.insert(k.clone())));
        if out.is_empty() {
            return Err(Rejection::with_detail(Reason::MappingNoEvents, "Bundle"));
        }
        Ok(out)
    }

    /// The events of one resource; `None` when no rule for its type holds.
    fn map_one(
        &self,
        t: &Target<'_>,
        tz: chrono_tz::Tz,
    ) -> Result<Option<Vec<MappedEvent>>, Rejection> {
        let Some(rules) = self.rules.get(t.resource_type) else {
            return Ok(None);
        };
        let env = Env {
            resource: t.resource,
            previous: None,
            identifiers: &self.identifiers,
            index: t.index,
        };
        let Some(rule) = rules.iter().find(|r| holds(&r.when, t.resource, &env)) else {
            return Ok(None);
        };
        let mut out = Vec::new();
        for template in &rule.events {
            match &template.for_each {
                None => {
                    if holds(&template.when, t.resource, &env) {
                        out.push(template.apply(t, t.resource, &env, None, self, tz, &rule.file)?);
                    }
                }
                Some(path) => {
                    let items: Vec<&Value> = path
                        .eval(t.resource, &env)
                        .iter()
                        .map(|n| n.value)
                        .collect();
                    for (i, item) in items.iter().enumerate() {
                        let env = Env {
                            previous: i.checked_sub(1).map(|p| items[p]),
                            ..env
                        };
                        if holds(&template.when, item, &env) {
                            out.push(template.apply(
                                t,
                                item,
                                &env,
                                Some(i),
                                self,
                                tz,
                                &rule.file,
                            )?);
                        }
                    }
                }
            }
        }
        Ok(Some(out))
    }

    /// Every output field the rules can fill, as (resource type, event type, field name);
    /// fields declared not carried (`path: "{}"`) are left out.
    pub fn fields(&self) -> Vec<(&str, &str, &str)> {
        let mut out = Vec::new();
        for (t, rules) in &self.rules {
            for e in rules.iter().flat_map(|r| &r.events) {
                for f in &e.fields {
                    if matches!(&f.source, Source::Path(p) if p.is_always_empty()) {
                        continue;
                    }
                    out.push((t.as_str(), e.event_type.as_str(), f.name.as_str()));
                }
            }
        }
        out
    }

    /// The resource types these rules map.
    pub fn resource_types(&self) -> impl Iterator<Item = &str> {
        self.rules.keys().map(String::as_str)
    }
}

/// A resource type as it may be echoed in a detail.
fn safe_type(t: &str) -> String {
    if super::looks_like_type(t) {
        t.to_string()
    } else {
        "unrecognised resource type".to_string()
    }
}

fn holds(conditions: &[Condition], ctx: &Value, env: &Env<'_>) -> bool {
    let texts =
        |p: &FhirPath| -> Vec<String> { p.eval(ctx, env).iter().filter_map(node_text).collect() };
    conditions.iter().all(|c| match c {
        Condition::Equals(p, v) => texts(p).contains(v),
        Condition::In(p, vs) => texts(p).iter().any(|x| vs.contains(x)),
        Condition::NotIn(p, vs) => !texts(p).iter().any(|x| vs.contains(x)),
        Condition::Present(p, want) => p.eval(ctx, env).is_empty() != *want,
    })
}

fn text<'v>(v: &'v Value, key: &str) -> Option<&'v str> {
    v.get(key).and_then(Value::as_str).filter(|s| !s.is_empty())
}

/// `Type/id`, else the entry's fullUrl.
fn base(resource: &Value, full_url: Option<&str>) -> Option<String> {
    match (text(resource, "resourceType"), text(resource, "id")) {
        (Some(t), Some(id)) => Some(format!("{t}/{id}")),
        _ => full_url.map(str::to_string),
    }
}

/// `/_history/<versionId>`, else `#sha256:<hash of the content>`.
fn version(resource: &Value) -> String {
    match resource.pointer("/meta/versionId").and_then(Value::as_str) {
        Some(v) if !v.is_empty() => format!("/_history/{v}"),
        _ => {
            let digest = Sha256::digest(resource.to_string().as_bytes());
            let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
            format!("#sha256:{hex}")
        }
    }
}

impl Template {
    #[allow(clippy::too_many_arguments)]
    fn apply(
        &self,
        t: &Target<'_>,
        ctx: &Value,
        env: &Env<'_>,
        position: Option<usize>,
        rules: &FhirRules,
        tz: chrono_tz::Tz,
        file: &str,
    ) -> Result<MappedEvent, Rejection> {
        let (stream, stream_key) = self
            .streams
            .iter()
            .find_map(|s| s.key.first_text(ctx, env).map(|k| (s, k)))
            .ok_or_else(|| {
                // The stream types, not the key paths (long FHIRPath fallbacks).
                let types: Vec<&str> = self
                    .streams
                    .iter()
                    .map(|s| s.stream_type.as_str())
                    .collect();
                Rejection::with_detail(
                    Reason::MappingRequiredField,
                    format!(
                        "stream key of {} ({} stream)",
                        self.event_type,
                        types.join(" / ")
                    ),
                )
            })?;
        let time = self
            .time
            .as_ref()
            .and_then(|p| p.first_text(ctx, env))
            .and_then(|v| values::parse_timestamp(&v, tz))
            .map(|t| t.to_utc());
        let mut data = serde_json::Map::with_capacity(self.fields.len());
        for f in &self.fields {
            data.insert(f.name.clone(), f.value(ctx, env, tz, &rules.tables)?);
        }
        // A resource of its own (a result resolved in the Bundle) is keyed by itself, so
        // it maps to the same event whether sent alone or listed by a report.
        let own = position.is_some()
            && ctx.get("resourceType").is_some()
            && !t
                .resource
                .get("contained")
                .and_then(Value::as_array)
                .is_some_and(|c| c.iter().any(|x| std::ptr::eq(x, ctx)));
        let source_key = if own {
            base(ctx, None).map(|b| {
                let v = if self.per_version {
                    version(ctx)
                } else {
                    String::new()
                };
                format!("{b}{v}#{}", self.event_type)
            })
        } else {
            base(t.resource, t.full_url).map(|b| {
                let v = if self.per_version {
                    version(t.resource)
                } else {
                    String::new()
                };
                match position {
                    Some(i) => format!("{b}{v}#{}#{i}", self.event_type),
                    None => format!("{b}{v}#{}", self.event_type),
                }
            })
        };
        Ok(MappedEvent {
            event_type: self.event_type.clone(),
            stream_type: stream.stream_type.clone(),
            stream_key,
            time,
            data: Value::Object(data),
            file: file.to_string(),
            source_key,
        })
    }
}

impl FieldRule {
    fn describe(&self) -> String {
        match &self.source {
            Source::Path(p) => format!("field {} ({})", self.name, short(p.as_str())),
            Source::Value(_) => format!("field {} (constant)", self.name),
            Source::Concat(ps, _) => {
                let ps: Vec<String> = ps.iter().map(|p| short(p.as_str())).collect();
                format!("field {} ({})", self.name, ps.join(" + "))
            }
        }
    }

    fn value(
        &self,
        ctx: &Value,
        env: &Env<'_>,
        tz: chrono_tz::Tz,
        tables: &Tables,
    ) -> Result<Value, Rejection> {
        let invalid = |what: &str| {
            Rejection::with_detail(
                Reason::MappingInvalidValue,
                format!("{} is not {what}", self.describe()),
            )
        };
        let value = match (self.field_type, &self.source) {
            (FieldType::Coded, Source::Path(p)) => p
                .eval(ctx, env)
                .first()
                .map_or(Value::Null, |n| values::coded(n.value)),
            (FieldType::ObservationValue, Source::Path(p)) => match p.eval(ctx, env).first() {
                Some(n) => values::observation_value(n, tz).map_err(&invalid)?,
                None => Value::Null,
            },
            (FieldType::ValueType, Source::Path(p)) => p
                .eval(ctx, env)
                .first()
                .map_or(Value::Null, |n| json!(values::value_type(n))),
            _ => {
                let texts = self
                    .texts(ctx, env, tables)
                    .map_err(|e| e.unwrap_or_else(|| invalid("a primitive value")))?;
                let typed: Vec<Value> = texts
                    .iter()
                    .map(|t| match self.field_type {
                        FieldType::Timestamp => values::to_rfc3339(t, tz)
                            .map(Value::String)
                            .ok_or_else(|| invalid("a FHIR dateTime")),
                        FieldType::Number => values::number(t).ok_or_else(|| invalid("a number")),
                        FieldType::Date => values::date(t).ok_or_else(|| invalid("a FHIR date")),
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
            return Err(Rejection::with_detail(
                Reason::MappingRequiredField,
                self.describe(),
            ));
        }
        Ok(value)
    }

    /// The text values (several only with `all`), after transforms and table;
    /// `Err(None)` when a value is not a primitive.
    fn texts(
        &self,
        ctx: &Value,
        env: &Env<'_>,
        tables: &Tables,
    ) -> Result<Vec<String>, Option<Rejection>> {
        let one = |n: &super::path::Node<'_>| -> Result<String, Option<Rejection>> {
            let v = match (self.field_type, n.value.get("value")) {
                // A Quantity read as a number is its value.
                (FieldType::Number, Some(q)) if n.value.is_object() => q,
                _ => n.value,
            };
            match node_text(&super::path::Node { value: v, ..*n }) {
                Some(t) => Ok(t),
                None => Err(None),
            }
        };
        let raw: Vec<String> = match &self.source {
            Source::Value(v) => vec![v.clone()],
            Source::Path(p) => {
                let nodes = p.eval(ctx, env);
                let nodes = if self.all {
                    &nodes[..]
                } else {
                    &nodes[..nodes.len().min(1)]
                };
                nodes.iter().map(one).collect::<Result<_, _>>()?
            }
            Source::Concat(ps, sep) => {
                let mut parts = Vec::new();
                for p in ps {
                    if let Some(n) = p.eval(ctx, env).first() {
                        parts.push(one(n)?);
                    }
                }
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
                        return Err(Some(Rejection::with_detail(
                            Reason::MappingTableMiss,
                            format!("table {table}, {}", self.describe()),
                        )))
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
}

#[cfg(test)]
mod tests;

/// A path as a dead-letter detail names it: whole when short, else its first alternative
/// (support staff find the rest in the mapping file).
fn short(path: &str) -> String {
    const MAX: usize = 60;
    if path.len() <= MAX {
        return path.to_string();
    }
    match path.split_once(" | ") {
        Some((first, _)) if first.len() <= MAX => format!("{first} | ..."),
        _ => format!("{}...", path.chars().take(MAX).collect::<String>()),
    }
}
