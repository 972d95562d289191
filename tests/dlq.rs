//! Dead-letter support: a message the mapping cannot handle is dead-lettered; support
//! fixes the mapping and replays; replays are exclusive (two at once never take the same
//! letter), tenant-scoped, and a dry run stores nothing.

mod common;

use common::{msa, Adt, SendAdt, Server};
use std::collections::BTreeSet;
use std::process::Command;

/// Runs `intake dlq ...` against the server's database and mappings.
fn dlq(server: &Server, args: &[&str]) -> (bool, Vec<serde_json::Value>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_intake"))
        .arg("--config")
        .arg(server.dir.join("intake.toml"))
        .arg("dlq")
        .args(args)
        .env_remove("INTAKE_DATABASE_URL")
        .env_remove("INTAKE_MAPPINGS_DIR")
        .output()
        .unwrap();
    let lines = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (
        out.status.success(),
        lines,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const A04_RULE: &str = "
  - message: ADT^A04
    events:
      - event: PatientRegistered
        stream: { type: Admission, key: PV1.19.1 }
        time: EVN.6 | EVN.2 | MSH.7
        fields:
          patient_mrn:  { path: \"PID.3[5=MR].1 | PID.3.1\", required: true }
          visit_number: { path: PV1.19.1, required: true }
";

on_each_backend! {
    async fn fixed_mappings_replay_exclusively_within_one_tenant() {
        let server = Server::start();
        let mut c = server.client().await;
        let mut controls = Vec::new();
        for i in 0..20 {
            let ctrl = format!("R{i}");
            let visit = format!("RV{i}");
            let ack = c.ack(Adt { trigger: "A04", control_id: &ctrl, visit: &visit, ..Default::default() }).await;
            assert_eq!(msa(&ack), ("AA".to_string(), ctrl.clone()));
            controls.push(ctrl);
        }
        let mut routed = server.routed_client().await;
        let ack = routed.ack(Adt { trigger: "A04", facility: "STRICT_HOSP", control_id: "S1", ..Default::default() }).await;
        assert_eq!(msa(&ack).0, "AE");

        let (ok, open, _) = dlq(&server, &["list", "--tenant", "demo"]);
        assert!(ok);
        assert_eq!(open.len(), 20);
        assert!(open.iter().all(|d| d["reason_code"] == "UNMAPPED_MESSAGE_TYPE"));

        // Still unmapped: a dry run says so and changes nothing.
        let (ok, results, _) = dlq(&server, &["replay", "--tenant", "demo", "--dry-run"]);
        assert!(!ok, "letters that still fail make the command fail");
        assert!(results.iter().all(|r| r["still_failing"] == "UNMAPPED_MESSAGE_TYPE"));

        // Support fixes the mapping (a rule for A04), then dry-runs again.
        for t in ["demo", "strict"] {
            let file = server.dir.join("mappings").join(t).join("adt.yaml");
            let mut yaml = std::fs::read_to_string(&file).unwrap();
            yaml.push_str(A04_RULE);
            std::fs::write(&file, yaml).unwrap();
        }
        let (ok, results, err) = dlq(&server, &["replay", "--tenant", "demo", "--dry-run"]);
        assert!(ok, "{err}");
        assert_eq!(results.len(), 20);
        assert!(results.iter().all(|r| r["events"] == 1 && r["appended"] == 0));
        assert!(server.events("demo").await.is_empty(), "a dry run stores nothing");

        // Two replays at once, ten letters each: every letter is taken by exactly one.
        let config = server.dir.join("intake.toml");
        let spawn = || {
            Command::new(env!("CARGO_BIN_EXE_intake"))
                .arg("--config")
                .arg(&config)
                .args(["dlq", "replay", "--tenant", "demo", "--limit", "10"])
                .env_remove("INTAKE_DATABASE_URL")
                .env_remove("INTAKE_MAPPINGS_DIR")
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        };
        let (a, b) = (spawn(), spawn());
        let mut taken = Vec::new();
        for child in [a, b] {
            let out = child.wait_with_output().unwrap();
            assert!(out.status.success());
            for l in String::from_utf8_lossy(&out.stdout).lines() {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                assert_eq!((v["events"].as_u64(), v["appended"].as_u64()), (Some(1), Some(1)));
                taken.push(v["id"].as_str().unwrap().to_string());
            }
        }
        let unique: BTreeSet<&String> = taken.iter().collect();
        assert_eq!((taken.len(), unique.len()), (20, 20), "each letter replayed exactly once");

        // The events are those the message would have produced the first time.
        let events = server.events("demo").await;
        let stored: BTreeSet<String> = events
            .iter()
            .map(|e| e.metadata["control_id"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(stored, controls.iter().cloned().collect());
        assert!(events.iter().all(|e| e.event_type == "PatientRegistered" && e.created_by == "intake/replay"));

        // The other tenant's letter was not touched by demo's replays.
        assert_eq!(dlq(&server, &["list", "--tenant", "demo"]).1.len(), 0);
        let (_, strict, _) = dlq(&server, &["list", "--tenant", "strict"]);
        assert_eq!(strict.len(), 1);
        let (_, replayed, _) = dlq(&server, &["list", "--tenant", "demo", "--status", "replayed"]);
        assert_eq!(replayed.len(), 20);

        // Replaying again finds nothing open; discarding takes the strict letter.
        let (ok, results, _) = dlq(&server, &["replay", "--tenant", "demo"]);
        assert!(ok && results.is_empty());
        let id = strict[0]["id"].as_str().unwrap();
        let (ok, discarded, _) = dlq(&server, &["discard", "--tenant", "strict", "--id", id]);
        assert!(ok);
        assert_eq!(discarded.len(), 1);
        let (_, strict, _) = dlq(&server, &["list", "--tenant", "strict", "--status", "all"]);
        assert_eq!(strict[0]["status"], "discarded");

        // The server kept serving throughout.
        assert_eq!(msa(&c.ack(Adt { control_id: "AFTER", ..Default::default() }).await).0, "AA");
    }
}
