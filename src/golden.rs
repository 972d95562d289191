//! `intake test`: golden-file tests for mapping authors.
//!
//! ```text
//! samples/<tenant>/<case>.hl7           one or more messages (each starts at a line beginning MSH)
//! samples/<tenant>/<case>.json|.xml     one FHIR resource or Bundle (mapped as if posted)
//! samples/<tenant>/<case>.events.json   expected outcome, one entry per message, in file order
//! ```
//! Each entry is `{"events": [{"event_type", "stream_type", "stream_id", "data"}, ...]}` or
//! `{"dead_letter": {"stage", "code", "detail"}}`. Only these deterministic fields are
//! compared. `event_id` (its time part falls back to the receipt time) and `metadata`
//! (correlation id, receipt time, mapping file and version) are left out, so a golden
//! file survives reruns and mapping edits that do not change the events.
//! Every case runs through [`process`] with the folder name as tenant; nothing is stored.
//! After the cases comes a field-coverage report per tenant: the mapped fields
//! ([`RuleSet::fields`](intake_pipeline::mapping::RuleSet::fields)) that no sample filled.

use anyhow::{bail, Context, Result};
use intake_adapters::mllp::client::split_file;
use intake_pipeline::event::NewEvent;
use intake_pipeline::mapping::Tenants;
use intake_pipeline::{process, Disposition, Format, RawMessage};
use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// One sample file and its golden file.
struct Case {
    /// The tenant: the name of the folder holding the sample.
    tenant: String,
    /// `<tenant>/<file stem>`, as printed.
    name: String,
    /// The messages.
    hl7: PathBuf,
    /// The expected outcome, `<case>.events.json` beside the messages.
    golden: PathBuf,
}

/// The compared outcome of one message; serialised as it is written to golden files.
#[derive(Serialize)]
#[serde(rename_all = "snake_case")]
enum Outcome {
    /// The message maps to these events.
    Events(Vec<GoldenEvent>),
    /// An ignoring rule filters the message.
    Filtered {
        /// The rule's reason.
        reason: String,
    },
    /// The message is dead-lettered.
    DeadLetter {
        /// Pipeline stage, e.g. `map`.
        stage: &'static str,
        /// Stable reason code, e.g. `UNMAPPED_MESSAGE_TYPE`.
        code: &'static str,
        /// PHI-free detail (field name and path), or null.
        detail: Option<String>,
    },
}

/// The deterministic fields of one event.
#[derive(Serialize)]
struct GoldenEvent {
    event_type: String,
    stream_type: String,
    stream_id: uuid::Uuid,
    data: Value,
}

impl GoldenEvent {
    /// The deterministic fields of a mapped event; records the fields it filled.
    fn new(e: NewEvent, code: &str, seen: &mut BTreeSet<(String, String, String)>) -> Self {
        for (field, v) in e.data.as_object().into_iter().flatten() {
            if !v.is_null() {
                seen.insert((code.into(), e.event_type.clone(), field.clone()));
            }
        }
        let (event_type, stream_type, stream_id) = (e.event_type, e.stream_type, e.stream_id);
        let mut data = e.data;
        sort_keys(&mut data);
        GoldenEvent {
            event_type,
            stream_type,
            stream_id,
            data,
        }
    }
}

/// Sorts every object's keys, at every depth: a golden file's text then depends on the
/// event's values only, not on the order in which the mapping built them, so `--update`
/// leaves files whose values did not change untouched.
fn sort_keys(v: &mut Value) {
    match v {
        Value::Object(map) => {
            map.sort_keys();
            map.values_mut().for_each(sort_keys);
        }
        Value::Array(items) => items.iter_mut().for_each(sort_keys),
        _ => {}
    }
}

/// The JSON form of outcomes, as compared (cannot fail: plain structs and strings).
fn to_values(outcomes: &[Outcome]) -> Vec<Value> {
    outcomes
        .iter()
        .map(|o| serde_json::to_value(o).unwrap_or_default())
        .collect()
}

/// Fields seen filled (non-null), per tenant: (message code, event type, field name).
type Filled = BTreeMap<String, BTreeSet<(String, String, String)>>;

