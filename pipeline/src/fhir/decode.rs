//! FHIR bodies (JSON or XML) to validated FHIR JSON values.
//!
//! Order of checks, cheapest and safest first:
//! 1. syntax: the [`Format`] sniffed where the body entered (`{` after an optional BOM and
//!    whitespace is JSON, `<` is XML); a body not shaped like it is `FHIR_MALFORMED`;
//! 2. safety before any parser builds or expands anything: XML with `<!DOCTYPE` or
//!    `<!ENTITY` anywhere is `FHIR_UNSAFE_XML` (no entity is ever expanded, no external
//!    entity fetched); nesting deeper than [`MAX_DEPTH`] (JSON objects and arrays, XML
//!    elements) is `FHIR_TOO_DEEP`, found by a flat scan that does not recurse;
//! 3. well-formedness: serde_json / quick-xml, `FHIR_MALFORMED` with `line L column C`;
//! 4. fhirbolt's R4 model in the tenant's [`Mode`], `FHIR_INVALID` with the FHIRPath-like
//!    expression of the offending element (`Bundle.entry[2].resource.subject`);
//! 5. the typed resource serialised back to FHIR JSON, so XML and JSON bodies give the same
//!    value to the mapping rules.
//!
//! No detail ever quotes the body: library errors that quote input are reduced to a
//! position or an element path.

use crate::message::Format;
use crate::reason::{Reason, Rejection};
use fhirbolt::model::r4::Resource;
use fhirbolt::serde::{DeserializationConfig, DeserializationMode};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The deepest nesting accepted: JSON objects and arrays, or XML elements.
pub const MAX_DEPTH: usize = 100;

/// The default of a tenant's `fhir.max_items`: JSON values (counted as objects, arrays
/// and commas) or XML elements in one body. A 10 MiB Bundle of real resources holds a few
/// hundred thousand; a body of a million tiny array items is refused before any tree is
/// built (such a tree costs about 60 times the body in memory).
pub const DEFAULT_MAX_ITEMS: usize = 500_000;

/// How strictly a tenant's FHIR input is validated (fhirbolt's deserialization modes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Unknown elements and invalid values are refused (default).
    #[default]
    Strict,
    /// Tolerates elements unknown to R4 (e.g. from other FHIR versions); they are dropped.
    Compatibility,
    /// Accepts anything that parses: unknown elements dropped, missing required ones padded.
    Lax,
}

impl Mode {
    fn config(self) -> DeserializationConfig {
        DeserializationConfig {
            mode: match self {
                Mode::Strict => DeserializationMode::Strict,
                Mode::Compatibility => DeserializationMode::Compatibility,
                Mode::Lax => DeserializationMode::Lax,
            },
        }
    }
}

/// Parses a FHIR R4 resource or Bundle in the syntax `format` names and returns it as
/// FHIR JSON. A body that does not start like that syntax (`{`, `<`, after an optional
/// BOM and whitespace) is `FHIR_MALFORMED` at its first character.
///
/// Strict mode also refuses codes outside a required value set and dates that name no
/// day ([`super::bindings`]), as `FHIR_INVALID` at the element.
pub fn decode(bytes: &[u8], format: Format, mode: Mode) -> Result<Value, Rejection> {
    decode_within(bytes, format, mode, DEFAULT_MAX_ITEMS)
}

/// [`decode`], refusing a body of more than `max_items` JSON values or XML elements as
/// `FHIR_TOO_MANY_ITEMS` (found by the same flat scan as the depth).
pub fn decode_within(
    bytes: &[u8],
    format: Format,
    mode: Mode,
    max_items: usize,
) -> Result<Value, Rejection> {
    let body = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let first = body.iter().position(|b| !b.is_ascii_whitespace());
    let value = match (format, first.map(|i| body[i])) {
        (Format::FhirJson, Some(b'{')) => decode_json(body, mode, max_items),
        (Format::FhirXml, Some(b'<')) => decode_xml(body, mode, max_items),
        (_, Some(_)) => Err(malformed_at(body, first.unwrap_or(0))),
        (_, None) => Err(Rejection::with_detail(Reason::FhirMalformed, "empty body")),
    }?;
    if mode == Mode::Strict {
        if let Some(element) = super::bindings::first_violation(&value) {
            return Err(Rejection::with_detail(Reason::FhirInvalid, element));
        }
    }
    Ok(value)
}

