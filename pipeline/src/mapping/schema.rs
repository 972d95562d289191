//! The YAML schema of mapping files: `tenant.yaml`, and the rules files of both
//! languages (one schema; a language names its match key and its `for_each`, see
//! [`super::Keys`]).

use super::kinds::{FieldType, OnItemError, OnMiss, Transform};
use super::language::Language;
use super::DeadLetterAck;
use serde::de::{
    self, DeserializeSeed, Deserializer, EnumAccess, MapAccess, VariantAccess, Visitor,
};
use serde::Deserialize;
use serde_saphyr::Spanned;
use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;

/// `tenant.yaml`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SettingsFile {
    pub timezone: Spanned<String>,
    #[serde(default)]
    pub ack_on_dead_letter: DeadLetterAck,
    /// Most events (and `for_each` items) one message may give.
    #[serde(default = "default_max_events")]
    pub max_events_per_message: usize,
    /// Most segments one HL7 v2 message may hold.
    #[serde(default = "default_max_segments")]
    pub max_segments_per_message: usize,
    /// Most repetitions one HL7 v2 field may hold.
    #[serde(default = "default_max_repetitions")]
    pub max_repetitions_per_field: usize,
    #[serde(default)]
    pub routing: Routing,
    #[serde(default)]
    pub fhir: FhirSpec,
    /// The plugins this tenant enables, by name (`plugins/<name>/manifest.yaml`).
    #[serde(default)]
    pub plugins: Vec<Spanned<String>>,
    /// How long raw messages are kept (absent: forever).
    #[serde(default)]
    pub retention: Option<RetentionSpec>,
}

/// The `retention:` block of `tenant.yaml`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RetentionSpec {
    /// Days a raw message is kept after its receipt; `intake prune` empties older ones.
    pub raw_messages_days: Spanned<u32>,
}

/// The default of `max_events_per_message`: well above any real ORU, far below what a
/// hostile 1 MiB frame of tiny OBX segments (about 75,000) would cost.
pub(super) fn default_max_events() -> usize {
    10_000
}

/// The default of `max_segments_per_message`: an ORU at the event limit with a note per
/// result fits (about 20,000), a 1 MiB frame of empty segments (about 250,000) does not.
pub(super) fn default_max_segments() -> usize {
    50_000
}

/// The default of `max_repetitions_per_field`: far above any real identifier list.
pub(super) fn default_max_repetitions() -> usize {
    1_000
}

fn default_max_items() -> usize {
    crate::fhir::decode::DEFAULT_MAX_ITEMS
}

/// The `fhir:` block of `tenant.yaml`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FhirSpec {
    #[serde(default)]
    pub mode: crate::fhir::decode::Mode,
    /// Most JSON values or XML elements one body may hold.
    #[serde(default = "default_max_items")]
    pub max_items: usize,
    /// Identifier systems by name (`mrn`, `visit`), used in paths as `%mrn`.
    #[serde(default)]
    pub identifiers: BTreeMap<String, Vec<String>>,
}

impl Default for FhirSpec {
    fn default() -> Self {
        FhirSpec {
            mode: Default::default(),
            max_items: default_max_items(),
            identifiers: BTreeMap::new(),
        }
    }
}

/// The `routing:` block of `tenant.yaml`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct Routing {
    #[serde(default)]
    pub sending_facilities: Vec<Spanned<String>>,
    #[serde(default)]
    pub receiving_facilities: Vec<Spanned<String>>,
}

/// A rules file: `rules:` (HL7) or `resources:` (FHIR), a list of rules.
pub(super) struct RulesFile<L: Language> {
    pub rules: Vec<RuleSpec<L>>,
}

/// One value or a list (`message: ADT^A06` or `message: [ADT^A06, ADT^A07]`).
#[derive(Deserialize)]
#[serde(untagged)]
pub(super) enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

/// A rule: what it matches (`message:` / `resource:`), its conditions and its events.
pub(super) struct RuleSpec<L: Language> {
    pub key: Spanned<OneOrMany>,
    pub when: Vec<ConditionSpec>,
    /// Absent only on an ignoring rule.
    pub events: Option<Vec<EventSpec<L>>>,
    /// `ignore: true`: the rule filters the messages it matches.
    pub ignore: Option<Spanned<bool>>,
    /// Why an ignoring rule ignores (required with `ignore: true`).
    pub reason: Option<Spanned<String>>,
}

/// A condition: a path and exactly one operator.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ConditionSpec {
    pub path: Spanned<String>,
    #[serde(default)]
    pub equals: Option<String>,
    #[serde(default, rename = "in")]
    pub any_of: Option<Vec<String>>,
    #[serde(default)]
    pub not_in: Option<Vec<String>>,
    #[serde(default)]
    pub present: Option<bool>,
}

