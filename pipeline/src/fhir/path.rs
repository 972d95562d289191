//! A FHIRPath subset over FHIR JSON, as written in FHIR rule files.
//!
//! ```text
//! expr   := chain ( "|" chain )*                 first non-empty chain wins (like HL7 paths)
//! chain  := start ( "." step )*
//! start  := step | "%resource" | "%previous" | "'" text "'" | "{}"
//! step   := Type | member [ "[" n "]" ] | function [ "[" n "]" ]
//! function := where(member(.member)* = ('text' | %identifiers)) | first() | ofType(T)
//!           | resolve() | getReferenceKey()
//! ```
//! - `member` flattens arrays (`name.given` is every given name of every name) and finds
//!   choice elements: `value` reads `valueQuantity`, `valueString`, ...;
//!   `value.ofType(Quantity)` reads `valueQuantity` only. On resources, `ofType(T)` keeps
//!   those of resource type `T`; a leading `Type` (as in `Encounter.status`) does the same.
//! - `where(system = %mrn)` compares with every system the tenant lists under
//!   `fhir.identifiers.mrn`; any name listed there can be used.
//! - `resolve()` follows a Reference within the message: `#id` to a contained resource,
//!   else a Bundle entry by `fullUrl` or by `Type/id`. `getReferenceKey()` (from SQL on
//!   FHIR) is the id part of a Reference (`Location/icu-1` gives `icu-1`).
//! - Indexes are 0-based, as in FHIRPath. `{}` is the empty collection.

use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::fmt;

/// A compiled expression: one or more chains tried in order.
#[derive(Debug, Clone)]
pub struct FhirPath {
    alternatives: Vec<Chain>,
    source: String,
}

#[derive(Debug, Clone)]
struct Chain {
    start: Start,
    steps: Vec<Step>,
}

#[derive(Debug, Clone)]
enum Start {
    Context,
    Resource,
    Previous,
    Literal(Value),
    Empty,
}

#[derive(Debug, Clone)]
enum Step {
    Member(String),
    /// `member.ofType(T)`: the choice element `memberT`, or the resources of type T.
    MemberOfType(String, String),
    Type(String),
    Index(usize),
    Where(Vec<String>, Operand),
    First,
    Resolve,
    ReferenceKey,
}

#[derive(Debug, Clone)]
enum Operand {
    Text(String),
    Identifiers(String),
}

/// A syntax error, with the byte offset in the expression where it was found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid FHIRPath: {message} at character {}", .offset + 1)]
pub struct PathError {
    /// Byte offset in the expression.
    pub offset: usize,
    /// What was expected.
    pub message: String,
}

/// One value found by a path, with the type of the choice element it came from
/// (`Quantity` for `valueQuantity`), when it came from one.
#[derive(Debug, Clone, Copy)]
pub struct Node<'a> {
    /// The JSON value.
    pub value: &'a Value,
    /// The choice type suffix, e.g. `Quantity`.
    pub choice: Option<&'a str>,
    /// Made by `getReferenceKey()`: the value is a Reference and its text its id part.
    pub reference_key: bool,
}

impl<'a> Node<'a> {
    fn of(value: &'a Value) -> Self {
        Node {
            value,
            choice: None,
            reference_key: false,
        }
    }
}

/// Resources of a message, for `resolve()`: Bundle entries by `fullUrl` and `Type/id`.
#[derive(Debug, Default)]
pub struct Index<'a> {
    by_reference: HashMap<&'a str, &'a Value>,
    by_type_id: HashMap<(String, String), &'a Value>,
}

impl<'a> Index<'a> {
    /// Indexes the entries of a Bundle (nothing for other resources).
    pub fn new(bundle: &'a Value) -> Self {
        let mut index = Index::default();
        let entries = bundle.get("entry").and_then(Value::as_array);
        for entry in entries.into_iter().flatten() {
            let Some(resource) = entry.get("resource").filter(|r| r.is_object()) else {
                continue;
            };
            if let Some(url) = entry.get("fullUrl").and_then(Value::as_str) {
                index.by_reference.insert(url, resource);
            }
            if let (Some(t), Some(id)) = (text(resource, "resourceType"), text(resource, "id")) {
                index.by_type_id.insert((t.into(), id.into()), resource);
            }
        }
        index
    }

    fn find(&self, reference: &str) -> Option<&'a Value> {
        if let Some(r) = self.by_reference.get(reference) {
            return Some(r);
        }
        let (t, id) = type_and_id(reference)?;
        self.by_type_id
            .get(&(t.to_string(), id.to_string()))
            .copied()
    }
}

