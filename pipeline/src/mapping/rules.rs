//! Compiled rules and their application, written once for every [`Language`].

use super::kinds::{FieldType, OnItemError, OnMiss, Transform};
use super::language::Language;
use super::tables::Tables;
use crate::reason::{Reason, Rejection};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// Where a field's text comes from.
#[derive(Debug, Clone)]
pub(super) enum Source<L: Language> {
    Path(L::Path),
    Value(String),
    Concat(Vec<L::Path>, String),
}

/// One output field.
#[derive(Debug, Clone)]
pub(super) struct FieldRule<L: Language> {
    pub name: String,
    pub source: Source<L>,
    pub default: Option<String>,
    pub required: bool,
    pub field_type: FieldType,
    pub all: bool,
    pub transforms: Vec<Transform>,
    pub table: Option<(String, OnMiss)>,
}

/// A condition on the values of a path (see [`super::language`] for what each means).
#[derive(Debug, Clone)]
pub(super) enum Condition<L: Language> {
    Equals(L::Path, String),
    In(L::Path, Vec<String>),
    NotIn(L::Path, Vec<String>),
    Present(L::Path, bool),
}

/// Which stream an event goes to.
#[derive(Debug, Clone)]
pub(super) struct StreamRule<L: Language> {
    pub stream_type: String,
    pub key: L::Path,
}

/// One event a rule emits (once, or once per element of `for_each`).
#[derive(Debug, Clone)]
pub(super) struct Template<L: Language> {
    pub event_type: String,
    pub when: Vec<Condition<L>>,
    pub for_each: Option<L::ForEach>,
    /// What an item of `for_each` that cannot be mapped does.
    pub on_item_error: OnItemError,
    /// One event per version of the source (its source key names the version).
    pub per_version: bool,
    /// The first stream whose key is present is used.
    pub streams: Vec<StreamRule<L>>,
    pub time: Option<L::Path>,
    pub fields: Vec<FieldRule<L>>,
}

/// A rule for one or more keys (message codes, resource types).
#[derive(Debug, Clone)]
pub(super) struct Rule<L: Language> {
    pub file: String,
    pub when: Vec<Condition<L>>,
    pub events: Vec<Template<L>>,
    /// `ignore: true`: the reason; the rule filters what it matches, emitting nothing.
    pub ignore: Option<String>,
}

/// What the mapping made of a message.
#[derive(Debug, Clone, PartialEq)]
pub enum Mapped {
    /// The events to append (never empty from `apply`), and the `for_each` items that
    /// were skipped (`on_item_error: skip`).
    Events {
        /// The events, in message order.
        events: Vec<MappedEvent>,
        /// The skipped items.
        skipped: Vec<SkippedItem>,
    },
    /// An ignoring rule matched: acknowledged and kept as `filtered`, no events, no dead
    /// letter.
    Filtered(Filter),
}

/// The ignoring rule that filtered a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    /// The rule's `reason:`, as the tenant wrote it (mapping text, not message content).
    pub reason: String,
    /// The mapping file of the rule.
    pub file: String,
}

/// A `for_each` item that an `on_item_error: skip` event left out: where and why, never
/// a value (it is written into event metadata).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SkippedItem {
    /// The event type the item would have given.
    pub event: String,
    /// The item's 1-based place among the iterated segments or elements (OBX number).
    pub index: usize,
    /// The reason code, e.g. `MAPPING_REQUIRED_FIELD`.
    pub code: &'static str,
    /// The PHI-free detail (field and path).
    pub detail: Option<String>,
}

impl Mapped {
    /// The events (none when filtered).
    pub fn into_events(self) -> Vec<MappedEvent> {
        match self {
            Mapped::Events { events, .. } => events,
            Mapped::Filtered(_) => Vec::new(),
        }
    }
}

/// A tenant's rules in one language, by key (`ADT^A01`, `Encounter`); the first rule
/// for a key whose conditions hold is applied.
#[derive(Debug, Clone, Default)]
pub struct RuleSet<L: Language> {
    pub(super) rules: BTreeMap<String, Vec<Rule<L>>>,
    pub(super) tables: Tables,
    pub(super) language: L,
    /// Most events and `for_each` items one message may give (tenant.yaml
    /// `max_events_per_message`); mapping stops at the first one over.
    pub(super) max_events: usize,
}

/// An event as the mapping produced it; the pipeline adds ids and metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct MappedEvent {
    /// e.g. `AdmissionCreated`.
    pub event_type: String,
    /// e.g. `Admission`.
    pub stream_type: String,
    /// The stream's natural key.
    pub stream_key: String,
    /// The event's own time, when the message carries one.
    pub time: Option<DateTime<Utc>>,
    /// The fields.
    pub data: Value,
    /// The mapping file that produced it.
    pub file: String,
    /// A stable key of the event's own source, used for its id instead of (message key,
    /// index): FHIR events name their resource and place in it (e.g.
    /// `Encounter/e1#LocationChanged#2`), so a later version of the resource repeats the
    /// ids of events already stored. `None` for HL7 v2.
    pub source_key: Option<String>,
    /// The plugin rule that derived it, when a plugin did (not the mapping).
    pub derived: Option<super::plugin::Derived>,
    /// The plugins' validations it failed with `on_invalid: flag`.
    pub flags: Vec<super::plugin::Flag>,
}