/// One event of a rule.
pub(super) struct EventSpec<L: Language> {
    pub event: Spanned<String>,
    pub when: Vec<ConditionSpec>,
    pub for_each: Option<L::ForEachSpec>,
    /// What a `for_each` item that cannot be mapped does.
    pub on_item_error: Option<Spanned<OnItemError>>,
    /// One event per version of the source (FHIR only).
    pub per_version: bool,
    pub stream: StreamSpec,
    /// Used when `stream`'s key is empty.
    pub or_stream: Option<StreamSpec>,
    /// The event's own time, for its id; default [`Language::DEFAULT_TIME`].
    pub time: Option<Spanned<String>>,
    pub fields: BTreeMap<String, Spanned<FieldSpec<L>>>,
}

/// `stream:` of an event.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct StreamSpec {
    #[serde(rename = "type")]
    pub stream_type: Spanned<String>,
    pub key: Spanned<String>,
}

/// One output field.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, bound = "")]
pub(super) struct FieldSpec<L: Language> {
    #[serde(default)]
    pub path: Option<Spanned<String>>,
    #[serde(default)]
    pub value: Option<String>,
    #[serde(default)]
    pub concat: Option<Vec<Spanned<String>>>,
    #[serde(default = "space")]
    pub separator: String,
    #[serde(default)]
    pub default: Option<String>,
    #[serde(default)]
    pub required: bool,
    #[serde(default, rename = "type")]
    pub field_type: TypeName<L>,
    #[serde(default)]
    pub all: bool,
    #[serde(default)]
    pub transform: Vec<Transform>,
    #[serde(default)]
    pub table: Option<Spanned<String>>,
    #[serde(default)]
    pub on_miss: OnMiss,
}

fn space() -> String {
    " ".into()
}

/// A field type among those the language offers ([`super::Keys::types`]).
pub(super) struct TypeName<L>(pub FieldType, PhantomData<L>);

impl<L> Default for TypeName<L> {
    fn default() -> Self {
        TypeName(FieldType::String, PhantomData)
    }
}

impl<'de, L: Language> Deserialize<'de> for TypeName<L> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_enum("FieldType", L::KEYS.types, TypeVisitor(PhantomData))
    }
}

/// Reads a unit variant named in `L::KEYS.types`, as `#[derive(Deserialize)]` does.
struct TypeVisitor<L>(PhantomData<L>);

impl<'de, L: Language> Visitor<'de> for TypeVisitor<L> {
    type Value = TypeName<L>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("enum FieldType")
    }
    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<TypeName<L>, A::Error> {
        let (name, variant) = data.variant_seed(Name {
            names: L::KEYS.types,
            variant: true,
        })?;
        variant.unit_variant()?;
        let t = FieldType::named(name)
            .ok_or_else(|| de::Error::unknown_variant(name, L::KEYS.types))?;
        Ok(TypeName(t, PhantomData))
    }
}

// The three structs whose keys the language names are read by hand, exactly as
// `#[derive(Deserialize)]` with `deny_unknown_fields` reads the others (same calls, same
// error messages), with the key names of `L::KEYS`.

impl<'de, L: Language> Deserialize<'de> for RulesFile<L> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_struct(
            "RulesFile",
            file_keys::<L>(),
            StructVisitor::<L, Self>::new(),
        )
    }
}

impl<'de, L: Language> Deserialize<'de> for RuleSpec<L> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_struct("RuleSpec", L::KEYS.rule, StructVisitor::<L, Self>::new())
    }
}

impl<'de, L: Language> Deserialize<'de> for EventSpec<L> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_struct("EventSpec", L::KEYS.event, StructVisitor::<L, Self>::new())
    }
}

fn file_keys<L: Language>() -> &'static [&'static str] {
    std::slice::from_ref(&L::KEYS.file)
}

/// Reads one of these structs from a map.
trait FromMap<'de, L: Language>: Sized {
    /// `struct RuleSpec`, as serde words what it expected.
    const NAME: &'static str;
    /// The keys, in order.
    fn keys() -> &'static [&'static str];
    fn from_map<A: MapAccess<'de>>(map: A) -> Result<Self, A::Error>;
}

struct StructVisitor<L, T>(PhantomData<(L, T)>);

impl<L, T> StructVisitor<L, T> {
    fn new() -> Self {
        StructVisitor(PhantomData)
    }
}

impl<'de, L: Language, T: FromMap<'de, L>> Visitor<'de> for StructVisitor<L, T> {
    type Value = T;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(T::NAME)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
        T::from_map(map)
    }
}

/// A struct key or an enum variant, one of `names`; any other is refused.
struct Name {
    names: &'static [&'static str],
    variant: bool,
}

