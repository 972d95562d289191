//! The command line as a user runs it: check, map, test, events, migrate, clean shutdown.

mod common;

use common::{msa, Adt, SendAdt, Server};
use std::process::Command;

fn intake(dir: &std::path::Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_intake"))
        .args(args)
        .current_dir(dir)
        .env_remove("INTAKE_DATABASE_URL")
        .env_remove("INTAKE_MAPPINGS_DIR")
        .env_remove("INTAKE_CONFIG")
        .env("INTAKE_LOG", "warn")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_accepts_the_shipped_mappings() {
    let (code, out, err) = intake(&common::repo(), &["check"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("ok: tenant demo") && out.contains("ADT^A01, ADT^A02, ADT^A03"),
        "{out}"
    );
}

#[test]
fn check_reports_each_error_as_file_line_col() {
    let dir = tempfile::tempdir().unwrap();
    let t = dir.path().join("mappings/acme");
    std::fs::create_dir_all(&t).unwrap();
    std::fs::write(t.join("tenant.yaml"), "timezone: Mars/Olympus\n").unwrap();
    std::fs::write(
        t.join("adt.yaml"),
        "rules:\n  - message: ADT^A01\n    events:\n      - event: admissionCreated\n        stream: { type: Admission, key: PV1.x }\n        fields:\n          patient_mrn: { path: \"PID.3[5=].1\", required: true }\n          Visit: { path: PV1.19 }\n  - message: ADTA01\n    events: []\n",
    )
    .unwrap();
    let (code, _, err) = intake(dir.path(), &["check", "--mappings", "mappings"]);
    assert_eq!(code, 1);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(
        lines,
        [
            "mappings/acme/adt.yaml:4:16: event type \"admissionCreated\" must be PascalCase",
            "mappings/acme/adt.yaml:5:45: invalid path: expected a field number at character 5",
            "mappings/acme/adt.yaml:8:18: field name \"Visit\" must be snake_case",
            "mappings/acme/adt.yaml:7:41: invalid path: expected a value after = at character 9",
            "mappings/acme/adt.yaml:9:14: message must look like ADT^A01, found \"ADTA01\"",
            "mappings/acme/tenant.yaml:1:11: unknown time zone \"Mars/Olympus\" (use an IANA name such as Europe/Berlin)",
            "6 error(s) in mappings",
        ],
        "{err}"
    );
    // A YAML syntax error or unknown key is located too.
    std::fs::write(
        t.join("tenant.yaml"),
        "timezone: UTC\nack_on_dead_leter: error\n",
    )
    .unwrap();
    std::fs::write(t.join("adt.yaml"), "rules: []\n").unwrap();
    let (code, _, err) = intake(dir.path(), &["check", "--mappings", "mappings"]);
    assert_eq!(code, 1);
    assert!(
        err.starts_with("mappings/acme/tenant.yaml:2:1: unknown field `ack_on_dead_leter`"),
        "{err}"
    );
}

#[test]
fn map_is_a_dry_run_that_prints_events_or_the_reason() {
    let repo = common::repo();
    let (code, out, err) = intake(
        &repo,
        &["map", "--tenant", "demo", "samples/demo/a01-admit.hl7"],
    );
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["events"][0]["event_type"], "AdmissionCreated");
    assert_eq!(v["events"][0]["data"]["visit_number"], "V20261122-0001");
    assert!(
        !repo.join("data").exists() || std::fs::read_dir(repo.join("data")).is_ok(),
        "map never opens a store"
    );

    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("bad.hl7");
    std::fs::write(
        &f,
        Adt {
            trigger: "A99",
            ..Default::default()
        }
        .build(),
    )
    .unwrap();
    let (code, out, _) = intake(&repo, &["map", "--tenant", "demo", f.to_str().unwrap()]);
    assert_eq!(code, 1);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["dead_letter"]["code"], "UNMAPPED_MESSAGE_TYPE");
    assert_eq!(v["dead_letter"]["stage"], "map");
}