/// `(Type, id)` of a relative or absolute reference (`Patient/1`,
/// `http://x/fhir/Patient/1/_history/2`).
fn type_and_id(reference: &str) -> Option<(&str, &str)> {
    let r = reference
        .split_once("/_history/")
        .map_or(reference, |(a, _)| a);
    let (rest, id) = r.rsplit_once('/')?;
    let t = rest.rsplit('/').next().unwrap_or(rest);
    (looks_like_type(t) && !id.is_empty()).then_some((t, id))
}

/// Whether a resource type is shaped like one (it is logged and stored as the message
/// type, so free text from the body must not pass for it).
pub fn looks_like_type(t: &str) -> bool {
    (2..=64).contains(&t.len())
        && t.starts_with(|c: char| c.is_ascii_uppercase())
        && t.bytes().all(|b| b.is_ascii_alphanumeric())
}

fn text<'v>(v: &'v Value, key: &str) -> Option<&'v str> {
    v.get(key).and_then(Value::as_str).filter(|s| !s.is_empty())
}

/// What an expression is evaluated against.
#[derive(Debug, Clone, Copy)]
pub struct Env<'a> {
    /// The resource being mapped (`%resource`): the entry, not the Bundle.
    pub resource: &'a Value,
    /// The element before the current one in a `for_each` (`%previous`).
    pub previous: Option<&'a Value>,
    /// The tenant's identifier systems, by name (`%mrn`).
    pub identifiers: &'a BTreeMap<String, Vec<String>>,
    /// The message's Bundle entries.
    pub index: &'a Index<'a>,
}

impl fmt::Display for FhirPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl FhirPath {
    /// Parses an expression; `%name` in `where` must be one of `identifiers`.
    pub fn parse(expr: &str, identifiers: &[&str]) -> Result<FhirPath, PathError> {
        let mut p = Parser {
            s: expr.as_bytes(),
            pos: 0,
            identifiers,
        };
        let mut alternatives = vec![p.chain()?];
        loop {
            p.skip_ws();
            match p.peek() {
                None => break,
                Some(b'|') => {
                    p.pos += 1;
                    alternatives.push(p.chain()?);
                }
                Some(_) => return Err(p.error("expected '.', '|' or the end")),
            }
        }
        Ok(FhirPath {
            alternatives,
            source: expr.trim().to_string(),
        })
    }

    /// The expression as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether the expression is `{}`: a field FHIR does not carry, always empty.
    pub fn is_always_empty(&self) -> bool {
        self.alternatives
            .iter()
            .all(|c| matches!(c.start, Start::Empty))
    }

    /// The values of the first chain that finds any.
    pub fn eval<'a>(&'a self, ctx: &'a Value, env: &Env<'a>) -> Vec<Node<'a>> {
        for chain in &self.alternatives {
            let found = chain.eval(ctx, env);
            if !found.is_empty() {
                return found;
            }
        }
        Vec::new()
    }

    /// The first value found, as text when it is a string, number or boolean.
    pub fn first_text(&self, ctx: &Value, env: &Env<'_>) -> Option<String> {
        self.eval(ctx, env).first().and_then(node_text)
    }
}

/// A primitive as text (strings non-empty); `None` for objects, arrays and null.
pub fn as_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

impl Chain {
    fn eval<'a>(&'a self, ctx: &'a Value, env: &Env<'a>) -> Vec<Node<'a>> {
        let mut cur: Vec<Node<'a>> = match &self.start {
            Start::Context => vec![Node::of(ctx)],
            Start::Resource => vec![Node::of(env.resource)],
            Start::Previous => env.previous.map(Node::of).into_iter().collect(),
            Start::Literal(v) => vec![Node::of(v)],
            Start::Empty => vec![],
        };
        for step in &self.steps {
            if cur.is_empty() {
                break;
            }
            cur = step.apply(cur, ctx, env);
        }
        cur
    }
}

/// Pushes `v`, flattening an array.
fn push<'a>(out: &mut Vec<Node<'a>>, v: &'a Value, choice: Option<&'a str>) {
    match v {
        Value::Array(items) => items.iter().for_each(|i| push(out, i, choice)),
        Value::Null => {}
        _ => out.push(Node {
            value: v,
            choice,
            reference_key: false,
        }),
    }
}

