//! Tenants and their mapping files (data, not code).
//!
//! ```text
//! mappings/<tenant>/tenant.yaml   settings: time zone, ACK policy, routing (MSH-4 / MSH-6 claims),
//!                                 retention of raw messages
//! mappings/<tenant>/*.yaml        rule files: `rules:` matched on MSH-9, emitting events,
//!                                 or `resources:` matched on the FHIR resource type
//! mappings/<tenant>/tables/*.csv  code tables (or .yaml), used by fields with `table:`
//! ```
//! Loading validates everything (paths, names, types) and reports every problem as
//! `file:line:col: message`. A tenant's mapping version is a hash of all its files.
//! [`reload`] swaps in edited mappings while the engine runs.

pub mod catalogue;
mod check;
pub mod expr;
pub mod fhir;
pub mod fold;
pub mod hl7;
mod kinds;
mod language;
pub mod plugin;
pub mod reload;
mod routing;
mod rules;
mod schema;
mod tables;
#[cfg(test)]
mod tests;

pub use check::Checker;
pub use fhir::Fhir;
pub use hl7::Hl7;
pub use kinds::{FieldType, OnItemError, OnMiss, Transform};
pub use language::{Keys, Language, SyntaxError};
pub use rules::{Filter, Mapped, MappedEvent, RuleSet, SkippedItem};
pub use tables::Tables;

use catalogue::Catalogue;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What a dead-lettered message is acknowledged with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeadLetterAck {
    /// AA / CA: the engine has custody; the sender's queue moves on (default).
    #[default]
    Accept,
    /// AE / CE.
    Error,
}

/// One tenant: its settings and compiled rules.
#[derive(Debug)]
pub struct Tenant {
    /// The tenant id (its folder name).
    pub name: String,
    /// Time zone for HL7 timestamps without an offset.
    pub timezone: chrono_tz::Tz,
    /// ACK policy for dead letters.
    pub ack_on_dead_letter: DeadLetterAck,
    /// Bounds on an HL7 v2 message's segments and repetitions.
    pub hl7_limits: crate::hl7::Limits,
    /// MSH-4 values this tenant claims.
    pub sending_facilities: Vec<String>,
    /// MSH-6 values this tenant claims.
    pub receiving_facilities: Vec<String>,
    /// The compiled HL7 v2 rules (`rules:` files).
    pub rules: RuleSet<Hl7>,
    /// Short hash of all the tenant's mapping files: the mapping version.
    pub version: String,
    /// FHIR settings and rules.
    pub fhir: FhirSettings,
    /// The plugins it enables (`plugins:` in tenant.yaml), in that order.
    pub plugins: plugin::Enabled,
    /// The event catalogue its rules were checked against (shipped, plugins, its own
    /// extension): what the stream-state fold reads.
    pub catalogue: Arc<Catalogue>,
    /// The files this version was loaded from (path below the tenant folder → text): what
    /// the version history keeps, and a rollback restores.
    pub files: Arc<BTreeMap<String, String>>,
    /// Days its raw messages are kept after receipt (`retention: raw_messages_days` in
    /// tenant.yaml); None: forever. `intake prune` applies it.
    pub raw_retention_days: Option<u32>,
    /// The routing claims, located (for the check across tenants of a staged reload).
    claims: Vec<routing::Claim>,
}

/// A tenant's FHIR input settings (`fhir:` in tenant.yaml) and rules (`resources:` files).
#[derive(Debug, Clone, Default)]
pub struct FhirSettings {
    /// How strictly resources are validated.
    pub mode: crate::fhir::decode::Mode,
    /// Most JSON values or XML elements in one body (`fhir.max_items`).
    pub max_items: usize,
    /// The compiled FHIR rules.
    pub rules: RuleSet<Fhir>,
}

/// All tenants loaded from a mappings folder.
#[derive(Debug, Default)]
pub struct Tenants {
    by_name: BTreeMap<String, Arc<Tenant>>,
}

/// A problem in a mapping file, located as precisely as possible.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadError {
    /// The file.
    pub file: PathBuf,
    /// 1-based line (0 when unknown).
    pub line: u32,
    /// 1-based column (0 when unknown).
    pub column: u32,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file.display(),
            self.line,
            self.column,
            self.message
        )
    }
}

impl Tenants {
    /// Loads and validates every tenant under `dir`, with the plugins of the folder
    /// beside it ([`plugin::dir_beside`]); returns all problems found.
    pub fn load(dir: &Path) -> Result<Tenants, Vec<LoadError>> {
        Tenants::load_with(dir, &plugin::dir_beside(dir))
    }

