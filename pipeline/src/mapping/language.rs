//! What a path language gives the mapping engine.
//!
//! The engine ([`super::rules`]), the YAML schema ([`super::schema`]) and the checker
//! ([`super::check`]) are written once. A language, HL7 v2 ([`super::Hl7`]) or FHIR
//! ([`super::Fhir`]), supplies only its path grammar, how a path finds values, and how a
//! value is typed.
//!
//! Values: a path yields the values of its first alternative that finds any, in document
//! order (HL7: non-empty texts, `""` counting as empty; FHIR: elements, primitive or not).
//! Everything the engine does with them is one semantic for both languages:
//! - a condition holds when any value satisfies it (`equals`, `in`), when no value is in
//!   the list (`not_in`; so also when there is none), or when a value is found or not
//!   (`present: true` / `false`);
//! - a stream key, an event time and a field without `all` read the first value; a field
//!   with `all` every value;
//! - an event without `time:` reads the language's [`Language::DEFAULT_TIME`].

use super::kinds::FieldType;
use chrono::{DateTime, FixedOffset};
use chrono_tz::Tz;
use serde::de::DeserializeOwned;
use std::fmt;

/// What a language may ask of the checker while it compiles its own parts of a rule
/// (its `for_each`): the checker implements it, so the language needs no checker type.
pub trait Report<L: Language + ?Sized> {
    /// Reports a problem at `loc` (as `file:line:col: message`).
    fn error(&mut self, loc: &serde_saphyr::Location, message: String);
    /// Parses a path, reporting a syntax error at its place in the file.
    fn path(&mut self, expr: &serde_saphyr::Spanned<String>) -> Option<L::Path>;
}

/// A path that does not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    /// Byte offset in the expression where it was found.
    pub offset: usize,
    /// The whole message, e.g. `invalid path: expected a field number at character 5`.
    pub message: String,
}

/// The names a language's rules files use, in the order `intake check` lists them.
#[derive(Debug, Clone, Copy)]
pub struct Keys {
    /// The file's top key: `rules` or `resources`.
    pub file: &'static str,
    /// A rule's keys, its match key first: `message` or `resource`, `when`, `events`.
    pub rule: &'static [&'static str],
    /// An event's keys: [`EVENT_KEYS`] or [`EVENT_KEYS_UNVERSIONED`].
    pub event: &'static [&'static str],
    /// The field types it offers, from [`FieldType::NAMES`].
    pub types: &'static [&'static str],
}

/// An event's keys, in order.
pub const EVENT_KEYS: [&str; 9] = [
    "event",
    "when",
    "for_each",
    "on_item_error",
    "per_version",
    "stream",
    "or_stream",
    "time",
    "fields",
];

/// An event's keys without `per_version`, for a language whose sources have no versions.
pub const EVENT_KEYS_UNVERSIONED: [&str; 8] = {
    let k = EVENT_KEYS;
    [k[0], k[1], k[2], k[3], k[5], k[6], k[7], k[8]]
};

/// A typed value, or what it is not (`an HL7 timestamp`).
pub type Typed = Result<serde_json::Value, String>;

/// A path language: HL7 v2 or FHIR.
pub trait Language: Sized + fmt::Debug + Clone {
    /// A compiled path.
    type Path: fmt::Debug + fmt::Display + Clone;
    /// What paths are evaluated against: the message or resource, and where an iteration
    /// (`for_each`) stands in it.
    type Scope<'a>
    where
        Self: 'a;
    /// One value a path finds.
    type Value<'a>
    where
        Self: 'a;
    /// `for_each:` as written.
    type ForEachSpec: DeserializeOwned;
    /// `for_each:` compiled.
    type ForEach: fmt::Debug + Clone;

    /// The names its rules files use.
    const KEYS: Keys;
    /// The time of an event whose rule has no `time:` (HL7: when the event happened, else
    /// when the message was sent); `None` when the language has no such value (a FHIR
    /// resource has none that stays the same across its versions).
    const DEFAULT_TIME: Option<&'static str>;
    /// What a dead-letter detail says a value that is not a timestamp is not
    /// (`an HL7 timestamp`).
    const TIMESTAMP: &'static str;
    /// The same for a date (`an HL7 date`).
    const DATE: &'static str;

    /// Parses a path expression.
    fn parse_path(&self, expr: &str) -> Result<Self::Path, SyntaxError>;

    /// Checks a rule's match key (`ADT^A01`, `Encounter`): the error message if it is not one.
    fn check_key(key: &str) -> Result<(), String>;

    /// Compiles a `for_each:`, reporting its problems to the checker.
    fn for_each(check: &mut dyn Report<Self>, spec: Self::ForEachSpec) -> Option<Self::ForEach>;

    /// The scopes of an iteration, each with its place in the message: events are sorted
    /// by place, stably (those of a rule without `for_each` are at place 0).
    fn each<'a>(
        &'a self,
        f: &'a Self::ForEach,
        at: &Self::Scope<'a>,
    ) -> Vec<(usize, Self::Scope<'a>)>;

    /// The values `path` finds.
    fn values<'a>(&'a self, path: &'a Self::Path, at: &Self::Scope<'a>) -> Vec<Self::Value<'a>>;

    /// The first value `path` finds.
    fn first<'a>(&'a self, path: &'a Self::Path, at: &Self::Scope<'a>) -> Option<Self::Value<'a>>;

    /// A value as text for a field of type `ty` (conditions and keys read it as
    /// [`FieldType::String`]); `None` when it is not a primitive.
    fn text(value: Self::Value<'_>, ty: FieldType) -> Option<String>;

    /// A timestamp in its own offset, else local time in `tz`; or why it is none, in
    /// words that quote nothing of the value (they end up in a dead letter's reason).
    fn timestamp(text: &str, tz: chrono_tz::Tz) -> Result<DateTime<FixedOffset>, String>;

    /// A calendar date, as written (`YYYY-MM-DD`, `YYYY-MM`, `YYYY`).
    fn date(text: &str) -> Option<serde_json::Value>;

    /// The value of a structured type ([`FieldType::is_structured`]) at `path`, null when
    /// absent.
    fn structured<'a>(
        &'a self,
        ty: FieldType,
        path: &'a Self::Path,
        at: &Self::Scope<'a>,
        tz: Tz,
    ) -> Typed;

    /// The event's own source key (see [`super::MappedEvent::source_key`]).
    fn source_key(&self, event: &str, per_version: bool, at: &Self::Scope<'_>) -> Option<String>;

    /// How a dead-letter detail names the streams of an event none of whose keys was
    /// found, from (stream type, key path) pairs.
    fn streams_in_detail(streams: &[(&str, &Self::Path)]) -> String;

    /// Whether a path never finds anything (FHIR `{}`: a field the format does not carry).
    fn is_always_empty(_path: &Self::Path) -> bool {
        false
    }
}
