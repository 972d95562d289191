//! Validation of mapping files into compiled rules, every problem as `file:line:col`.

use super::catalogue::{hint, Catalogue, Shape};
use super::kinds::OnItemError;
use super::language::Language;
use super::language::Report;
use super::routing::{Claim, Field};
use super::rules::{Condition, FieldRule, Rule, RuleSet, Source, StreamRule, Template};
use super::schema::{
    ConditionSpec, EventSpec, FieldSpec, OneOrMany, RulesFile, SettingsFile, StreamSpec,
};
use super::{yaml_error, DeadLetterAck, LoadError, Tables};
use serde_saphyr::{Location, Spanned};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path as FsPath;

/// Validated tenant settings.
pub(super) struct Settings {
    pub timezone: chrono_tz::Tz,
    pub ack_on_dead_letter: DeadLetterAck,
    pub max_events_per_message: usize,
    pub hl7_limits: crate::hl7::Limits,
    pub fhir_max_items: usize,
    /// Every routing claim, located (the tenant's claim lists and the check across
    /// tenants both come from it).
    pub claims: Vec<Claim>,
    pub fhir_mode: crate::fhir::decode::Mode,
    pub identifiers: BTreeMap<String, Vec<String>>,
    /// The plugins it enables, located.
    pub plugins: Vec<serde_saphyr::Spanned<String>>,
    /// Days raw messages are kept (None: forever).
    pub raw_retention_days: Option<u32>,
}

/// The longest retention a tenant may set: a hundred years (longer is a typo, and
/// forever is the absent setting).
const MAX_RETENTION_DAYS: u32 = 36_525;

fn at(file: &FsPath, loc: &Location, offset: usize, message: String) -> LoadError {
    LoadError {
        file: file.to_path_buf(),
        line: loc.line() as u32,
        column: loc.column() as u32 + offset as u32,
        message,
    }
}

/// 1 when the scalar at `loc` is quoted: its text starts one column after the quote.
fn quoted_offset(text: &str, loc: &Location) -> usize {
    let quoted = text
        .lines()
        .nth((loc.line() as usize).saturating_sub(1))
        .and_then(|l| l.chars().nth((loc.column() as usize).saturating_sub(1)))
        .is_some_and(|c| c == '"' || c == '\'');
    usize::from(quoted)
}