    /// Loads and validates every tenant under `dir` and every plugin under `plugins`
    /// (a plugin that does not load is an error even when no tenant enables it).
    pub fn load_with(dir: &Path, plugins: &Path) -> Result<Tenants, Vec<LoadError>> {
        let mut errors = Vec::new();
        let (plugins, plugin_errors) = plugin::Plugins::load(plugins);
        errors.extend(plugin_errors);
        let mut by_name = BTreeMap::new();
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) => return Err(vec![LoadError::io(dir, &e)]),
        };
        let mut dirs: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.is_dir())
            .collect();
        dirs.sort();
        let mut claims = Vec::new();
        for tdir in dirs {
            match load_tenant(&tdir, &plugins) {
                Ok((t, c)) => {
                    claims.push((t.name.clone(), c));
                    by_name.insert(t.name.clone(), Arc::new(t));
                }
                Err(mut e) => errors.append(&mut e),
            }
        }
        errors.extend(routing::overlaps(
            claims.iter().map(|(t, c)| (t.as_str(), c.as_slice())),
        ));
        if by_name.is_empty() && errors.is_empty() {
            errors.push(LoadError {
                file: dir.to_path_buf(),
                line: 0,
                column: 0,
                message: "no tenant here: each tenant is a folder holding a tenant.yaml".into(),
            });
        }
        if errors.is_empty() {
            Ok(Tenants { by_name })
        } else {
            Err(errors)
        }
    }

    /// These tenants as one snapshot, refused when their routing claims overlap (as
    /// [`Tenants::load`] refuses them): a staged reload that keeps some tenants' previous
    /// versions checks the mix again.
    pub(crate) fn from_tenants(
        by_name: BTreeMap<String, Arc<Tenant>>,
    ) -> Result<Tenants, Vec<LoadError>> {
        let errors = routing::overlaps(
            by_name
                .values()
                .map(|t| (t.name.as_str(), t.claims.as_slice())),
        );
        if errors.is_empty() {
            Ok(Tenants { by_name })
        } else {
            Err(errors)
        }
    }

    /// The tenant with this id.
    pub fn get(&self, name: &str) -> Option<&Arc<Tenant>> {
        self.by_name.get(name)
    }

    /// All tenants, by id.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Tenant>> {
        self.by_name.values()
    }
}

impl LoadError {
    pub(crate) fn io(path: &Path, e: &std::io::Error) -> Self {
        LoadError {
            file: path.to_path_buf(),
            line: 0,
            column: 0,
            message: e.to_string(),
        }
    }
}

/// Whether a rules file is a FHIR one: its first top-level key is `resources:`.
fn is_fhir(text: &str) -> bool {
    text.lines()
        .map(str::trim_end)
        .find(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with(' ') && *l != "---")
        .is_some_and(|l| l.starts_with("resources:"))
}

