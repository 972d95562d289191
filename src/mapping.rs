//! `intake check` and `intake map`: validate mapping files, and dry-run messages through
//! them (nothing is stored).

use crate::config::Config;
use crate::context::{is_fhir_file, load_tenants};
use anyhow::{bail, Context, Result};
use intake_adapters::http::tokens::{TokensFile, EVERY_TENANT};
use intake_adapters::mllp::client::split_file;
use intake_pipeline::mapping::{LoadError, Tenants};
use intake_pipeline::{process, Disposition, Format, RawMessage};
use serde_json::{json, Value};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// How `intake check` reports, besides its exit code.
pub struct CheckReport {
    /// One JSON document on stdout instead of text.
    pub json: bool,
    /// Also a JUnit XML report in this file.
    pub junit: Option<PathBuf>,
}

/// Validates the mapping files in `dir` (and, given its configuration, the tenants it
/// names). Reports each tenant that loads, or every error at `file:line:col`.
pub fn check(dir: &Path, config: Option<&Config>, report: &CheckReport) -> Result<ExitCode> {
    let (tenants, errors) = match Tenants::load(dir) {
        Ok(t) => (Some(t), Vec::new()),
        Err(errors) => (None, errors),
    };
    // Tenants the configuration names (token entries, bound components) must exist.
    let config_errors: Vec<String> = match &tenants {
        Some(tenants) => config
            .into_iter()
            .flat_map(named_tenants)
            .filter(|(_, t)| tenants.get(t).is_none())
            .map(|(what, tenant)| {
                format!(
                    "{what} names tenant {tenant:?}, which has no folder in {}",
                    dir.display()
                )
            })
            .collect(),
        None => Vec::new(),
    };
    let loaded: Vec<Value> = tenants
        .iter()
        .flat_map(|t| t.iter())
        .map(|t| summary(t))
        .collect();
    let ok = errors.is_empty() && config_errors.is_empty();
    if report.json {
        let errors: Vec<Value> = errors
            .iter()
            .map(|e| json!({"file": e.file, "line": e.line, "column": e.column, "message": e.message}))
            .collect();
        let doc = json!({
            "ok": ok, "mappings": dir, "tenants": if ok { loaded } else { Vec::new() },
            "errors": errors, "config_errors": config_errors,
        });
        out!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        print_text(dir, &errors, &config_errors, &loaded);
    }
    if let Some(path) = &report.junit {
        crate::junit::write(
            path,
            "intake check",
            &[junit_suite(dir, &errors, &config_errors)],
        )?;
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The tenants a configuration names, with what names them.
fn named_tenants(c: &Config) -> Vec<(&'static str, String)> {
    let tokens = c
        .tenant_tokens
        .keys()
        .map(|t| ("[tenant_tokens] entry", t.clone()));
    let bound = c.components().into_iter().flat_map(|x| x.bound_tenants());
    // A tokens file that does not read is `serve`'s to refuse, with its own error.
    let file = TokensFile::read(&c.tokens_file).unwrap_or_default().tokens;
    let file = file
        .into_iter()
        .filter(|t| t.tenant != EVERY_TENANT)
        .map(|t| ("tokens file entry", t.tenant));
    tokens
        .chain(file)
        .chain(bound.map(|t| ("a component", t)))
        .collect()
}

/// What `check` says of a tenant that loads.
fn summary(t: &intake_pipeline::mapping::Tenant) -> Value {
    let codes: Vec<&str> = t.rules.message_codes().collect();
    let types: Vec<&str> = t.fhir.rules.resource_types().collect();
    let plugins: Vec<String> = (t.plugins.names().iter())
        .map(|(name, version)| format!("{name} {version}"))
        .collect();
    json!({"name": t.name, "version": t.version, "message_types": codes, "fhir_resources": types, "plugins": plugins})
}

/// The text report: errors on stderr, one `ok:` line per tenant on stdout.
fn print_text(dir: &Path, errors: &[LoadError], config_errors: &[String], loaded: &[Value]) {
    if !errors.is_empty() {
        for e in errors {
            eprintln!("{e}");
        }
        eprintln!("{} error(s) in {}", errors.len(), dir.display());
        return;
    }
    if !config_errors.is_empty() {
        for e in config_errors {
            eprintln!("config: {e}");
        }
        eprintln!("{} error(s) in the configuration", config_errors.len());
        return;
    }
    let words = |v: &Value| -> Vec<String> {
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_str().map(str::to_string))
            .collect()
    };
    for t in loaded {
        let types = words(&t["fhir_resources"]);
        let fhir = if types.is_empty() {
            String::new()
        } else {
            format!("; FHIR {}", types.join(", "))
        };
        let plugins = words(&t["plugins"]);
        let plugins = if plugins.is_empty() {
            String::new()
        } else {
            format!("; plugins {}", plugins.join(", "))
        };
        out!(
            "ok: tenant {} (mapping version {}): {}{fhir}{plugins}",
            t["name"].as_str().unwrap_or_default(),
            t["version"].as_str().unwrap_or_default(),
            words(&t["message_types"]).join(", ")
        );
    }
}

/// One JUnit case per tenant folder (its files' errors), one for errors outside any
/// tenant folder, and one for the configuration when it was checked.
fn junit_suite(dir: &Path, errors: &[LoadError], config_errors: &[String]) -> crate::junit::Suite {
    let mut folders: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    folders.sort();
    let tenant_of = |e: &LoadError| -> Option<String> {
        let rest = e.file.strip_prefix(dir).ok()?;
        let first = rest.components().next()?;
        let name = first.as_os_str().to_string_lossy().into_owned();
        folders.contains(&name).then_some(name)
    };
    let case = |name: &str, problems: Vec<String>| crate::junit::Case {
        name: name.to_string(),
        classname: "intake.check".into(),
        problems,
    };
    let mut cases: Vec<crate::junit::Case> = folders
        .iter()
        .map(|t| {
            let mine = errors.iter().filter(|e| tenant_of(e).as_ref() == Some(t));
            case(t, mine.map(ToString::to_string).collect())
        })
        .collect();
    let outside: Vec<String> = errors
        .iter()
        .filter(|e| tenant_of(e).is_none())
        .map(ToString::to_string)
        .collect();
    if !outside.is_empty() || folders.is_empty() {
        cases.push(case("mappings", outside));
    }
    cases.push(case("configuration", config_errors.to_vec()));
    crate::junit::Suite {
        name: "intake check".into(),
        cases,
    }
}

/// Maps `files` with `tenant`'s mappings and prints the events (or dead letters) as JSON.
pub fn map(config: &Config, tenant: &str, files: &[PathBuf]) -> Result<ExitCode> {
    let Some(tenants) = load_tenants(&config.mappings_dir) else {
        return Ok(ExitCode::FAILURE);
    };
    if tenants.get(tenant).is_none() {
        bail!("no tenant {tenant:?} in {}", config.mappings_dir.display());
    }
    let mut failed = false;
    let mut out = std::io::stdout().lock();
    for file in files {
        let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
        // A FHIR file (.json / .xml) is one resource or Bundle, mapped as if posted.
        let (format, channel, messages) = if is_fhir_file(file) {
            (Format::sniff_fhir(&bytes), "fhir", vec![bytes])
        } else {
            (Format::Hl7v2, "map", split_file(&bytes))
        };
        for (i, message) in messages.into_iter().enumerate() {
            let p = process(
                RawMessage::new(Some(tenant.into()), format, channel, message),
                &tenants,
            );
            let line = match &p.disposition {
                Disposition::Events(events) => {
                    json!({"file": file, "message": i + 1, "events": events})
                }
                Disposition::Filtered(f) => {
                    json!({"file": file, "message": i + 1, "filtered": {"reason": f.reason, "file": f.file}})
                }
                Disposition::DeadLetter { rejection, .. } => {
                    failed = true;
                    json!({"file": file, "message": i + 1, "dead_letter": {
                        "stage": rejection.reason.stage(), "code": rejection.reason.code(), "detail": rejection.detail,
                    }})
                }
            };
            writeln!(out, "{}", serde_json::to_string_pretty(&line)?)?;
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
