//! The event catalogue as data: the event types a mapping may emit, the stream types each
//! goes on, and their fields (`docs/events.yaml`, built in). A tenant may add event types
//! and stream types of its own in `mappings/<tenant>/catalogue.yaml`. The checker
//! ([`super::check`]) refuses names the catalogue does not know, so a typo such as
//! `AdmisionCreated` or `patient_mrm` is an error at `file:line:col`, not a silent new event.

use super::check::{is_pascal, is_snake};
use super::fold::{self, Effect};
use super::kinds::FieldType;
use super::{yaml_error, LoadError};
use serde::Deserialize;
use serde_saphyr::Spanned;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::LazyLock;

/// The shipped catalogue's text.
const SHIPPED: &str = include_str!("../../../docs/events.yaml");

/// The name of a tenant's catalogue extension file.
pub const EXTENSION_FILE: &str = "catalogue.yaml";

/// Event types and stream types, with their fields.
#[derive(Debug, Clone)]
pub struct Catalogue {
    stream_types: BTreeMap<String, String>,
    events: BTreeMap<String, EventDef>,
}

/// One event type.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventDef {
    /// The stream types it may go on (`stream:` and `or_stream:`).
    pub streams: Vec<String>,
    /// Its fields, by name.
    pub fields: BTreeMap<String, FieldDef>,
    /// What it does to its stream's state (`state:`, see [`super::fold`]), as written.
    #[serde(default)]
    pub state: BTreeMap<String, serde_json::Value>,
    /// The same, compiled.
    #[serde(skip)]
    pub effects: Vec<Effect>,
}

/// One field of an event type.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldDef {
    /// The JSON shape of its value.
    #[serde(rename = "type")]
    pub shape: Shape,
    /// Whether every mapping of the event must map it, with `required: true`.
    #[serde(default)]
    pub required: bool,
}

/// The JSON shape of a field's value, as consumers see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Shape {
    /// Text (`type: string`, HL7 `value_type` too).
    String,
    /// RFC 3339 text.
    Timestamp,
    /// `YYYY-MM-DD` text.
    Date,
    /// A number.
    Number,
    /// `{code, display, system}` (`type: coded`).
    Object,
    /// An array of strings (`all: true`).
    List,
    /// Whatever the source is (`type: observation_value`).
    Any,
}

impl Shape {
    /// The shape a mapped field gives: its type, or a list with `all: true`.
    pub fn of(field_type: FieldType, all: bool) -> Shape {
        if all {
            return Shape::List;
        }
        match field_type {
            FieldType::String | FieldType::ValueType => Shape::String,
            FieldType::Timestamp => Shape::Timestamp,
            FieldType::Date => Shape::Date,
            FieldType::Number => Shape::Number,
            FieldType::Coded => Shape::Object,
            FieldType::ObservationValue => Shape::Any,
        }
    }

    /// Its name in the catalogue.
    pub fn name(self) -> &'static str {
        match self {
            Shape::String => "string",
            Shape::Timestamp => "timestamp",
            Shape::Date => "date",
            Shape::Number => "number",
            Shape::Object => "object",
            Shape::List => "list",
            Shape::Any => "any",
        }
    }
}

/// The file's schema; values located for the errors of an extension. A plugin's
/// manifest declares its event types in the same form.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CatalogueFile {
    #[serde(default)]
    pub stream_types: BTreeMap<String, Spanned<String>>,
    #[serde(default)]
    pub events: BTreeMap<String, Spanned<EventDef>>,
}

static SHIPPED_CATALOGUE: LazyLock<Catalogue> = LazyLock::new(|| {
    let empty = Catalogue {
        stream_types: BTreeMap::new(),
        events: BTreeMap::new(),
    };
    // A unit test proves the shipped file valid; a broken build would fail it.
    empty
        .extend(Path::new("docs/events.yaml"), SHIPPED)
        .unwrap_or_else(|e| panic!("the shipped catalogue is invalid: {}", e[0]))
});

