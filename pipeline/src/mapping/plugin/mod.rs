//! Specialty plugins: `plugins/<name>/manifest.yaml`, data, not code (DESIGN §2).
//!
//! A plugin adds event types to the catalogue, derivation rules and validations. A tenant
//! enables plugins by name in its `tenant.yaml` (`plugins: [adt-core, cardiac]`); its
//! catalogue is then the shipped one, its plugins' types and its own extension, and its
//! mapping version covers the manifests too (an edited manifest reloads like a mapping).
//!
//! Where each part runs (DESIGN §1, step 5):
//! - rules that read only the new event run in [`crate::pipeline::process`], pure, right
//!   after the mapping; then the validations run over mapped and derived events, and a
//!   value outside them dead-letters the message or flags the event;
//! - rules that read the stream's state (`state.`) run in the store's commit, where that
//!   state is known: the stored events of the stream and the batch's earlier events,
//!   folded. Their events are appended in the same transaction, right after the event
//!   that triggered them, and validated with `flag` only (the message is accepted by
//!   then).
//!
//! A derived event's id is a function of the event that triggered it, the plugin and the
//! rule, so a replay, a resend or a re-map never derives it twice; its metadata names the
//! plugin, its version and the rule (`derived`).

mod manifest;
pub mod rules;

pub use manifest::API_VERSION;
pub use rules::{Flag, OnInvalid};

use super::catalogue::CatalogueFile;
use super::expr::Scope;
use super::rules::MappedEvent;
use super::LoadError;
use crate::event::{self, NewEvent};
use crate::reason::{Reason, Rejection};
use chrono::{DateTime, SecondsFormat, Utc};
use rules::{Rule, Validation};
use serde::Serialize;
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The manifest's file name in a plugin folder.
pub const MANIFEST: &str = "manifest.yaml";

/// One loaded, checked plugin.
#[derive(Debug)]
pub struct Plugin {
    /// Its name (its folder's).
    pub name: String,
    /// `metadata.version`.
    pub version: String,
    /// Its manifest file.
    pub file: PathBuf,
    /// The manifest's text (part of each enabling tenant's mapping version).
    pub text: String,
    /// The types it adds, as the catalogue reads them.
    pub(crate) catalogue: CatalogueFile,
    /// The names of the event types it adds.
    pub events: BTreeSet<String>,
    /// Its derivation rules.
    pub rules: Vec<Rule>,
    /// Its validations.
    pub validations: Vec<Validation>,
}

/// Every plugin of a plugins folder, by name.
#[derive(Debug, Default)]
pub struct Plugins {
    by_name: BTreeMap<String, Arc<Plugin>>,
    /// Folders whose manifest did not load (their errors are reported once, not again
    /// as an unknown name in each tenant that enables them).
    broken: BTreeSet<String>,
}

/// Where a derived event came from (its metadata's `derived`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Derived {
    /// The plugin.
    pub plugin: String,
    /// Its version.
    pub version: String,
    /// The rule.
    pub rule: String,
}

/// The folder of plugins that goes with a mappings folder: `plugins/` beside it (the
/// layout of the repository and of an installation: `mappings/` and `plugins/`).
pub fn dir_beside(mappings: &Path) -> PathBuf {
    mappings.parent().unwrap_or(Path::new(".")).join("plugins")
}

