//! Specialty plugins, end to end: adt-core derives the LocationChanged an A08 implies
//! (once, however often the message arrives or is replayed) and flags visits out of
//! sequence; cardiac records ejection fractions from HL7 v2 and FHIR and handles values
//! outside its manifest as the manifest says; `intake check` locates manifest errors.

mod common;

use common::{msa, Adt, SendAdt, Server, A08_RULE, DEMO_TOKEN, STRICT_TOKEN};
use intake_pipeline::event::{stream_id, EventEnvelope};
use std::time::Duration;

fn of_type<'e>(events: &'e [EventEnvelope], visit: &str, ty: &str) -> Vec<&'e EventEnvelope> {
    let id = stream_id("demo", "Admission", visit);
    events
        .iter()
        .filter(|e| e.stream_id == id && e.event_type == ty)
        .collect()
}

on_each_backend! {
    async fn an_a08_that_moves_the_patient_derives_one_location_changed_however_often_it_arrives() {
        let server = Server::start_with(common::Options {
            reload_interval_ms: Some(100),
            ..Default::default()
        });
        let mut c = server.client().await;
        let admit = Adt { control_id: "C1", location: "WARD1^101^A", ..Default::default() };
        assert_eq!(msa(&c.ack(admit).await).0, "AA");
        // The tenant has no A08 rule yet: the move waits in the dead-letter queue.
        let moved = Adt { trigger: "A08", control_id: "C2", location: "WARD2^201^B", ..Default::default() };
        assert_eq!(msa(&c.ack(moved).await).0, "AA");
        assert_eq!(server.dead_letters().await[0].reason_code, "UNMAPPED_MESSAGE_TYPE");

        // Support adds the rule and replays the letter: the update and the derived move.
        let file = server.dir.join("mappings/demo/adt.yaml");
        let yaml = std::fs::read_to_string(&file).unwrap() + A08_RULE;
        std::fs::write(&file, yaml).unwrap();
        let (ok, out, err) = server.cli(&["dlq", "replay", "--tenant", "demo", "--reason", "A08 rule added"]);
        assert!(ok, "{out}{err}");
        let events = server.events("demo").await;
        let changes = of_type(&events, "V1", "LocationChanged");
        assert_eq!(changes.len(), 1, "{events:#?}");
        let change = changes[0];
        assert_eq!(change.data["from_location"], "WARD1");
        assert_eq!(change.data["from_bed"], "A");
        assert_eq!(change.data["to_location"], "WARD2");
        assert_eq!(change.data["to_bed"], "B");
        assert_eq!(change.data["reason"], "A08");
        let derived = &change.metadata["derived"];
        assert_eq!(derived["plugin"], "adt-core");
        assert_eq!(derived["version"], "1.0.0");
        assert_eq!(derived["rule"], "location-changed-on-update");
        let update = of_type(&events, "V1", "PatientUpdated")[0];
        assert_eq!(derived["from_event"], update.event_id.to_string());
        assert_eq!(change.event_version, update.event_version + 1, "right after its trigger");

        // A second replay, a resend of the same A08, and an A08 that does not move the
        // patient derive nothing more; one that moves again derives the next move.
        let (ok, _, _) = server.cli(&["dlq", "replay", "--tenant", "demo", "--reason", "again"]);
        assert!(ok);
        tokio::time::sleep(Duration::from_millis(600)).await; // the server reloads the rule
        let resend = Adt { trigger: "A08", control_id: "C2", location: "WARD2^201^B", ..Default::default() };
        assert_eq!(msa(&c.ack(resend).await).0, "AA");
        let same = Adt { trigger: "A08", control_id: "C3", location: "WARD2^201^B", ..Default::default() };
        assert_eq!(msa(&c.ack(same).await).0, "AA");
        let events = server.events("demo").await;
        assert_eq!(of_type(&events, "V1", "PatientUpdated").len(), 2, "C3 mapped");
        assert_eq!(of_type(&events, "V1", "LocationChanged").len(), 1);
        let again = Adt { trigger: "A08", control_id: "C4", location: "WARD3^301^C", ..Default::default() };
        assert_eq!(msa(&c.ack(again).await).0, "AA");
        let events = server.events("demo").await;
        let changes = of_type(&events, "V1", "LocationChanged");
        assert_eq!(changes.len(), 2);
        assert_eq!((changes[1].data["from_location"].as_str(), changes[1].data["to_location"].as_str()), (Some("WARD2"), Some("WARD3")));

        // A discharge for a visit that was never admitted is kept, and flagged.
        let stray = Adt { trigger: "A03", control_id: "C5", visit: "V9", ..Default::default() };
        assert_eq!(msa(&c.ack(stray).await).0, "AA");
        let events = server.events("demo").await;
        let anomalies = of_type(&events, "V9", "VisitAnomalyDetected");
        assert_eq!(anomalies.len(), 1);
        assert_eq!(anomalies[0].data["anomaly"], "discharge_without_admission");
        assert_eq!(of_type(&events, "V1", "VisitAnomalyDetected").len(), 0);

        // The stream's state over HTTP; another tenant's token cannot read it, and its
        // own tenant has no such stream.
        let id = stream_id("demo", "Admission", "V1");
        let (status, body) = server.http("GET", &format!("/api/v1/tenants/demo/streams/{id}"), Some(DEMO_TOKEN), b"");
        assert_eq!(status, 200, "{body}");
        let shown: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!((shown["state"]["location"].as_str(), shown["state"]["bed"].as_str()), (Some("WARD3"), Some("C")));
        assert_eq!(shown["state"]["status"], "admitted");
        let (status, _) = server.http("GET", &format!("/api/v1/tenants/demo/streams/{id}"), Some(STRICT_TOKEN), b"");
        assert_eq!(status, 403);
        let (status, body) = server.http("GET", &format!("/api/v1/tenants/strict/streams/{id}"), Some(STRICT_TOKEN), b"");
        assert_eq!(status, 404);
        assert!(body.contains("STREAM_NOT_FOUND"), "{body}");
    }
}