fn malformed_at(body: &[u8], offset: usize) -> Rejection {
    let (line, column) = line_column(body, offset);
    Rejection::with_detail(
        Reason::FhirMalformed,
        format!("line {line} column {column}"),
    )
}

/// 1-based line and column (in bytes) of a byte offset.
fn line_column(body: &[u8], offset: usize) -> (usize, usize) {
    let before = &body[..offset.min(body.len())];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let column = before.len()
        - before
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1)
        + 1;
    (line, column)
}

fn too_deep() -> Rejection {
    Rejection::with_detail(Reason::FhirTooDeep, format!("depth > {MAX_DEPTH}"))
}

/// Runs fhirbolt's R4 parser, whose reader unwraps in places on malformed input (found by
/// fuzzing: an empty JSON array, an XML namespace that is not UTF-8; both are now refused
/// before it runs). Any other such panic refuses the body as `FHIR_INVALID` at the root
/// instead of ending the caller's task.
fn guarded<T>(root: &str, parse: impl FnOnce() -> T) -> Result<T, Rejection> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(parse))
        .map_err(|_| Rejection::with_detail(Reason::FhirInvalid, root.to_string()))
}

fn too_many(max_items: usize) -> Rejection {
    Rejection::with_detail(Reason::FhirTooManyItems, format!("items > {max_items}"))
}

// ---------------------------------------------------------------- JSON

fn decode_json(body: &[u8], mode: Mode, max_items: usize) -> Result<Value, Rejection> {
    json_shape_ok(body, max_items)?;
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        if e.to_string().starts_with("recursion limit exceeded") {
            too_deep()
        } else {
            Rejection::with_detail(
                Reason::FhirMalformed,
                format!("line {} column {}", e.line(), e.column()),
            )
        }
    })?;
    let root = root_type(&value);
    // FHIR JSON arrays have at least one item; the R4 parser panics on an empty one.
    if let Some(path) = empty_array(&value) {
        return Err(Rejection::with_detail(
            Reason::FhirInvalid,
            format!("{root}{path}"),
        ));
    }
    let parsed = guarded(&root, || {
        fhirbolt::json::from_json_value::<Resource>(value, Some(mode.config()))
    })?;
    match parsed {
        Ok(resource) => to_json(resource, &root),
        Err(e) => {
            // The error path only: parse again and walk to the offending element.
            let value: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
            let message = e.to_string();
            let path = locate(&value, mode, &message);
            Err(Rejection::with_detail(
                Reason::FhirInvalid,
                expression(&root, &path, &message),
            ))
        }
    }
}

/// Nesting depth of JSON objects and arrays, and the number of values (objects, arrays and
/// commas), by a flat scan (no recursion, strings skipped).
fn json_shape_ok(body: &[u8], max_items: usize) -> Result<(), Rejection> {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    let mut items = 0usize;
    for &b in body {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                items += 1;
                if depth > MAX_DEPTH {
                    return Err(too_deep());
                }
            }
            b',' => items += 1,
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
        if items > max_items {
            return Err(too_many(max_items));
        }
    }
    Ok(())
}

/// The path below the root (`.entry`, `.name[0].given`) of the first empty array, found
/// without recursion (the depth was bounded before). Each node costs one entry in a trail
/// of (parent, step); the path is spelled out only for the array found.
fn empty_array(value: &Value) -> Option<String> {
    enum Step<'v> {
        Key(&'v str),
        Index(usize),
    }
    let mut trail: Vec<(Option<usize>, Step<'_>)> = Vec::new();
    let mut stack: Vec<(&Value, Option<usize>)> = vec![(value, None)];
    while let Some((v, at)) = stack.pop() {
        match v {
            Value::Array(items) if items.is_empty() => {
                let mut steps = Vec::new();
                let mut node = at;
                while let Some(i) = node {
                    steps.push(&trail[i].1);
                    node = trail[i].0;
                }
                let mut path = String::new();
                for step in steps.into_iter().rev() {
                    match step {
                        Step::Key(k) => path.push_str(&format!(".{k}")),
                        Step::Index(i) => path.push_str(&format!("[{i}]")),
                    }
                }
                return Some(path);
            }
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate().rev() {
                    trail.push((at, Step::Index(i)));
                    stack.push((item, Some(trail.len() - 1)));
                }
            }
            Value::Object(members) => {
                for (key, member) in members.iter().rev() {
                    trail.push((at, Step::Key(key)));
                    stack.push((member, Some(trail.len() - 1)));
                }
            }
            _ => {}
        }
    }
    None
}

