//! The shipped golden samples, end to end: every `samples/demo/*.hl7` goes over MLLP to a
//! server running the shipped `mappings/`, and what is stored must equal its
//! `.events.json` (the same files `intake test` checks without a server).

mod common;

use common::{msa, Options, Server};
use intake_adapters::mllp::client::split_messages;
use serde_json::{json, Value};

on_each_backend! {
    async fn every_golden_sample_is_stored_as_its_expected_events_over_mllp() {
        let server = Server::start_with(Options {
            shipped_mappings: true,
            ..Default::default()
        });
        let mut client = server.client().await;
        let dir = common::repo().join("samples/demo");
        let mut cases: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "hl7"))
            .collect();
        cases.sort();
        assert!(
            cases.len() >= 24,
            "a golden sample for every trigger and lab case"
        );
        let mut expected: Vec<(String, Value)> = Vec::new();
        for case in &cases {
            let golden: Vec<Value> = serde_json::from_str(
                &std::fs::read_to_string(case.with_extension("events.json")).unwrap(),
            )
            .unwrap();
            let messages = split_messages(&std::fs::read(case).unwrap());
            assert_eq!(messages.len(), golden.len(), "{}", case.display());
            for (msg, want) in messages.iter().zip(golden) {
                let ack = client.send(msg).await.unwrap();
                let (code, control_id) = msa(&ack);
                assert_eq!(code, "AA", "{}: {ack}", case.display());
                expected.push((control_id, want));
            }
        }
        let stored = server.events("demo").await;
        assert!(server.dead_letters().await.is_empty());
        for (control_id, want) in expected {
            let got: Vec<Value> = stored
                .iter()
                .filter(|e| e.metadata["control_id"] == control_id.as_str())
                .map(|e| json!({"event_type": e.event_type, "stream_type": e.stream_type, "stream_id": e.stream_id, "data": e.data}))
                .collect();
            // A filtered sample is acknowledged and stores no event.
            if want.get("filtered").is_some() {
                assert!(got.is_empty(), "message {control_id}: filtered, yet {got:?}");
                continue;
            }
            assert_eq!(json!({"events": got}), want, "message {control_id}");
        }
    }
}
