//! Every FHIR file of the shared corpus (JSON and XML) goes through the whole pipeline for
//! the shipped demo tenant (decode with fhirbolt in the tenant's mode, then its FHIR
//! rules): no panic, and each file either becomes events or is dead-lettered with a known
//! code and a short, PHI-free detail. Counts are printed per outcome and code, for the
//! decode stage alone and for the full pipeline.
//!
//! The corpus lives beside the checkout (`INTAKE_CORPUS`, default `../shared/corpus`);
//! without it this test says so and passes, unless `INTAKE_REQUIRE_CORPUS=1`.

mod common;

use intake_pipeline::fhir::decode::decode;
use intake_pipeline::mapping::Tenants;
use intake_pipeline::{process, Disposition, Format, RawMessage, Reason};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn corpus() -> Option<PathBuf> {
    let dir = std::env::var("INTAKE_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus"));
    if dir.join("fhir").is_dir() {
        return Some(dir.join("fhir"));
    }
    assert!(
        std::env::var("INTAKE_REQUIRE_CORPUS").is_err(),
        "corpus not found at {}",
        dir.display()
    );
    eprintln!("corpus not found at {}: skipped", dir.display());
    None
}

/// The FHIR files (.json, .xml) under `dir`.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = common::files_under(dir);
    out.retain(|p| p.extension().is_some_and(|e| e == "json" || e == "xml"));
    out
}

/// A detail is a position, an element path, a depth, a resource type or a mapping field
/// name: short ASCII without spaces inside paths. Never a value.
fn assert_phi_free(file: &Path, reason: Reason, detail: &str) {
    assert!(
        detail.len() < 160 && detail.is_ascii(),
        "{}: detail is short ASCII: {detail}",
        file.display()
    );
    if reason == Reason::FhirInvalid {
        assert!(
            detail
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._[]?".contains(&b)),
            "{}: FHIR_INVALID detail is a path: {detail}",
            file.display()
        );
    }
}

/// The path of the first place two values differ (ignoring the narrative's XHTML
/// whitespace), if any.
fn first_difference(a: &Value, b: &Value, path: String) -> Option<String> {
    match (a, b) {
        // The corpus's JSON examples carry meta.tag where the XML ones carry meta.security.
        (Value::Object(x), Value::Object(y)) if path.is_empty() => {
            let strip = |m: &serde_json::Map<String, Value>| {
                let mut m = m.clone();
                m.remove("meta");
                Value::Object(m)
            };
            first_difference(&strip(x), &strip(y), "Resource".into())
        }
        (Value::Object(x), Value::Object(y)) => {
            for k in x.keys().chain(y.keys()) {
                let (va, vb) = (
                    x.get(k).unwrap_or(&Value::Null),
                    y.get(k).unwrap_or(&Value::Null),
                );
                if let Some(p) = first_difference(va, vb, format!("{path}.{k}")) {
                    return Some(p);
                }
            }
            None
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .enumerate()
            .find_map(|(i, (va, vb))| first_difference(va, vb, format!("{path}[{i}]"))),
        (Value::String(x), Value::String(y)) if path.ends_with(".div") => {
            let squash = |s: &str| s.split_whitespace().collect::<String>();
            (squash(x) != squash(y)).then_some(path)
        }
        _ => (a != b).then_some(path),
    }
}

#[test]
fn every_corpus_fhir_file_is_stored_or_has_a_precise_reason() {
    let Some(dir) = corpus() else { return };
    let tenants =
        Tenants::load(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("mappings")).unwrap();
    let mode = tenants.get("demo").unwrap().fhir.mode;
    let mut decoded: BTreeMap<String, usize> = BTreeMap::new();
    let mut outcomes: BTreeMap<String, usize> = BTreeMap::new();
    let mut values = BTreeMap::new();
    let all = files(&dir);
    for file in &all {
        let bytes = std::fs::read(file).unwrap();
        let ext = file.extension().unwrap().to_string_lossy().into_owned();
        let name = file.display().to_string();
        let d = std::panic::catch_unwind(|| decode(&bytes, Format::sniff_fhir(&bytes), mode))
            .unwrap_or_else(|_| panic!("{name}: decode panicked"));
        let key = match d {
            Ok(v) => {
                values
                    .entry(file.with_extension(""))
                    .or_insert_with(BTreeMap::new)
                    .insert(ext.clone(), v);
                "decoded".to_string()
            }
            Err(r) => {
                if let Some(detail) = &r.detail {
                    assert_phi_free(file, r.reason, detail);
                }
                eprintln!(
                    "  {}: {} {}",
                    file.file_name().unwrap().to_string_lossy(),
                    r.reason.code(),
                    r.detail.as_deref().unwrap_or("")
                );
                r.reason.code().to_string()
            }
        };
        *decoded.entry(format!("{ext:<4} {key}")).or_default() += 1;

        let raw = RawMessage::new(
            Some("demo".into()),
            Format::sniff_fhir(&bytes),
            "fhir",
            bytes.clone(),
        );
        let p = std::panic::catch_unwind(|| process(raw, &tenants))
            .unwrap_or_else(|_| panic!("{name}: pipeline panicked"));
        let key = match &p.disposition {
            Disposition::Events(e) => {
                assert!(!e.is_empty(), "{name}: stored means events");
                "events".to_string()
            }
            Disposition::Filtered(_) => "filtered".to_string(),
            Disposition::DeadLetter { rejection, .. } => {
                if let Some(detail) = &rejection.detail {
                    assert_phi_free(file, rejection.reason, detail);
                }
                rejection.reason.code().to_string()
            }
        };
        *outcomes.entry(key).or_default() += 1;
    }
    // The same resource sent as JSON and as XML decodes to the same value.
    let (mut same, mut differ) = (0, Vec::new());
    for (stem, by_ext) in &values {
        if let (Some(j), Some(x)) = (by_ext.get("json"), by_ext.get("xml")) {
            match first_difference(j, x, String::new()) {
                None => same += 1,
                Some(path) => differ.push(format!(
                    "{} at {path}",
                    stem.file_name().unwrap().to_string_lossy()
                )),
            }
        }
    }
    eprintln!("FHIR corpus, {} files, decode (mode {mode:?}):", all.len());
    for (k, n) in &decoded {
        eprintln!("  {k:<28} {n}");
    }
    eprintln!("full pipeline (demo tenant):");
    for (k, n) in &outcomes {
        eprintln!("  {k:<28} {n}");
    }
    eprintln!("JSON/XML twins decoding to the same value: {same}, differing: {differ:?}");
    assert!(
        all.len() >= 90,
        "expected the full corpus, found {}",
        all.len()
    );
    assert!(
        decoded.keys().any(|k| k.ends_with("decoded")),
        "some files decode"
    );
}