impl Plugins {
    /// Loads and checks every `<dir>/<name>/manifest.yaml`; a missing folder holds no
    /// plugins. Returns the plugins that load, and every problem found.
    pub fn load(dir: &Path) -> (Plugins, Vec<LoadError>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return (Plugins::default(), Vec::new());
        };
        let mut folders: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.join(MANIFEST).is_file())
            .collect();
        folders.sort();
        let mut by_name = BTreeMap::new();
        let mut broken = BTreeSet::new();
        let mut errors = Vec::new();
        for folder in folders {
            let name = folder
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
                .to_string();
            let file = folder.join(MANIFEST);
            let text = match std::fs::read_to_string(&file) {
                Ok(t) => t,
                Err(e) => {
                    errors.push(LoadError::io(&file, &e));
                    broken.insert(name);
                    continue;
                }
            };
            match manifest::load(&file, &name, &text) {
                Ok(p) => {
                    by_name.insert(name, Arc::new(p));
                }
                Err(e) => {
                    errors.extend(e);
                    broken.insert(name);
                }
            }
        }
        (Plugins { by_name, broken }, errors)
    }

    /// Whether a plugin of this name exists but did not load.
    pub fn is_broken(&self, name: &str) -> bool {
        self.broken.contains(name)
    }

    /// The plugin of this name.
    pub fn get(&self, name: &str) -> Option<&Arc<Plugin>> {
        self.by_name.get(name)
    }

    /// Every plugin, by name.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Plugin>> {
        self.by_name.values()
    }
}

/// The plugins one tenant enables, in the order its `tenant.yaml` lists them.
#[derive(Debug, Clone, Default)]
pub struct Enabled(pub Vec<Arc<Plugin>>);

impl Enabled {
    /// Pure derivation: appends the events that rules reading no state derive from
    /// `mapped` (each on its trigger's stream, at its time). `received_at` stands in for
    /// a trigger without a time of its own.
    pub fn derive_pure(&self, mapped: &mut Vec<MappedEvent>, received_at: DateTime<Utc>) {
        let empty = Map::new();
        let mut derived = Vec::new();
        for trigger in mapped.iter() {
            let mut rules = self
                .rules(&trigger.event_type, &trigger.stream_type)
                .filter(|(_, r)| !r.reads_state())
                .peekable();
            if rules.peek().is_none() {
                continue; // the common case: no time formatted, nothing allocated
            }
            let at = trigger
                .time
                .unwrap_or(received_at)
                .to_rfc3339_opts(SecondsFormat::Millis, true);
            let scope = Scope {
                data: &trigger.data,
                effective_at: &at,
                state: &empty,
            };
            for (plugin, rule) in rules {
                let Some(data) = rule.fire(&scope) else {
                    continue;
                };
                derived.push(MappedEvent {
                    event_type: rule.emit.clone(),
                    stream_type: trigger.stream_type.clone(),
                    stream_key: trigger.stream_key.clone(),
                    time: trigger.time,
                    data,
                    file: format!("plugins/{}/{MANIFEST}", plugin.name),
                    source_key: (trigger.source_key.as_ref())
                        .map(|k| format!("{k}#{}#{}", plugin.name, rule.name)),
                    derived: Some(plugin.derived(rule)),
                    flags: Vec::new(),
                });
            }
        }
        mapped.extend(derived);
    }

    /// Runs the validations over `events`: a failed `dead_letter` validation stops the
    /// message (`PLUGIN_VALIDATION_FAILED`, naming the plugin, event type and field, never
    /// the value); a failed `flag` one adds a [`Flag`] to the event.
    pub fn validate(&self, events: &mut [MappedEvent]) -> Result<(), Rejection> {
        for e in events.iter_mut() {
            for (plugin, v) in self.validations(&e.event_type) {
                if v.passes(&e.data) {
                    continue;
                }
                if v.on_invalid == OnInvalid::DeadLetter {
                    return Err(Rejection::with_detail(
                        Reason::PluginValidationFailed,
                        format!(
                            "plugin {} {}: {}.{} is not in {}",
                            plugin.name,
                            plugin.version,
                            e.event_type,
                            v.field,
                            v.expected()
                        ),
                    ));
                }
                e.flags.push(plugin.flag(v));
            }
        }
        Ok(())
    }

    /// Whether any rule that reads stream state is triggered by this event type on this
    /// stream type (then the store folds the stream for it).
    pub fn reads_state_for(&self, event_type: &str, stream_type: &str) -> bool {
        self.rules(event_type, stream_type)
            .any(|(_, r)| r.reads_state())
    }

