//! Paths into an HL7 message, as written in mapping files.
//!
//! ```text
//! expr     := locator ( "|" locator )*            first non-empty wins
//! locator  := SEG [ "[" n | "*" "]" ] "." field [ "[" repsel "]" ] [ "." comp [ "." sub ] ]
//! repsel   := n | "*" | comp "=" VALUE            PID.3[5=MR] picks the repetition whose 5th component is MR
//! ```
//! Numbers are 1-based, as in the HL7 standard (`MSH.9` is the message type). Values are
//! returned with escape sequences decoded and surrounding spaces trimmed; empty is absent.
//!
//! A path reads one value, as HAPI's Terser does: a field without a component is its first
//! component (`PV1.2` of `I^Inpatient` is `I`), and a component without a subcomponent is
//! its first subcomponent (`PV1.3.1` of `HUH AE OMU&9.8&ISO` is `HUH AE OMU`). Splitting
//! happens before escapes are decoded, so an escaped `\T\` is data (`&`), never a
//! separator. Only an OBX-5 text value reads each repetition whole (see
//! [`Path::repetitions_in`]).

use super::er7::{part, Segment};
use super::Hl7Message;
use std::fmt;

/// Where paths are evaluated while a rule iterates over a repeating segment
/// (`for_each`): the current segment, its children, and its parents.
#[derive(Debug, Clone, Copy)]
pub struct Scope<'s> {
    /// The iterated segment id, e.g. `OBX`.
    pub segment: &'s str,
    /// Index of the current occurrence in the message's segment list.
    pub index: usize,
    /// Segment ids that belong to the current occurrence when they directly follow it
    /// (e.g. `NTE` notes after an `OBX`).
    pub children: &'s [String],
    /// The message's segments by id, to find parents.
    pub segments: &'s SegmentIndex<'s>,
}

/// A message's segments by id: the nearest `PID` before the 40,000th `OBX` is a binary
/// search, not a walk back over the other 39,999 (which made mapping quadratic).
#[derive(Debug, Clone)]
pub struct SegmentIndex<'m> {
    /// (segment id, index in the message), sorted.
    by_name: Vec<(&'m str, usize)>,
}

impl<'m> SegmentIndex<'m> {
    /// Indexes the segments of `msg`.
    pub fn new(msg: &Hl7Message<'m>) -> Self {
        let mut by_name: Vec<(&'m str, usize)> = msg
            .segments()
            .iter()
            .enumerate()
            .map(|(i, s)| (s.name, i))
            .collect();
        by_name.sort_unstable();
        SegmentIndex { by_name }
    }

    /// The indexes of the segments named `name`, in message order.
    fn named(&self, name: &str) -> impl Iterator<Item = usize> + '_ {
        let from = self.by_name.partition_point(|(n, _)| *n < name);
        let to = self.by_name.partition_point(|(n, _)| *n <= name);
        self.by_name[from..to].iter().map(|(_, i)| *i)
    }

    /// The index of the last segment named `name` before `index`.
    fn before(&self, name: &str, index: usize) -> Option<usize> {
        let at = self
            .by_name
            .partition_point(|&(n, i)| (n, i) < (name, index));
        at.checked_sub(1)
            .map(|k| self.by_name[k])
            .filter(|(n, _)| *n == name)
            .map(|(_, i)| i)
    }
}

impl Scope<'_> {
    /// Calls `f` with each segment index a locator for `name` may read, in order.
    fn each(&self, msg: &Hl7Message<'_>, name: &str, f: &mut dyn FnMut(usize)) {
        if name == self.segment {
            return f(self.index);
        }
        let is_child = |n: &str| self.children.iter().any(|c| c == n);
        if is_child(name) {
            let segs = msg.segments();
            for (i, seg) in segs.iter().enumerate().skip(self.index + 1) {
                if !is_child(seg.name) {
                    break;
                }
                if seg.name == name {
                    f(i);
                }
            }
            return;
        }
        // A parent: the nearest occurrence before the current one, else any.
        match self.segments.before(name, self.index) {
            Some(i) => f(i),
            None => self.segments.named(name).for_each(f),
        }
    }
}