impl<L: Language> RuleSet<L> {
    /// The rules of an empty tenant in `language`, with the tenant's tables.
    pub(super) fn new(language: L, tables: Tables) -> Self {
        RuleSet {
            rules: BTreeMap::new(),
            tables,
            language,
            max_events: super::schema::default_max_events(),
        }
    }

    /// The rejection of a message that gives more than [`RuleSet::max_events`] events.
    pub(super) fn too_many(&self) -> Rejection {
        Rejection::with_detail(
            Reason::MappingTooManyEvents,
            format!("more than {} events or items", self.max_events),
        )
    }

    /// The events of the first rule for `key` whose conditions hold at `root`, in the
    /// order of their places (see [`Language::each`]), possibly none; its filter when it
    /// is an ignoring rule; `None` when no rule holds.
    pub(super) fn map<'a>(
        &'a self,
        key: &str,
        root: &L::Scope<'a>,
        tz: chrono_tz::Tz,
    ) -> Result<Option<Mapped>, Rejection> {
        let rule = self
            .rules
            .get(key)
            .and_then(|rules| rules.iter().find(|r| self.holds(&r.when, root)));
        let Some(rule) = rule else {
            return Ok(None);
        };
        if let Some(reason) = &rule.ignore {
            return Ok(Some(Mapped::Filtered(Filter {
                reason: reason.clone(),
                file: rule.file.clone(),
            })));
        }
        let mut out: Vec<(usize, MappedEvent)> = Vec::new();
        let mut skipped: Vec<(usize, Rejection, &str)> = Vec::new();
        for t in &rule.events {
            match &t.for_each {
                None => {
                    if self.holds(&t.when, root) {
                        out.push((0, t.apply(self, root, tz, &rule.file)?));
                    }
                }
                Some(f) => {
                    for (n, (place, scope)) in self.language.each(f, root).into_iter().enumerate() {
                        if out.len() + skipped.len() >= self.max_events {
                            return Err(self.too_many());
                        }
                        if !self.holds(&t.when, &scope) {
                            continue;
                        }
                        match t.apply(self, &scope, tz, &rule.file) {
                            Ok(e) => out.push((place, e)),
                            Err(r) if t.on_item_error == OnItemError::Skip => {
                                skipped.push((n + 1, r, &t.event_type));
                            }
                            Err(r) => return Err(r),
                        }
                    }
                }
            }
        }
        // Every item skipped and nothing else mapped: the message is a dead letter with
        // the first item's reason, never silently empty.
        if out.is_empty() && !skipped.is_empty() {
            return Err(skipped.swap_remove(0).1);
        }
        out.sort_by_key(|(place, _)| *place);
        let skipped = skipped
            .into_iter()
            .map(|(index, r, event)| SkippedItem {
                event: event.to_string(),
                index,
                code: r.reason.code(),
                detail: r.detail,
            })
            .collect();
        Ok(Some(Mapped::Events {
            events: out.into_iter().map(|(_, e)| e).collect(),
            skipped,
        }))
    }

    /// Every output field the rules can fill, as (key, event type, field name): the basis
    /// of `intake test`'s field-coverage report. Fields the format does not carry
    /// ([`Language::is_always_empty`]) are left out.
    pub fn fields(&self) -> Vec<(&str, &str, &str)> {
        let mut out = Vec::new();
        for (key, rules) in &self.rules {
            for t in rules.iter().flat_map(|r| &r.events) {
                for f in &t.fields {
                    if matches!(&f.source, Source::Path(p) if L::is_always_empty(p)) {
                        continue;
                    }
                    out.push((key.as_str(), t.event_type.as_str(), f.name.as_str()));
                }
            }
        }
        out
    }

    /// The keys (message codes, resource types) these rules map.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.rules.keys().map(String::as_str)
    }

    fn text(v: L::Value<'_>) -> Option<String> {
        L::text(v, FieldType::String)
    }

    fn holds<'a>(&'a self, conditions: &'a [Condition<L>], at: &L::Scope<'a>) -> bool {
        let lang = &self.language;
        let any = |p: &'a L::Path, f: &dyn Fn(&str) -> bool| {
            lang.values(p, at)
                .into_iter()
                .filter_map(Self::text)
                .any(|t| f(&t))
        };
        conditions.iter().all(|c| match c {
            Condition::Equals(p, v) => any(p, &|t| t == v),
            Condition::In(p, vs) => any(p, &|t| vs.iter().any(|v| v == t)),
            Condition::NotIn(p, vs) => !any(p, &|t| vs.iter().any(|v| v == t)),
            Condition::Present(p, want) => lang.first(p, at).is_some() == *want,
        })
    }
}