fn member<'a>(out: &mut Vec<Node<'a>>, v: &'a Value, name: &str) {
    let Some(obj) = v.as_object() else { return };
    if let Some(x) = obj.get(name) {
        return push(out, x, None);
    }
    // A choice element: `value` is `valueQuantity`, `valueString`, ...
    for (k, x) in obj {
        if let Some(suffix) = k.strip_prefix(name) {
            if suffix.starts_with(|c: char| c.is_ascii_uppercase()) {
                push(out, x, Some(suffix));
            }
        }
    }
}

impl Step {
    fn apply<'a>(&'a self, cur: Vec<Node<'a>>, ctx: &'a Value, env: &Env<'a>) -> Vec<Node<'a>> {
        let mut out = Vec::new();
        match self {
            Step::Member(name) => cur.iter().for_each(|n| member(&mut out, n.value, name)),
            Step::MemberOfType(name, t) => {
                for n in &cur {
                    let mut upper = t.clone();
                    if let Some(first) = upper.get_mut(..1) {
                        first.make_ascii_uppercase();
                    }
                    match n.value.get(format!("{name}{upper}")) {
                        Some(x) => push(&mut out, x, Some(t)),
                        None => {
                            let mut found = Vec::new();
                            member(&mut found, n.value, name);
                            let of_type = |x: &Node<'_>| text(x.value, "resourceType") == Some(t);
                            out.extend(found.into_iter().filter(of_type));
                        }
                    }
                }
            }
            Step::Type(t) => out.extend(cur.into_iter().filter(|n| {
                n.choice == Some(t.as_str()) || text(n.value, "resourceType") == Some(t)
            })),
            Step::Index(i) => out.extend(cur.get(*i).copied()),
            Step::First => out.extend(cur.first().copied()),
            Step::Where(path, operand) => {
                let wanted: Vec<&str> = match operand {
                    Operand::Text(t) => vec![t.as_str()],
                    Operand::Identifiers(name) => env
                        .identifiers
                        .get(name)
                        .map(|v| v.iter().map(String::as_str).collect())
                        .unwrap_or_default(),
                };
                out.extend(cur.into_iter().filter(|n| {
                    let mut vals = vec![Node::of(n.value)];
                    for m in path {
                        let mut next = Vec::new();
                        vals.iter().for_each(|v| member(&mut next, v.value, m));
                        vals = next;
                    }
                    vals.iter()
                        .filter_map(|v| as_text(v.value))
                        .any(|v| wanted.contains(&v.as_str()))
                }));
            }
            Step::Resolve => {
                for n in cur {
                    let Some(r) = text(n.value, "reference") else {
                        continue;
                    };
                    let found = match r.strip_prefix('#') {
                        Some(local) => [env.resource, ctx].into_iter().find_map(|c| {
                            c.get("contained")?
                                .as_array()?
                                .iter()
                                .find(|x| text(x, "id") == Some(local))
                        }),
                        None => env.index.find(r),
                    };
                    out.extend(found.map(Node::of));
                }
            }
            Step::ReferenceKey => {
                for n in cur {
                    let r = text(n.value, "reference").or(n.value.as_str());
                    let key = r.and_then(|r| match r.strip_prefix('#') {
                        Some(local) => Some(local),
                        None => type_and_id(r).map(|(_, id)| id),
                    });
                    if key.is_some() {
                        out.push(Node {
                            reference_key: true,
                            ..n
                        });
                    }
                }
            }
        }
        out
    }
}

/// The text of a node: the id part for `getReferenceKey()` results, else [`as_text`].
pub fn node_text(n: &Node<'_>) -> Option<String> {
    if n.reference_key {
        let r = text(n.value, "reference").or(n.value.as_str())?;
        return match r.strip_prefix('#') {
            Some(local) => Some(local.to_string()),
            None => type_and_id(r).map(|(_, id)| id.to_string()),
        };
    }
    as_text(n.value)
}

struct Parser<'s> {
    s: &'s [u8],
    pos: usize,
    identifiers: &'s [&'s str],
}