/// What `intake test` runs and how it reports.
pub struct Options {
    /// Rewrite the golden files from the actual output instead of comparing.
    pub update: bool,
    /// Only this tenant's samples.
    pub tenant: Option<String>,
    /// Print one JSON document instead of text.
    pub json: bool,
    /// Also write a JUnit XML report here.
    pub junit: Option<PathBuf>,
}

/// What became of one case.
struct CaseResult<'a> {
    case: &'a Case,
    /// Differences or errors; empty when it passed.
    problems: Vec<String>,
    /// With `--update`: whether its golden file was written (else it was unchanged), and
    /// the one-line summary of what it now holds.
    written: Option<(bool, String)>,
}

impl CaseResult<'_> {
    fn status(&self) -> &'static str {
        match (&self.written, self.problems.is_empty()) {
            (_, false) => "failed",
            (Some((true, _)), true) => "written",
            (Some((false, _)), true) => "unchanged",
            (None, true) => "passed",
        }
    }
}

/// A tenant's field coverage: mapped fields that some sample filled.
#[derive(Serialize)]
struct Coverage {
    tenant: String,
    covered: usize,
    total: usize,
    /// `ADT^A40 PatientsMerged.visit_number`.
    uncovered: Vec<String>,
}

/// Runs every case under `dir` (or one tenant's) against `tenants`, or with `update`
/// rewrites the golden files from the actual output. Reports one line per case and the
/// coverage, as text or JSON, and optionally as JUnit XML.
pub fn run(dir: &Path, tenants: &Tenants, opts: &Options) -> Result<ExitCode> {
    let mut cases = find_cases(dir)?;
    if let Some(only) = &opts.tenant {
        cases.retain(|c| &c.tenant == only);
        if cases.is_empty() {
            bail!("no samples for tenant {only:?} in {}", dir.display());
        }
    }
    if cases.is_empty() {
        bail!(
            "no cases in {}: expected <tenant>/<case>.hl7 (or .json / .xml)",
            dir.display()
        );
    }
    let mut filled = Filled::new();
    let mut results = Vec::with_capacity(cases.len());
    for case in &cases {
        let (problems, written) = match actual(case, tenants, &mut filled) {
            Err(problem) => (vec![problem], None),
            Ok(outcomes) if opts.update => (Vec::new(), Some(bless(case, &outcomes)?)),
            Ok(outcomes) => (compare(case, &outcomes), None),
        };
        results.push(CaseResult {
            case,
            problems,
            written,
        });
    }
    let coverage = coverage(&cases, tenants, &filled);
    let failed = results.iter().filter(|r| !r.problems.is_empty()).count();
    let passed = results.len() - failed;
    if opts.json {
        print_json(&results, &coverage, passed, failed)?;
    } else {
        print_text(&results, &coverage, opts.update, passed, failed);
    }
    if let Some(path) = &opts.junit {
        crate::junit::write(path, "intake test", &junit_suites(&results))?;
    }
    Ok(ExitCode::from(u8::from(failed > 0)))
}

/// What keeps `tenant`'s mappings in `tenants` from going live in a staged deploy: each
/// of its cases under `dir` that fails, by name and number of differences (never the
/// values: this goes to the log), or that it has no cases at all.
pub fn tenant_problems(dir: &Path, tenants: &Tenants, tenant: &str) -> Vec<String> {
    let cases: Vec<Case> = match find_cases(dir) {
        Ok(cases) => cases.into_iter().filter(|c| c.tenant == tenant).collect(),
        Err(_) => Vec::new(),
    };
    if cases.is_empty() {
        return vec![format!(
            "no golden samples in {}: a staged deploy goes live only when they pass",
            dir.join(tenant).display()
        )];
    }
    let mut filled = Filled::new();
    let mut problems = Vec::new();
    for case in &cases {
        let n = match actual(case, tenants, &mut filled) {
            Err(_) => 1,
            Ok(outcomes) => compare(case, &outcomes).len(),
        };
        if n > 0 {
            problems.push(format!("sample {} fails ({n} difference(s))", case.name));
        }
    }
    problems
}