fn root_type(value: &Value) -> String {
    value
        .get("resourceType")
        .and_then(Value::as_str)
        .filter(|t| super::path::looks_like_type(t))
        .unwrap_or("Resource")
        .to_string()
}

fn to_json(resource: Resource, root: &str) -> Result<Value, Rejection> {
    fhirbolt::json::to_json_value(resource, None).map_err(|e| {
        // Lax mode can pad required elements with empty values that do not serialise.
        Rejection::with_detail(Reason::FhirInvalid, expression(root, "", &e.to_string()))
    })
}

/// `Root.path`, plus the element a `missing field` message names when the walk stopped
/// at its parent. Only identifier-like names are used: never a value.
fn expression(root: &str, path: &str, message: &str) -> String {
    let mut out = format!("{root}{path}");
    if let Some(field) = named_field(message) {
        let field = field.strip_prefix('_').unwrap_or(field);
        let last = path.rsplit('.').next().and_then(|l| l.split('[').next());
        if last != Some(field) {
            out.push('.');
            out.push_str(field);
        }
    }
    out
}

/// The element a serde/fhirbolt message names in backticks (`unknown field `x``,
/// `missing field `x``, `duplicate field `x``), when it is shaped like an element name.
fn named_field(message: &str) -> Option<&str> {
    let kinds = ["unknown field `", "missing field `", "duplicate field `"];
    let start = kinds
        .iter()
        .find_map(|k| message.find(k).map(|i| i + k.len()))?;
    let rest = &message[start..];
    let name = &rest[..rest.find('`')?];
    is_element_name(name).then_some(name)
}

fn is_element_name(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Most parses the walk may spend on one invalid body.
const MAX_PROBES: usize = 2_000;

/// Finds the element that makes fhirbolt fail, as a path below the root
/// (`.entry[2].resource.subject`), by probing the parse with parts of the document
/// removed: a member whose removal changes the error holds the fault; in an array, the
/// first element that alone reproduces the error does. Empty when nothing narrower than
/// the root can be blamed.
fn locate(value: &Value, mode: Mode, message: &str) -> String {
    let probes = std::cell::Cell::new(0usize);
    let fails_the_same = |doc: &Value| {
        probes.set(probes.get() + 1);
        let probe = guarded("", || {
            fhirbolt::json::from_json_value::<Resource>(doc.clone(), Some(mode.config()))
        });
        matches!(probe, Ok(Err(e)) if e.to_string() == message)
    };
    let mut doc = value.clone();
    let mut path: Vec<Step> = Vec::new();
    'descend: loop {
        if probes.get() > MAX_PROBES {
            break;
        }
        let node = node_at(&doc, &path).clone();
        match node {
            Value::Object(map) => {
                for key in map.keys() {
                    if key == "resourceType" {
                        continue;
                    }
                    let mut probe = doc.clone();
                    if let Some(Value::Object(m)) = node_at_mut(&mut probe, &path) {
                        m.shift_remove(key);
                    }
                    if !fails_the_same(&probe) {
                        path.push(Step::Key(key.clone()));
                        continue 'descend;
                    }
                }
                break;
            }
            Value::Array(items) => {
                // The document without this array: each probe adds one element back.
                let mut skeleton = doc.clone();
                if let Some(slot) = node_at_mut(&mut skeleton, &path) {
                    *slot = Value::Array(Vec::new());
                }
                for (i, item) in items.iter().enumerate() {
                    let mut probe = skeleton.clone();
                    if let Some(slot) = node_at_mut(&mut probe, &path) {
                        *slot = Value::Array(vec![item.clone()]);
                    }
                    if fails_the_same(&probe) {
                        // Keep only that element: later probes are cheaper.
                        doc = probe;
                        path.push(Step::Index(i, 0));
                        continue 'descend;
                    }
                }
                break;
            }
            _ => break,
        }
    }
    render(&path)
}

enum Step {
    Key(String),
    /// (index in the original array, index in the pruned document)
    Index(usize, usize),
}