/// Loads one tenant folder, with its routing claims for the check across tenants.
fn load_tenant(
    dir: &Path,
    plugins: &plugin::Plugins,
) -> Result<(Tenant, Vec<routing::Claim>), Vec<LoadError>> {
    let name = dir
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .to_string();
    let settings_path = dir.join("tenant.yaml");
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        || name.is_empty()
    {
        return Err(vec![LoadError {
            file: dir.to_path_buf(),
            line: 0,
            column: 0,
            message: "tenant folder names use a-z, 0-9, - and _ only".into(),
        }]);
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| vec![LoadError::io(dir, &e)])?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    files.sort();
    if !files.contains(&settings_path) {
        return Err(vec![LoadError {
            file: settings_path,
            line: 0,
            column: 0,
            message: "missing tenant.yaml".into(),
        }]);
    }
    let mut hash = Sha256::new();
    let mut sources = BTreeMap::new();
    let mut errors = Vec::new();
    let mut settings = None;
    let (tables, table_files) = Tables::load(dir, &mut errors);
    for (name, text) in table_files {
        hash.update(name.as_bytes());
        hash.update([0]);
        hash.update(text.as_bytes());
        hash.update([0]);
        sources.insert(name, text);
    }
    let mut rules = RuleSet::new(Hl7, tables.clone());
    let mut fhir_files = Vec::new();
    // The tenant's own event types, if any, extend the shipped catalogue first.
    let catalogue_path = dir.join(catalogue::EXTENSION_FILE);
    let mut extension = None;
    let mut rule_files = Vec::new();
    for file in &files {
        let text = match std::fs::read_to_string(file) {
            Ok(t) => t,
            Err(e) => {
                errors.push(LoadError::io(file, &e));
                continue;
            }
        };
        let fname = file
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        hash.update(fname.as_bytes());
        hash.update([0]);
        hash.update(text.as_bytes());
        hash.update([0]);
        sources.insert(fname.to_string(), text.clone());
        if *file == settings_path {
            settings = check::settings(file, &text)
                .map_err(|e| errors.extend(e))
                .ok();
        } else if *file == catalogue_path {
            extension = Some((file.clone(), text));
        } else {
            rule_files.push((file, text));
        }
    }
    // The plugins it enables add their event types to the catalogue before its own
    // extension is checked against it.
    let enabled = settings
        .as_ref()
        .map(|s| enable(&settings_path, s, plugins, &mut errors, &mut hash))
        .unwrap_or_default();
    let mut base = Cow::Borrowed(Catalogue::shipped());
    for p in &enabled.0 {
        match base.extend_spec(&p.file, p.catalogue.clone()) {
            Ok(c) => base = Cow::Owned(c),
            Err(e) => errors.extend(e),
        }
    }
    if let Some((file, text)) = &extension {
        match base.extend(file, text) {
            Ok(c) => base = Cow::Owned(c),
            Err(e) => errors.extend(e),
        }
    }
    let catalogue = base;
    for (file, text) in rule_files {
        if is_fhir(&text) {
            fhir_files.push((file, text)); // after tenant.yaml: paths use its identifiers
        } else if let Err(e) = check::rules(file, &text, &mut rules, &catalogue) {
            errors.extend(e);
        }
    }
    // Errors by file, in name order (stable: a file's own errors keep their order).
    errors.sort_by(|a, b| a.file.cmp(&b.file));
    let Some(settings) = settings else {
        return Err(errors);
    };
    rules.max_events = settings.max_events_per_message;
    let mut fhir = FhirSettings {
        mode: settings.fhir_mode,
        max_items: settings.fhir_max_items,
        rules: RuleSet::new(Fhir::new(settings.identifiers.clone()), tables),
    };
    fhir.rules.max_events = settings.max_events_per_message;
    for (file, text) in fhir_files {
        if let Err(e) = check::rules(file, &text, &mut fhir.rules, &catalogue) {
            errors.extend(e);
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let digest = hash.finalize();
    let tenant = Tenant {
        name,
        timezone: settings.timezone,
        ack_on_dead_letter: settings.ack_on_dead_letter,
        hl7_limits: settings.hl7_limits,
        sending_facilities: routing::values(&settings.claims, routing::Field::Sending),
        receiving_facilities: routing::values(&settings.claims, routing::Field::Receiving),
        rules,
        fhir,
        version: crate::hex(&digest[..6]),
        plugins: enabled,
        catalogue: Arc::new(catalogue.into_owned()),
        files: Arc::new(sources),
        claims: settings.claims.clone(),
        raw_retention_days: settings.raw_retention_days,
    };
    Ok((tenant, settings.claims))
}

/// The plugins `settings` enable, found in `plugins`; each one's manifest counts in the
/// tenant's mapping version. An unknown or repeated name is an error at its place in
/// tenant.yaml.
fn enable(
    file: &Path,
    settings: &check::Settings,
    plugins: &plugin::Plugins,
    errors: &mut Vec<LoadError>,
    hash: &mut Sha256,
) -> plugin::Enabled {
    let mut enabled: Vec<Arc<plugin::Plugin>> = Vec::new();
    for name in &settings.plugins {
        let at = |message: String| LoadError {
            file: file.to_path_buf(),
            line: name.referenced.line() as u32,
            column: name.referenced.column() as u32,
            message,
        };
        match plugins.get(&name.value) {
            Some(_) if enabled.iter().any(|p| p.name == name.value) => {
                errors.push(at(format!("plugin {:?} is enabled twice", name.value)))
            }
            Some(p) => {
                hash.update(b"plugin\0");
                hash.update(p.name.as_bytes());
                hash.update([0]);
                hash.update(p.text.as_bytes());
                hash.update([0]);
                enabled.push(p.clone());
            }
            None if plugins.is_broken(&name.value) => {} // its own errors say why
            None => errors.push(at(format!(
                "unknown plugin {:?}{} (plugins are folders holding a manifest.yaml)",
                name.value,
                catalogue::hint(&name.value, plugins.iter().map(|p| p.name.as_str()))
            ))),
        }
    }
    plugin::Enabled(enabled)
}

/// A YAML syntax or schema error, located.
pub(crate) fn yaml_error(file: &Path, e: &serde_saphyr::Error) -> LoadError {
    let (line, column) = e
        .location()
        .map(|l| (l.line() as u32, l.column() as u32))
        .unwrap_or((0, 0));
    // The first line of the error is the message; the rest is a rendered snippet. Drop
    // the library's own "error: line N column M: " prefix: we print the location.
    let text = e.to_string();
    let first = text.lines().next().unwrap_or("invalid YAML").trim();
    let mut message = first.strip_prefix("error: ").unwrap_or(first);
    if let Some((head, rest)) = message.split_once(": ") {
        if head.starts_with("line ") && head.contains(" column ") {
            message = rest;
        }
    }
    LoadError {
        file: file.to_path_buf(),
        line,
        column,
        message: message.to_string(),
    }
}