/// The text report: a line per case (with its differences), the coverage, the totals.
fn print_text(
    results: &[CaseResult],
    coverage: &[Coverage],
    update: bool,
    passed: usize,
    failed: usize,
) {
    for r in results {
        let path = r.case.golden.display();
        match &r.written {
            Some((true, summary)) => out!("wrote {path}: {summary}"),
            Some((false, _)) => out!("unchanged {path}"),
            None if r.problems.is_empty() => out!("ok   {}", r.case.name),
            None => {}
        }
        if !r.problems.is_empty() {
            out!("FAIL {}", r.case.name);
            for p in &r.problems {
                out!("    {p}");
            }
        }
    }
    for c in coverage {
        for u in &c.uncovered {
            out!("uncovered: {} {u}", c.tenant);
        }
        out!(
            "coverage: {} of {} mapped fields filled by samples (tenant {})",
            c.covered,
            c.total,
            c.tenant
        );
    }
    let ok = if update {
        "written or unchanged"
    } else {
        "passed"
    };
    out!("{passed} {ok}, {failed} failed");
}

/// The JSON report: `{"cases": [...], "coverage": [...], "passed", "failed"}`.
fn print_json(
    results: &[CaseResult],
    coverage: &[Coverage],
    passed: usize,
    failed: usize,
) -> Result<()> {
    let cases: Vec<Value> = results
        .iter()
        .map(|r| {
            serde_json::json!({
                "case": r.case.name,
                "tenant": r.case.tenant,
                "sample": r.case.hl7,
                "golden": r.case.golden,
                "status": r.status(),
                "problems": r.problems,
            })
        })
        .collect();
    let doc = serde_json::json!({
        "cases": cases, "coverage": coverage, "passed": passed, "failed": failed,
    });
    out!("{}", serde_json::to_string_pretty(&doc)?);
    Ok(())
}

/// One JUnit suite per tenant, one case per sample.
fn junit_suites(results: &[CaseResult]) -> Vec<crate::junit::Suite> {
    let mut suites: Vec<crate::junit::Suite> = Vec::new();
    for r in results {
        let tenant = &r.case.tenant;
        let name = format!("intake test {tenant}");
        if suites.last().is_none_or(|s| s.name != name) {
            suites.push(crate::junit::Suite {
                name,
                cases: Vec::new(),
            });
        }
        let case_name = r.case.name.strip_prefix(&format!("{tenant}/"));
        if let Some(suite) = suites.last_mut() {
            suite.cases.push(crate::junit::Case {
                name: case_name.unwrap_or(&r.case.name).to_string(),
                classname: format!("intake.test.{tenant}"),
                problems: r.problems.clone(),
            });
        }
    }
    suites
}

/// `dir/<tenant>/<case>.hl7|.json|.xml`, sorted by tenant and case.
fn find_cases(dir: &Path) -> Result<Vec<Case>> {
    let mut cases = Vec::new();
    for tdir in sorted_entries(dir)?.into_iter().filter(|p| p.is_dir()) {
        let tenant = tdir.file_name().unwrap_or_default().to_string_lossy();
        for hl7 in sorted_entries(&tdir)? {
            let name = hl7.file_name().unwrap_or_default().to_string_lossy();
            let sample = hl7.extension().is_some_and(|x| x == "hl7")
                || (crate::context::is_fhir_file(&hl7) && !name.ends_with(".events.json"));
            if sample && hl7.is_file() {
                let stem = hl7.file_stem().unwrap_or_default().to_string_lossy();
                cases.push(Case {
                    tenant: tenant.to_string(),
                    name: format!("{tenant}/{stem}"),
                    golden: tdir.join(format!("{stem}.events.json")),
                    hl7,
                });
            }
        }
    }
    Ok(cases)
}

/// The entries of a folder, sorted.
fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))?;
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| Some(e.ok()?.path())).collect();
    paths.sort();
    Ok(paths)
}

