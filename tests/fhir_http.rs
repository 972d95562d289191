//! FHIR push over HTTP (`POST /api/v1/tenants/{tenant}/fhir`) against the real `intake
//! serve`: JSON and XML, OperationOutcome answers with precise statuses and issue codes,
//! hostile and oversized bodies, Bundle atomicity, reposts, and the engine still serving
//! after every bad request. Both backends.
//!
//! Tests that need the demo tenant's FHIR rules (events produced) check that the shipped
//! mappings have them and say so when they do not.

mod common;

use common::{Options, Server, ADMIN, DEMO_TOKEN, STRICT_TOKEN};
use serde_json::Value;
use std::io::{Read, Write};
use std::time::Duration;

const PATH: &str = "/api/v1/tenants/demo/fhir";
const JSON: &str = "application/fhir+json";
const XML: &str = "application/fhir+xml";
/// A value that must never come back in an answer.
const SECRET: &str = "Jane Secret";

struct Reply {
    status: u16,
    content_type: String,
    body: String,
}

impl Reply {
    fn outcome(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|_| panic!("OperationOutcome JSON: {}", self.body))
    }

    /// (status, issue code, expression if any)
    fn issue(&self) -> (u16, String, Option<String>) {
        let o = self.outcome();
        assert_eq!(o["resourceType"], "OperationOutcome", "{}", self.body);
        let issue = &o["issue"][0];
        (
            self.status,
            issue["code"].as_str().unwrap().to_string(),
            issue["expression"][0].as_str().map(str::to_string),
        )
    }

    fn diagnostics(&self) -> String {
        self.outcome()["issue"][0]["diagnostics"]
            .as_str()
            .unwrap()
            .to_string()
    }
}

/// POST with headers, over a real socket.
fn post(
    server: &Server,
    path: &str,
    token: Option<&str>,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Reply {
    let mut s = std::net::TcpStream::connect(server.http).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut head = format!("POST {path} HTTP/1.1\r\nHost: intake\r\nConnection: close\r\n");
    if let Some(t) = token {
        head.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    s.write_all(head.as_bytes()).unwrap();
    // The server may answer (413) before reading the whole body.
    let _ = s.write_all(body);
    let mut resp = Vec::new();
    let _ = s.read_to_end(&mut resp);
    let resp = String::from_utf8_lossy(&resp).into_owned();
    let (head, body) = resp.split_once("\r\n\r\n").unwrap_or((&resp, ""));
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let content_type = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-type:")
                .map(|v| v.trim().to_string())
        })
        .unwrap_or_default();
    // Bodies here are small and never chunked by axum for fixed-size answers.
    Reply {
        status,
        content_type,
        body: body.to_string(),
    }
}

/// (name, headers, token, body, expected (status, issue code, expression))
type Case<'a> = (
    &'a str,
    Vec<(&'a str, &'a str)>,
    Option<&'a str>,
    Vec<u8>,
    (u16, &'a str, Option<&'a str>),
);

fn post_json(server: &Server, body: &str) -> Reply {
    post(
        server,
        PATH,
        Some(DEMO_TOKEN),
        &[("Content-Type", JSON)],
        body.as_bytes(),
    )
}

fn server() -> Server {
    Server::start_with(Options {
        shipped_mappings: true,
        ..Default::default()
    })
}

/// Whether the shipped demo tenant has FHIR rules (a YAML file with `resources:`).
fn fhir_rules_shipped() -> bool {
    let dir = common::repo().join("mappings/demo");
    let shipped = std::fs::read_dir(dir).unwrap().any(|e| {
        let p = e.unwrap().path();
        p.extension().is_some_and(|x| x == "yaml")
            && std::fs::read_to_string(&p)
                .unwrap_or_default()
                .lines()
                .any(|l| l.starts_with("resources:"))
    });
    if !shipped {
        eprintln!("the demo tenant has no FHIR rules yet: event assertions skipped");
    }
    shipped
}

fn patient_json(id: &str, version: &str) -> String {
    format!(
        r#"{{"resourceType":"Patient","id":"{id}","meta":{{"versionId":"{version}"}},
        "identifier":[{{"system":"urn:oid:1.2.36.146.595.217.0.1","value":"MRN-{id}"}}],
        "name":[{{"family":"Secret","given":["Jane"]}}],"gender":"female","birthDate":"1980-02-14"}}"#
    )
}

fn patient_xml(id: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<Patient xmlns="http://hl7.org/fhir"><id value="{id}"/><meta><versionId value="1"/></meta>
<identifier><system value="urn:oid:1.2.36.146.595.217.0.1"/><value value="MRN-{id}"/></identifier>
<name><family value="Secret"/><given value="Jane"/></name><gender value="female"/>
<birthDate value="1980-02-14"/></Patient>"#
    )
}

