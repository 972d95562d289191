//! Value expressions: the small language of the catalogue's `state:` effects and of the
//! plugins' derivation rules. An expression is one or more terms separated by ` | `; it
//! is the first term whose value is not null.
//!
//! | term | value |
//! |---|---|
//! | `$field` | the field of the event being folded or matched |
//! | `$` | the event's whole data |
//! | `state.field` | the field of the stream's state before that event |
//! | `@effective_at` | the event's own time (RFC 3339) |
//! | anything else | itself, as a literal (text, number, `true`, `null`) |

use serde_json::{Map, Value};

/// One term of an expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Term {
    /// `$field`.
    Field(String),
    /// `$`.
    Whole,
    /// `state.field`.
    State(String),
    /// `@effective_at`.
    EffectiveAt,
    /// A literal value.
    Literal(Value),
}

/// An expression: its terms, the first non-null of which is its value.
#[derive(Debug, Clone, PartialEq)]
pub struct Expr(pub Vec<Term>);

/// What an expression reads: the event's data and time, and the stream's state.
#[derive(Debug, Clone, Copy)]
pub struct Scope<'a> {
    /// The event's fields.
    pub data: &'a Value,
    /// Its own time, RFC 3339.
    pub effective_at: &'a str,
    /// The stream's state before the event (empty when the stream is new).
    pub state: &'a Map<String, Value>,
}

impl Expr {
    /// Parses an expression written as a YAML value; a string may hold terms.
    pub fn parse(value: &Value) -> Result<Expr, String> {
        let Value::String(text) = value else {
            return Ok(Expr(vec![Term::Literal(value.clone())]));
        };
        text.split(" | ")
            .map(|t| Term::parse(t.trim()))
            .collect::<Result<Vec<_>, _>>()
            .map(Expr)
    }

    /// The value in `scope`: the first term that is not null, else null.
    pub fn eval(&self, scope: &Scope<'_>) -> Value {
        self.0
            .iter()
            .map(|t| t.eval(scope))
            .find(|v| !v.is_null())
            .unwrap_or(Value::Null)
    }

    /// Whether any term reads the stream's state.
    pub fn reads_state(&self) -> bool {
        self.0.iter().any(|t| matches!(t, Term::State(_)))
    }

    /// The event fields the expression reads (`$field` terms).
    pub fn fields(&self) -> impl Iterator<Item = &str> {
        self.0.iter().filter_map(|t| match t {
            Term::Field(f) => Some(f.as_str()),
            _ => None,
        })
    }
}

impl Term {
    fn parse(text: &str) -> Result<Term, String> {
        let name_ok = |n: &str| {
            !n.is_empty()
                && n.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        };
        Ok(match text {
            "$" => Term::Whole,
            "@effective_at" => Term::EffectiveAt,
            t if t.starts_with('$') => {
                let name = &t[1..];
                if !name_ok(name) {
                    return Err(format!("{t:?}: a field name is snake_case"));
                }
                Term::Field(name.to_string())
            }
            t if t.starts_with("state.") => {
                let name = &t[6..];
                if !name_ok(name) {
                    return Err(format!("{t:?}: a state field name is snake_case"));
                }
                Term::State(name.to_string())
            }
            t if t.starts_with('@') => {
                return Err(format!("{t:?}: the only @ term is @effective_at"))
            }
            "null" => Term::Literal(Value::Null),
            "true" => Term::Literal(Value::Bool(true)),
            "false" => Term::Literal(Value::Bool(false)),
            t => Term::Literal(Value::String(t.to_string())),
        })
    }

    fn eval(&self, scope: &Scope<'_>) -> Value {
        match self {
            Term::Field(f) => scope.data.get(f).cloned().unwrap_or(Value::Null),
            Term::Whole => scope.data.clone(),
            Term::State(f) => scope.state.get(f).cloned().unwrap_or(Value::Null),
            Term::EffectiveAt => Value::String(scope.effective_at.to_string()),
            Term::Literal(v) => v.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn terms_fall_back_left_to_right() {
        let data = json!({"a": null, "b": "B"});
        let mut state = Map::new();
        state.insert("loc".into(), json!("W1"));
        let scope = Scope {
            data: &data,
            effective_at: "2026-01-01T00:00:00Z",
            state: &state,
        };
        let e = |s: &str| Expr::parse(&json!(s)).unwrap().eval(&scope);
        assert_eq!(e("$a | $b"), json!("B"));
        assert_eq!(e("$a | state.loc"), json!("W1"));
        assert_eq!(e("$a | @effective_at"), json!("2026-01-01T00:00:00Z"));
        assert_eq!(e("admitted"), json!("admitted"));
        assert_eq!(e("$a"), Value::Null);
        assert_eq!(e("$"), data);
        assert_eq!(Expr::parse(&json!(5)).unwrap().eval(&scope), json!(5));
        assert!(Expr::parse(&json!("state.loc")).unwrap().reads_state());
        assert_eq!(
            Expr::parse(&json!("$Bad")).unwrap_err(),
            "\"$Bad\": a field name is snake_case"
        );
        assert!(Expr::parse(&json!("@now")).is_err());
    }
}
