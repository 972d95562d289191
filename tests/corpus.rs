//! Every HL7 v2 file of the shared corpus goes through the whole pipeline (decode,
//! parse, route to the demo tenant, map): no panic, and each message either maps or is
//! dead-lettered with a precise reason code. Counts are printed per code.
//!
//! The corpus lives beside the checkout (`INTAKE_CORPUS`, default `../shared/corpus`);
//! without it this test says so and passes, so a fresh clone alone still builds green.
//! `.ci/run` sets `INTAKE_REQUIRE_CORPUS=1`, which turns a missing corpus into a failure.

mod common;

use intake_adapters::mllp::client::split_messages;
use intake_pipeline::mapping::Tenants;
use intake_pipeline::{process, Disposition, Format, RawMessage, Reason};
use std::collections::BTreeMap;
use std::path::PathBuf;

fn corpus() -> Option<PathBuf> {
    let dir = std::env::var("INTAKE_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus"));
    if dir.join("hl7v2").is_dir() {
        return Some(dir);
    }
    assert!(
        std::env::var("INTAKE_REQUIRE_CORPUS").is_err(),
        "corpus not found at {}",
        dir.display()
    );
    eprintln!("corpus not found at {}: skipped", dir.display());
    None
}

#[test]
fn every_corpus_message_maps_or_has_a_precise_reason() {
    let Some(dir) = corpus() else { return };
    let tenants =
        Tenants::load(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("mappings")).unwrap();
    let known: Vec<&str> = Reason::ALL.iter().map(|r| r.code()).collect();
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    let mut parse_counts: BTreeMap<String, usize> = BTreeMap::new();
    let (mut file_count, mut message_count) = (0, 0);
    for file in common::files_under(&dir.join("hl7v2")) {
        file_count += 1;
        let bytes = std::fs::read(&file).unwrap();
        // Whole file as one message (what an MLLP frame would carry)…
        let whole = process(
            RawMessage::new(Some("demo".into()), Format::Hl7v2, "corpus", bytes.clone()),
            &tenants,
        );
        // …and split into messages the way `intake send` does.
        let parts = split_messages(&bytes);
        for p in std::iter::once(whole).chain(parts.into_iter().map(|m| {
            process(
                RawMessage::new(Some("demo".into()), Format::Hl7v2, "corpus", m),
                &tenants,
            )
        })) {
            message_count += 1;
            let key = match &p.disposition {
                Disposition::Events(e) => {
                    assert!(
                        !e.is_empty(),
                        "{}: a mapped message yields events",
                        file.display()
                    );
                    "mapped".to_string()
                }
                Disposition::Filtered(_) => "filtered".to_string(),
                Disposition::DeadLetter { rejection, .. } => {
                    let code = rejection.reason.code();
                    assert!(known.contains(&code));
                    if let Some(d) = &rejection.detail {
                        assert!(
                            d.len() < 120 && d.is_ascii(),
                            "{}: detail is short and PHI-free: {d}",
                            file.display()
                        );
                    }
                    code.to_string()
                }
            };
            *counts.entry(key).or_default() += 1;
        }
        // Decode + parse alone: the stage every file must get through without a panic.
        let stage = match process(
            RawMessage::new(Some("demo".into()), Format::Hl7v2, "corpus", bytes),
            &tenants,
        )
        .disposition
        {
            Disposition::DeadLetter { rejection, .. }
                if matches!(
                    rejection.reason.stage(),
                    intake_pipeline::Stage::Decode | intake_pipeline::Stage::Parse
                ) =>
            {
                rejection.reason.code().to_string()
            }
            _ => "parsed".to_string(),
        };
        *parse_counts.entry(stage).or_default() += 1;
    }
    eprintln!("decode + parse, whole files:");
    for (code, n) in &parse_counts {
        eprintln!("  {code:<24} {n}");
    }
    eprintln!("full pipeline (demo tenant), {file_count} files, {message_count} messages (whole files + split):");
    for (code, n) in &counts {
        eprintln!("  {code:<24} {n}");
    }
    assert!(
        file_count >= 200,
        "expected the full corpus, found {file_count} files"
    );
    assert!(
        counts.get("mapped").copied().unwrap_or(0) > 0,
        "some corpus messages map"
    );
}