on_each_backend! {
    async fn a_visit_another_process_appended_to_is_read_again_before_its_next_derivation() {
        // The server keeps each visit's folded state between messages; when another
        // process (here `intake import`) appends to the visit, the kept state is stale and
        // must not decide what the next message derives.
        let server = Server::start_with(common::Options {
            reload_interval_ms: Some(100),
            ..Default::default()
        });
        let file = server.dir.join("mappings/demo/adt.yaml");
        let yaml = std::fs::read_to_string(&file).unwrap() + A08_RULE;
        std::fs::write(&file, yaml).unwrap();
        tokio::time::sleep(Duration::from_millis(600)).await; // the server reloads the rule
        let mut c = server.client().await;
        let admit = Adt { control_id: "K1", location: "WARD1^101^A", ..Default::default() };
        assert_eq!(msa(&c.ack(admit).await).0, "AA");
        let first = Adt { trigger: "A08", control_id: "K2", location: "WARD2^201^B", ..Default::default() };
        assert_eq!(msa(&c.ack(first).await).0, "AA");
        assert_eq!(of_type(&server.events("demo").await, "V1", "LocationChanged").len(), 1);

        // Another process moves the patient on to WARD3.
        let moved = Adt { trigger: "A08", control_id: "K3", location: "WARD3^301^C", ..Default::default() };
        let path = server.dir.join("moved.hl7");
        std::fs::write(&path, moved.build()).unwrap();
        let (ok, out, err) = server.cli(&["import", "--tenant", "demo", "--quiet", path.to_str().unwrap()]);
        assert!(ok, "{out}{err}");
        let events = server.events("demo").await;
        let changes = of_type(&events, "V1", "LocationChanged");
        assert_eq!(changes.len(), 2, "{events:#?}");
        assert_eq!(changes[1].data["from_location"], "WARD2");

        // An A08 at WARD3 is no move: the server reads the visit again, it does not
        // fold onto the WARD2 it kept. One back to WARD1 moves from WARD3.
        let same = Adt { trigger: "A08", control_id: "K4", location: "WARD3^301^C", ..Default::default() };
        assert_eq!(msa(&c.ack(same).await).0, "AA");
        let back = Adt { trigger: "A08", control_id: "K5", location: "WARD1^101^A", ..Default::default() };
        assert_eq!(msa(&c.ack(back).await).0, "AA");
        let events = server.events("demo").await;
        let changes = of_type(&events, "V1", "LocationChanged");
        let moves: Vec<_> = changes
            .iter()
            .map(|e| (e.data["from_location"].as_str().unwrap(), e.data["to_location"].as_str().unwrap()))
            .collect();
        assert_eq!(moves, [("WARD1", "WARD2"), ("WARD2", "WARD3"), ("WARD3", "WARD1")]);
        assert_eq!(of_type(&events, "V1", "PatientUpdated").len(), 4);
    }
}

