//! A plugin's rules, compiled: derivation rules (`derive:`) and validations
//! (`validations:`). Both read an event's data, its time and, for derivation rules that
//! say `state.`, its stream's state before it ([`super::super::expr`]).

use crate::mapping::expr::{Expr, Scope};
use serde::Serialize;
use serde_json::{Map, Value};

/// A derivation rule: when an event of type `event` (on stream type `stream`, if given)
/// meets every condition, emit `emit` on the same stream.
#[derive(Debug, Clone)]
pub struct Rule {
    /// The rule's name (unique within its plugin; part of derived event ids).
    pub name: String,
    /// The event type that triggers it.
    pub event: String,
    /// The stream type it is limited to, if any.
    pub stream: Option<String>,
    /// All must hold.
    pub conditions: Vec<Condition>,
    /// The event type it emits.
    pub emit: String,
    /// The emitted event's fields.
    pub fields: Vec<(String, FieldExpr)>,
}

/// A condition of a derivation rule.
#[derive(Debug, Clone)]
pub enum Condition {
    /// `{value: X, equals: Y}`.
    Equals(Expr, Expr),
    /// `{value: X, not_equals: Y}`.
    NotEquals(Expr, Expr),
    /// `{value: X, in: [..]}`.
    In(Expr, Vec<Value>),
    /// `{value: X, not_in: [..]}`: also true when X is null.
    NotIn(Expr, Vec<Value>),
    /// `{value: X, present: true|false}`: X is (not) null or empty text.
    Present(Expr, bool),
    /// `{any: [..]}`: at least one holds.
    Any(Vec<Condition>),
    /// `{all: [..]}`: every one holds (inside an `any`).
    All(Vec<Condition>),
}

/// An emitted field: an expression, cast to a number when asked.
#[derive(Debug, Clone)]
pub struct FieldExpr {
    /// Where the value comes from.
    pub value: Expr,
    /// `type: number`: text such as `"55.0"` becomes 55.0 (other text is kept as it is,
    /// for a validation to refuse).
    pub number: bool,
}

/// A validation of one field of one event type.
#[derive(Debug, Clone)]
pub struct Validation {
    /// The event type.
    pub event: String,
    /// The field.
    pub field: String,
    /// What the value must be.
    pub check: Check,
    /// What an invalid value does.
    pub on_invalid: OnInvalid,
}

/// What a validated value must be. A null value is not checked.
#[derive(Debug, Clone)]
pub enum Check {
    /// A number within `min..=max`.
    Range {
        /// Lowest allowed.
        min: f64,
        /// Highest allowed.
        max: f64,
    },
    /// One of these texts.
    OneOf(Vec<String>),
}

/// What an invalid value does (`on_invalid:`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnInvalid {
    /// The whole message becomes a dead letter (`PLUGIN_VALIDATION_FAILED`).
    DeadLetter,
    /// The event is kept, with a flag in its metadata.
    Flag,
}

/// A flag on an event that failed a validation (never its value: it may be PHI).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Flag {
    /// The plugin whose validation failed.
    pub plugin: String,
    /// The field.
    pub field: String,
    /// What it had to be, e.g. `range 0..100` or `one of I, II, III, IV`.
    pub expected: String,
}

impl Rule {
    /// Whether the rule reads the stream's state (then it runs in the store's commit,
    /// where that state is known; otherwise in the pure pipeline).
    pub fn reads_state(&self) -> bool {
        self.conditions.iter().any(Condition::reads_state)
            || self.fields.iter().any(|(_, f)| f.value.reads_state())
    }

    /// Whether an event of this type on this stream type triggers the rule.
    pub fn triggered_by(&self, event_type: &str, stream_type: &str) -> bool {
        self.event == event_type && self.stream.as_deref().is_none_or(|s| s == stream_type)
    }

    /// The derived event's data when the rule fires for an event in `scope`.
    pub fn fire(&self, scope: &Scope<'_>) -> Option<Value> {
        if !self.conditions.iter().all(|c| c.holds(scope)) {
            return None;
        }
        let data: Map<String, Value> = self
            .fields
            .iter()
            .map(|(name, f)| (name.clone(), f.eval(scope)))
            .collect();
        Some(Value::Object(data))
    }
}

impl Condition {
    fn reads_state(&self) -> bool {
        match self {
            Condition::Equals(a, b) | Condition::NotEquals(a, b) => {
                a.reads_state() || b.reads_state()
            }
            Condition::In(a, _) | Condition::NotIn(a, _) | Condition::Present(a, _) => {
                a.reads_state()
            }
            Condition::Any(all) | Condition::All(all) => all.iter().any(Condition::reads_state),
        }
    }

    fn holds(&self, scope: &Scope<'_>) -> bool {
        match self {
            Condition::Equals(a, b) => same(&a.eval(scope), &b.eval(scope)),
            Condition::NotEquals(a, b) => !same(&a.eval(scope), &b.eval(scope)),
            Condition::In(a, list) => {
                let v = a.eval(scope);
                list.iter().any(|x| same(&v, x))
            }
            Condition::NotIn(a, list) => {
                let v = a.eval(scope);
                !list.iter().any(|x| same(&v, x))
            }
            Condition::Present(a, want) => present(&a.eval(scope)) == *want,
            Condition::Any(any) => any.iter().any(|c| c.holds(scope)),
            Condition::All(all) => all.iter().all(|c| c.holds(scope)),
        }
    }
}