impl Catalogue {
    /// The shipped catalogue (`docs/events.yaml`).
    pub fn shipped() -> &'static Catalogue {
        &SHIPPED_CATALOGUE
    }

    /// This catalogue plus the event and stream types `text` (the file `file`) declares.
    /// Redeclaring a known type, a stream type or field type the catalogue does not know,
    /// and names that are not PascalCase (types) or snake_case (fields) are errors.
    pub fn extend(&self, file: &Path, text: &str) -> Result<Catalogue, Vec<LoadError>> {
        let spec: CatalogueFile =
            serde_saphyr::from_str(text).map_err(|e| vec![yaml_error(file, &e)])?;
        self.extend_spec(file, spec)
    }

    /// This catalogue plus the types of `spec` (read from `file`), checked as
    /// [`Catalogue::extend`] checks them.
    pub(crate) fn extend_spec(
        &self,
        file: &Path,
        spec: CatalogueFile,
    ) -> Result<Catalogue, Vec<LoadError>> {
        let mut out = self.clone();
        let mut errors = Vec::new();
        let err = |loc: &serde_saphyr::Location, message: String| LoadError {
            file: file.to_path_buf(),
            line: loc.line() as u32,
            column: loc.column() as u32,
            message,
        };
        for (name, about) in spec.stream_types {
            if !is_pascal(&name) {
                errors.push(err(
                    &about.referenced,
                    format!("stream type {name:?} must be PascalCase"),
                ));
                continue;
            }
            match out.stream_types.entry(name) {
                std::collections::btree_map::Entry::Occupied(e) => errors.push(err(
                    &about.referenced,
                    format!("stream type {} is already in the catalogue", e.key()),
                )),
                std::collections::btree_map::Entry::Vacant(e) => {
                    e.insert(about.value);
                }
            }
        }
        for (name, def) in spec.events {
            let loc = def.referenced;
            if !is_pascal(&name) {
                errors.push(err(&loc, format!("event type {name:?} must be PascalCase")));
                continue;
            }
            if out.events.contains_key(&name) {
                errors.push(err(
                    &loc,
                    format!("event type {name} is already in the catalogue: choose another name"),
                ));
                continue;
            }
            for s in &def.value.streams {
                if !out.stream_types.contains_key(s) {
                    errors.push(err(
                        &loc,
                        format!(
                            "event type {name}: unknown stream type {s:?}{}",
                            hint(s, out.stream_types.keys())
                        ),
                    ));
                }
            }
            if def.value.streams.is_empty() {
                errors.push(err(&loc, format!("event type {name} needs streams")));
            }
            for field in def.value.fields.keys().filter(|f| !is_snake(f)) {
                errors.push(err(
                    &loc,
                    format!("event type {name}: field name {field:?} must be snake_case"),
                ));
            }
            let mut event = def.value;
            match fold::compile(&event.state, |f| event.fields.contains_key(f)) {
                Ok(effects) => event.effects = effects,
                Err(e) => errors.push(err(&loc, format!("event type {name}: {e}"))),
            }
            out.events.insert(name, event);
        }
        if errors.is_empty() {
            Ok(out)
        } else {
            Err(errors)
        }
    }

    /// The event type of this name.
    pub fn event(&self, name: &str) -> Option<&EventDef> {
        self.events.get(name)
    }

    /// The state effects of the event type `name` (none for an unknown type).
    pub fn effects(&self, name: &str) -> &[Effect] {
        self.events.get(name).map_or(&[], |e| e.effects.as_slice())
    }

    /// Folds one event into its stream's `state` (see [`super::fold`]).
    pub fn fold(
        &self,
        state: &mut serde_json::Map<String, serde_json::Value>,
        event_type: &str,
        data: &serde_json::Value,
        effective_at: &str,
    ) {
        fold::apply(state, self.effects(event_type), data, effective_at);
    }

    /// Folds one stored event into its stream's `state`, at its own time
    /// ([`EventEnvelope::effective_at`](crate::event::EventEnvelope::effective_at), RFC 3339
    /// with milliseconds, as `metadata.effective_at` is written): the one fold of a stored
    /// event that the census, point-in-time queries and stateful rules share.
    pub fn fold_event(
        &self,
        state: &mut serde_json::Map<String, serde_json::Value>,
        event: &crate::event::EventEnvelope,
    ) {
        let at = event
            .effective_at()
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        self.fold(state, &event.event_type, &event.data, &at);
    }

    /// Whether the stream type is known.
    pub fn has_stream_type(&self, name: &str) -> bool {
        self.stream_types.contains_key(name)
    }

    /// Every event type, by name.
    pub fn events(&self) -> impl Iterator<Item = (&str, &EventDef)> {
        self.events.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// ` (did you mean X?)` for the known event type nearest to `name`, else empty.
    pub fn event_hint(&self, name: &str) -> String {
        hint(name, self.events.keys())
    }

    /// ` (did you mean X?)` for the known stream type nearest to `name`, else empty.
    pub fn stream_type_hint(&self, name: &str) -> String {
        hint(name, self.stream_types.keys())
    }
}