/// An ORU with one OBX: `code^text^system` and value `value` (type `ty`).
fn oru(control: &str, code: &str, ty: &str, value: &str) -> Vec<u8> {
    format!(
        "MSH|^~\\&|LAB1|DEMO_HOSP|INTAKE|INTAKE|20261123064500||ORU^R01^ORU_R01|{control}|P|2.5.1\r\
         PID|1||MRN100234^^^DEMO_HOSP^MR||Doe^Alex||19800214|F\r\
         PV1|1|I|ICU1^03^A^DEMO_HOSP||||D1234|||MED|||||||||V-CARD-1\r\
         OBR|1|ORD1|L1|ECHO^Echocardiogram^L|||20261123052000|||||||||D1234||||||20261123064000||CT|F\r\
         OBX|1|{ty}|{code}||{value}|%|||||F|||20261123063000\r"
    )
    .into_bytes()
}

on_each_backend! {
    async fn the_cardiac_plugin_records_ejection_fractions_and_handles_bad_values_as_its_manifest_says() {
        let server = Server::start_with(common::Options { shipped_mappings: true, ..Default::default() });
        let mut c = server.client().await;
        let cardiac = |events: &[EventEnvelope]| -> Vec<serde_json::Value> {
            events.iter().filter(|e| e.event_type == "CardiacMeasurementRecorded")
                .map(|e| serde_json::json!({"data": e.data, "metadata": e.metadata})).collect()
        };

        // In range: the lab result and, derived from it, the cardiac measurement.
        let ack = c.send(&oru("EF1", "18043-0^LV ejection fraction^LN", "NM", "55")).await.unwrap();
        assert_eq!(msa(&ack).0, "AA");
        let events = server.events("demo").await;
        let found = cardiac(&events);
        assert_eq!(found.len(), 1, "{events:#?}");
        assert_eq!(found[0]["data"]["ejection_fraction"], 55.0);
        assert_eq!(found[0]["data"]["measurement"], "ejection_fraction");
        assert_eq!(found[0]["metadata"]["derived"]["plugin"], "cardiac");
        assert_eq!(found[0]["metadata"]["derived"]["rule"], "ejection-fraction");

        // Out of range: the manifest says dead_letter; the reason names the field, never
        // the value.
        let ack = c.send(&oru("EF2", "10230-1^LV ejection fraction^LN", "NM", "155")).await.unwrap();
        assert_eq!(msa(&ack).0, "AA", "the engine has custody of the dead letter");
        let letters = server.dead_letters().await;
        assert_eq!(letters.len(), 1);
        assert_eq!(letters[0].reason_code, "PLUGIN_VALIDATION_FAILED");
        let detail = letters[0].detail.clone().unwrap_or_default();
        assert_eq!(detail, "plugin cardiac 1.0.0: CardiacMeasurementRecorded.ejection_fraction is not in range 0..100");
        assert_eq!(cardiac(&server.events("demo").await).len(), 1, "nothing of EF2 is stored");

        // A NYHA class outside I-IV: the manifest says flag, so the event is kept, flagged.
        let ack = c.send(&oru("NY1", "88020-3^NYHA class^LN", "ST", "V")).await.unwrap();
        assert_eq!(msa(&ack).0, "AA");
        let found = cardiac(&server.events("demo").await);
        assert_eq!(found.len(), 2);
        assert_eq!(found[1]["data"]["nyha_class"], "V");
        assert_eq!(found[1]["metadata"]["flags"], serde_json::json!([{"plugin": "cardiac", "field": "nyha_class", "expected": "one of I, II, III, IV"}]));
        let ack = c.send(&oru("NY2", "88020-3^NYHA class^LN", "ST", "III")).await.unwrap();
        assert_eq!(msa(&ack).0, "AA");
        let found = cardiac(&server.events("demo").await);
        assert!(found[2]["metadata"].get("flags").is_none(), "III is a class");

        // From a FHIR Observation too.
        let obs = std::fs::read_to_string(common::repo().join("samples/demo/fhir-observation-lab.json")).unwrap();
        let mut obs: serde_json::Value = serde_json::from_str(&obs).unwrap();
        obs["id"] = "obs-ef-1".into();
        obs["code"] = serde_json::json!({"coding": [{"system": "http://loinc.org", "code": "10230-1", "display": "LV ejection fraction"}]});
        obs["valueQuantity"] = serde_json::json!({"value": 40, "unit": "%", "system": "http://unitsofmeasure.org", "code": "%"});
        obs.as_object_mut().unwrap().remove("referenceRange");
        obs.as_object_mut().unwrap().remove("interpretation");
        let (status, body) = server.post_fhir("demo", DEMO_TOKEN, obs.to_string().as_bytes());
        assert!(status == 200 || status == 201, "{status} {body}");
        let found = cardiac(&server.events("demo").await);
        assert_eq!(found.len(), 4, "{found:#?}");
        assert_eq!(found[3]["data"]["ejection_fraction"], 40.0);
        assert_eq!(found[3]["data"]["code"], "10230-1");
    }
}