fn node_at<'v>(doc: &'v Value, path: &[Step]) -> &'v Value {
    path.iter().fold(doc, |v, s| match s {
        Step::Key(k) => &v[k.as_str()],
        Step::Index(_, j) => &v[*j],
    })
}

fn node_at_mut<'v>(doc: &'v mut Value, path: &[Step]) -> Option<&'v mut Value> {
    path.iter().try_fold(doc, |v, s| match s {
        Step::Key(k) => v.get_mut(k.as_str()),
        Step::Index(_, j) => v.get_mut(*j),
    })
}

fn render(path: &[Step]) -> String {
    let mut out = String::new();
    for step in path {
        match step {
            Step::Key(k) => {
                // `_status` carries the extensions of `status`.
                let k = k.strip_prefix('_').unwrap_or(k);
                if !is_element_name(k) {
                    out.push_str(".?");
                    break;
                }
                out.push('.');
                out.push_str(k);
            }
            Step::Index(i, _) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

// ---------------------------------------------------------------- XML

fn decode_xml(body: &[u8], mode: Mode, max_items: usize) -> Result<Value, Rejection> {
    let root = xml_prescan(body, max_items)?;
    let parsed = guarded(&root, || {
        fhirbolt::xml::from_slice::<Resource>(body, Some(mode.config()))
    })?;
    match parsed {
        Ok(resource) => to_json(resource, &root),
        Err(e) => {
            use fhirbolt::xml::Error as X;
            match e {
                X::Message(m) => {
                    let path = locate_xml(body, mode, &m);
                    Err(Rejection::with_detail(
                        Reason::FhirInvalid,
                        expression(&root, &path, &m),
                    ))
                }
                X::InvalidFhirEvent { .. } | X::InvalidXmlNamespace(..) => {
                    Err(Rejection::with_detail(Reason::FhirInvalid, root))
                }
                X::InvalidXmlEncoding(_) => Err(Rejection::with_detail(
                    Reason::FhirMalformed,
                    "encoding (UTF-8 only)",
                )),
                _ => Err(Rejection::with_detail(Reason::FhirMalformed, "XML")),
            }
        }
    }
}

/// An element of an XML body: its local name and byte span, and its child elements.
struct XmlNode {
    name: String,
    start: usize,
    end: usize,
    children: Vec<XmlNode>,
}

/// The element tree of a (pre-scanned, well-formed) XML body.
fn xml_tree(body: &[u8]) -> Option<XmlNode> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_reader(body);
    let mut stack: Vec<XmlNode> = Vec::new();
    let name = |e: &quick_xml::events::BytesStart| {
        String::from_utf8_lossy(e.local_name().as_ref()).into_owned()
    };
    loop {
        let start = reader.buffer_position();
        match reader.read_event().ok()? {
            Event::Start(e) => stack.push(XmlNode {
                name: name(&e),
                start,
                end: start,
                children: Vec::new(),
            }),
            Event::Empty(e) => {
                let node = XmlNode {
                    name: name(&e),
                    start,
                    end: reader.buffer_position(),
                    children: Vec::new(),
                };
                stack.last_mut()?.children.push(node);
            }
            Event::End(_) => {
                let mut node = stack.pop()?;
                node.end = reader.buffer_position();
                match stack.last_mut() {
                    Some(parent) => parent.children.push(node),
                    None => return Some(node),
                }
            }
            Event::Eof => return None,
            _ => {}
        }
    }
}

/// [`locate`] for XML: probes the parse with element spans cut out of the body. The
/// first child whose removal changes the error holds the fault (found by bisecting on
/// prefixes of the children). Resource-type wrapper elements (`<Patient>` inside
/// `<resource>`) are not part of the path; a repeated element gets its index among its
/// same-named siblings.
fn locate_xml(body: &[u8], mode: Mode, message: &str) -> String {
    let Some(root) = xml_tree(body) else {
        return String::new();
    };
    let fails_the_same = |cut: (usize, usize)| {
        let probe = [&body[..cut.0], &body[cut.1..]].concat();
        let parsed = guarded("", || {
            fhirbolt::xml::from_slice::<Resource>(&probe, Some(mode.config()))
        });
        matches!(parsed, Ok(Err(e)) if e.to_string() == message)
    };
    let mut path = String::new();
    let mut node = &root;
    for _ in 0..MAX_DEPTH {
        let kids = &node.children;
        if kids.is_empty() {
            break;
        }
        let cut = |k: usize| (kids[0].start, kids[k - 1].end);
        if fails_the_same(cut(kids.len())) {
            break;
        }
        // Smallest k such that cutting children[..k] changes the error.
        let (mut lo, mut hi) = (1, kids.len());
        while lo < hi {
            let mid = (lo + hi) / 2;
            if fails_the_same(cut(mid)) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        let child = &kids[lo - 1];
        if !child.name.starts_with(|c: char| c.is_ascii_uppercase()) {
            if !is_element_name(&child.name) {
                path.push_str(".?");
                break;
            }
            path.push('.');
            path.push_str(&child.name);
            let same: Vec<&XmlNode> = kids.iter().filter(|k| k.name == child.name).collect();
            if same.len() > 1 {
                let i = same
                    .iter()
                    .position(|k| std::ptr::eq(*k, child))
                    .unwrap_or(0);
                path.push_str(&format!("[{i}]"));
            }
        }
        node = child;
    }
    path
}

/// Refuses DOCTYPE and entity declarations and over-deep nesting, checks well-formedness
/// (with a position), and returns the root element's name (when shaped like a type).
fn xml_prescan(body: &[u8], max_items: usize) -> Result<String, Rejection> {
    use quick_xml::events::Event;
    // FHIR XML is UTF-8; bytes that are not are refused here, before any parser reads them.
    if std::str::from_utf8(body).is_err() {
        return Err(Rejection::with_detail(
            Reason::FhirMalformed,
            "encoding (UTF-8 only)",
        ));
    }
    // Anywhere in the body, before any parser sees it: a DTD is never needed in FHIR.
    let upper = |b: &u8| b.to_ascii_uppercase();
    let has = |needle: &[u8]| {
        body.windows(needle.len())
            .any(|w| w.iter().map(upper).eq(needle.iter().copied()))
    };
    if has(b"<!ENTITY") {
        return Err(Rejection::with_detail(
            Reason::FhirUnsafeXml,
            "entity declaration",
        ));
    }
    if has(b"<!DOCTYPE") {
        return Err(Rejection::with_detail(Reason::FhirUnsafeXml, "DOCTYPE"));
    }
    let mut reader = quick_xml::Reader::from_reader(body);
    reader.check_end_names(true).check_comments(true);
    let (mut depth, mut root, mut seen_root) = (0usize, None, false);
    let mut items = 0usize;
    loop {
        let before = reader.buffer_position();
        let event = reader
            .read_event()
            .map_err(|_| malformed_at(body, reader.buffer_position().max(before)))?;
        if matches!(event, Event::Start(_) | Event::Empty(_)) {
            items += 1;
            if items > max_items {
                return Err(too_many(max_items));
            }
        }
        match event {
            Event::Start(e) | Event::Empty(e) if depth == 0 && seen_root => {
                let _ = e;
                return Err(malformed_at(body, before));
            }
            Event::Start(e) => {
                if depth == 0 {
                    seen_root = true;
                    root = Some(String::from_utf8_lossy(e.local_name().as_ref()).into_owned());
                }
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(too_deep());
                }
            }
            Event::Empty(e) => {
                if depth == 0 {
                    seen_root = true;
                    root = Some(String::from_utf8_lossy(e.local_name().as_ref()).into_owned());
                }
                if depth + 1 > MAX_DEPTH {
                    return Err(too_deep());
                }
            }
            Event::End(_) => depth = depth.saturating_sub(1),
            Event::DocType(_) => {
                return Err(Rejection::with_detail(Reason::FhirUnsafeXml, "DOCTYPE"));
            }
            Event::Text(t) if depth == 0 && t.iter().any(|b| !b.is_ascii_whitespace()) => {
                return Err(malformed_at(body, before));
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if depth != 0 || !seen_root {
        return Err(malformed_at(body, body.len()));
    }
    Ok(root
        .filter(|r| super::path::looks_like_type(r))
        .unwrap_or_else(|| "Resource".to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes in the syntax the body's first character names, as adapters do.
    fn sniffed(bytes: &[u8], mode: Mode) -> Result<Value, Rejection> {
        decode(bytes, Format::sniff_fhir(bytes), mode)
    }

    fn code(bytes: &[u8]) -> (Reason, Option<String>) {
        let r = sniffed(bytes, Mode::Strict).unwrap_err();
        (r.reason, r.detail)
    }

    const PATIENT_JSON: &str = r#"{"resourceType":"Patient","id":"p1","meta":{"versionId":"2"},
        "active":true,"name":[{"family":"Doe","given":["Alex"]}],"birthDate":"1980-02-14"}"#;
    const PATIENT_XML: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<Patient xmlns="http://hl7.org/fhir"><id value="p1"/><meta><versionId value="2"/></meta>
<active value="true"/><name><family value="Doe"/><given value="Alex"/></name>
<birthDate value="1980-02-14"/></Patient>"#;

    #[test]
    fn json_and_xml_give_the_same_value() {
        let a = sniffed(PATIENT_JSON.as_bytes(), Mode::Strict).unwrap();
        let b = sniffed(PATIENT_XML.as_bytes(), Mode::Strict).unwrap();
        assert_eq!(a, b);
        assert_eq!(a["name"][0]["given"][0], "Alex");
        let bom = [b"\xEF\xBB\xBF".as_slice(), PATIENT_JSON.as_bytes()].concat();
        assert_eq!(sniffed(&bom, Mode::Strict).unwrap(), a);
    }

    #[test]
    fn decimals_keep_their_precision() {
        let obs = r#"{"resourceType":"Observation","status":"final","code":{"text":"x"},
            "valueQuantity":{"value":1.50,"unit":"mg"}}"#;
        let v = sniffed(obs.as_bytes(), Mode::Strict).unwrap();
        assert_eq!(v["valueQuantity"]["value"].to_string(), "1.50");
    }

    #[test]
    fn malformed_bodies_name_a_position_only() {
        assert_eq!(
            code(b"{\n \"resourceType\": \"Patient\",\n \"secret\" }"),
            (Reason::FhirMalformed, Some("line 3 column 11".into()))
        );
        assert_eq!(code(b"MSH|^~\\&|").0, Reason::FhirMalformed);
        assert_eq!(code(b"  ").0, Reason::FhirMalformed);
        assert_eq!(
            code(b"<Patient xmlns=\"http://hl7.org/fhir\">\n<id value=\"x\"></Patient>"),
            (Reason::FhirMalformed, Some("line 2 column 17".into()))
        );
        assert_eq!(
            code(b"<Patient xmlns=\"http://hl7.org/fhir\">").0,
            Reason::FhirMalformed
        );
    }

    #[test]
    fn hostile_xml_is_refused_before_parsing() {
        let laughs = r#"<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">
            <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>
            <Patient xmlns="http://hl7.org/fhir"><id value="&lol2;"/></Patient>"#;
        assert_eq!(
            code(laughs.as_bytes()),
            (Reason::FhirUnsafeXml, Some("entity declaration".into()))
        );
        let xxe = r#"<?xml version="1.0"?><!DOCTYPE Patient SYSTEM "file:///etc/passwd">
            <Patient xmlns="http://hl7.org/fhir"><id value="x"/></Patient>"#;
        assert_eq!(
            code(xxe.as_bytes()),
            (Reason::FhirUnsafeXml, Some("DOCTYPE".into()))
        );
        let deep = format!(
            "<Patient>{}{}</Patient>",
            "<a>".repeat(10_000),
            "</a>".repeat(10_000)
        );
        assert_eq!(
            code(deep.as_bytes()),
            (Reason::FhirTooDeep, Some("depth > 100".into()))
        );
    }

    #[test]
    fn deep_json_is_refused_without_recursion() {
        let deep = format!("{{\"a\":{}1{}}}", "[".repeat(10_000), "]".repeat(10_000));
        assert_eq!(
            code(deep.as_bytes()),
            (Reason::FhirTooDeep, Some("depth > 100".into()))
        );
        // Brackets inside strings do not count.
        let s = format!(
            r#"{{"resourceType":"Patient","id":"x","name":[{{"text":"{}"}}]}}"#,
            "[".repeat(500)
        );
        assert!(sniffed(s.as_bytes(), Mode::Strict).is_ok());
    }

    #[test]
    fn bodies_the_r4_parser_panics_on_are_refused_not_crashed_on() {
        // Found by fuzzing: fhirbolt unwraps on an empty array, and on a namespace that is
        // not UTF-8.
        assert_eq!(
            code(br#"{"resourceType":"Bundle","entry":[]}"#),
            (Reason::FhirInvalid, Some("Bundle.entry".into()))
        );
        assert_eq!(
            code(br#"{"resourceType":"Patient","id":"x","name":[{"given":["a"]},{"given":[]}]}"#),
            (Reason::FhirInvalid, Some("Patient.name[1].given".into()))
        );
        let xml =
            b"<Encounter xmlns=\"http://hl7\xff.org/fhir\"><status value=\"planned\"/></Encounter>";
        assert_eq!(
            code(xml),
            (Reason::FhirMalformed, Some("encoding (UTF-8 only)".into()))
        );
    }

    #[test]
    fn bodies_of_too_many_items_are_refused_before_a_tree_is_built() {
        let json = format!(
            r#"{{"resourceType":"Patient","id":"x","name":[{{"given":[{}"a"]}}]}}"#,
            "\"a\",".repeat(100)
        );
        let within = |b: &str, n| {
            decode_within(
                b.as_bytes(),
                Format::sniff_fhir(b.as_bytes()),
                Mode::Strict,
                n,
            )
        };
        assert!(within(&json, 1_000).is_ok());
        let r = within(&json, 50).unwrap_err();
        assert_eq!(
            (r.reason, r.detail.as_deref()),
            (Reason::FhirTooManyItems, Some("items > 50"))
        );
        // Commas inside strings are text, not items.
        let text = format!(
            r#"{{"resourceType":"Patient","id":"x","name":[{{"text":"{}"}}]}}"#,
            ",".repeat(500)
        );
        assert!(within(&text, 50).is_ok());
        let xml = format!(
            r#"<Patient xmlns="http://hl7.org/fhir"><id value="x"/><name>{}</name></Patient>"#,
            r#"<given value="a"/>"#.repeat(100)
        );
        assert!(within(&xml, 1_000).is_ok());
        let r = within(&xml, 50).unwrap_err();
        assert_eq!(
            (r.reason, r.detail.as_deref()),
            (Reason::FhirTooManyItems, Some("items > 50"))
        );
    }

    #[test]
    fn invalid_resources_name_the_element_never_the_value() {
        let (reason, detail) = code(
            br#"{"resourceType":"Patient","id":"p1","active":"Jane Secret","gender":"female"}"#,
        );
        assert_eq!(
            (reason, detail.as_deref()),
            (Reason::FhirInvalid, Some("Patient.active"))
        );
        let (reason, detail) = code(br#"{"resourceType":"Encounter","class":{"code":"IMP"}}"#);
        assert_eq!(
            (reason, detail.as_deref()),
            (Reason::FhirInvalid, Some("Encounter.status"))
        );
        let (_, detail) = code(br#"{"resourceType":"Patient","nickname":"Jane Secret"}"#);
        assert_eq!(detail.as_deref(), Some("Patient.nickname"));
        let bundle = br#"{"resourceType":"Bundle","type":"transaction","entry":[
            {"resource":{"resourceType":"Patient","id":"a"}},
            {"resource":{"resourceType":"Patient","id":"b"}},
            {"resource":{"resourceType":"Observation","status":"final","code":{"text":"x"},
             "subject":{"reference":"Patient/b","secret":"Jane"}}}]}"#;
        let (_, detail) = code(bundle);
        assert_eq!(
            detail.as_deref(),
            Some("Bundle.entry[2].resource.subject.secret")
        );
        let xml = br#"<Patient xmlns="http://hl7.org/fhir"><nickname value="Jane"/></Patient>"#;
        let (reason, detail) = code(xml);
        assert_eq!(
            (reason, detail.as_deref()),
            (Reason::FhirInvalid, Some("Patient.nickname"))
        );
    }

    #[test]
    fn laxer_modes_accept_unknown_elements() {
        let body = br#"{"resourceType":"Patient","id":"p1","nickname":"x"}"#;
        assert!(sniffed(body, Mode::Strict).is_err());
        let v = sniffed(body, Mode::Compatibility).unwrap();
        assert!(v.get("nickname").is_none());
        assert!(sniffed(body, Mode::Lax).is_ok());
    }
}