/// A struct key among `keys`.
fn struct_key(keys: &'static [&'static str]) -> Name {
    Name {
        names: keys,
        variant: false,
    }
}

impl<'de> DeserializeSeed<'de> for Name {
    type Value = &'static str;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<&'static str, D::Error> {
        d.deserialize_identifier(self)
    }
}

impl Visitor<'_> for Name {
    type Value = &'static str;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.variant {
            "variant identifier"
        } else {
            "field identifier"
        })
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<&'static str, E> {
        match self.names.iter().find(|k| **k == v) {
            Some(k) => Ok(k),
            None if self.variant => Err(E::unknown_variant(v, self.names)),
            None => Err(E::unknown_field(v, self.names)),
        }
    }
}

/// Reads the value of `key` into `slot`, refusing a second one.
fn take<'de, A: MapAccess<'de>, T: Deserialize<'de>>(
    map: &mut A,
    slot: &mut Option<T>,
    key: &'static str,
) -> Result<(), A::Error> {
    if slot.is_some() {
        return Err(de::Error::duplicate_field(key));
    }
    *slot = Some(map.next_value()?);
    Ok(())
}

fn required<T, E: de::Error>(slot: Option<T>, key: &'static str) -> Result<T, E> {
    slot.ok_or_else(|| E::missing_field(key))
}

impl<'de, L: Language> FromMap<'de, L> for RulesFile<L> {
    const NAME: &'static str = "struct RulesFile";
    fn keys() -> &'static [&'static str] {
        file_keys::<L>()
    }
    fn from_map<A: MapAccess<'de>>(mut map: A) -> Result<Self, A::Error> {
        let mut rules = None;
        while let Some(key) = map.next_key_seed(struct_key(Self::keys()))? {
            take(&mut map, &mut rules, key)?;
        }
        Ok(RulesFile {
            rules: required(rules, L::KEYS.file)?,
        })
    }
}

impl<'de, L: Language> FromMap<'de, L> for RuleSpec<L> {
    const NAME: &'static str = "struct RuleSpec";
    fn keys() -> &'static [&'static str] {
        L::KEYS.rule
    }
    fn from_map<A: MapAccess<'de>>(mut map: A) -> Result<Self, A::Error> {
        let (mut key, mut when, mut events) = (None, None, None);
        let (mut ignore, mut reason) = (None, None);
        let match_key = L::KEYS.rule[0];
        while let Some(k) = map.next_key_seed(struct_key(Self::keys()))? {
            match k {
                "when" => take(&mut map, &mut when, k)?,
                "events" => take(&mut map, &mut events, k)?,
                "ignore" => take(&mut map, &mut ignore, k)?,
                "reason" => take(&mut map, &mut reason, k)?,
                _ => take(&mut map, &mut key, k)?,
            }
        }
        let ignoring = ignore.as_ref().is_some_and(|i: &Spanned<bool>| i.value);
        Ok(RuleSpec {
            key: required(key, match_key)?,
            when: when.unwrap_or_default(),
            events: if ignoring {
                events
            } else {
                Some(required(events, "events")?)
            },
            ignore,
            reason,
        })
    }
}

impl<'de, L: Language> FromMap<'de, L> for EventSpec<L> {
    const NAME: &'static str = "struct EventSpec";
    fn keys() -> &'static [&'static str] {
        L::KEYS.event
    }
    fn from_map<A: MapAccess<'de>>(mut map: A) -> Result<Self, A::Error> {
        let (mut event, mut when, mut for_each, mut per_version) = (None, None, None, None);
        let mut on_item_error = None;
        let (mut stream, mut or_stream, mut time, mut fields) = (None, None, None, None);
        while let Some(k) = map.next_key_seed(struct_key(Self::keys()))? {
            match k {
                "event" => take(&mut map, &mut event, k)?,
                "when" => take(&mut map, &mut when, k)?,
                "for_each" => take(&mut map, &mut for_each, k)?,
                "per_version" => take(&mut map, &mut per_version, k)?,
                "on_item_error" => take(&mut map, &mut on_item_error, k)?,
                "stream" => take(&mut map, &mut stream, k)?,
                "or_stream" => take(&mut map, &mut or_stream, k)?,
                "time" => take(&mut map, &mut time, k)?,
                _ => take(&mut map, &mut fields, k)?,
            }
        }
        Ok(EventSpec {
            event: required(event, "event")?,
            when: when.unwrap_or_default(),
            for_each: for_each.flatten(),
            on_item_error,
            per_version: per_version.unwrap_or_default(),
            stream: required(stream, "stream")?,
            or_stream: or_stream.flatten(),
            time: time.flatten(),
            fields: required(fields, "fields")?,
        })
    }
}
