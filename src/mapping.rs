//! `intake check` and `intake map`: validate mapping files, and dry-run messages through
//! them (nothing is stored).

use crate::config::Config;
use crate::context::{is_fhir_file, load_tenants};
use anyhow::{bail, Context, Result};
use intake_adapters::mllp::client::split_file;
use intake_pipeline::{process, Disposition, Format, RawMessage};
use serde_json::json;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Validates the mapping files in `dir`; prints one line per tenant, or the errors.
pub fn check(dir: &Path, config: Option<&Config>) -> ExitCode {
    let Some(tenants) = load_tenants(dir) else {
        return ExitCode::FAILURE;
    };
    // Tenants the configuration names (token entries, bound components) must exist.
    let named = config.into_iter().flat_map(|c| {
        let tokens = c
            .tenant_tokens
            .keys()
            .map(|t| ("[tenant_tokens] entry", t.clone()));
        let bound = c.components().into_iter().flat_map(|x| x.bound_tenants());
        tokens.chain(bound.map(|t| ("a component", t)))
    });
    let missing: Vec<(&str, String)> = named.filter(|(_, t)| tenants.get(t).is_none()).collect();
    for (what, tenant) in &missing {
        eprintln!(
            "config: {what} names tenant {tenant:?}, which has no folder in {}",
            dir.display()
        );
    }
    if !missing.is_empty() {
        eprintln!("{} error(s) in the configuration", missing.len());
        return ExitCode::FAILURE;
    }
    for t in tenants.iter() {
        let codes: Vec<&str> = t.rules.message_codes().collect();
        let types: Vec<&str> = t.fhir.rules.resource_types().collect();
        let fhir = if types.is_empty() {
            String::new()
        } else {
            format!("; FHIR {}", types.join(", "))
        };
        out!(
            "ok: tenant {} (mapping version {}): {}{fhir}",
            t.name,
            t.version,
            codes.join(", ")
        );
    }
    ExitCode::SUCCESS
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