/// Runs a case's messages through the pipeline; records the fields they filled.
fn actual(case: &Case, tenants: &Tenants, filled: &mut Filled) -> Result<Vec<Outcome>, String> {
    if tenants.get(&case.tenant).is_none() {
        return Err(format!("no tenant {:?} in the mappings", case.tenant));
    }
    let bytes = std::fs::read(&case.hl7).map_err(|e| format!("{}: {e}", case.hl7.display()))?;
    let fhir = crate::context::is_fhir_file(&case.hl7);
    let (format, channel, messages) = if fhir {
        (Format::sniff_fhir(&bytes), "fhir", vec![bytes])
    } else {
        (Format::Hl7v2, "test", split_file(&bytes))
    };
    if messages.is_empty() {
        return Err(format!("{} holds no message", case.hl7.display()));
    }
    let seen = filled.entry(case.tenant.clone()).or_default();
    let mut outcomes = Vec::new();
    for message in messages {
        let raw = RawMessage::new(Some(case.tenant.clone()), format, channel, message);
        let p = process(raw, tenants);
        let code = p.message_type.clone().unwrap_or_default();
        outcomes.push(match p.disposition {
            Disposition::Events(events) => {
                let events = events.into_iter().map(|e| {
                    // FHIR coverage is per resource type: a Bundle's events name theirs.
                    let code = match e.metadata.pointer("/source").and_then(Value::as_str) {
                        Some(s) if fhir => s.split(['/', '#']).next().unwrap_or(&code).to_string(),
                        _ => code.clone(),
                    };
                    GoldenEvent::new(e, &code, seen)
                });
                Outcome::Events(events.collect())
            }
            Disposition::Filtered(f) => Outcome::Filtered { reason: f.reason },
            Disposition::DeadLetter { rejection: r, .. } => {
                let (stage, code) = (r.reason.stage().as_str(), r.reason.code());
                Outcome::DeadLetter {
                    stage,
                    code,
                    detail: r.detail,
                }
            }
        });
    }
    Ok(outcomes)
}

/// Writes the golden file from the actual outcomes unless unchanged; returns whether it
/// wrote, and a summary of the outcomes.
fn bless(case: &Case, outcomes: &[Outcome]) -> Result<(bool, String)> {
    let text = serde_json::to_string_pretty(outcomes)? + "\n";
    let summaries: Vec<String> = to_values(outcomes).iter().map(summary).collect();
    let summary = summaries.join("; ");
    if std::fs::read_to_string(&case.golden).is_ok_and(|old| old == text) {
        return Ok((false, summary));
    }
    let path = case.golden.display();
    std::fs::write(&case.golden, &text).with_context(|| format!("writing {path}"))?;
    Ok((true, summary))
}

/// Compares the actual outcomes with the golden file; returns the differences.
fn compare(case: &Case, outcomes: &[Outcome]) -> Vec<String> {
    let path = case.golden.display();
    let text = match std::fs::read_to_string(&case.golden) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let hint = "run `intake test --update` to write it from the actual output";
            return vec![format!("no golden file {path}: {hint}")];
        }
        Err(e) => return vec![format!("{path}: {e}")],
    };
    let expected = match serde_json::from_str::<Value>(&text) {
        Ok(Value::Array(v)) => v,
        Ok(_) => return vec![format!("{path}: not an array (one entry per message)")],
        Err(e) => return vec![format!("{path}: invalid JSON: {e}")],
    };
    let actual = to_values(outcomes);
    let mut out = Vec::new();
    for i in 0..expected.len().max(actual.len()) {
        let label = format!("message {}", i + 1);
        match (expected.get(i), actual.get(i)) {
            (Some(e), Some(a)) => diff_message(&label, e, a, &mut out),
            (Some(e), None) => out.push(format!("{label}: missing: expected {}", summary(e))),
            (None, Some(a)) => out.push(format!("{label}: extra: {}", summary(a))),
            (None, None) => {}
        }
    }
    out
}

