//! FHIR and HL7 v2 through one running engine: the same visit's events from an ADT^A02
//! (HL7 over HTTP) and from a FHIR Encounter land on one stream with one data shape; an
//! Encounter's location history becomes LocationChanged events in order; a repost adds
//! nothing and a later version adds only its new location. Both backends.

mod common;

use common::{Options, Server, DEMO_TOKEN};
use serde_json::Value;
use std::collections::BTreeSet;

fn server() -> Server {
    Server::start_with(Options {
        shipped_mappings: true,
        ..Default::default()
    })
}

fn sample(name: &str) -> Vec<u8> {
    std::fs::read(common::repo().join("samples/demo").join(name)).unwrap()
}

/// Posts a FHIR JSON body; returns the status and the OperationOutcome's diagnostics.
fn post_fhir(server: &Server, body: &[u8]) -> (u16, String) {
    let (status, body) = server.post_fhir("demo", DEMO_TOKEN, body);
    let outcome: Value = serde_json::from_str(&body).unwrap();
    let diagnostics = outcome["issue"][0]["diagnostics"]
        .as_str()
        .unwrap_or_default();
    (status, diagnostics.to_string())
}

fn keys(data: &Value) -> BTreeSet<String> {
    data.as_object().unwrap().keys().cloned().collect()
}

on_each_backend! {
    async fn hl7_and_fhir_share_streams_and_an_encounter_history_is_appended_once() {
        let server = server();
        // The HL7 v2 transfer of visit V20261122-0001.
        let (status, _) = server.http("POST", "/api/v1/tenants/demo/hl7v2", Some(DEMO_TOKEN), &sample("a02-transfer.hl7"));
        assert_eq!(status, 200);
        let hl7 = server.events("demo").await;
        assert_eq!(hl7.len(), 1);
        let a02 = &hl7[0];
        assert_eq!(a02.event_type, "LocationChanged");

        // The same visit as a FHIR Encounter with a five-step location history.
        let (status, diag) = post_fhir(&server, &sample("fhir-encounter-history.json"));
        assert_eq!(status, 201, "{diag}");
        let events = server.events("demo").await;
        let fhir: Vec<_> = events.iter().skip(1).collect();
        let moves: Vec<_> = fhir.iter().filter(|e| e.event_type == "LocationChanged").collect();
        assert_eq!(moves.len(), 5, "one LocationChanged per location entry");
        let to: Vec<&str> = moves.iter().map(|e| e.data["to_location"].as_str().unwrap()).collect();
        let from: Vec<Option<&str>> = moves.iter().map(|e| e.data["from_location"].as_str()).collect();
        assert_eq!(from[0], None, "the first location has no predecessor");
        for i in 1..5 {
            assert_eq!(from[i], Some(to[i - 1]), "from = the entry before");
        }
        let effective: Vec<&str> = moves.iter().map(|e| e.data["effective_at"].as_str().unwrap()).collect();
        assert!(effective.windows(2).all(|w| w[0] < w[1]), "in history order: {effective:?}");
        for e in &fhir {
            assert_eq!(e.stream_id, a02.stream_id, "{} on the visit's stream", e.event_type);
        }
        for m in &moves {
            assert_eq!(keys(&m.data), keys(&a02.data), "same data shape as the HL7 A02");
            assert_eq!(m.data["visit_number"], a02.data["visit_number"]);
            assert_eq!(m.data["patient_mrn"], a02.data["patient_mrn"]);
        }
        let versions: Vec<i64> = events.iter().map(|e| e.event_version).collect();
        assert_eq!(versions, (1..=events.len() as i64).collect::<Vec<_>>(), "gap-free");

        // A repost adds nothing.
        let (status, diag) = post_fhir(&server, &sample("fhir-encounter-history.json"));
        assert_eq!(status, 200, "{diag}");
        assert!(diag.starts_with("0 events stored"), "{diag}");
        assert_eq!(server.events("demo").await.len(), events.len());

        // Version 2 with one more location: only the new move is appended.
        let (status, diag) = post_fhir(&server, &sample("fhir-encounter-history-v2.json"));
        assert_eq!(status, 201, "{diag}");
        let after = server.events("demo").await;
        let new: Vec<_> = after.iter().skip(events.len()).collect();
        assert_eq!(new.len(), 1, "{new:?}");
        assert_eq!(new[0].event_type, "LocationChanged");
        assert_eq!(new[0].data["from_location"].as_str(), Some(to[4]));
        assert_eq!(new[0].event_version, events.len() as i64 + 1);
    }
}
