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
        // Each dead letter's masked view, over the API and in the console; the console's
        // other pages, for a token with the phi scope (masked by default) and for one
        // without it (stream pages too).
        let ids: Vec<String> = server.dead_letters().await.iter().filter(|d| d.tenant_id.as_deref() == Some("demo")).map(|d| d.id.to_string()).collect();
        let mut shown = String::new();
        for id in ids.iter().take(30) {
            shown.push_str(&server.http("GET", &format!("/api/v1/tenants/demo/dead-letters/{id}"), Some(DEMO_TOKEN), b"").1);
        }
        let support_only = server.demo_token("desk", "support").await;
        let mut console = String::new();
        for token in [DEMO_TOKEN, support_only.as_str()] {
            let cookie = console_login(&server, token);
            let mut pages = vec!["/console/t/demo".to_string(), "/console/t/demo/dead-letters?status=all".into(), "/console/t/demo/messages".into(), "/console/t/demo/audit".into()];
            pages.extend(ids.iter().take(30).map(|id| format!("/console/t/demo/dead-letters/{id}")));
            if token != DEMO_TOKEN {
                let streams: std::collections::BTreeSet<_> = events.iter().map(|e| e.stream_id).collect();
                pages.extend(streams.iter().take(30).map(|id| format!("/console/t/demo/streams/{id}")));
            }
            for p in pages {
                let (status, html) = console_get(&server, &p, &cookie);
                assert_eq!(status, 200, "{p}: {html}");
                console.push_str(&html);
            }
        }
        assert!(console.contains("Structure (values masked)") && console.contains("Stream: "), "the pages were shown");
        let log = server.log.lock().unwrap().clone();
        assert!(log.lines().count() > 100, "tracing ran");
        for (what, text) in [
            ("the log", log.as_str()),
            ("the metrics", metrics.as_str()),
            ("the ACKs", acks.as_str()),
            ("the dead-letter list", letters.as_str()),
            ("the dead-letter reasons", &reasons.join("\n")),
            ("the masked dead letters", shown.as_str()),
            ("the console", console.as_str()),
        ] {
            assert!(!text.contains(CANARY) && !text.contains("Qzcanarygiven"), "the canary is in {what}");
        }
    }
}

/// One HTTP/1.1 exchange with the server: (status, headers, body).
fn exchange(server: &Server, head: &str, body: &[u8]) -> (u16, String, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(server.http).unwrap();
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).unwrap();
    let resp = String::from_utf8_lossy(&resp).into_owned();
    let (headers, body) = resp.split_once("\r\n\r\n").unwrap_or((&resp, ""));
    let status = headers.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, headers.to_string(), body.to_string())
}

/// Logs into the console with `token`; returns the session cookie.
fn console_login(server: &Server, token: &str) -> String {
    let body = format!("token={token}");
    let head = format!(
        "POST /console/login HTTP/1.1\r\nHost: intake\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let (status, headers, _) = exchange(server, &head, body.as_bytes());
    assert_eq!(status, 303, "{headers}");
    headers
        .lines()
        .find_map(|l| l.strip_prefix("set-cookie: "))
        .and_then(|c| c.split(';').next())
        .expect("a session cookie")
        .to_string()
}

/// A console page with the session cookie.
fn console_get(server: &Server, path: &str, cookie: &str) -> (u16, String) {
    let head = format!(
        "GET {path} HTTP/1.1\r\nHost: intake\r\nCookie: {cookie}\r\nConnection: close\r\n\r\n"
    );
    let (status, _, body) = exchange(server, &head, b"");
    (status, body)
}