/// `intake check` over a copy of the shipped mappings and plugins, one manifest edited.
fn check_with(edit: impl Fn(&str) -> String) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let copy = |from: &std::path::Path, to: &std::path::Path| {
        for f in common::files_under(from) {
            let target = to.join(f.strip_prefix(from).unwrap());
            std::fs::create_dir_all(target.parent().unwrap()).unwrap();
            std::fs::copy(&f, target).unwrap();
        }
    };
    copy(
        &common::repo().join("mappings"),
        &dir.path().join("mappings"),
    );
    copy(&common::repo().join("plugins"), &dir.path().join("plugins"));
    let manifest = dir.path().join("plugins/cardiac/manifest.yaml");
    std::fs::write(
        &manifest,
        edit(&std::fs::read_to_string(&manifest).unwrap()),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_intake"))
        .args(["check", "--mappings", "mappings"])
        .current_dir(dir.path())
        .env_remove("INTAKE_MAPPINGS_DIR")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_locates_manifest_errors_at_file_line_col() {
    let (ok, err) = check_with(|m| m.to_string());
    assert!(ok, "the shipped plugins check: {err}");
    let (ok, err) = check_with(|m| {
        m.replace(
            "      field: ejection_fraction\n",
            "      field: ejection_fracton\n",
        )
    });
    assert!(!ok);
    let first = err.lines().next().unwrap();
    assert!(
        first.starts_with("plugins/cardiac/manifest.yaml:")
            && first.ends_with("validation: CardiacMeasurementRecorded has no field \"ejection_fracton\" (did you mean ejection_fraction?)"),
        "{err}"
    );
    let line: usize = first.split(':').nth(1).unwrap().parse().unwrap();
    let text =
        std::fs::read_to_string(common::repo().join("plugins/cardiac/manifest.yaml")).unwrap();
    assert_eq!(
        text.lines().nth(line - 1).unwrap().trim(),
        "- event: CardiacMeasurementRecorded",
        "the line of the validation"
    );
    let (ok, err) =
        check_with(|m| m.replace("value: $loinc_code | $code, in:", "value: $loinc, in:"));
    assert!(!ok);
    assert!(
        err.contains("rule ejection-fraction: if: the trigger event has no field \"loinc\""),
        "{err}"
    );
    let (ok, err) = check_with(|m| m.replace("on_invalid: flag", "on_invalid: ignore"));
    assert!(
        !ok && err.contains("plugins/cardiac/manifest.yaml:"),
        "{err}"
    );
}

on_each_backend! {
    async fn an_edited_manifest_reloads_like_a_mapping_and_a_broken_one_is_refused() {
        let server = Server::start_with(common::Options {
            reload_interval_ms: Some(100),
            ..Default::default()
        });
        let adt = server.dir.join("mappings/demo/adt.yaml");
        std::fs::write(&adt, std::fs::read_to_string(&adt).unwrap() + A08_RULE).unwrap();
        tokio::time::sleep(Duration::from_millis(600)).await;
        let mut c = server.client().await;
        assert_eq!(msa(&c.ack(Adt { control_id: "C1", ..Default::default() }).await).0, "AA");
        let to = |control_id, location| Adt { trigger: "A08", control_id, location, ..Default::default() };
        assert_eq!(msa(&c.ack(to("C2", "WARD2^1^A")).await).0, "AA");

        // A new version of adt-core goes live without a restart.
        let manifest = server.dir.join("plugins/adt-core/manifest.yaml");
        let text = std::fs::read_to_string(&manifest).unwrap();
        let edited = text.replace("version: 1.0.0", "version: 1.1.0").replace("reason:        A08\n", "reason:        A08 update\n");
        assert_ne!(edited, text);
        std::fs::write(&manifest, &edited).unwrap();
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert_eq!(msa(&c.ack(to("C3", "WARD3^1^A")).await).0, "AA");

        // A broken one is refused: the version before keeps serving.
        std::fs::write(&manifest, edited.replace("event: LocationChanged", "event: LocationChange")).unwrap();
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert_eq!(msa(&c.ack(to("C4", "WARD4^1^A")).await).0, "AA");

        let events = server.events("demo").await;
        let changes: Vec<(String, String)> = of_type(&events, "V1", "LocationChanged")
            .iter()
            .map(|e| (e.data["reason"].as_str().unwrap().to_string(), e.metadata["derived"]["version"].as_str().unwrap().to_string()))
            .collect();
        let want = [("A08", "1.0.0"), ("A08 update", "1.1.0"), ("A08 update", "1.1.0")];
        assert_eq!(changes, want.map(|(a, b)| (a.to_string(), b.to_string())));
    }
}