/// A parsed path expression: one or more locators tried in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Path {
    alternatives: Vec<Locator>,
    source: String,
}

/// One location in a message.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Locator {
    segment: String,
    segment_sel: Select,
    field: usize,
    repeat: RepeatSelect,
    component: Option<usize>,
    subcomponent: Option<usize>,
    /// Byte offsets in the whole expression of the segment id and the field number (for
    /// errors about the HL7 structure, see [`Path::locations`]).
    at: (usize, usize),
}

/// Where one alternative of a path points: its segment id and field number, with their
/// byte offsets in the expression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location<'p> {
    /// The segment id, e.g. `PV1`.
    pub segment: &'p str,
    /// Offset of the segment id.
    pub segment_at: usize,
    /// The field number, from 1.
    pub field: usize,
    /// Offset of the field number.
    pub field_at: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Select {
    Nth(usize),
    All,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum RepeatSelect {
    Nth(usize),
    All,
    Match { component: usize, value: String },
}

/// A syntax error in a path, with the byte offset in the expression where it was found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid path: {message} at character {}", .offset + 1)]
pub struct PathError {
    /// Byte offset in the expression.
    pub offset: usize,
    /// What was expected.
    pub message: String,
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl std::str::FromStr for Path {
    type Err = PathError;
    fn from_str(s: &str) -> Result<Self, PathError> {
        Path::parse(s)
    }
}

impl Path {
    /// Parses an expression such as `PID.3[5=MR].1 | PID.3.1`.
    pub fn parse(expr: &str) -> Result<Path, PathError> {
        let mut alternatives = Vec::new();
        let mut offset = 0;
        for part in expr.split('|') {
            let lead = part.len() - part.trim_start().len();
            alternatives.push(parse_locator(part.trim(), offset + lead)?);
            offset += part.len() + 1;
        }
        Ok(Path {
            alternatives,
            source: expr.trim().to_string(),
        })
    }

    /// The expression as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Where each alternative points (segment and field, located in the expression).
    pub fn locations(&self) -> impl Iterator<Item = Location<'_>> {
        self.alternatives.iter().map(|l| Location {
            segment: &l.segment,
            segment_at: l.at.0,
            field: l.field,
            field_at: l.at.1,
        })
    }

    /// The segment ids this path reads.
    pub fn segments(&self) -> impl Iterator<Item = &str> {
        self.alternatives.iter().map(|l| l.segment.as_str())
    }

    /// The first non-empty value, decoded and trimmed.
    pub fn first(&self, msg: &Hl7Message<'_>) -> Option<String> {
        self.first_in(msg, None)
    }

    /// Every non-empty value of the first locator that yields any.
    pub fn all(&self, msg: &Hl7Message<'_>) -> Vec<String> {
        self.all_in(msg, None)
    }

    /// [`Path::first`] within an iteration scope.
    pub fn first_in(&self, msg: &Hl7Message<'_>, scope: Option<&Scope<'_>>) -> Option<String> {
        self.alternatives.iter().find_map(|l| {
            let mut found = None;
            l.visit(msg, scope, Read::Value, &mut |v| {
                if found.is_none() {
                    found = Some(v);
                }
            });
            found
        })
    }

    /// [`Path::all`] within an iteration scope.
    pub fn all_in(&self, msg: &Hl7Message<'_>, scope: Option<&Scope<'_>>) -> Vec<String> {
        for l in &self.alternatives {
            let mut out = Vec::new();
            l.visit(msg, scope, Read::Value, &mut |v| out.push(v));
            if !out.is_empty() {
                return out;
            }
        }
        Vec::new()
    }

    /// Every repetition of the field (whatever the path's repetition selector), from the
    /// first locator that yields any: the lines of a multi-line text value. A field-level
    /// locator reads each repetition whole here: text types (ST, TX, FT) have no
    /// components, and a sender's unescaped `^` in a result text is kept, not cut.
    pub fn repetitions_in(&self, msg: &Hl7Message<'_>, scope: Option<&Scope<'_>>) -> Vec<String> {
        for l in &self.alternatives {
            let all = Locator {
                repeat: RepeatSelect::All,
                ..l.clone()
            };
            let mut out = Vec::new();
            all.visit(msg, scope, Read::Whole, &mut |v| out.push(v));
            if !out.is_empty() {
                return out;
            }
        }
        Vec::new()
    }

    /// The components of the first field repetition found (decoded), for typed values
    /// such as coded elements: `["718-7", "Hemoglobin", "LN"]`.
    pub fn components_in(
        &self,
        msg: &Hl7Message<'_>,
        scope: Option<&Scope<'_>>,
    ) -> Option<Vec<String>> {
        self.alternatives
            .iter()
            .find_map(|l| l.components(msg, scope))
    }
}

impl Locator {
    /// Calls `f` with each segment this locator reads, after the segment selector
    /// (no allocation: this runs for every field of every event).
    fn each_segment<'m>(
        &self,
        msg: &Hl7Message<'m>,
        scope: Option<&Scope<'_>>,
        f: &mut dyn FnMut(&Segment<'m>),
    ) {
        let segs = msg.segments();
        let mut n = 0;
        let mut pick = |i: usize| {
            n += 1;
            if matches!(self.segment_sel, Select::All) || self.segment_sel == Select::Nth(n) {
                f(&segs[i]);
            }
        };
        match scope {
            Some(s) => s.each(msg, &self.segment, &mut pick),
            None => segs
                .iter()
                .enumerate()
                .filter(|(_, s)| s.name == self.segment)
                .for_each(|(i, _)| pick(i)),
        }
    }

    fn visit(
        &self,
        msg: &Hl7Message<'_>,
        scope: Option<&Scope<'_>>,
        read: Read,
        out: &mut dyn FnMut(String),
    ) {
        self.each_segment(msg, scope, &mut |seg| {
            if let Some(field) = seg.field(self.field, msg.delimiters()) {
                self.visit_field(msg, field, read, out);
            }
        });
    }

    fn components(&self, msg: &Hl7Message<'_>, scope: Option<&Scope<'_>>) -> Option<Vec<String>> {
        let d = msg.delimiters();
        let mut found = None;
        self.each_segment(msg, scope, &mut |seg| {
            if found.is_some() {
                return;
            }
            let Some(field) = seg.field(self.field, d) else {
                return;
            };
            let mut reps = field.split(d.repetition);
            let rep = match &self.repeat {
                RepeatSelect::Nth(k) => reps.nth(k - 1),
                RepeatSelect::All => reps.next(),
                RepeatSelect::Match { component, value } => reps.find(|r| {
                    component_value(msg, r, *component, None).as_deref() == Some(value.as_str())
                }),
            };
            if let Some(rep) = rep.filter(|r| !r.trim().is_empty()) {
                found = Some(
                    rep.split(d.component)
                        .map(|c| msg.unescape(c).trim().to_string())
                        .collect(),
                );
            }
        });
        found
    }

    fn visit_field(
        &self,
        msg: &Hl7Message<'_>,
        field: &str,
        read: Read,
        out: &mut dyn FnMut(String),
    ) {
        // MSH-1 and MSH-2 are delimiters, not data: never split or unescape them.
        if self.segment == "MSH" && self.field <= 2 {
            out(field.to_string());
            return;
        }
        for (i, rep) in field.split(msg.delimiters().repetition).enumerate() {
            let chosen = match &self.repeat {
                RepeatSelect::Nth(k) => i + 1 == *k,
                RepeatSelect::All => true,
                RepeatSelect::Match { component, value } => {
                    component_value(msg, rep, *component, None).as_deref() == Some(value.as_str())
                }
            };
            if chosen {
                let v = match (self.component, read) {
                    (None, Read::Whole) => non_empty(msg.unescape(rep).trim()),
                    (None, Read::Value) => component_value(msg, rep, 1, None),
                    (Some(c), _) => component_value(msg, rep, c, self.subcomponent),
                };
                if let Some(v) = v {
                    out(v);
                }
            }
        }
    }
}

/// How a field-level locator (no component) reads a repetition.
#[derive(Debug, Clone, Copy)]
enum Read {
    /// One value: the first subcomponent of the first component.
    Value,
    /// The whole repetition, separators and all (text values).
    Whole,
}

/// Component `component` of a repetition, and of it subcomponent `sub` (the first when
/// `None`), split on the raw text and only then decoded.
fn component_value(
    msg: &Hl7Message<'_>,
    rep: &str,
    component: usize,
    sub: Option<usize>,
) -> Option<String> {
    let d = msg.delimiters();
    let c = part(rep, d.component, component)?;
    let raw = part(c, d.subcomponent, sub.unwrap_or(1))?;
    non_empty(msg.unescape(raw).trim())
}

fn non_empty(s: &str) -> Option<String> {
    // `""` is HL7's explicit null: treat it as absent for mapping purposes.
    (!s.is_empty() && s != "\"\"").then(|| s.to_string())
}

fn parse_locator(s: &str, base: usize) -> Result<Locator, PathError> {
    let err = |at: usize, m: &str| PathError {
        offset: base + at,
        message: m.to_string(),
    };
    let b = s.as_bytes();
    if b.len() < 3
        || !b[0].is_ascii_uppercase()
        || !b[1..3]
            .iter()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
    {
        return Err(err(0, "expected a segment id such as PID"));
    }
    let segment = s[..3].to_string();
    let mut i = 3;
    let mut segment_sel = Select::Nth(1);
    if b.get(i) == Some(&b'[') {
        let end = s[i..].find(']').ok_or_else(|| err(i, "missing ]"))? + i;
        let inner = &s[i + 1..end];
        segment_sel = if inner == "*" {
            Select::All
        } else {
            Select::Nth(number(inner).ok_or_else(|| err(i + 1, "expected a number or *"))?)
        };
        i = end + 1;
    }
    if b.get(i) != Some(&b'.') {
        return Err(err(i, "expected . and a field number"));
    }
    i += 1;
    let field_at = base + i;
    let (field, next) = take_number(s, i).ok_or_else(|| err(i, "expected a field number"))?;
    i = next;
    let mut repeat = RepeatSelect::Nth(1);
    if b.get(i) == Some(&b'[') {
        let end = s[i..].find(']').ok_or_else(|| err(i, "missing ]"))? + i;
        let inner = &s[i + 1..end];
        repeat = if inner == "*" {
            RepeatSelect::All
        } else if let Some((c, v)) = inner.split_once('=') {
            let component =
                number(c.trim()).ok_or_else(|| err(i + 1, "expected a component number"))?;
            if v.trim().is_empty() {
                return Err(err(i + 1 + c.len() + 1, "expected a value after ="));
            }
            RepeatSelect::Match {
                component,
                value: v.trim().to_string(),
            }
        } else {
            RepeatSelect::Nth(
                number(inner).ok_or_else(|| err(i + 1, "expected a number, * or comp=value"))?,
            )
        };
        i = end + 1;
    }
    let mut component = None;
    let mut subcomponent = None;
    if b.get(i) == Some(&b'.') {
        let (c, next) =
            take_number(s, i + 1).ok_or_else(|| err(i + 1, "expected a component number"))?;
        component = Some(c);
        i = next;
        if b.get(i) == Some(&b'.') {
            let (sc, next) = take_number(s, i + 1)
                .ok_or_else(|| err(i + 1, "expected a subcomponent number"))?;
            subcomponent = Some(sc);
            i = next;
        }
    }
    if i != s.len() {
        return Err(err(i, "unexpected character"));
    }
    Ok(Locator {
        segment,
        segment_sel,
        field,
        repeat,
        component,
        subcomponent,
        at: (base, field_at),
    })
}

fn number(s: &str) -> Option<usize> {
    s.parse::<usize>()
        .ok()
        .filter(|n| *n > 0 && !s.starts_with('+'))
}

fn take_number(s: &str, from: usize) -> Option<(usize, usize)> {
    let digits = s[from..].bytes().take_while(u8::is_ascii_digit).count();
    let n = number(&s[from..from + digits])?;
    Some((n, from + digits))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSG: &str = "MSH|^~\\&|APP|FAC|RAPP|RFAC|20240101120000||ADT^A01|C1|P|2.5\r\
        PID|1||111^^^H^PI~222^^^H^MR||DOE\\S\\X^JOHN\r\
        PV1|1|I|W1^101^A||||||||||||||||V9\r\
        OBX|1|NM|A\r\
        OBX|2|NM|B";

    fn eval(expr: &str) -> Option<String> {
        let m = Hl7Message::parse(MSG).unwrap();
        Path::parse(expr).unwrap().first(&m)
    }

    #[test]
    fn fields_components_and_repetitions() {
        assert_eq!(eval("MSH.9.2").as_deref(), Some("A01"));
        assert_eq!(eval("MSH.10").as_deref(), Some("C1"));
        assert_eq!(eval("PV1.3.2").as_deref(), Some("101"));
        assert_eq!(eval("PV1.19").as_deref(), Some("V9"));
        assert_eq!(eval("PID.3.1").as_deref(), Some("111"));
        assert_eq!(eval("PID.3[2].1").as_deref(), Some("222"));
        assert_eq!(eval("PID.3[5=MR].1").as_deref(), Some("222"));
        assert_eq!(eval("PID.5.1").as_deref(), Some("DOE^X"), "escapes decoded");
        assert_eq!(eval("OBX[2].3").as_deref(), Some("B"));
    }

    #[test]
    fn a_path_reads_the_first_component_and_subcomponent_it_does_not_name() {
        // v2.7+: PV1-3.1 is an HD, PID-5.1 an FN; MSH-7 a TS with its precision.
        let text = "MSH|^~\\&|APP|FAC|RAPP|RFAC|20240101120000^S||ADT^A01|C1|P|2.7\r\
            PID|1||111||EVERYMAN&&&&Aniston^ADAM~EVERY\\T\\MAN&van^EVE\r\
            PV1|1|I^Inpatient|HUH AE OMU&9.8&ISO^101";
        let m = Hl7Message::parse(text).unwrap();
        let get = |e: &str| Path::parse(e).unwrap().first(&m);
        assert_eq!(get("PV1.3.1").as_deref(), Some("HUH AE OMU"));
        assert_eq!(get("PV1.3.1.2").as_deref(), Some("9.8"));
        assert_eq!(get("PV1.3.1.3").as_deref(), Some("ISO"));
        assert_eq!(get("PV1.3.2").as_deref(), Some("101"));
        assert_eq!(get("PV1.2").as_deref(), Some("I"));
        assert_eq!(get("PV1.3").as_deref(), Some("HUH AE OMU"));
        assert_eq!(get("MSH.7").as_deref(), Some("20240101120000"));
        assert_eq!(get("PID.5.1").as_deref(), Some("EVERYMAN"));
        assert_eq!(get("PID.5.1.5").as_deref(), Some("Aniston"));
        // An escaped & is data, never a separator; a real & is never data.
        assert_eq!(get("PID.5[2].1").as_deref(), Some("EVERY&MAN"));
        assert_eq!(get("PID.5[2].1.2").as_deref(), Some("van"));
        // A text value reads the repetition whole.
        let p = Path::parse("PV1.3").unwrap();
        assert_eq!(
            p.repetitions_in(&m, None),
            vec!["HUH AE OMU&9.8&ISO^101".to_string()]
        );
    }

    #[test]
    fn fallbacks_and_absence() {
        assert_eq!(
            eval("PV1.44 | EVN.2 | MSH.7").as_deref(),
            Some("20240101120000")
        );
        assert_eq!(eval("PID.3[5=XX].1"), None);
        assert_eq!(eval("ZZZ.1"), None);
        assert_eq!(eval("PV1.3.9"), None);
    }

    #[test]
    fn all_values() {
        let m = Hl7Message::parse(MSG).unwrap();
        assert_eq!(
            Path::parse("PID.3[*].1").unwrap().all(&m),
            vec!["111", "222"]
        );
        assert_eq!(Path::parse("OBX[*].3").unwrap().all(&m), vec!["A", "B"]);
    }

    #[test]
    fn iteration_scope_resolves_current_children_and_parents() {
        let text = "MSH|^~\\&|A|B|C|D|20240101||ORU^R01|1|P|2.5\rPID|1||M1\r\
            OBR|1|P1||CBC\rOBX|1|NM|HGB||13\rNTE|1||n1\rNTE|2||n2\rOBX|2|NM|WBC||7\r\
            OBR|2|P2||BMP\rOBX|1|NM|NA||140\rNTE|1||n3";
        let m = Hl7Message::parse(text).unwrap();
        let children = vec!["NTE".to_string()];
        let obx: Vec<usize> = m
            .segments()
            .iter()
            .enumerate()
            .filter(|(_, s)| s.name == "OBX")
            .map(|(i, _)| i)
            .collect();
        let segments = SegmentIndex::new(&m);
        let at = |k: usize| Scope {
            segment: "OBX",
            index: obx[k],
            children: &children,
            segments: &segments,
        };
        let p = |e: &str| Path::parse(e).unwrap();
        assert_eq!(
            p("OBX.3").first_in(&m, Some(&at(1))).as_deref(),
            Some("WBC")
        );
        assert_eq!(
            p("OBR.4").first_in(&m, Some(&at(1))).as_deref(),
            Some("CBC"),
            "parent: nearest OBR before"
        );
        assert_eq!(
            p("OBR.4").first_in(&m, Some(&at(2))).as_deref(),
            Some("BMP")
        );
        assert_eq!(
            p("NTE[*].3").all_in(&m, Some(&at(0))),
            vec!["n1", "n2"],
            "children: notes after this OBX"
        );
        assert!(
            p("NTE[*].3").all_in(&m, Some(&at(1))).is_empty(),
            "no notes: never a neighbour's"
        );
        assert_eq!(p("NTE.3").first_in(&m, Some(&at(2))).as_deref(), Some("n3"));
        assert_eq!(p("PID.3").first_in(&m, Some(&at(2))).as_deref(), Some("M1"));
        assert_eq!(
            p("OBX.3").components_in(&m, Some(&at(0))),
            Some(vec!["HGB".to_string()])
        );
    }

    #[test]
    fn syntax_errors_point_at_the_offending_character() {
        let e = Path::parse("PID.x").unwrap_err();
        assert_eq!(
            (e.offset, e.message.as_str()),
            (4, "expected a field number")
        );
        let e = Path::parse("PV1.19 | pid.3").unwrap_err();
        assert_eq!(e.offset, 9);
        assert_eq!(
            Path::parse("PID.3[5=].1").unwrap_err().message,
            "expected a value after ="
        );
        assert_eq!(Path::parse("PID.3.1x").unwrap_err().offset, 7);
        assert_eq!(Path::parse("PID.0").unwrap_err().offset, 4);
        assert!(Path::parse("PID.3[2").is_err());
    }
}