/// Parses and validates `tenant.yaml`.
pub(super) fn settings(file: &FsPath, text: &str) -> Result<Settings, Vec<LoadError>> {
    let s: SettingsFile = serde_saphyr::from_str(text).map_err(|e| vec![yaml_error(file, &e)])?;
    let timezone = s.timezone.value.parse::<chrono_tz::Tz>().map_err(|_| {
        vec![at(
            file,
            &s.timezone.referenced,
            0,
            format!(
                "unknown time zone {:?} (use an IANA name such as Europe/Berlin)",
                s.timezone.value
            ),
        )]
    })?;
    if let Some(bad) = s.fhir.identifiers.keys().find(|k| !is_snake(k)) {
        return Err(vec![LoadError {
            file: file.to_path_buf(),
            line: 0,
            column: 0,
            message: format!("fhir.identifiers: name {bad:?} must be snake_case"),
        }]);
    }
    let mut claims = Vec::new();
    let mut errors = Vec::new();
    for (field, list) in [
        (Field::Sending, &s.routing.sending_facilities),
        (Field::Receiving, &s.routing.receiving_facilities),
    ] {
        for c in list {
            let site = at(
                file,
                &c.referenced,
                quoted_offset(text, &c.referenced),
                String::new(),
            );
            if c.value.trim().is_empty() {
                errors.push(LoadError {
                    message: format!(
                        "routing.{}: an empty claim would match messages without one",
                        field.key()
                    ),
                    ..site
                });
                continue;
            }
            claims.push(Claim {
                field,
                value: c.value.clone(),
                site,
            });
        }
    }
    if let Some(days) = s.retention.as_ref().map(|r| &r.raw_messages_days) {
        if !(1..=MAX_RETENTION_DAYS).contains(&days.value) {
            errors.push(at(
                file,
                &days.referenced,
                0,
                format!(
                    "retention.raw_messages_days: {} is not 1 to {MAX_RETENTION_DAYS} days \
                     (leave retention out to keep raw messages forever)",
                    days.value
                ),
            ));
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Settings {
        raw_retention_days: s.retention.map(|r| r.raw_messages_days.value),
        fhir_mode: s.fhir.mode,
        identifiers: s.fhir.identifiers,
        timezone,
        ack_on_dead_letter: s.ack_on_dead_letter,
        max_events_per_message: s.max_events_per_message.max(1),
        hl7_limits: crate::hl7::Limits {
            max_segments: s.max_segments_per_message.max(1),
            max_repetitions: s.max_repetitions_per_field.max(1),
        },
        fhir_max_items: s.fhir.max_items.max(1),
        claims,
        plugins: s.plugins,
    })
}

/// `PascalCase`: event and stream type names.
pub(super) fn is_pascal(s: &str) -> bool {
    s.chars().next().is_some_and(|c| c.is_ascii_uppercase())
        && s.chars().all(|c| c.is_ascii_alphanumeric())
}

/// `snake_case`: field names.
pub(super) fn is_snake(s: &str) -> bool {
    s.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// Validates one rules file against the tenant's tables, collecting every problem.
pub struct Checker<'a, L: Language> {
    file: &'a FsPath,
    text: &'a str,
    tables: &'a Tables,
    catalogue: &'a Catalogue,
    language: &'a L,
    errors: Vec<LoadError>,
}

impl<L: Language> Checker<'_, L> {
    /// Reports a problem at `loc`.
    pub fn error(&mut self, loc: &Location, message: String) {
        self.errors.push(at(self.file, loc, 0, message));
    }

    /// Compiles a path, reporting a syntax error at its character.
    pub fn path(&mut self, s: &Spanned<String>) -> Option<L::Path> {
        match self.language.parse_path(&s.value) {
            Ok(p) => Some(p),
            Err(e) => {
                let offset = e.offset + quoted_offset(self.text, &s.referenced);
                self.errors
                    .push(at(self.file, &s.referenced, offset, e.message));
                None
            }
        }
    }

    fn conditions(&mut self, specs: Vec<ConditionSpec>) -> Vec<Condition<L>> {
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

    fn stream(&mut self, s: StreamSpec) -> Option<StreamRule<L>> {
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

    fn field(&mut self, name: String, f: Spanned<FieldSpec<L>>) -> Option<FieldRule<L>> {
        let loc = f.referenced;
        let f = f.value;
        let field_type = f.field_type.0;
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
        let structured = field_type.is_structured();
        if structured && !matches!(source, Source::Path(_)) {
            self.error(
                &loc,
                format!("field {name:?}: type {field_type:?} needs a path"),
            );
        }
        if structured
            && (f.table.is_some() || f.all || !f.transform.is_empty() || f.default.is_some())
        {
            self.error(&loc, format!("field {name:?}: coded and observation values take no table, all, transform or default"));
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
            field_type,
            all: f.all,
            transforms: f.transform,
            table,
        })
    }

    fn template(&mut self, e: EventSpec<L>) -> Option<Template<L>> {
        if !is_pascal(&e.event.value) {
            self.error(
                &e.event.referenced,
                format!("event type {:?} must be PascalCase", e.event.value),
            );
        }
        self.against_catalogue(&e);
        let when = self.conditions(e.when);
        let has_for_each = e.for_each.is_some();
        let for_each = e.for_each.and_then(|f| L::for_each(self, f));
        let on_item_error = match e.on_item_error {
            Some(o) if !has_for_each => {
                self.error(
                    &o.referenced,
                    "on_item_error: only an event with for_each has items".into(),
                );
                OnItemError::default()
            }
            o => o.map(|o| o.value).unwrap_or_default(),
        };
        let mut streams: Vec<StreamRule<L>> = [Some(e.stream), e.or_stream]
            .into_iter()
            .flatten()
            .filter_map(|s| self.stream(s))
            .collect();
        let time_spec = e.time.or_else(|| {
            L::DEFAULT_TIME
                .map(|t| Spanned::new(t.to_string(), e.event.referenced, e.event.defined))
        });
        // A time path that does not parse drops the template, after its fields are checked.
        let time = time_spec.map(|t| self.path(&t));
        let mut fields = Vec::new();
        for (name, f) in e.fields {
            fields.extend(self.field(name, f));
        }
        if streams.is_empty() || time.as_ref().is_some_and(Option::is_none) {
            return None;
        }
        streams.shrink_to_fit();
        Some(Template {
            event_type: e.event.value,
            when,
            for_each,
            on_item_error,
            per_version: e.per_version,
            streams,
            time: time.flatten(),
            fields,
        })
    }
}

/// Parses and validates a rules file, adding its rules to `set`.
pub(super) fn rules<L: Language>(
    file: &FsPath,
    text: &str,
    set: &mut RuleSet<L>,
    catalogue: &Catalogue,
) -> Result<(), Vec<LoadError>> {
    let spec: RulesFile<L> =
        serde_saphyr::from_str(text).map_err(|e| vec![yaml_error(file, &e)])?;
    let fname = file
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .to_string();
    let mut c = Checker {
        file,
        text,
        tables: &set.tables,
        catalogue,
        language: &set.language,
        errors: Vec::new(),
    };
    let mut new_rules: Vec<(Vec<String>, Rule<L>, Location)> = Vec::new();
    for r in spec.rules {
        let keys = match &r.key.value {
            OneOrMany::One(k) => vec![k.clone()],
            OneOrMany::Many(ks) => ks.clone(),
        };
        let mut valid = Vec::new();
        for k in keys {
            match L::check_key(&k) {
                Ok(()) => valid.push(k),
                Err(message) => c.error(&r.key.referenced, message),
            }
        }
        let when = c.conditions(r.when);
        let ignore = c.ignore(&r.key.referenced, r.ignore, r.reason, r.events.is_some());
        let events: Vec<Template<L>> = r
            .events
            .into_iter()
            .flatten()
            .filter_map(|e| c.template(e))
            .collect();
        let rule = Rule {
            file: fname.clone(),
            when,
            events,
            ignore,
        };
        new_rules.push((valid, rule, r.key.referenced));
    }
    // A rule after an unconditioned rule for the same key can never apply.
    let mut open_ended: BTreeSet<String> = set
        .rules
        .iter()
        .filter(|(_, rs)| rs.iter().any(|r| r.when.is_empty()))
        .map(|(k, _)| k.clone())
        .collect();
    for (keys, rule, loc) in &new_rules {
        for k in keys {
            if open_ended.contains(k) {
                c.error(
                    loc,
                    format!("unreachable: an earlier rule for {k} has no conditions"),
                );
            } else if rule.when.is_empty() {
                open_ended.insert(k.clone());
            }
        }
    }
    if !c.errors.is_empty() {
        return Err(c.errors);
    }
    for (keys, rule, _) in new_rules {
        for k in keys {
            set.rules.entry(k).or_default().push(rule.clone());
        }
    }
    Ok(())
}

impl<L: Language> Checker<'_, L> {
    /// The reason of an ignoring rule (`ignore: true` with `reason:` and no `events:`).
    fn ignore(
        &mut self,
        rule: &Location,
        ignore: Option<Spanned<bool>>,
        reason: Option<Spanned<String>>,
        has_events: bool,
    ) -> Option<String> {
        let ignoring = ignore.as_ref().filter(|i| i.value);
        match (ignoring, reason) {
            (None, None) => None,
            (None, Some(r)) => {
                self.error(
                    &r.referenced,
                    "reason: only an ignoring rule (ignore: true) has one".into(),
                );
                None
            }
            (Some(i), reason) => {
                if has_events {
                    self.error(
                        &i.referenced,
                        "an ignoring rule has no events: remove events: or ignore:".into(),
                    );
                }
                match reason.filter(|r| !r.value.trim().is_empty()) {
                    Some(r) => Some(r.value.trim().to_string()),
                    None => {
                        self.error(
                            rule,
                            "ignore: true needs a reason: (why these messages are not mapped)"
                                .into(),
                        );
                        None
                    }
                }
            }
        }
    }
}