/// ` (did you mean X?)` for the candidate within a small edit distance of `name`.
pub fn hint<S: AsRef<str>>(name: &str, candidates: impl IntoIterator<Item = S>) -> String {
    let limit = (name.len() / 4).clamp(1, 3);
    candidates
        .into_iter()
        .map(|c| (distance(name, c.as_ref()), c.as_ref().to_string()))
        .filter(|(d, _)| *d <= limit)
        .min()
        .map(|(_, c)| format!(" (did you mean {c}?)"))
        .unwrap_or_default()
}

/// Levenshtein distance, case-insensitive (names are short).
fn distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (
        a.to_ascii_lowercase().chars().collect(),
        b.to_ascii_lowercase().chars().collect(),
    );
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_catalogue_loads_and_knows_the_demo_events() {
        let c = Catalogue::shipped();
        let created = c.event("AdmissionCreated").expect("AdmissionCreated");
        assert_eq!(created.streams, ["Admission", "Patient"]);
        assert!(created.fields["patient_mrn"].required);
        assert_eq!(created.fields["admitted_at"].shape, Shape::Timestamp);
        assert!(c.has_stream_type("Patient"));
        assert_eq!(
            c.event("LabResultCorrected").unwrap().fields.len(),
            c.event("LabResultReceived").unwrap().fields.len()
        );
    }

    /// docs/events.md explains the events that docs/events.yaml lists: the same event
    /// types, each with its stream types in the trigger table, and a field table with the
    /// same fields, marked `(required)` exactly where the catalogue requires them.
    #[test]
    fn the_catalogue_and_its_documentation_agree() {
        let doc =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/events.md"))
                .unwrap();
        let sections: BTreeMap<&str, &str> = doc
            .split("\n## ")
            .skip(1)
            .filter_map(|s| s.split_once('\n'))
            .collect();
        let triggers: Vec<Vec<&str>> = doc
            .lines()
            .filter(|l| l.starts_with("| ADT^") || l.starts_with("| ORU^"))
            .map(|l| l.split('|').map(str::trim).collect())
            .collect();
        let mut documented: Vec<&str> = triggers.iter().map(|row| row[2]).collect();
        documented.sort();
        documented.dedup();
        let listed: Vec<&str> = Catalogue::shipped().events().map(|(n, _)| n).collect();
        assert_eq!(
            documented, listed,
            "the trigger table and the catalogue's events"
        );
        for (name, def) in Catalogue::shipped().events() {
            for row in triggers.iter().filter(|row| row[2] == name) {
                let on: Vec<&str> = row[3]
                    .split([',', ' '])
                    .filter(|w| w.chars().next().is_some_and(char::is_uppercase))
                    .collect();
                assert!(
                    on.iter().all(|s| def.streams.iter().any(|d| d == s)),
                    "{name}: {on:?}"
                );
            }
            let section = sections
                .get(name)
                .unwrap_or_else(|| panic!("no section ## {name}"));
            // LabResultCorrected and LabResultRetracted have "the same fields as" another.
            let own = section.lines().any(|l| l.starts_with("| field |"));
            let table_of = if own {
                *section
            } else {
                let other = listed
                    .iter()
                    .find(|o| section.contains(&format!("same stream and fields as {o}")))
                    .unwrap_or_else(|| panic!("{name}: no field table"));
                sections[other]
            };
            let rows: BTreeMap<String, bool> = table_of
                .lines()
                .take_while(|l| !l.starts_with("`value` depends"))
                .filter(|l| {
                    l.starts_with("| ") && !l.starts_with("| field") && !l.starts_with("|---")
                })
                .map(|l| l.replace("\\|", "/"))
                .map(|l| {
                    l.split('|')
                        .map(|c| c.trim().to_string())
                        .collect::<Vec<_>>()
                })
                .filter(|cells| {
                    cells.len() == 6 && cells[1].chars().all(|c| c.is_ascii_lowercase() || c == '_')
                })
                .map(|cells| (cells[1].clone(), cells[3].contains("(required)")))
                .collect();
            let fields: BTreeMap<String, bool> = def
                .fields
                .iter()
                .map(|(f, d)| (f.clone(), d.required))
                .collect();
            assert_eq!(
                rows, fields,
                "{name}: the documented fields and the catalogue's"
            );
        }
    }

    #[test]
    fn typos_get_the_nearest_name() {
        let c = Catalogue::shipped();
        assert_eq!(
            c.event_hint("AdmisionCreated"),
            " (did you mean AdmissionCreated?)"
        );
        assert_eq!(c.stream_type_hint("Admision"), " (did you mean Admission?)");
        assert_eq!(c.event_hint("Zzz"), "");
        let fields = &c.event("AdmissionCreated").unwrap().fields;
        assert_eq!(
            hint("patient_mrm", fields.keys()),
            " (did you mean patient_mrn?)"
        );
    }

    #[test]
    fn an_extension_adds_types_and_refuses_redefinitions() {
        let c = Catalogue::shipped();
        let file = Path::new("mappings/t/catalogue.yaml");
        let ext = c
            .extend(
                file,
                "stream_types:\n  Device: a monitor\nevents:\n  VitalSignsRecorded:\n    streams: [Device, Patient]\n    fields:\n      heart_rate: { type: number, required: true }\n",
            )
            .unwrap();
        assert!(ext.event("VitalSignsRecorded").is_some());
        assert!(
            ext.event("AdmissionCreated").is_some(),
            "keeps the shipped ones"
        );
        assert!(
            c.event("VitalSignsRecorded").is_none(),
            "the shipped one is untouched"
        );
        let errs = c
            .extend(
                file,
                "events:\n  AdmissionCreated:\n    streams: [Admission]\n    fields: {}\n  Bad:\n    streams: [Admision]\n    fields: { Heart: { type: number } }\n",
            )
            .unwrap_err();
        let shown: Vec<String> = errs.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                "mappings/t/catalogue.yaml:3:5: event type AdmissionCreated is already in the catalogue: choose another name",
                "mappings/t/catalogue.yaml:6:5: event type Bad: unknown stream type \"Admision\" (did you mean Admission?)",
                "mappings/t/catalogue.yaml:6:5: event type Bad: field name \"Heart\" must be snake_case",
            ]
        );
        let errs = c
            .extend(
                file,
                "events:\n  X:\n    streams: [Patient]\n    fields: { a: { type: text } }\n",
            )
            .unwrap_err();
        assert_eq!(errs[0].line, 4, "{}", errs[0]);
    }
}
