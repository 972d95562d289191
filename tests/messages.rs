//! The message browser, as support staff use it: find a tenant's messages by outcome,
//! type, control id, time and business key (MRN, visit), newest first, page by page; each
//! hit links its events to their streams and shows its dead letter. It never shows content;
//! a key search needs the phi scope and keeps the key out of the URL.

mod common;

use common::{msa, Adt, SendAdt, Server, DEMO_TOKEN, STRICT_TOKEN};

/// `intake messages ...`: (success, hits, stderr).
fn messages(server: &Server, args: &[&str]) -> (bool, Vec<serde_json::Value>, String) {
    let (ok, stdout, stderr) = server.cli(&[&["messages"], args].concat());
    assert!(!stdout.contains("Doe"), "no content in a hit: {stdout}");
    let hits = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (ok, hits, stderr)
}

fn controls(hits: &[serde_json::Value]) -> Vec<&str> {
    hits.iter()
        .map(|h| h["control_id"].as_str().unwrap())
        .collect()
}

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

on_each_backend! {
    async fn support_finds_messages_by_facts_and_business_keys_newest_first() {
        let server = Server::start();
        let mut c = server.client().await;
        for (trigger, control_id, visit) in [("A01", "C1", "V1"), ("A03", "C2", "V1"), ("A04", "C3", "V3"), ("A01", "C4", "V2")] {
            c.ack(Adt { trigger, control_id, visit, ..Default::default() }).await;
        }
        let mut routed = server.routed_client().await;
        assert_eq!(msa(&routed.ack(Adt { facility: "STRICT_HOSP", control_id: "S1", ..Default::default() }).await).0, "AA");

        // Newest first, with outcome, events (linked to their stream) and dead letter.
        let (ok, hits, _) = messages(&server, &["--tenant", "demo"]);
        assert!(ok);
        assert_eq!(controls(&hits), ["C4", "C3", "C2", "C1"]);
        let c1 = &hits[3];
        assert_eq!((c1["outcome"].as_str(), c1["message_type"].as_str()), (Some("events"), Some("ADT^A01")));
        let admission = intake_pipeline::event::stream_id("demo", "Admission", "V1");
        assert_eq!(c1["events"][0]["event_type"], "AdmissionCreated");
        assert_eq!(c1["events"][0]["stream_id"], admission.to_string());
        assert!(c1["dead_letter"].is_null() && c1["events"][0].get("data").is_none());
        let c3 = &hits[1];
        assert_eq!((c3["outcome"].as_str(), c3["reason"].as_str()), (Some("dead_lettered"), Some("UNMAPPED_MESSAGE_TYPE")));
        assert_eq!((c3["dead_letter"]["status"].as_str(), c3["events"].as_array().map(Vec::len)), (Some("open"), Some(0)));

        // By facts.
        assert_eq!(controls(&messages(&server, &["--tenant", "demo", "--outcome", "dead_lettered"]).1), ["C3"]);
        assert_eq!(controls(&messages(&server, &["--tenant", "demo", "--type", "ADT^A03"]).1), ["C2"]);
        assert_eq!(controls(&messages(&server, &["--tenant", "demo", "--control-id", "C1"]).1), ["C1"]);
        assert_eq!(controls(&messages(&server, &["--facility", "STRICT_HOSP"]).1), ["S1"]);
        assert!(messages(&server, &["--tenant", "demo", "--since", "2099-01-01T00:00:00Z"]).1.is_empty());
        assert_eq!(messages(&server, &["--tenant", "demo", "--until", "2099-01-01T00:00:00Z"]).1.len(), 4);
        let (ok, _, e) = messages(&server, &["--outcome", "lost"]);
        assert!(!ok && e.contains("--outcome must be events, filtered or dead_lettered"), "{e}");

        // By business key, through the hashed index; one tenant's key never finds another's.
        assert_eq!(controls(&messages(&server, &["--tenant", "demo", "--mrn", "MRN-V1"]).1), ["C2", "C1"]);
        assert_eq!(controls(&messages(&server, &["--tenant", "demo", "--visit", "V2"]).1), ["C4"]);
        assert_eq!(controls(&messages(&server, &["--tenant", "strict", "--mrn", "MRN-V1"]).1), ["S1"]);
        let (ok, _, e) = messages(&server, &["--mrn", "MRN-V1"]);
        assert!(!ok && e.contains("give --tenant"), "{e}");

        // Cursor paging: two pages of two, no overlap, then nothing.
        let (_, page1, e) = messages(&server, &["--tenant", "demo", "--limit", "2"]);
        assert_eq!(controls(&page1), ["C4", "C3"]);
        let cursor = page1[1]["id"].as_str().unwrap();
        assert!(e.contains(&format!("more with --before {cursor}")), "{e}");
        let (_, page2, _) = messages(&server, &["--tenant", "demo", "--limit", "2", "--before", cursor]);
        assert_eq!(controls(&page2), ["C2", "C1"]);

        // Over HTTP: the same, tenant-scoped; keys only in a search body, with the phi scope.
        let base = "/api/v1/tenants/demo/messages";
        let (status, body) = server.http("GET", &format!("{base}?outcome=events&limit=2"), Some(DEMO_TOKEN), b"");
        assert_eq!(status, 200, "{body}");
        let v = json(&body);
        assert_eq!(controls(v["messages"].as_array().unwrap()), ["C4", "C2"]);
        assert_eq!(v["next_before"], v["messages"][1]["id"]);
        assert_eq!(server.http("GET", base, Some(STRICT_TOKEN), b"").0, 403);
        let (status, body) = server.http("GET", &format!("{base}?mrn=MRN-V1"), Some(DEMO_TOKEN), b"");
        assert_eq!((status, json(&body)["error"]["code"].as_str()), (400, Some("INVALID_QUERY")));
        assert!(!body.contains("MRN-V1"), "the key is not echoed: {body}");
        let (status, body) = server.http("POST", &format!("{base}/search"), Some(DEMO_TOKEN), br#"{"mrn": "MRN-V1"}"#);
        assert_eq!(status, 200, "{body}");
        assert_eq!(controls(json(&body)["messages"].as_array().unwrap()), ["C2", "C1"]);
        let (status, body) = server.http("POST", &format!("{base}/search"), Some(DEMO_TOKEN), br#"{"outcome": "nope"}"#);
        assert_eq!((status, json(&body)["error"]["code"].as_str()), (400, Some("INVALID_QUERY")), "{body}");

        // A replayed letter shows its new events and its letter's new status; its keys are
        // indexed by the replay.
        server.add_a04_rule("demo");
        let (ok, _, err) = server.cli(&["dlq", "replay", "--tenant", "demo"]);
        assert!(ok, "{err}");
        let (_, hits, _) = messages(&server, &["--tenant", "demo", "--visit", "V3"]);
        assert_eq!(controls(&hits), ["C3"]);
        assert_eq!((hits[0]["dead_letter"]["status"].as_str(), hits[0]["events"][0]["event_type"].as_str()), (Some("replayed"), Some("PatientRegistered")));

        // The server kept serving.
        assert_eq!(msa(&c.ack(Adt { control_id: "AFTER", ..Default::default() }).await).0, "AA");
    }
}

/// A token with the support scope but not phi browses, but may not search by key.
#[tokio::test]
async fn a_key_search_needs_the_phi_scope() {
    common::set_backend(common::Backend::Sqlite);
    let server = Server::start();
    let token = server.demo_token("desk", "support").await;
    let base = "/api/v1/tenants/demo/messages";
    let (status, body) = server.http(
        "POST",
        &format!("{base}/search"),
        Some(&token),
        br#"{"visit": "V1"}"#,
    );
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("the phi scope"), "{body}");
    let (status, _) = server.http(
        "POST",
        &format!("{base}/search"),
        Some(&token),
        br#"{"type": "ADT^A01"}"#,
    );
    assert_eq!(status, 200, "a search without a key needs no phi");
}
