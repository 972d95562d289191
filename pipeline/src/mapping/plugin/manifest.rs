//! `plugins/<name>/manifest.yaml`: its schema, and its check against the catalogue. Every
//! problem is reported at `file:line:col`.
//!
//! ```yaml
//! apiVersion: intake/v1
//! kind: SpecialtyPlugin
//! metadata: { name: cardiac, version: 1.0.0, description: ... }
//! spec:
//!   stream_types: {}              # as in catalogue.yaml
//!   events: {}                    # the event types it adds, as in catalogue.yaml
//!   derive: []                    # derivation rules
//!   validations: []               # value ranges and enums
//! ```

use super::rules::{Check, Condition, FieldExpr, OnInvalid, Rule, Validation};
use super::Plugin;
use crate::mapping::catalogue::{hint, Catalogue, CatalogueFile, EventDef};
use crate::mapping::expr::Expr;
use crate::mapping::{yaml_error, LoadError};
use serde::Deserialize;
use serde_json::Value;
use serde_saphyr::{Location, Spanned};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The manifest's API version this engine reads.
pub const API_VERSION: &str = "intake/v1";

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Manifest {
    api_version: Spanned<String>,
    kind: Spanned<String>,
    metadata: Metadata,
    spec: Spec,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Metadata {
    name: Spanned<String>,
    version: Spanned<String>,
    #[serde(default)]
    #[allow(dead_code)] // documentation for people; read by serde only
    description: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Spec {
    #[serde(default)]
    stream_types: BTreeMap<String, Spanned<String>>,
    #[serde(default)]
    events: BTreeMap<String, Spanned<EventDef>>,
    #[serde(default)]
    derive: Vec<Spanned<RuleSpec>>,
    #[serde(default)]
    validations: Vec<Spanned<ValidationSpec>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleSpec {
    name: String,
    when: When,
    #[serde(default, rename = "if")]
    conditions: Vec<Spanned<Value>>,
    emit: Emit,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct When {
    event: String,
    #[serde(default)]
    stream: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Emit {
    event: String,
    fields: BTreeMap<String, Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ValidationSpec {
    event: String,
    field: String,
    #[serde(default)]
    range: Option<RangeSpec>,
    #[serde(default)]
    one_of: Option<Vec<String>>,
    on_invalid: OnInvalid,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RangeSpec {
    min: f64,
    max: f64,
}

/// Reads and checks the manifest `file` (of the plugin folder `folder`) against the
/// shipped catalogue extended by its own event types.
pub(super) fn load(file: &Path, folder: &str, text: &str) -> Result<Plugin, Vec<LoadError>> {
    let m: Manifest = serde_saphyr::from_str(text).map_err(|e| vec![yaml_error(file, &e)])?;
    let mut errors = Vec::new();
    let err = |loc: &Location, message: String| LoadError {
        file: file.to_path_buf(),
        line: loc.line() as u32,
        column: loc.column() as u32,
        message,
    };
    if m.api_version.value != API_VERSION {
        errors.push(err(
            &m.api_version.referenced,
            format!("apiVersion is {API_VERSION}"),
        ));
    }
    if m.kind.value != "SpecialtyPlugin" {
        errors.push(err(&m.kind.referenced, "kind is SpecialtyPlugin".into()));
    }
    if m.metadata.name.value != folder {
        errors.push(err(
            &m.metadata.name.referenced,
            format!("metadata.name must be the folder's name, {folder:?}"),
        ));
    }
    if m.metadata.version.value.trim().is_empty() {
        errors.push(err(
            &m.metadata.version.referenced,
            "metadata.version is empty".into(),
        ));
    }
    let own = CatalogueFile {
        stream_types: m.spec.stream_types,
        events: m.spec.events,
    };
    let own_events: BTreeSet<String> = own.events.keys().cloned().collect();
    let catalogue = match Catalogue::shipped().extend_spec(file, own.clone()) {
        Ok(c) => c,
        Err(e) => {
            errors.extend(e);
            return Err(errors);
        }
    };
    let mut rules = Vec::new();
    let mut names = BTreeSet::new();
    for spec in m.spec.derive {
        let loc = spec.referenced;
        if !names.insert(spec.value.name.clone()) {
            errors.push(err(
                &loc,
                format!("rule {:?} is named twice", spec.value.name),
            ));
        }
        match rule(&catalogue, spec.value) {
            Ok(r) => rules.push(r),
            Err((at, message)) => errors.push(err(at.as_ref().unwrap_or(&loc), message)),
        }
    }
    let mut validations = Vec::new();
    for spec in m.spec.validations {
        match validation(&catalogue, spec.value) {
            Ok(v) => validations.push(v),
            Err(message) => errors.push(err(&spec.referenced, message)),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Plugin {
        name: folder.to_string(),
        version: m.metadata.version.value,
        file: file.to_path_buf(),
        text: text.to_string(),
        catalogue: own,
        events: own_events,
        rules,
        validations,
    })
}

/// A rule's problem: where (a condition's own place, else the rule's) and what.
type RuleError = (Option<Location>, String);

fn rule(catalogue: &Catalogue, spec: RuleSpec) -> Result<Rule, RuleError> {
    let mut conditions = Vec::new();
    let trigger_fields = catalogue.event(&spec.when.event).map(|e| &e.fields);
    for c in &spec.conditions {
        let field = |f: &str| trigger_fields.is_some_and(|t| t.contains_key(f));
        match condition(&c.value, &field) {
            Ok(c) => conditions.push(c),
            Err(e) => return Err((Some(c.referenced), format!("rule {}: if: {e}", spec.name))),
        }
    }
    rule_body(catalogue, spec, conditions).map_err(|e| (None, e))
}

fn rule_body(
    catalogue: &Catalogue,
    spec: RuleSpec,
    conditions: Vec<Condition>,
) -> Result<Rule, String> {
    let name = &spec.name;
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(format!("rule name {name:?}: use a-z, 0-9 and -"));
    }
    let trigger = known_event(catalogue, &spec.when.event)
        .map_err(|e| format!("rule {name}: when.event: {e}"))?;
    if let Some(s) = &spec.when.stream {
        if !trigger.streams.contains(s) {
            return Err(format!(
                "rule {name}: {} does not go on stream type {s:?}",
                spec.when.event
            ));
        }
    }
    let emitted = known_event(catalogue, &spec.emit.event)
        .map_err(|e| format!("rule {name}: emit.event: {e}"))?;
    let on: Vec<&String> = match &spec.when.stream {
        Some(s) => vec![s],
        None => trigger.streams.iter().collect(),
    };
    if let Some(s) = on.iter().find(|s| !emitted.streams.contains(s)) {
        return Err(format!(
            "rule {name}: {} goes on the trigger's stream, and cannot go on {s}",
            spec.emit.event
        ));
    }
    let trigger_field = |f: &str| trigger.fields.contains_key(f);
    let mut fields = Vec::new();
    for (field, value) in &spec.emit.fields {
        if !emitted.fields.contains_key(field) {
            return Err(format!(
                "rule {name}: {} has no field {field:?}{}",
                spec.emit.event,
                hint(field, emitted.fields.keys())
            ));
        }
        let f = field_expr(value, &trigger_field)
            .map_err(|e| format!("rule {name}: field {field}: {e}"))?;
        fields.push((field.clone(), f));
    }
    if let Some((missing, _)) = emitted
        .fields
        .iter()
        .find(|(f, d)| d.required && !spec.emit.fields.contains_key(*f))
    {
        return Err(format!(
            "rule {name}: {} needs its required field {missing}",
            spec.emit.event
        ));
    }
    Ok(Rule {
        name: spec.name,
        event: spec.when.event,
        stream: spec.when.stream,
        conditions,
        emit: spec.emit.event,
        fields,
    })
}

fn known_event<'c>(catalogue: &'c Catalogue, name: &str) -> Result<&'c EventDef, String> {
    catalogue
        .event(name)
        .ok_or_else(|| format!("unknown event type {name:?}{}", catalogue.event_hint(name)))
}

/// An expression whose `$field` terms the trigger event has.
fn expr(value: &Value, field: &dyn Fn(&str) -> bool) -> Result<Expr, String> {
    let e = Expr::parse(value)?;
    let missing = e.fields().find(|f| !field(f)).map(str::to_string);
    match missing {
        Some(f) => Err(format!("the trigger event has no field {f:?}")),
        None => Ok(e),
    }
}

fn field_expr(value: &Value, field: &dyn Fn(&str) -> bool) -> Result<FieldExpr, String> {
    match value {
        Value::Object(o) => {
            let unknown = o.keys().find(|k| !["value", "type"].contains(&k.as_str()));
            if let Some(k) = unknown {
                return Err(format!("unknown key {k:?} (value, type)"));
            }
            let number = match o.get("type").and_then(Value::as_str) {
                None | Some("string") => false,
                Some("number") => true,
                Some(t) => return Err(format!("type {t:?}: number or string")),
            };
            let value = o.get("value").ok_or("needs value:")?;
            Ok(FieldExpr {
                value: expr(value, field)?,
                number,
            })
        }
        v => Ok(FieldExpr {
            value: expr(v, field)?,
            number: false,
        }),
    }
}

fn condition(c: &Value, field: &dyn Fn(&str) -> bool) -> Result<Condition, String> {
    let o = c.as_object().ok_or("a condition is a mapping")?;
    for (key, group) in [
        ("any", Condition::Any as fn(_) -> _),
        ("all", Condition::All),
    ] {
        if let Some(list) = o.get(key) {
            let list = list
                .as_array()
                .ok_or_else(|| format!("{key}: takes a list of conditions"))?;
            return list
                .iter()
                .map(|c| condition(c, field))
                .collect::<Result<Vec<_>, _>>()
                .map(group);
        }
    }
    let value = expr(
        o.get("value").ok_or("a condition needs value: (or any:)")?,
        field,
    )?;
    let ops: Vec<&String> = o.keys().filter(|k| *k != "value").collect();
    let [op] = ops.as_slice() else {
        return Err("a condition has one of equals, not_equals, in, not_in, present".into());
    };
    let arg = &o[op.as_str()];
    let list = || {
        arg.as_array()
            .cloned()
            .ok_or_else(|| format!("{op}: takes a list"))
    };
    Ok(match op.as_str() {
        "equals" => Condition::Equals(value, expr(arg, field)?),
        "not_equals" => Condition::NotEquals(value, expr(arg, field)?),
        "in" => Condition::In(value, list()?),
        "not_in" => Condition::NotIn(value, list()?),
        "present" => Condition::Present(value, arg.as_bool().ok_or("present: true or false")?),
        other => {
            return Err(format!(
                "unknown condition {other:?} (equals, not_equals, in, not_in, present, any, all)"
            ))
        }
    })
}

fn validation(catalogue: &Catalogue, spec: ValidationSpec) -> Result<Validation, String> {
    let event = known_event(catalogue, &spec.event).map_err(|e| format!("validation: {e}"))?;
    if !event.fields.contains_key(&spec.field) {
        return Err(format!(
            "validation: {} has no field {:?}{}",
            spec.event,
            spec.field,
            hint(&spec.field, event.fields.keys())
        ));
    }
    let check = match (spec.range, spec.one_of) {
        (Some(r), None) if r.min <= r.max => Check::Range {
            min: r.min,
            max: r.max,
        },
        (Some(_), None) => return Err("validation: range min is above max".into()),
        (None, Some(list)) if !list.is_empty() => Check::OneOf(list),
        _ => return Err("validation: give one of range: {min, max} or one_of: [..]".into()),
    };
    Ok(Validation {
        event: spec.event,
        field: spec.field,
        check,
        on_invalid: spec.on_invalid,
    })
}
