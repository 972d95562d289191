//! Re-map preview, as hospital IT uses it before a mapping change goes live: stored
//! messages run through another version show the events it would add, remove and change,
//! by type and field name only, and nothing changes; `--apply` appends what it adds, once,
//! audited.

mod common;

use common::{Adt, SendAdt, Server, ADMIN, DEMO_TOKEN};
use std::path::Path;

fn intake(server: &Server, args: &[&str]) -> (bool, Vec<serde_json::Value>, String) {
    let (ok, stdout, stderr) = server.cli(args);
    assert!(
        !stdout.contains("Doe") && !stdout.contains("WARD1"),
        "no values: {stdout}"
    );
    let lines = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (ok, lines, stderr)
}

/// Copies the server's mappings to `to`, with demo's ADT rules edited: A01's location read
/// from another component, a rule for A04 added, the rule for A03 removed.
fn next_version(from: &Path, to: &Path) {
    for t in ["demo", "strict"] {
        std::fs::create_dir_all(to.join(t)).unwrap();
        for f in std::fs::read_dir(from.join(t)).unwrap() {
            let f = f.unwrap();
            std::fs::copy(f.path(), to.join(t).join(f.file_name())).unwrap();
        }
    }
    let file = to.join("demo/adt.yaml");
    let yaml = std::fs::read_to_string(&file).unwrap();
    let a03 = yaml.find("  - message: ADT^A03").unwrap();
    let next = yaml[a03 + 4..]
        .find("  - message:")
        .map_or(yaml.len(), |n| a03 + 4 + n);
    let mut edited = format!("{}{}", &yaml[..a03], &yaml[next..]);
    edited = edited.replacen(
        "location:       { path: PV1.3.1 }",
        "location:       { path: PV1.3.2 }",
        1,
    );
    edited.push_str(common::A04_RULE);
    assert_ne!(edited, yaml);
    std::fs::write(&file, edited).unwrap();
}

fn by_control<'a>(diffs: &'a [serde_json::Value], c: &str) -> &'a serde_json::Value {
    diffs
        .iter()
        .find(|d| d["control_id"] == c)
        .unwrap_or_else(|| panic!("{c}: {diffs:?}"))
}

on_each_backend! {
    async fn a_remap_previews_added_removed_and_changed_events_and_applies_additions_once() {
        let server = Server::start();
        let mut c = server.client().await;
        for (trigger, control_id, visit) in [("A01", "C1", "V1"), ("A01", "C2", "V2"), ("A04", "C3", "V3"), ("A03", "C4", "V1")] {
            c.ack(Adt { trigger, control_id, visit, ..Default::default() }).await;
        }
        let v2 = server.dir.join("v2");
        next_version(&server.dir.join("mappings"), &v2);
        let before = server.events("demo").await;
        let v2_arg = v2.to_str().unwrap();

        let (ok, diffs, err) = intake(&server, &["remap", "--tenant", "demo", "--mappings", v2_arg]);
        assert!(ok, "{err}");
        assert!(err.contains("4 message(s) compared"), "{err}");
        assert!(err.contains("0 unchanged, 4 would change (1 event(s) added, 1 removed, 2 changed); 0 appended"), "{err}");
        for c in ["C1", "C2"] {
            let d = by_control(&diffs, c);
            assert_eq!(d["changed"][0]["event_type"], "AdmissionCreated");
            assert_eq!(d["changed"][0]["fields"], serde_json::json!(["location"]));
        }
        let c3 = by_control(&diffs, "C3");
        assert_eq!((c3["new_outcome"].as_str(), c3["added"][0]["event_type"].as_str()), (Some("events"), Some("PatientRegistered")));
        let c4 = by_control(&diffs, "C4");
        assert_eq!((c4["new_outcome"].as_str(), c4["removed"][0]["event_type"].as_str()), (Some("UNMAPPED_MESSAGE_TYPE"), Some("DischargeCompleted")));
        assert_eq!(server.events("demo").await, before, "a preview changes nothing");
        let (_, only, _) = intake(&server, &["remap", "--tenant", "demo", "--mappings", v2_arg, "--type", "ADT^A04"]);
        assert_eq!(only.len(), 1);

        // Apply: the one added event, as a correction; a second apply adds nothing.
        let apply = ["remap", "--tenant", "demo", "--mappings", v2_arg, "--apply", "--reason", "CHG-9"];
        let (ok, _, err) = intake(&server, &apply);
        assert!(ok && err.contains("; 1 appended"), "{err}");
        let (ok, diffs, err) = intake(&server, &apply);
        assert!(ok && err.contains("; 0 appended"), "{err}");
        assert!(diffs.iter().all(|d| d["control_id"] != "C3"), "C3 is now as v2 maps it");
        let after = server.events("demo").await;
        let added: Vec<_> = after.iter().filter(|e| e.created_by == "intake/remap").collect();
        assert_eq!(added.len(), 1);
        assert_eq!((added[0].event_type.as_str(), added[0].metadata["correction"]["remapped_by"].as_str().map(|a| a.starts_with("cli:"))), ("PatientRegistered", Some(true)));
        let audit: Vec<_> = after.iter().filter(|e| e.stream_type == "Audit").collect();
        assert_eq!(audit.len(), 1, "one apply appended something, so one entry");
        assert_eq!((audit[0].event_type.as_str(), audit[0].data["reason"].as_str(), audit[0].data["counts"]["appended"].as_u64()), ("MessagesRemapped", Some("CHG-9"), Some(1)));
        assert_eq!(after.len(), before.len() + 2);

        // A folder without the tenant is refused by name.
        let (ok, _, err) = intake(&server, &["remap", "--tenant", "nobody", "--mappings", v2_arg]);
        assert!(!ok && err.contains("has no tenant nobody"), "{err}");

        // Over HTTP: a preview against the live folder (which lacks the A04 rule, so C3's
        // correction would be removed); applying needs the admin scope.
        let route = "/api/v1/tenants/demo/remap";
        let (status, body) = server.http("POST", route, Some(DEMO_TOKEN), b"");
        assert_eq!(status, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["remap"]["messages"], 4);
        let c3 = v["remap"]["diffs"].as_array().unwrap().iter().find(|d| d["control_id"] == "C3").unwrap();
        assert_eq!(c3["removed"][0]["event_type"], "PatientRegistered");
        let (status, body) = server.http("POST", route, Some(DEMO_TOKEN), br#"{"apply": true}"#);
        assert_eq!(status, 403, "{body}");
        assert!(body.contains("the admin scope"), "{body}");
        let (status, body) = server.http("POST", route, Some(ADMIN), br#"{"seq": 999999}"#);
        assert_eq!(status, 404, "{body}");
        let (status, _) = server.http("POST", route, Some(DEMO_TOKEN), br#"{"limit": 0}"#);
        assert_eq!(status, 400);
    }
}
