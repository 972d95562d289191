//! The PHI canary: every golden sample and every HL7 v2 message of the shared corpus is
//! sent over MLLP with its patient's name (PID-5) replaced by a canary, to a server
//! logging at TRACE. The canary must never appear in the logs, the metrics, the ACKs, the
//! HTTP error bodies or the dead letters' reasons; it may appear only where the message
//! itself is kept (the raw message, and the events' data, which are the clinical record).

mod common;

use common::{Options, Server, ADMIN, DEMO_TOKEN};
use intake_adapters::mllp::client::split_messages;
use std::path::PathBuf;

const CANARY: &str = "Qzcanaryfamily";

/// The HL7 v2 inputs: the demo samples, and the corpus when it is beside the checkout.
fn inputs() -> Vec<PathBuf> {
    let mut out = common::files_under(&common::repo().join("samples/demo"));
    let corpus = std::env::var("INTAKE_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|_| common::repo().join("../shared/corpus"));
    if corpus.join("hl7v2").is_dir() {
        out.extend(common::files_under(&corpus.join("hl7v2")));
    } else {
        assert!(
            std::env::var("INTAKE_REQUIRE_CORPUS").is_err(),
            "corpus not found"
        );
    }
    // Everything but the FHIR files and golden outputs: hostile inputs (fuzzer finds,
    // truncated frames) are welcome here.
    out.retain(|p| {
        !p.extension()
            .is_some_and(|x| x == "json" || x == "xml" || x == "md")
    });
    out
}

/// The message with every PID-5 replaced by the canary (messages with `|` as field
/// separator; others are sent as they are and simply carry no canary).
fn with_canary(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 32);
    let mut start = 0;
    for (i, &b) in message.iter().enumerate() {
        if b == b'\r' || b == b'\n' || i + 1 == message.len() {
            let end = if b == b'\r' || b == b'\n' { i } else { i + 1 };
            let segment = &message[start..end];
            if segment.starts_with(b"PID|") {
                let mut fields: Vec<Vec<u8>> =
                    segment.split(|&c| c == b'|').map(<[u8]>::to_vec).collect();
                fields.resize(fields.len().max(6), Vec::new());
                fields[5] = format!("{CANARY}^Qzcanarygiven").into_bytes();
                out.extend(fields.join(&b'|'));
            } else {
                out.extend_from_slice(segment);
            }
            if end < message.len() {
                out.push(message[end]);
            }
            start = i + 1;
        }
    }
    out
}

on_each_backend! {
    async fn a_canary_patient_never_reaches_logs_metrics_acks_or_dead_letter_reasons() {
        let server = Server::start_with(Options {
            shipped_mappings: true,
            log: Some("trace".into()),
            ..Default::default()
        });
        let mut acks = String::new();
        let mut sent = 0;
        for file in inputs() {
            let bytes = std::fs::read(&file).unwrap();
            for message in split_messages(&bytes) {
                let message = with_canary(&message);
                let mut c = server.client().await;
                if let Ok(ack) = c.send(&message).await {
                    acks.push_str(&ack);
                }
                sent += 1;
            }
        }
        eprintln!("canary: {sent} messages sent");
        assert!(sent > 40, "the samples at least: {sent}");
        let (_, metrics) = server.http("GET", "/metrics", Some(ADMIN), b"");
        let (_, letters) = server.http("GET", "/api/v1/tenants/demo/dead-letters?status=all&limit=1000", Some(DEMO_TOKEN), b"");
        let reasons: Vec<String> = server
            .dead_letters()
            .await
            .iter()
            .map(|d| format!("{} {:?}", d.reason_code, d.detail))
            .collect();
        // The canary is in what is kept on purpose: the engine did store it.
        let events = server.events("demo").await;
        assert!(
            events.iter().any(|e| e.data.to_string().contains(CANARY)),
            "some event carries the canary name (else this test proves nothing)"
        );
        let log = server.log.lock().unwrap().clone();
        assert!(log.lines().count() > 100, "tracing ran");
        for (what, text) in [
            ("the log", log.as_str()),
            ("the metrics", metrics.as_str()),
            ("the ACKs", acks.as_str()),
            ("the dead-letter list", letters.as_str()),
            ("the dead-letter reasons", &reasons.join("\n")),
        ] {
            assert!(!text.contains(CANARY) && !text.contains("Qzcanarygiven"), "the canary is in {what}");
        }
    }
}
