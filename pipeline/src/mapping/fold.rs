//! A stream's state: the fold of its events by the catalogue's `state:` effects.
//!
//! Each event type may say, as data, what it does to the state of its stream:
//! ```yaml
//! AdmissionCreated:
//!   state:
//!     status: admitted                      # a literal
//!     location: $location                   # the event's field (null included)
//!     since: $admitted_at | @effective_at   # the first that is not null
//!     last_results[$code]: $                # an entry of a map, keyed by a field
//! ```
//! Folding a stream's events in order gives its state: where the patient is, the visit's
//! status, its last results. The census, the temporal queries and the plugins' rules all
//! read this one fold, so they agree.

use super::expr::{Expr, Scope};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// One effect of an event on its stream's state.
#[derive(Debug, Clone)]
pub struct Effect {
    target: Target,
    value: Expr,
}

#[derive(Debug, Clone)]
enum Target {
    /// `name`: a field of the state.
    Field(String),
    /// `name[$key]`: an entry of the map `name`, keyed by the event's field `key`.
    Entry { map: String, key: String },
}

/// Compiles an event type's `state:` effects; `fields` are its catalogue fields, which
/// `$field` terms must name.
pub fn compile<'f>(
    state: &BTreeMap<String, Value>,
    fields: impl Fn(&str) -> bool + 'f,
) -> Result<Vec<Effect>, String> {
    let snake = |n: &str| {
        !n.is_empty()
            && n.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    };
    let mut effects = Vec::new();
    for (target, value) in state {
        let target = match target.split_once("[$") {
            Some((map, rest)) => {
                let key = rest.strip_suffix(']').unwrap_or("");
                if !snake(map) || !snake(key) {
                    return Err(format!("state {target:?}: write name or name[$field]"));
                }
                if !fields(key) {
                    return Err(format!("state {target:?}: the event has no field {key}"));
                }
                Target::Entry {
                    map: map.to_string(),
                    key: key.to_string(),
                }
            }
            None if snake(target) => Target::Field(target.clone()),
            None => return Err(format!("state {target:?}: a state field is snake_case")),
        };
        let value = Expr::parse(value).map_err(|e| format!("state of {target:?}: {e}"))?;
        if value.reads_state() {
            return Err("state effects read the event, not the state".into());
        }
        if let Some(f) = value.fields().find(|f| !fields(f)) {
            return Err(format!("state: the event has no field {f}"));
        }
        effects.push(Effect { target, value });
    }
    Ok(effects)
}

/// Applies one event's effects to `state`. Every effect reads the state as it was
/// before the event.
pub fn apply(state: &mut Map<String, Value>, effects: &[Effect], data: &Value, effective_at: &str) {
    if effects.is_empty() {
        return;
    }
    let values: Vec<Value> = {
        let scope = Scope {
            data,
            effective_at,
            state,
        };
        effects.iter().map(|e| e.value.eval(&scope)).collect()
    };
    for (effect, value) in effects.iter().zip(values) {
        match &effect.target {
            Target::Field(name) => {
                state.insert(name.clone(), value);
            }
            Target::Entry { map, key } => {
                let Some(key) = data.get(key).and_then(entry_key) else {
                    continue; // no key, no entry
                };
                let entry = state
                    .entry(map.clone())
                    .or_insert_with(|| Value::Object(Map::new()));
                if !entry.is_object() {
                    *entry = Value::Object(Map::new());
                }
                if let Value::Object(m) = entry {
                    m.insert(key, value);
                }
            }
        }
    }
}

/// A map key from a field's value (text or number).
fn entry_key(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn effects(yaml: serde_json::Value) -> Vec<Effect> {
        let state: BTreeMap<String, Value> = serde_json::from_value(yaml).unwrap();
        compile(&state, |f| ["location", "code", "admitted_at"].contains(&f)).unwrap()
    }

    #[test]
    fn effects_set_fields_and_keyed_entries() {
        let admit = effects(json!({"status": "admitted", "location": "$location",
            "since": "$admitted_at | @effective_at"}));
        let result = effects(json!({"last_results[$code]": "$"}));
        let mut state = Map::new();
        apply(
            &mut state,
            &admit,
            &json!({"location": "W1", "admitted_at": null}),
            "T1",
        );
        assert_eq!(
            Value::Object(state.clone()),
            json!({"status": "admitted", "location": "W1", "since": "T1"})
        );
        apply(&mut state, &result, &json!({"code": "K", "value": 4}), "T2");
        apply(&mut state, &result, &json!({"code": "K", "value": 5}), "T3");
        apply(
            &mut state,
            &result,
            &json!({"code": null, "value": 6}),
            "T4",
        );
        assert_eq!(
            state["last_results"],
            json!({"K": {"code": "K", "value": 5}})
        );
    }

    #[test]
    fn bad_effects_are_refused() {
        let state = |v: serde_json::Value| -> BTreeMap<String, Value> {
            serde_json::from_value(v).unwrap()
        };
        let known = |f: &str| f == "location";
        assert_eq!(
            compile(&state(json!({"where": "$place"})), known).unwrap_err(),
            "state: the event has no field place"
        );
        assert!(compile(&state(json!({"Where": "$location"})), known).is_err());
        assert!(compile(&state(json!({"x": "state.location"})), known).is_err());
        assert!(compile(&state(json!({"m[$nope]": "$"})), known).is_err());
    }
}