impl<L: Language> Template<L> {
    fn apply<'a>(
        &'a self,
        set: &'a RuleSet<L>,
        at: &L::Scope<'a>,
        tz: chrono_tz::Tz,
        file: &str,
    ) -> Result<MappedEvent, Rejection> {
        let lang = &set.language;
        let first = |p: &'a L::Path| lang.first(p, at).and_then(RuleSet::<L>::text);
        let (stream, stream_key) = self
            .streams
            .iter()
            .find_map(|s| first(&s.key).map(|k| (s, k)))
            .ok_or_else(|| {
                let streams: Vec<(&str, &L::Path)> = self
                    .streams
                    .iter()
                    .map(|s| (s.stream_type.as_str(), &s.key))
                    .collect();
                Rejection::with_detail(
                    Reason::MappingRequiredField,
                    format!(
                        "stream key of {} ({})",
                        self.event_type,
                        L::streams_in_detail(&streams)
                    ),
                )
            })?;
        let time = self
            .time
            .as_ref()
            .and_then(first)
            .and_then(|v| L::timestamp(&v, tz).ok())
            .map(|t| t.to_utc());
        let mut data = serde_json::Map::with_capacity(self.fields.len());
        for f in &self.fields {
            data.insert(f.name.clone(), f.value(set, at, tz)?);
        }
        Ok(MappedEvent {
            event_type: self.event_type.clone(),
            stream_type: stream.stream_type.clone(),
            stream_key,
            time,
            data: Value::Object(data),
            file: file.to_string(),
            source_key: lang.source_key(&self.event_type, self.per_version, at),
            derived: None,
            flags: Vec::new(),
        })
    }
}

impl<L: Language> FieldRule<L> {
    fn describe(&self) -> String {
        match &self.source {
            Source::Path(p) => format!("field {} ({})", self.name, short(&p.to_string())),
            Source::Value(_) => format!("field {} (constant)", self.name),
            Source::Concat(ps, _) => {
                let ps: Vec<String> = ps.iter().map(|p| short(&p.to_string())).collect();
                format!("field {} ({})", self.name, ps.join(" + "))
            }
        }
    }

    /// A text as a value of the field's (text) type.
    fn typed(&self, text: &str, tz: chrono_tz::Tz) -> Result<Value, Rejection> {
        let value = match self.field_type {
            FieldType::Timestamp => L::timestamp(text, tz)
                .map(|t| json!(t.to_rfc3339_opts(SecondsFormat::AutoSi, false))),
            FieldType::Number => number(text).ok_or_else(|| "a number".to_string()),
            FieldType::Date => L::date(text).ok_or_else(|| L::DATE.to_string()),
            _ => Ok(Value::String(text.to_string())),
        };
        value.map_err(|what| self.invalid(&what))
    }

    fn invalid(&self, what: &str) -> Rejection {
        Rejection::with_detail(
            Reason::MappingInvalidValue,
            format!("{} is not {what}", self.describe()),
        )
    }

    /// The text values (several only with `all`), after transforms and table.
    fn texts<'a>(
        &'a self,
        set: &'a RuleSet<L>,
        at: &L::Scope<'a>,
    ) -> Result<Vec<String>, Rejection> {
        let lang = &set.language;
        let text = |v| L::text(v, self.field_type).ok_or_else(|| self.invalid("a primitive value"));
        let raw: Vec<String> = match &self.source {
            Source::Value(v) => vec![v.clone()],
            Source::Path(p) if self.all => lang
                .values(p, at)
                .into_iter()
                .map(text)
                .collect::<Result<_, _>>()?,
            Source::Path(p) => lang
                .first(p, at)
                .map(text)
                .transpose()?
                .into_iter()
                .collect(),
            Source::Concat(ps, sep) => {
                let mut parts = Vec::new();
                for p in ps {
                    if let Some(v) = lang.first(p, at) {
                        parts.push(text(v)?);
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
                match set.tables.lookup(table, &v) {
                    Some(mapped) => v = mapped.to_string(),
                    None if *on_miss == OnMiss::DeadLetter => {
                        return Err(Rejection::with_detail(
                            Reason::MappingTableMiss,
                            format!("table {table}, {}", self.describe()),
                        ))
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

    fn value<'a>(
        &'a self,
        set: &'a RuleSet<L>,
        at: &L::Scope<'a>,
        tz: chrono_tz::Tz,
    ) -> Result<Value, Rejection> {
        let value = match &self.source {
            Source::Path(p) if self.field_type.is_structured() => set
                .language
                .structured(self.field_type, p, at, tz)
                .map_err(|what| self.invalid(&what))?,
            _ => {
                let texts = self.texts(set, at)?;
                let typed: Vec<Value> = texts
                    .iter()
                    .map(|t| self.typed(t, tz))
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
}

/// A JSON number from text (an integer when it is one), for both languages.
pub(super) fn number(s: &str) -> Option<Value> {
    let s = s.trim();
    if let Ok(i) = s.parse::<i64>() {
        return Some(json!(i));
    }
    s.parse::<f64>()
        .ok()
        .filter(|f| f.is_finite())
        .map(|f| json!(f))
}

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