/// Differences between an expected and an actual message outcome.
fn diff_message(label: &str, e: &Value, a: &Value, out: &mut Vec<String>) {
    let events = |v: &Value| v.get("events").and_then(Value::as_array).cloned();
    let keys = |v: &Value| v.as_object().map(|o| o.keys().cloned().collect::<Vec<_>>());
    match (events(e), events(a)) {
        (Some(ee), Some(ae)) => {
            for j in 0..ee.len().max(ae.len()) {
                let (x, y) = (ee.get(j), ae.get(j));
                let kind = x.or(y).and_then(|v| v.get("event_type")?.as_str());
                let label = format!("{label}, event {} ({})", j + 1, kind.unwrap_or("?"));
                match (x, y) {
                    (Some(_), None) => {
                        out.push(format!("{label}: missing: expected, not produced"))
                    }
                    (None, Some(_)) => out.push(format!("{label}: extra: produced, not expected")),
                    _ => diff_value(&label, "", x, y, out),
                }
            }
        }
        _ if keys(e) == keys(a) => diff_value(label, "", Some(e), Some(a), out),
        _ => out.push(format!("{label}: - {}  + {}", summary(e), summary(a))),
    }
}

/// Leaf-level differences between two JSON values; `None` is an absent key.
fn diff_value(
    label: &str,
    path: &str,
    e: Option<&Value>,
    a: Option<&Value>,
    out: &mut Vec<String>,
) {
    if e == a {
        return;
    }
    let dot = if path.is_empty() { "" } else { "." };
    match (e, a) {
        (Some(Value::Object(x)), Some(Value::Object(y))) => {
            for key in x.keys().chain(y.keys()).collect::<BTreeSet<_>>() {
                let sub = format!("{path}{dot}{key}");
                diff_value(label, &sub, x.get(key), y.get(key), out);
            }
        }
        (Some(Value::Array(x)), Some(Value::Array(y))) if x.len() == y.len() => {
            for (i, (p, q)) in x.iter().zip(y).enumerate() {
                diff_value(label, &format!("{path}[{i}]"), Some(p), Some(q), out);
            }
        }
        _ => {
            let show = |v: Option<&Value>| v.map_or("(absent)".to_string(), Value::to_string);
            let colon = if path.is_empty() { "" } else { ": " };
            let (e, a) = (show(e), show(a));
            out.push(format!("{label}: {path}{colon}- {e}  + {a}"));
        }
    }
}

/// A one-line summary of a message outcome, e.g. `1 event (AdmissionCreated)`.
fn summary(v: &Value) -> String {
    if let Some(events) = v.get("events").and_then(Value::as_array) {
        let types: Vec<&str> = events
            .iter()
            .filter_map(|e| e.get("event_type")?.as_str())
            .collect();
        match events.len() {
            0 => "no events".to_string(),
            1 => format!("1 event ({})", types.join(", ")),
            n => format!("{n} events ({})", types.join(", ")),
        }
    } else if let Some(code) = v.pointer("/dead_letter/code").and_then(Value::as_str) {
        format!("dead letter {code}")
    } else {
        v.to_string()
    }
}

/// Per tenant with samples: the mapped fields no sample filled, and the totals.
fn coverage(cases: &[Case], tenants: &Tenants, filled: &Filled) -> Vec<Coverage> {
    let names: BTreeSet<&str> = cases.iter().map(|c| c.tenant.as_str()).collect();
    let mut report = Vec::new();
    for tenant in names.into_iter().filter_map(|n| tenants.get(n)) {
        let seen = filled.get(&tenant.name);
        let fields: BTreeSet<(&str, &str, &str)> = tenant
            .rules
            .fields()
            .into_iter()
            .chain(tenant.fhir.rules.fields())
            .collect();
        let mut uncovered = Vec::new();
        for &(code, event, field) in &fields {
            let key = (code.to_string(), event.to_string(), field.to_string());
            if !seen.is_some_and(|s| s.contains(&key)) {
                uncovered.push(format!("{code} {event}.{field}"));
            }
        }
        report.push(Coverage {
            tenant: tenant.name.clone(),
            covered: fields.len() - uncovered.len(),
            total: fields.len(),
            uncovered,
        });
    }
    report
}