/// Equality of values as an interface engineer means it: `"5"` equals `5`, and empty
/// text equals null.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::String(x), Value::Number(n)) | (Value::Number(n), Value::String(x)) => {
            x.trim().parse::<f64>().ok() == n.as_f64()
        }
        _ if !present(a) && !present(b) => true,
        _ => a == b,
    }
}

/// Not null and not empty text.
fn present(v: &Value) -> bool {
    !(v.is_null() || v.as_str().is_some_and(|s| s.trim().is_empty()))
}

impl FieldExpr {
    fn eval(&self, scope: &Scope<'_>) -> Value {
        let v = self.value.eval(scope);
        match (&v, self.number) {
            (Value::String(s), true) => s
                .trim()
                .parse::<f64>()
                .ok()
                .and_then(serde_json::Number::from_f64)
                .map_or(v.clone(), Value::Number),
            _ => v,
        }
    }
}

impl Validation {
    /// Whether `data` passes (a null or missing field passes: `required` is the
    /// catalogue's business).
    pub fn passes(&self, data: &Value) -> bool {
        let v = data.get(&self.field).unwrap_or(&Value::Null);
        if !present(v) {
            return true;
        }
        match &self.check {
            Check::Range { min, max } => {
                let n = v.as_f64().or_else(|| v.as_str()?.trim().parse().ok());
                n.is_some_and(|n| n >= *min && n <= *max)
            }
            Check::OneOf(allowed) => v.as_str().is_some_and(|s| allowed.iter().any(|a| a == s)),
        }
    }

    /// What the value had to be, for flags and dead-letter details.
    pub fn expected(&self) -> String {
        match &self.check {
            Check::Range { min, max } => format!("range {min}..{max}"),
            Check::OneOf(allowed) => format!("one of {}", allowed.join(", ")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn e(s: &str) -> Expr {
        Expr::parse(&json!(s)).unwrap()
    }

    #[test]
    fn a_rule_fires_only_when_its_conditions_hold() {
        let rule = Rule {
            name: "moved".into(),
            event: "PatientUpdated".into(),
            stream: Some("Admission".into()),
            conditions: vec![
                Condition::Present(e("$location"), true),
                Condition::Any(vec![
                    Condition::NotEquals(e("$location"), e("state.location")),
                    Condition::NotEquals(e("$bed"), e("state.bed")),
                ]),
            ],
            emit: "LocationChanged".into(),
            fields: vec![
                (
                    "to_location".into(),
                    FieldExpr {
                        value: e("$location"),
                        number: false,
                    },
                ),
                (
                    "from_location".into(),
                    FieldExpr {
                        value: e("state.location"),
                        number: false,
                    },
                ),
            ],
        };
        assert!(rule.reads_state());
        assert!(rule.triggered_by("PatientUpdated", "Admission"));
        assert!(!rule.triggered_by("PatientUpdated", "Patient"));
        let mut state = Map::new();
        state.insert("location".into(), json!("W1"));
        state.insert("bed".into(), json!("1"));
        let fire = |data: Value| {
            rule.fire(&Scope {
                data: &data,
                effective_at: "T",
                state: &state,
            })
        };
        assert_eq!(fire(json!({"location": "W1", "bed": "1"})), None);
        assert_eq!(
            fire(json!({"location": "W2", "bed": "1"})),
            Some(json!({"to_location": "W2", "from_location": "W1"}))
        );
        assert!(
            fire(json!({"location": "W1", "bed": "2"})).is_some(),
            "a new bed moves"
        );
        assert_eq!(fire(json!({"location": null, "bed": "2"})), None);
    }

    #[test]
    fn validations_check_ranges_and_enums_and_let_null_pass() {
        let ef = Validation {
            event: "X".into(),
            field: "ef".into(),
            check: Check::Range {
                min: 0.0,
                max: 100.0,
            },
            on_invalid: OnInvalid::DeadLetter,
        };
        assert!(ef.passes(&json!({"ef": 55.5})));
        assert!(ef.passes(&json!({"ef": "55"})));
        assert!(ef.passes(&json!({"ef": null})));
        assert!(!ef.passes(&json!({"ef": 120})));
        assert!(!ef.passes(&json!({"ef": "high"})));
        let nyha = Validation {
            check: Check::OneOf(vec!["I".into(), "II".into()]),
            ..ef.clone()
        };
        assert!(nyha.passes(&json!({"ef": "II"})));
        assert!(!nyha.passes(&json!({"ef": "V"})));
        assert_eq!(nyha.expected(), "one of I, II");
        assert_eq!(ef.expected(), "range 0..100");
        let cast = FieldExpr {
            value: e("$v"),
            number: true,
        };
        let data = json!({"v": " 42.5 "});
        let scope = Scope {
            data: &data,
            effective_at: "T",
            state: &Map::new(),
        };
        assert_eq!(cast.eval(&scope), json!(42.5));
    }
}