#[tokio::test]
async fn events_command_reads_the_store_and_sigterm_stops_cleanly() {
    let server = Server::start();
    let mut c = server.client().await;
    for (i, trig) in ["A01", "A02"].iter().enumerate() {
        let ctrl = format!("EV{i}");
        assert_eq!(
            msa(&c
                .ack(Adt {
                    trigger: trig,
                    control_id: &ctrl,
                    ..Default::default()
                })
                .await)
            .0,
            "AA"
        );
    }
    drop(c);
    let config = server.dir.join("intake.toml");
    let (code, out, err) = intake(
        &server.dir,
        &[
            "--config",
            config.to_str().unwrap(),
            "events",
            "--tenant",
            "demo",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[1]["event_type"], "LocationChanged");
    let (_, out, _) = intake(
        &server.dir,
        &[
            "--config",
            config.to_str().unwrap(),
            "events",
            "--after",
            "1",
        ],
    );
    assert_eq!(out.lines().count(), 1);

    let mut server = server;
    let status = Command::new("kill")
        .arg("-TERM")
        .arg(server.pid().to_string())
        .status()
        .unwrap();
    assert!(status.success());
    let start = std::time::Instant::now();
    let exit = loop {
        if let Some(s) = server.child.try_wait().unwrap() {
            break s;
        }
        assert!(
            start.elapsed().as_secs() < 15,
            "server did not stop on SIGTERM"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert!(exit.success(), "clean exit on SIGTERM: {exit:?}");
}

#[test]
fn migrate_creates_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_intake"))
        .arg("migrate")
        .current_dir(dir.path())
        .env("INTAKE_DATABASE_URL", "sqlite://sub/dir/x.db")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(dir.path().join("sub/dir/x.db").exists());
}

#[test]
fn check_reports_language_errors_with_their_location() {
    let dir = tempfile::tempdir().unwrap();
    let t = dir.path().join("mappings/acme");
    std::fs::create_dir_all(t.join("tables")).unwrap();
    std::fs::write(t.join("tenant.yaml"), "timezone: UTC\n").unwrap();
    std::fs::write(t.join("tables/units.csv"), "from,to\nmg,mg\nbroken line\n").unwrap();
    std::fs::write(
        t.join("tables/wards.csv"),
        "6NORTH,ONC-6N\n7S,\"CARD, 7S\",x\n",
    )
    .unwrap();
    std::fs::write(
        t.join("oru.yaml"),
        "rules:\n\
         \x20 - message: ORU^R01\n\
         \x20   when: [ { path: MSH.9, equals: x, in: [y] } ]\n\
         \x20   events:\n\
         \x20     - event: LabResult\n\
         \x20       for_each: { segment: obx }\n\
         \x20       stream: { type: Patient, key: PID.3.1 }\n\
         \x20       fields:\n\
         \x20         a: { path: OBX.5, value: x }\n\
         \x20         b: { path: OBX.6, table: nope }\n\
         \x20         c: { path: OBX.3, type: coded, all: true }\n",
    )
    .unwrap();
    let (code, _, err) = intake(dir.path(), &["check", "--mappings", "mappings"]);
    assert_eq!(code, 1);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(
        lines,
        [
            "mappings/acme/oru.yaml:3:21: a condition needs exactly one of equals, in, not_in, present",
            "mappings/acme/oru.yaml:5:16: unknown event type \"LabResult\": the event catalogue (docs/events.yaml) and the tenant's catalogue.yaml list the known ones",
            "mappings/acme/oru.yaml:6:30: for_each names segment ids such as OBX",
            "mappings/acme/oru.yaml:9:14: field \"a\" needs exactly one of path, value, concat",
            "mappings/acme/oru.yaml:10:36: no table \"nope\" in this tenant's tables/ folder",
            "mappings/acme/oru.yaml:11:14: field \"c\": coded and observation values take no table, all, transform or default",
            "mappings/acme/tables/units.csv:3:12: expected 2 cells (code,value), found 1",
            "mappings/acme/tables/wards.csv:1:1: the first row must be a header of two different snake_case column names, such as `local_code,loinc`",
            "mappings/acme/tables/wards.csv:2:15: expected 2 cells (code,value), found 3",
            "9 error(s) in mappings",
        ],
        "{err}"
    );
    // YAML syntax errors are located too.
    std::fs::write(t.join("tables/units.csv"), "from,to\nmg,mg\n").unwrap();
    std::fs::remove_file(t.join("tables/wards.csv")).unwrap();
    std::fs::write(t.join("oru.yaml"), "rules:\n  - message: [ORU^R01\n").unwrap();
    let (code, _, err) = intake(dir.path(), &["check", "--mappings", "mappings"]);
    assert_eq!(code, 1);
    assert_eq!(
        err.lines().next(),
        Some("mappings/acme/oru.yaml:2:14: unclosed bracket '['"),
        "{err}"
    );
}

/// A folder with the repo's `demo` mappings and the given files under `samples/`.
fn golden_dir(files: &[(&str, &[u8])]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let maps = dir.path().join("mappings/demo");
    std::fs::create_dir_all(&maps).unwrap();
    // A fixed A01-A03 mapping, so these tests do not move with the shipped demo mapping.
    std::fs::copy(
        common::repo().join("tests/fixtures/adt-a01-a03.yaml"),
        maps.join("adt.yaml"),
    )
    .unwrap();
    std::fs::copy(
        common::repo().join("mappings/demo/tenant.yaml"),
        maps.join("tenant.yaml"),
    )
    .unwrap();
    common::copy_plugins(dir.path());
    for (name, bytes) in files {
        let path = dir.path().join("samples").join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }
    dir
}

#[test]
fn map_and_check_read_fhir_files() {
    let repo = common::repo();
    let (code, out, err) = intake(
        &repo,
        &[
            "map",
            "--tenant",
            "demo",
            "samples/demo/fhir-encounter-history.json",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let events = v["events"].as_array().unwrap();
    assert_eq!(events.len(), 6, "AdmissionCreated and 5 LocationChanged");
    assert_eq!(events[5]["data"]["to_location"], "SDU2");
    assert_eq!(events[5]["metadata"]["channel"], "fhir");
    let (code, out, _) = intake(
        &repo,
        &["map", "--tenant", "demo", "samples/demo/fhir-unmapped.json"],
    );
    assert_eq!(code, 1);
    assert!(out.contains("UNMAPPED_RESOURCE_TYPE"), "{out}");
    let (code, out, err) = intake(&repo, &["check"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("; FHIR DiagnosticReport, Encounter, Observation, Patient"),
        "{out}"
    );
}

#[test]
fn test_passes_on_the_shipped_samples() {
    let (code, out, err) = intake(&common::repo(), &["test"]);
    assert_eq!(code, 0, "{out}{err}");
    // HL7 cases (.hl7) and FHIR cases (.json / .xml beside their .events.json).
    let names: Vec<String> = std::fs::read_dir(common::repo().join("samples/demo"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let fhir = names
        .iter()
        .filter(|n| (n.ends_with(".json") || n.ends_with(".xml")) && !n.ends_with(".events.json"))
        .count();
    let cases = names.iter().filter(|n| n.ends_with(".hl7")).count() + fhir;
    assert!(
        cases >= 23 + 10,
        "golden samples for every trigger, lab case and FHIR case"
    );
    assert_eq!(
        out.lines().filter(|l| l.starts_with("ok   demo/")).count(),
        cases,
        "{out}"
    );
    // The only fields no sample fills are ones those triggers do not carry.
    let uncovered: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("uncovered: "))
        .collect();
    assert_eq!(
        uncovered,
        [
            "uncovered: demo ADT^A28 PatientRegistered.location",
            "uncovered: demo ADT^A28 PatientRegistered.visit_number",
            "uncovered: demo ADT^A40 PatientsMerged.visit_number",
        ],
        "{out}"
    );
    assert!(
        out.ends_with(&format!("{cases} passed, 0 failed\n")),
        "{out}"
    );
}

#[test]
fn test_shows_each_differing_field_as_path_expected_actual() {
    let repo = common::repo();
    let hl7 = std::fs::read(repo.join("samples/demo/a02-transfer.hl7")).unwrap();
    let golden = std::fs::read_to_string(repo.join("samples/demo/a02-transfer.events.json"))
        .unwrap()
        .replace("\"to_bed\": \"A\"", "\"to_bed\": \"B\"")
        .replace("\"reason\": \"TRN\",", "");
    let dir = golden_dir(&[
        ("demo/a02-transfer.hl7", &hl7),
        ("demo/a02-transfer.events.json", golden.as_bytes()),
    ]);
    let (code, out, _) = intake(dir.path(), &["test"]);
    assert_eq!(code, 1, "{out}");
    let lines: Vec<&str> = out.lines().take(3).collect();
    assert_eq!(
        lines,
        [
            "FAIL demo/a02-transfer",
            "    message 1, event 1 (LocationChanged): data.reason: - (absent)  + \"TRN\"",
            "    message 1, event 1 (LocationChanged): data.to_bed: - \"B\"  + \"A\"",
        ],
        "{out}"
    );
    assert!(out.ends_with("0 passed, 1 failed\n"), "{out}");
}

#[test]
fn test_without_golden_file_hints_at_update_which_then_passes() {
    let repo = common::repo();
    let hl7 = std::fs::read(repo.join("samples/demo/a01-admit.hl7")).unwrap();
    let dir = golden_dir(&[("demo/a01-admit.hl7", &hl7)]);
    let (code, out, _) = intake(dir.path(), &["test"]);
    assert_eq!(code, 1);
    assert!(
        out.starts_with("FAIL demo/a01-admit\n    no golden file samples/demo/a01-admit.events.json: run `intake test --update`"),
        "{out}"
    );

    let (code, out, err) = intake(dir.path(), &["test", "--update"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.starts_with("wrote samples/demo/a01-admit.events.json: 1 event (AdmissionCreated)\n"),
        "{out}"
    );
    let written = std::fs::read_to_string(dir.path().join("samples/demo/a01-admit.events.json"));
    let shipped = std::fs::read_to_string(repo.join("samples/demo/a01-admit.events.json"));
    assert_eq!(
        written.unwrap(),
        shipped.unwrap(),
        "same input, same golden file"
    );

    let (code, out, _) = intake(dir.path(), &["test"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("ok   demo/a01-admit\n"), "{out}");
    let (_, out, _) = intake(dir.path(), &["test", "--update"]);
    assert!(
        out.starts_with("unchanged samples/demo/a01-admit.events.json\n"),
        "{out}"
    );
}

#[test]
fn test_reports_mapped_fields_no_sample_filled() {
    // The synthetic A01 leaves PV1-4 (admission type) empty; A02 and A03 have no sample.
    let dir = golden_dir(&[("demo/admit.hl7", &Adt::default().build())]);
    std::fs::rename(dir.path().join("mappings"), dir.path().join("maps")).unwrap();
    let (code, out, err) = intake(dir.path(), &["test", "--update", "--mappings", "maps"]);
    assert_eq!(code, 0, "{out}{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines.contains(&"uncovered: demo ADT^A01 AdmissionCreated.admission_type")
            && lines.contains(&"uncovered: demo ADT^A02 LocationChanged.to_bed")
            && !lines.contains(&"uncovered: demo ADT^A01 AdmissionCreated.bed"),
        "{out}"
    );
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.starts_with("uncovered: "))
            .count(),
        13
    );
    assert!(
        lines.contains(&"coverage: 7 of 20 mapped fields filled by samples (tenant demo)"),
        "{out}"
    );
}

#[test]
fn test_compares_dead_letters_too() {
    let a99 = Adt {
        trigger: "A99",
        ..Default::default()
    }
    .build();
    let dir = golden_dir(&[("demo/unmapped.hl7", &a99)]);
    let (code, out, _) = intake(dir.path(), &["test", "--update"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.starts_with(
            "wrote samples/demo/unmapped.events.json: dead letter UNMAPPED_MESSAGE_TYPE\n"
        ),
        "{out}"
    );
    let path = dir.path().join("samples/demo/unmapped.events.json");
    let golden: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(
        golden,
        serde_json::json!([{"dead_letter": {"stage": "map", "code": "UNMAPPED_MESSAGE_TYPE", "detail": "ADT^A99"}}])
    );
    assert_eq!(intake(dir.path(), &["test"]).0, 0);

    let edited = std::fs::read_to_string(&path)
        .unwrap()
        .replace("A99", "A98");
    std::fs::write(&path, edited).unwrap();
    let (code, out, _) = intake(dir.path(), &["test"]);
    assert_eq!(code, 1);
    assert!(
        out.starts_with(
            "FAIL demo/unmapped\n    message 1: dead_letter.detail: - \"ADT^A98\"  + \"ADT^A99\"\n"
        ),
        "{out}"
    );
}

/// A mappings folder with tenants `east` and `west`, each claiming the given facilities.
fn two_tenants(east: &str, west: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (t, claims) in [("east", east), ("west", west)] {
        let t = dir.path().join("mappings").join(t);
        std::fs::create_dir_all(&t).unwrap();
        std::fs::write(
            t.join("tenant.yaml"),
            format!("timezone: UTC\nrouting:\n  {claims}\n"),
        )
        .unwrap();
    }
    dir
}

#[test]
fn check_refuses_two_tenants_claiming_one_facility() {
    let dir = two_tenants(
        "sending_facilities: [NORTH, SOUTH]",
        "sending_facilities: [\"NORTH^1.2.3^ISO\"]\n  receiving_facilities: [SOUTH, \"\"]",
    );
    let (code, _, err) = intake(dir.path(), &["check", "--mappings", "mappings"]);
    assert_eq!(code, 1);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(
        lines,
        [
            "mappings/west/tenant.yaml:4:34: routing.receiving_facilities: an empty claim would match messages without one",
            "1 error(s) in mappings",
        ],
        "{err}"
    );
    // Without the empty claim: MSH-4 NORTH^1.2.3^ISO would match both tenants. SOUTH as
    // east's MSH-4 and west's MSH-6 is not an overlap: MSH-4 claims always win.
    let dir = two_tenants(
        "sending_facilities: [NORTH, SOUTH]",
        "sending_facilities: [\"NORTH^1.2.3^ISO\"]\n  receiving_facilities: [SOUTH]",
    );
    let (code, _, err) = intake(dir.path(), &["check", "--mappings", "mappings"]);
    assert_eq!(code, 1);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(
        lines,
        [
            "mappings/west/tenant.yaml:3:25: routing.sending_facilities: \"NORTH^1.2.3^ISO\" overlaps \"NORTH\", \
             claimed by tenant \"east\" at mappings/east/tenant.yaml:3:24; a message could be stored under either tenant",
            "1 error(s) in mappings",
        ],
        "{err}"
    );
    // Distinct claims pass.
    let dir = two_tenants(
        "sending_facilities: [NORTH]",
        "sending_facilities: [NORTHEAST]",
    );
    let (code, out, err) = intake(dir.path(), &["check", "--mappings", "mappings"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("ok: tenant east") && out.contains("ok: tenant west"),
        "{out}"
    );
}

#[test]
fn check_refuses_a_folder_without_tenants_and_tokens_for_missing_tenants() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("mappings")).unwrap();
    let (code, _, err) = intake(dir.path(), &["check", "--mappings", "mappings"]);
    assert_eq!(code, 1);
    assert_eq!(
        err.lines().next(),
        Some("mappings:0:0: no tenant here: each tenant is a folder holding a tenant.yaml"),
        "{err}"
    );

    // A token for tenant "esat" (a typo of east) is refused by check and by serve.
    let dir = two_tenants("sending_facilities: [NORTH]", "sending_facilities: [SOUTH]");
    std::fs::write(
        dir.path().join("intake.toml"),
        "database_url = \"sqlite://intake.db\"\n[tenant_tokens]\nesat = \"t1\"\nwest = \"t2\"\n\
         [http]\naddr = \"127.0.0.1:0\"\n[[mllp]]\naddr = \"127.0.0.1:0\"\n",
    )
    .unwrap();
    let (code, _, err) = intake(dir.path(), &["--config", "intake.toml", "check"]);
    assert_eq!(code, 1);
    assert_eq!(
        err.lines().collect::<Vec<_>>(),
        [
            "config: [tenant_tokens] entry names tenant \"esat\", which has no folder in mappings",
            "1 error(s) in the configuration",
        ],
        "{err}"
    );
    let (code, _, err) = intake(dir.path(), &["--config", "intake.toml", "serve"]);
    assert_eq!(code, 1);
    assert!(
        err.contains(
            "[tenant_tokens] entry is bound to tenant \"esat\", which has no folder in mappings"
        ),
        "{err}"
    );
}

fn copy_tree(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let target = to.join(path.file_name().unwrap());
        if path.is_dir() {
            copy_tree(&path, &target);
        } else {
            std::fs::copy(&path, &target).unwrap();
        }
    }
}

#[test]
fn test_update_leaves_the_committed_goldens_untouched() {
    let dir = tempfile::tempdir().unwrap();
    for sub in ["samples", "mappings", "plugins"] {
        copy_tree(&common::repo().join(sub), &dir.path().join(sub));
    }
    let (code, out, err) = intake(
        dir.path(),
        &["test", "--update", "samples", "--mappings", "mappings"],
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        !out.contains("wrote "),
        "the writer and the committed files disagree:\n{out}"
    );
    assert!(
        out.contains("unchanged samples/demo/a14-pending-filtered.events.json"),
        "{out}"
    );
    let golden = "samples/demo/oru-structured.events.json";
    assert_eq!(
        std::fs::read(dir.path().join(golden)).unwrap(),
        std::fs::read(common::repo().join(golden)).unwrap()
    );
}

/// Two tenants' samples: demo with a passing and a failing case, other with one passing.
fn two_tenant_golden_dir() -> tempfile::TempDir {
    let repo = common::repo();
    let read = |f: &str| std::fs::read(repo.join("samples/demo").join(f)).unwrap();
    let golden = std::fs::read_to_string(repo.join("samples/demo/a02-transfer.events.json"))
        .unwrap()
        .replace("\"to_bed\": \"A\"", "\"to_bed\": \"B\"");
    let dir = golden_dir(&[
        ("demo/a01-admit.hl7", &read("a01-admit.hl7")),
        ("demo/a01-admit.events.json", &read("a01-admit.events.json")),
        ("demo/a02-transfer.hl7", &read("a02-transfer.hl7")),
        ("demo/a02-transfer.events.json", golden.as_bytes()),
        ("other/a03.hl7", &read("a03-discharge.hl7")),
    ]);
    let other = dir.path().join("mappings/other");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::copy(
        dir.path().join("mappings/demo/adt.yaml"),
        other.join("adt.yaml"),
    )
    .unwrap();
    std::fs::write(other.join("tenant.yaml"), "timezone: UTC\n").unwrap();
    let (code, out, err) = intake(dir.path(), &["test", "--update", "--tenant", "other"]);
    assert_eq!(code, 0, "{out}{err}");
    dir
}

#[test]
fn test_runs_one_tenant_and_reports_as_json_and_junit() {
    let dir = two_tenant_golden_dir();
    // --tenant: only that folder's cases.
    let (code, out, _) = intake(dir.path(), &["test", "--tenant", "other"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("ok   other/a03\n"), "{out}");
    assert!(!out.contains("demo/"), "{out}");
    assert!(out.ends_with("1 passed, 0 failed\n"), "{out}");
    let (code, _, err) = intake(dir.path(), &["test", "--tenant", "nope"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("no samples for tenant \"nope\" in samples"),
        "{err}"
    );

    // --json: one document, a status per case, the differences, the coverage, the totals.
    let (code, out, _) = intake(dir.path(), &["test", "--json"]);
    assert_eq!(code, 1, "the failing case still fails");
    let doc: serde_json::Value = serde_json::from_str(&out).expect("one JSON document");
    let statuses: Vec<(&str, &str)> = doc["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["case"].as_str().unwrap(), c["status"].as_str().unwrap()))
        .collect();
    assert_eq!(
        statuses,
        [
            ("demo/a01-admit", "passed"),
            ("demo/a02-transfer", "failed"),
            ("other/a03", "passed")
        ]
    );
    assert_eq!(
        doc["cases"][1]["problems"],
        serde_json::json!(["message 1, event 1 (LocationChanged): data.to_bed: - \"B\"  + \"A\""])
    );
    assert_eq!(
        (doc["passed"].as_u64(), doc["failed"].as_u64()),
        (Some(2), Some(1))
    );
    let coverage: Vec<&str> = doc["coverage"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["tenant"].as_str().unwrap())
        .collect();
    assert_eq!(coverage, ["demo", "other"]);
    assert!(doc["coverage"][0]["covered"].as_u64().unwrap() > 0);

    // --junit: one suite per tenant, one case per sample, the differences as the failure.
    let (code, out, _) = intake(dir.path(), &["test", "--junit", "report.xml"]);
    assert_eq!(code, 1);
    assert!(
        out.contains("FAIL demo/a02-transfer"),
        "text output still printed: {out}"
    );
    let xml = std::fs::read_to_string(dir.path().join("report.xml")).unwrap();
    assert!(xml.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"intake test\" tests=\"3\" failures=\"1\">"), "{xml}");
    assert!(
        xml.contains("<testsuite name=\"intake test demo\" tests=\"2\" failures=\"1\""),
        "{xml}"
    );
    assert!(
        xml.contains("<testsuite name=\"intake test other\" tests=\"1\" failures=\"0\""),
        "{xml}"
    );
    assert!(
        xml.contains("<testcase name=\"a01-admit\" classname=\"intake.test.demo\"/>"),
        "{xml}"
    );
    assert!(
        xml.contains("<failure message=\"1 problem(s)\" type=\"intake.test.demo\">message 1, event 1 (LocationChanged): data.to_bed: - &quot;B&quot;  + &quot;A&quot;</failure>"),
        "{xml}"
    );
}

#[test]
fn check_reports_as_json_and_junit() {
    let dir = two_tenant_golden_dir();
    let (code, out, _) = intake(dir.path(), &["check", "--json", "--junit", "check.xml"]);
    assert_eq!(code, 0, "{out}");
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(doc["ok"], true);
    let names: Vec<&str> = doc["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["demo", "other"]);
    assert_eq!(
        doc["tenants"][0]["message_types"],
        serde_json::json!(["ADT^A01", "ADT^A02", "ADT^A03", "ADT^A14"])
    );
    let xml = std::fs::read_to_string(dir.path().join("check.xml")).unwrap();
    assert!(
        xml.contains("<testsuites name=\"intake check\" tests=\"3\" failures=\"0\">"),
        "{xml}"
    );

    // A typo in one tenant fails that tenant's case only, at its file:line:col.
    std::fs::write(
        dir.path().join("mappings/other/tenant.yaml"),
        "timezone: UTC\nroutng: {}\n",
    )
    .unwrap();
    let (code, out, _) = intake(dir.path(), &["check", "--json", "--junit", "check.xml"]);
    assert_eq!(code, 1);
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(doc["ok"], false);
    let e = &doc["errors"][0];
    assert_eq!(e["file"], "mappings/other/tenant.yaml");
    assert_eq!(
        (e["line"].as_u64(), e["column"].as_u64()),
        (Some(2), Some(1))
    );
    let xml = std::fs::read_to_string(dir.path().join("check.xml")).unwrap();
    assert!(
        xml.contains("<testcase name=\"demo\" classname=\"intake.check\"/>"),
        "{xml}"
    );
    assert!(xml.contains("<testcase name=\"other\" classname=\"intake.check\">\n      <failure message=\"1 problem(s)\" type=\"intake.check\">mappings/other/tenant.yaml:2:1: "), "{xml}");
}

#[test]
fn check_knows_the_event_catalogue_and_the_hl7_structure() {
    let dir = tempfile::tempdir().unwrap();
    let t = dir.path().join("mappings/acme");
    std::fs::create_dir_all(&t).unwrap();
    std::fs::write(t.join("tenant.yaml"), "timezone: UTC\n").unwrap();
    // The five typos of a new user: event, stream type, field, segment, field number.
    std::fs::write(
        t.join("adt.yaml"),
        "rules:\n\
         \x20 - message: ADT^A01\n\
         \x20   events:\n\
         \x20     - event: AdmisionCreated\n\
         \x20       stream: { type: Admision, key: PV1.19.1 }\n\
         \x20       fields:\n\
         \x20         patient_mrn: { path: PID.3.1, required: true }\n\
         \x20 - message: ADT^A02\n\
         \x20   events:\n\
         \x20     - event: LocationChanged\n\
         \x20       stream: { type: Admission, key: PVI.19.1 }\n\
         \x20       fields:\n\
         \x20         patient_mrm: { path: PID.3.1, required: true }\n\
         \x20         to_location: { path: PV1.333 }\n\
         \x20         from_bed:    { path: PV1.6.3, type: timestamp }\n",
    )
    .unwrap();
    let (code, _, err) = intake(dir.path(), &["check", "--mappings", "mappings"]);
    assert_eq!(code, 1);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(
        lines,
        [
            "mappings/acme/adt.yaml:4:16: unknown event type \"AdmisionCreated\" (did you mean AdmissionCreated?): the event catalogue (docs/events.yaml) and the tenant's catalogue.yaml list the known ones",
            "mappings/acme/adt.yaml:5:25: unknown stream type \"Admision\" (did you mean Admission?)",
            "mappings/acme/adt.yaml:15:24: field from_bed of LocationChanged is a string in the catalogue, not a timestamp",
            "mappings/acme/adt.yaml:13:24: event LocationChanged has no field \"patient_mrm\" (did you mean patient_mrn?)",
            "mappings/acme/adt.yaml:14:24: field to_location of LocationChanged is required in the catalogue: add required: true",
            "mappings/acme/adt.yaml:10:16: event LocationChanged needs field(s) patient_mrn (required in the catalogue)",
            "mappings/acme/adt.yaml:11:41: unknown segment \"PVI\" (did you mean PV1?): not an HL7 v2 segment id (site-defined ones start with Z)",
            "mappings/acme/adt.yaml:14:36: PV1 has 54 fields at most (HL7 v2.7): there is no PV1-333",
            "8 error(s) in mappings",
        ],
        "{err}"
    );

    // A tenant's own event type, declared in its catalogue.yaml, is known to its mappings
    // (and only to its own); site-defined Z-segments are always allowed.
    std::fs::write(
        t.join("catalogue.yaml"),
        "stream_types:\n  Device: a bedside monitor\nevents:\n  VitalSignsRecorded:\n    streams: [Device]\n    fields:\n      heart_rate: { type: number, required: true }\n",
    )
    .unwrap();
    std::fs::write(
        t.join("adt.yaml"),
        "rules:\n  - message: ORU^R01\n    events:\n      - event: VitalSignsRecorded\n        stream: { type: Device, key: ZDV.1 }\n        fields:\n          heart_rate: { path: ZDV.40.1, type: number, required: true }\n",
    )
    .unwrap();
    let (code, out, err) = intake(dir.path(), &["check", "--mappings", "mappings"]);
    assert_eq!(code, 0, "{out}{err}");
    std::fs::write(
        t.join("catalogue.yaml"),
        "events:\n  AdmissionCreated:\n    streams: [Patient]\n    fields: {}\n",
    )
    .unwrap();
    let (code, _, err) = intake(dir.path(), &["check", "--mappings", "mappings"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("\nmappings/acme/catalogue.yaml:3:5: event type AdmissionCreated is already in the catalogue: choose another name\n"),
        "{err}"
    );
}