impl Parser<'_> {
    fn error(&self, message: &str) -> PathError {
        PathError {
            offset: self.pos,
            message: message.to_string(),
        }
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(|c| c == b' ') {
            self.pos += 1;
        }
    }

    fn eat(&mut self, c: u8) -> bool {
        self.skip_ws();
        let ok = self.peek() == Some(c);
        if ok {
            self.pos += 1;
        }
        ok
    }

    fn ident(&mut self) -> Result<String, PathError> {
        self.skip_ws();
        let start = self.pos;
        while self
            .peek()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == b'_')
        {
            self.pos += 1;
        }
        if start == self.pos || self.s[start].is_ascii_digit() {
            self.pos = start;
            return Err(self.error("expected a name"));
        }
        Ok(String::from_utf8_lossy(&self.s[start..self.pos]).into_owned())
    }

    fn quoted(&mut self) -> Result<String, PathError> {
        let start = self.pos;
        self.pos += 1;
        let mut out = Vec::new();
        loop {
            match self.peek() {
                None => {
                    self.pos = start;
                    return Err(self.error("unterminated string"));
                }
                Some(b'\'') => {
                    self.pos += 1;
                    return Ok(String::from_utf8_lossy(&out).into_owned());
                }
                Some(b'\\') if self.s.get(self.pos + 1).is_some() => {
                    out.push(self.s[self.pos + 1]);
                    self.pos += 2;
                }
                Some(c) => {
                    out.push(c);
                    self.pos += 1;
                }
            }
        }
    }

    fn chain(&mut self) -> Result<Chain, PathError> {
        self.skip_ws();
        let mut steps = Vec::new();
        let start = match self.peek() {
            Some(b'%') => {
                let at = self.pos;
                self.pos += 1;
                match self.ident()?.as_str() {
                    "resource" => Start::Resource,
                    "previous" => Start::Previous,
                    _ => {
                        self.pos = at;
                        return Err(self.error("expected %resource or %previous"));
                    }
                }
            }
            Some(b'\'') => Start::Literal(Value::String(self.quoted()?)),
            Some(b'{') => {
                self.pos += 1;
                if !self.eat(b'}') {
                    return Err(self.error("expected '}'"));
                }
                Start::Empty
            }
            _ => {
                self.step(&mut steps)?;
                Start::Context
            }
        };
        while self.eat(b'.') {
            self.step(&mut steps)?;
        }
        Ok(Chain { start, steps })
    }

    fn step(&mut self, steps: &mut Vec<Step>) -> Result<(), PathError> {
        let at = self.pos;
        let name = self.ident()?;
        if self.eat(b'(') {
            let step = match name.as_str() {
                "where" => self.condition()?,
                "first" => Step::First,
                "resolve" => Step::Resolve,
                "getReferenceKey" => Step::ReferenceKey,
                "ofType" => {
                    let t = self.ident()?;
                    // `value.ofType(Quantity)` is the element `valueQuantity`.
                    match steps.pop() {
                        Some(Step::Member(m)) => Step::MemberOfType(m, t),
                        other => {
                            steps.extend(other);
                            Step::Type(t)
                        }
                    }
                }
                _ => {
                    self.pos = at;
                    return Err(self.error(
                        "unknown function (where, first, ofType, resolve, getReferenceKey)",
                    ));
                }
            };
            if !self.eat(b')') {
                return Err(self.error("expected ')'"));
            }
            steps.push(step);
        } else if name.starts_with(|c: char| c.is_ascii_uppercase()) {
            steps.push(Step::Type(name));
        } else {
            steps.push(Step::Member(name));
        }
        if self.eat(b'[') {
            self.skip_ws();
            let start = self.pos;
            while self.peek().is_some_and(|c| c.is_ascii_digit()) {
                self.pos += 1;
            }
            let n = std::str::from_utf8(&self.s[start..self.pos])
                .ok()
                .and_then(|d| d.parse().ok())
                .ok_or_else(|| self.error("expected an index (0-based)"))?;
            if !self.eat(b']') {
                return Err(self.error("expected ']'"));
            }
            steps.push(Step::Index(n));
        }
        Ok(())
    }

    fn condition(&mut self) -> Result<Step, PathError> {
        let mut path = vec![self.ident()?];
        while self.eat(b'.') {
            path.push(self.ident()?);
        }
        if !self.eat(b'=') {
            return Err(self.error("expected '=' (where(member = 'value'))"));
        }
        self.skip_ws();
        let operand = match self.peek() {
            Some(b'\'') => Operand::Text(self.quoted()?),
            Some(b'%') => {
                let at = self.pos;
                self.pos += 1;
                let name = self.ident()?;
                if !self.identifiers.contains(&name.as_str()) {
                    self.pos = at;
                    return Err(self.error(&format!(
                        "unknown identifier system list %{name} (declare it under fhir.identifiers in tenant.yaml)"
                    )));
                }
                Operand::Identifiers(name)
            }
            _ => return Err(self.error("expected a 'quoted value' or %name")),
        };
        Ok(Step::Where(path, operand))
    }
}

#[cfg(test)]
mod tests;
