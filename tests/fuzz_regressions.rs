//! Every input a fuzz target ever crashed on, kept in `tests/fixtures/fuzz/<target>/`,
//! replayed through the same checks the target runs (its body is included from
//! `fuzz/src/lib.rs`), so a fixed crash stays fixed without a fuzzing toolchain.

#[allow(dead_code)]
#[path = "../fuzz/src/lib.rs"]
mod targets;

use std::path::Path;

#[test]
fn every_kept_fuzz_crash_input_is_handled() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fuzz");
    let mut replayed = 0;
    for target in std::fs::read_dir(&dir).expect("tests/fixtures/fuzz") {
        let target = target.expect("entry").path();
        if !target.is_dir() {
            continue;
        }
        let name = target
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        assert!(
            targets::TARGETS.contains(&name),
            "{}: no fuzz target of that name",
            target.display()
        );
        let mut inputs: Vec<_> = std::fs::read_dir(&target)
            .expect("target folder")
            .map(|e| e.expect("entry").path())
            .collect();
        inputs.sort();
        for input in inputs {
            let data = std::fs::read(&input).expect("input");
            eprintln!("replaying {}", input.display());
            assert!(targets::run(name, &data));
            replayed += 1;
        }
    }
    eprintln!("{replayed} fuzz input(s) replayed");
}

/// The seeds' own shapes, so the test means something before any crash is kept: an
/// MLLP stream cut in odd places, a truncated message, an empty mapping file.
#[test]
fn each_target_takes_a_small_input() {
    let cases: [(&str, &[u8]); 6] = [
        (
            "mllp_frame",
            b"\x05\x02\x03\x00\x09\x00\r\x0bMSH|^~\\&|A\x1c\x0d\x0b\x1c",
        ),
        (
            "hl7_message",
            b"MSH|^~\\&|A|DEMO_HOSP|C|D|2024||ADT^A01|1|P|2.5\rPV1|1|I",
        ),
        ("fhir_json", br#"{"resourceType":"Encounter","status":"#),
        (
            "fhir_xml",
            b"<Encounter xmlns=\"http://hl7.org/fhir\"><status value=\"x\"/>",
        ),
        ("mapping_loader", b"\x00"),
        ("config_loader", b"[[mllp]]\naddr = \"127.0.0.1:0\"\n"),
    ];
    for (target, data) in cases {
        assert!(targets::run(target, data), "{target}");
    }
}