    /// Derivation in the commit: the events that rules reading state derive from
    /// `trigger`, given its stream's `state` before it. Ids follow from the trigger's.
    pub fn derive_stateful(&self, state: &Map<String, Value>, trigger: &NewEvent) -> Vec<NewEvent> {
        let at = trigger
            .metadata
            .get("effective_at")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let scope = Scope {
            data: &trigger.data,
            effective_at: at,
            state,
        };
        self.rules(&trigger.event_type, &trigger.stream_type)
            .filter(|(_, r)| r.reads_state())
            .filter_map(|(plugin, rule)| {
                let data = rule.fire(&scope)?;
                let flags: Vec<Flag> = self
                    .validations(&rule.emit)
                    .filter(|(_, v)| !v.passes(&data))
                    .map(|(p, v)| p.flag(v))
                    .collect();
                Some(derived_event(trigger, plugin, rule, data, flags))
            })
            .collect()
    }

    /// The (name, version) of each enabled plugin.
    pub fn names(&self) -> Vec<(&str, &str)> {
        self.0
            .iter()
            .map(|p| (p.name.as_str(), p.version.as_str()))
            .collect()
    }

    fn rules<'a>(
        &'a self,
        event_type: &'a str,
        stream_type: &'a str,
    ) -> impl Iterator<Item = (&'a Plugin, &'a Rule)> + 'a {
        self.0.iter().flat_map(move |p| {
            p.rules
                .iter()
                .filter(move |r| r.triggered_by(event_type, stream_type))
                .map(move |r| (p.as_ref(), r))
        })
    }

    fn validations<'a>(
        &'a self,
        event_type: &'a str,
    ) -> impl Iterator<Item = (&'a Plugin, &'a Validation)> + 'a {
        self.0.iter().flat_map(move |p| {
            p.validations
                .iter()
                .filter(move |v| v.event == event_type)
                .map(move |v| (p.as_ref(), v))
        })
    }
}

impl Plugin {
    fn derived(&self, rule: &Rule) -> Derived {
        Derived {
            plugin: self.name.clone(),
            version: self.version.clone(),
            rule: rule.name.clone(),
        }
    }

    fn flag(&self, v: &Validation) -> Flag {
        Flag {
            plugin: self.name.clone(),
            field: v.field.clone(),
            expected: v.expected(),
        }
    }
}

/// The event `rule` of `plugin` derives from `trigger`: on its stream, from its message,
/// with an id made of (the trigger's id, plugin, rule) and the trigger's time.
fn derived_event(
    trigger: &NewEvent,
    plugin: &Plugin,
    rule: &Rule,
    data: Value,
    flags: Vec<Flag>,
) -> NewEvent {
    // The trigger's id holds its time in its high 48 bits (milliseconds).
    let b = trigger.event_id.as_bytes();
    let ms = u64::from_be_bytes([0, 0, b[0], b[1], b[2], b[3], b[4], b[5]]);
    let time = DateTime::from_timestamp_millis(ms as i64).unwrap_or(DateTime::UNIX_EPOCH);
    let source = format!("{}\u{0}{}\u{0}{}", trigger.event_id, plugin.name, rule.name);
    let mut metadata = trigger.metadata.clone();
    metadata["derived"] = json!({
        "plugin": plugin.name,
        "version": plugin.version,
        "rule": rule.name,
        "from_event": trigger.event_id,
    });
    if !flags.is_empty() {
        metadata["flags"] = json!(flags);
    }
    NewEvent {
        event_id: event::event_id(time, &trigger.tenant_id, &source, 0),
        stream_id: trigger.stream_id,
        stream_type: trigger.stream_type.clone(),
        stream_key: trigger.stream_key.clone(),
        event_type: rule.emit.clone(),
        tenant_id: trigger.tenant_id.clone(),
        data,
        metadata,
        message_id: trigger.message_id,
    }
}