/// A body that decodes: answered 201 once the demo tenant has FHIR rules, 422
/// not-supported (UNMAPPED_RESOURCE_TYPE, a dead letter) before.
fn assert_still_serving(server: &Server, n: usize, rules: bool) {
    let r = post_json(server, &patient_json(&format!("alive-{n}"), "1"));
    let (status, code, _) = r.issue();
    if rules {
        assert_eq!(
            (status, code.as_str()),
            (201, "informational"),
            "{}",
            r.body
        );
    } else {
        assert_eq!(
            (status, code.as_str()),
            (422, "not-supported"),
            "{}",
            r.body
        );
    }
}

on_each_backend! {
    async fn bad_input_gets_a_precise_outcome_and_the_engine_keeps_serving() {
        let server = server();
        let rules = fhir_rules_shipped();
        let mut n = 0;
        let mut cases: Vec<Case> = vec![
            (
                "billion laughs",
                vec![("Content-Type", XML)],
                Some(DEMO_TOKEN),
                br#"<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<Patient xmlns="http://hl7.org/fhir"><id value="&lol3;"/></Patient>"#.to_vec(),
                (400, "security", None),
            ),
            (
                "external entity",
                vec![("Content-Type", XML)],
                Some(DEMO_TOKEN),
                br#"<?xml version="1.0"?>
<!DOCTYPE Patient [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<Patient xmlns="http://hl7.org/fhir"><id value="&xxe;"/></Patient>"#.to_vec(),
                (400, "security", None),
            ),
            (
                "10,000-deep XML",
                vec![("Content-Type", XML)],
                Some(DEMO_TOKEN),
                format!(
                    "<Patient xmlns=\"http://hl7.org/fhir\">{}{}</Patient>",
                    "<extension>".repeat(10_000),
                    "</extension>".repeat(10_000)
                ).into_bytes(),
                (400, "too-costly", None),
            ),
            (
                "10,000-deep JSON",
                vec![("Content-Type", JSON)],
                Some(DEMO_TOKEN),
                format!(
                    "{{\"resourceType\":\"Patient\",\"extension\":{}1{}}}",
                    "[".repeat(10_000),
                    "]".repeat(10_000)
                ).into_bytes(),
                (400, "too-costly", None),
            ),
            (
                "a million array items (a 4 MB body)",
                vec![("Content-Type", JSON)],
                Some(DEMO_TOKEN),
                format!(
                    "{{\"resourceType\":\"Patient\",\"id\":\"many\",\"name\":[{{\"given\":[{}\"a\"]}}]}}",
                    "\"a\",".repeat(1_000_000)
                ).into_bytes(),
                (400, "too-costly", None),
            ),
            (
                "an empty array (found by fuzzing: the R4 parser panicked on it)",
                vec![("Content-Type", JSON)],
                Some(DEMO_TOKEN),
                br#"{"resourceType":"Bundle","type":"batch","entry":[]}"#.to_vec(),
                (400, "invalid", Some("Bundle.entry")),
            ),
            (
                "malformed JSON",
                vec![("Content-Type", JSON)],
                Some(DEMO_TOKEN),
                format!("{{\"resourceType\":\"Patient\",\"name\":\"{SECRET}\"").into_bytes(),
                (400, "structure", None),
            ),
            (
                "not FHIR at all",
                vec![("Content-Type", JSON)],
                Some(DEMO_TOKEN),
                b"MSH|^~\\&|ADT1|DEMO_HOSP".to_vec(),
                (400, "structure", None),
            ),
            (
                "invalid value",
                vec![("Content-Type", JSON)],
                Some(DEMO_TOKEN),
                format!("{{\"resourceType\":\"Patient\",\"id\":\"p\",\"active\":\"{SECRET}\"}}").into_bytes(),
                (400, "invalid", Some("Patient.active")),
            ),
            (
                "unknown element",
                vec![("Content-Type", XML)],
                Some(DEMO_TOKEN),
                format!("<Patient xmlns=\"http://hl7.org/fhir\"><nickname value=\"{SECRET}\"/></Patient>").into_bytes(),
                (400, "invalid", Some("Patient.nickname")),
            ),
            (
                "missing required element",
                vec![("Content-Type", JSON)],
                Some(DEMO_TOKEN),
                br#"{"resourceType":"Encounter","id":"e1","class":{"code":"IMP"}}"#.to_vec(),
                (400, "invalid", Some("Encounter.status")),
            ),
            (
                "wrong content type",
                vec![("Content-Type", "text/plain")],
                Some(DEMO_TOKEN),
                patient_json("p415", "1").into_bytes(),
                (415, "not-supported", None),
            ),
            (
                "no content type",
                vec![],
                Some(DEMO_TOKEN),
                patient_json("p415", "1").into_bytes(),
                (415, "not-supported", None),
            ),
            (
                "another charset",
                vec![("Content-Type", "application/fhir+json; charset=iso-8859-1")],
                Some(DEMO_TOKEN),
                patient_json("p415", "1").into_bytes(),
                (415, "not-supported", None),
            ),
            (
                "oversized body",
                vec![("Content-Type", JSON)],
                Some(DEMO_TOKEN),
                {
                    let mut b = patient_json("big", "1").into_bytes();
                    b.extend(std::iter::repeat_n(b' ', 11 << 20));
                    b
                },
                (413, "too-long", None),
            ),
            (
                "no token",
                vec![("Content-Type", JSON)],
                None,
                patient_json("p401", "1").into_bytes(),
                (401, "login", None),
            ),
            (
                "wrong token",
                vec![("Content-Type", JSON)],
                Some("wrong"),
                patient_json("p401", "1").into_bytes(),
                (401, "login", None),
            ),
        ];
        for (name, mut headers, token, body, (status, code, expression)) in cases.drain(..) {
            headers.push(("Accept", JSON));
            let r = post(&server, PATH, token, &headers, &body);
            let (s, c, e) = r.issue();
            assert_eq!(
                (s, c.as_str(), e.as_deref()),
                (status, code, expression),
                "{name}: {}",
                r.body
            );
            assert!(!r.body.contains("Jane") && !r.body.contains("passwd"), "{name}: never echoes the body: {}", r.body);
            assert!(r.content_type.starts_with(JSON), "{name}: {}", r.content_type);
            n += 1;
            assert_still_serving(&server, n, rules);
        }
        // Tenant errors are OperationOutcomes too.
        let body = patient_json("p403", "1");
        let r = post(&server, "/api/v1/tenants/strict/fhir", Some(DEMO_TOKEN), &[("Content-Type", JSON)], body.as_bytes());
        assert_eq!(r.issue().0, 403);
        assert_eq!(r.issue().1, "forbidden");
        let r = post(&server, "/api/v1/tenants/nope/fhir", Some(ADMIN), &[("Content-Type", JSON)], body.as_bytes());
        assert_eq!((r.issue().0, r.issue().1.as_str()), (404, "not-found"));
        let _ = STRICT_TOKEN;

        // Every refused body that reached the pipeline is a dead letter with its code.
        let codes: Vec<String> = server.dead_letters().await.into_iter().map(|d| d.reason_code).collect();
        for code in ["FHIR_UNSAFE_XML", "FHIR_TOO_DEEP", "FHIR_TOO_MANY_ITEMS", "FHIR_MALFORMED", "FHIR_INVALID"] {
            assert!(codes.iter().any(|c| c == code), "{code} in {codes:?}");
        }
        let invalid = server
            .dead_letters()
            .await
            .into_iter()
            .find(|d| d.detail.as_deref() == Some("Patient.active"))
            .expect("the invalid value is a dead letter");
        assert_eq!(invalid.stage, "parse");
        assert_eq!(server.http("GET", "/healthz", None, b"").0, 200);
    }
}

on_each_backend! {
    async fn xml_requests_get_xml_outcomes_and_dead_letters_are_replayable() {
        let server = server();
        let r = post(
            &server,
            PATH,
            Some(DEMO_TOKEN),
            &[("Content-Type", XML)],
            br#"<Patient xmlns="http://hl7.org/fhir"><active value="maybe"/></Patient>"#,
        );
        assert_eq!(r.status, 400);
        assert!(r.content_type.starts_with(XML), "{}", r.content_type);
        assert!(r.body.contains("<code value=\"invalid\"/>"), "{}", r.body);
        assert!(r.body.contains("<expression value=\"Patient.active\"/>"), "{}", r.body);
        // Accept wins over the content type.
        let r = post(
            &server,
            PATH,
            Some(DEMO_TOKEN),
            &[("Content-Type", XML), ("Accept", JSON)],
            br#"<Patient xmlns="http://hl7.org/fhir"> <active value="maybe"/></Patient>"#,
        );
        assert_eq!(r.issue().1, "invalid");
        // The diagnostics name the dead letter support can replay.
        let ids: Vec<String> = server.dead_letters().await.iter().map(|d| d.id.to_string()).collect();
        assert_eq!(ids.len(), 2);
        assert!(ids.iter().any(|id| r.diagnostics().contains(&format!("dead letter {id}"))), "{}", r.diagnostics());
        // The same bytes again are keyed by their hash: no third dead letter.
        let again = post(
            &server,
            PATH,
            Some(DEMO_TOKEN),
            &[("Content-Type", XML), ("Accept", JSON)],
            br#"<Patient xmlns="http://hl7.org/fhir"> <active value="maybe"/></Patient>"#,
        );
        assert!(again.diagnostics().contains("duplicate of a stored resource that was dead-lettered"), "{}", again.diagnostics());
        assert_eq!(server.dead_letters().await.len(), 2);
    }
}

on_each_backend! {
    async fn json_and_xml_resources_are_stored_once() {
        let server = server();
        if !fhir_rules_shipped() {
            return;
        }
        let r = post_json(&server, &patient_json("pj", "1"));
        assert_eq!(r.issue().0, 201, "{}", r.body);
        assert!(r.diagnostics().starts_with("1 event stored"), "{}", r.diagnostics());
        let stored = server.events("demo").await.len();
        // A repost is a duplicate: 200, 0 events.
        let r = post_json(&server, &patient_json("pj", "1"));
        assert_eq!(r.issue(), (200, "informational".into(), None));
        assert!(r.diagnostics().contains("0 events stored: duplicate"), "{}", r.diagnostics());
        assert_eq!(server.events("demo").await.len(), stored);
        // XML goes the same way, and its answer is XML.
        let r = post(&server, PATH, Some(DEMO_TOKEN), &[("Content-Type", XML)], patient_xml("px").as_bytes());
        assert_eq!(r.status, 201, "{}", r.body);
        assert!(r.body.contains("<OperationOutcome"), "{}", r.body);
        assert_eq!(server.events("demo").await.len(), stored + 1);
        // A later version is new.
        let r = post_json(&server, &patient_json("pj", "2"));
        assert_eq!(r.issue().0, 201, "{}", r.body);
    }
}

on_each_backend! {
    async fn a_bundle_is_stored_whole_or_dead_lettered_whole() {
        let server = server();
        let rules = fhir_rules_shipped();
        // One invalid entry: the whole Bundle is one dead letter naming the entry.
        let bundle = format!(
            r#"{{"resourceType":"Bundle","type":"transaction","entry":[
            {{"fullUrl":"urn:uuid:1","resource":{},"request":{{"method":"PUT","url":"Patient/b1"}}}},
            {{"fullUrl":"urn:uuid:2","resource":{{"resourceType":"Patient","id":"b2","active":"{SECRET}",
              "identifier":[{{"system":"urn:oid:1.2.36.146.595.217.0.1","value":"MRN-b2"}}]}},
              "request":{{"method":"PUT","url":"Patient/b2"}}}}]}}"#,
            patient_json("b1", "1")
        );
        let before = server.dead_letters().await.len();
        let r = post_json(&server, &bundle);
        assert_eq!(
            r.issue(),
            (400, "invalid".into(), Some("Bundle.entry[1].resource.active".into())),
            "{}",
            r.body
        );
        assert_eq!(server.dead_letters().await.len(), before + 1);
        assert!(server.events("demo").await.is_empty(), "no event from a refused Bundle");
        if !rules {
            return;
        }
        // The same Bundle, valid: every entry mapped in one commit.
        let good = bundle.replace(&format!("\"active\":\"{SECRET}\""), "\"active\":true");
        let r = post_json(&server, &good);
        assert_eq!(r.issue().0, 201, "{}", r.body);
        assert!(r.diagnostics().starts_with("2 events stored"), "{}", r.diagnostics());
        let r = post_json(&server, &good);
        assert_eq!(r.issue().0, 200, "repost: {}", r.body);
        assert_eq!(server.events("demo").await.len(), 2);
    }
}

on_each_backend! {
    async fn strict_mode_refuses_codes_outside_required_value_sets_and_impossible_dates() {
        let server = server();
        for (body, element) in [
            (r#"{"resourceType": "Patient", "gender": "zzbogus"}"#, "Patient.gender"),
            (r#"{"resourceType": "Patient", "birthDate": "1980-13-45"}"#, "Patient.birthDate"),
            (
                r#"{"resourceType": "Encounter", "status": "done", "class": {"code": "IMP"}}"#,
                "Encounter.status",
            ),
        ] {
            let r = post_json(&server, body);
            assert_eq!(r.status, 400, "{body}: {}", r.body);
            assert_eq!(r.issue().2.as_deref(), Some(element), "{}", r.body);
            assert!(r.diagnostics().starts_with("FHIR_INVALID"), "{}", r.body);
            assert!(!r.body.contains("zzbogus") && !r.body.contains("1980-13"), "never echoed: {}", r.body);
        }
        let r = post_json(&server, r#"{"resourceType": "Patient", "gender": "female", "birthDate": "1980-02-29"}"#);
        assert_ne!(r.status, 400, "valid codes and dates pass: {}", r.body);
    }
}