impl<L: Language> Checker<'_, L> {
    /// The event's type, stream types and fields against the catalogue: unknown names
    /// (with the nearest known one), missing or optional required fields, other types.
    fn against_catalogue(&mut self, e: &EventSpec<L>) {
        let (event, loc) = (&e.event.value, e.event.referenced);
        let catalogue = self.catalogue;
        let def = catalogue.event(event);
        if def.is_none() && is_pascal(event) {
            self.error(
                &loc,
                format!(
                    "unknown event type {event:?}{}: the event catalogue (docs/events.yaml) \
                     and the tenant's catalogue.yaml list the known ones",
                    catalogue.event_hint(event)
                ),
            );
        }
        for s in [Some(&e.stream), e.or_stream.as_ref()]
            .into_iter()
            .flatten()
        {
            let (ty, at) = (&s.stream_type.value, s.stream_type.referenced);
            if !catalogue.has_stream_type(ty) {
                if is_pascal(ty) {
                    let near = catalogue.stream_type_hint(ty);
                    self.error(&at, format!("unknown stream type {ty:?}{near}"));
                }
            } else if let Some(d) = def.filter(|d| !d.streams.contains(ty)) {
                let on = d.streams.join(" or ");
                self.error(&at, format!("event {event} goes on {on} streams, not {ty}"));
            }
        }
        let Some(def) = def else {
            return;
        };
        for (name, f) in &e.fields {
            let at = f.referenced;
            let Some(want) = def.fields.get(name) else {
                let near = hint(name, def.fields.keys());
                self.error(&at, format!("event {event} has no field {name:?}{near}"));
                continue;
            };
            let got = Shape::of(f.value.field_type.0, f.value.all);
            if want.shape != Shape::Any && got != want.shape {
                self.error(
                    &at,
                    format!(
                        "field {name} of {event} is a {} in the catalogue, not a {}",
                        want.shape.name(),
                        got.name()
                    ),
                );
            }
            if want.required && !f.value.required {
                self.error(
                    &at,
                    format!(
                        "field {name} of {event} is required in the catalogue: add required: true"
                    ),
                );
            }
        }
        let missing: Vec<&str> = def
            .fields
            .iter()
            .filter(|(name, f)| f.required && !e.fields.contains_key(*name))
            .map(|(name, _)| name.as_str())
            .collect();
        if !missing.is_empty() {
            self.error(
                &loc,
                format!(
                    "event {event} needs field(s) {} (required in the catalogue)",
                    missing.join(", ")
                ),
            );
        }
    }
}

impl<L: Language> Report<L> for Checker<'_, L> {
    fn error(&mut self, loc: &Location, message: String) {
        Checker::error(self, loc, message);
    }

    fn path(&mut self, expr: &Spanned<String>) -> Option<L::Path> {
        Checker::path(self, expr)
    }
}
