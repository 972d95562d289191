//! FHIR push load generator: C keep-alive HTTP/1.1 connections each POST M distinct
//! resources to `/api/v1/tenants/{tenant}/fhir`, waiting for every answer. Prints
//! throughput, latency and the answers' status codes.
//!
//! ```text
//! cargo run --release --example fhir_load -- 127.0.0.1:8080 demo-secret 8 1000 json
//! ```
//! Arguments: address, bearer token, connections (default 8), requests per connection
//! (default 1000), body kind: `json` (a Patient), `xml` (the same Patient as XML) or
//! `bundle` (a transaction Bundle of a Patient and an Encounter with 5 locations).
//! The tenant is `demo` (override with `INTAKE_TENANT`).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

fn patient_json(id: &str) -> String {
    format!(
        r#"{{"resourceType":"Patient","id":"{id}","meta":{{"versionId":"1"}},"identifier":[{{"system":"urn:oid:1.2.36.146.595.217.0.1","value":"MRN-{id}"}}],"name":[{{"family":"Doe","given":["Alex"]}}],"gender":"female","birthDate":"1980-02-14"}}"#
    )
}

fn patient_xml(id: &str) -> String {
    format!(
        r#"<Patient xmlns="http://hl7.org/fhir"><id value="{id}"/><meta><versionId value="1"/></meta><identifier><system value="urn:oid:1.2.36.146.595.217.0.1"/><value value="MRN-{id}"/></identifier><name><family value="Doe"/><given value="Alex"/></name><gender value="female"/><birthDate value="1980-02-14"/></Patient>"#
    )
}

fn bundle(id: &str) -> String {
    let locations: Vec<String> = (0..5)
        .map(|i| {
            format!(
                r#"{{"location":{{"reference":"Location/W{i}","display":"WARD{i}"}},"period":{{"start":"2026-11-22T0{i}:00:00Z"}}}}"#
            )
        })
        .collect();
    format!(
        r#"{{"resourceType":"Bundle","type":"transaction","entry":[{{"fullUrl":"urn:uuid:p-{id}","resource":{patient},"request":{{"method":"PUT","url":"Patient/{id}"}}}},{{"fullUrl":"urn:uuid:e-{id}","resource":{{"resourceType":"Encounter","id":"e-{id}","meta":{{"versionId":"1"}},"identifier":[{{"system":"http://hospital/visit","value":"V-{id}"}}],"status":"in-progress","class":{{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"IMP"}},"subject":{{"reference":"urn:uuid:p-{id}"}},"period":{{"start":"2026-11-22T00:00:00Z"}},"location":[{locs}]}},"request":{{"method":"PUT","url":"Encounter/e-{id}"}}}}]}}"#,
        patient = patient_json(id),
        locs = locations.join(",")
    )
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let addr = args
        .first()
        .cloned()
        .unwrap_or_else(|| "127.0.0.1:8080".into());
    let token = args.get(1).cloned().unwrap_or_else(|| "demo-secret".into());
    let connections: usize = args.get(2).and_then(|v| v.parse().ok()).unwrap_or(8);
    let per_connection: usize = args.get(3).and_then(|v| v.parse().ok()).unwrap_or(1000);
    let kind = args.get(4).cloned().unwrap_or_else(|| "json".into());
    let tenant = std::env::var("INTAKE_TENANT").unwrap_or_else(|_| "demo".into());
    let run = std::process::id();
    let start = Instant::now();
    let mut tasks = Vec::new();
    for conn in 0..connections {
        let (addr, token, kind, tenant) =
            (addr.clone(), token.clone(), kind.clone(), tenant.clone());
        tasks.push(tokio::spawn(async move {
            let stream = TcpStream::connect(addr.as_str()).await.expect("connect");
            stream.set_nodelay(true).unwrap();
            let (read, mut write) = stream.into_split();
            let mut read = BufReader::new(read);
            let mut latencies = Vec::with_capacity(per_connection);
            let mut statuses: BTreeMap<u16, usize> = BTreeMap::new();
            for i in 0..per_connection {
                let id = format!("L{run}-{conn}-{i}");
                let (body, content_type) = match kind.as_str() {
                    "xml" => (patient_xml(&id), "application/fhir+xml"),
                    "bundle" => (bundle(&id), "application/fhir+json"),
                    _ => (patient_json(&id), "application/fhir+json"),
                };
                let request = format!(
                    "POST /api/v1/tenants/{tenant}/fhir HTTP/1.1\r\nHost: intake\r\nAuthorization: Bearer {token}\r\n\
                     Content-Type: {content_type}\r\nAccept: application/fhir+json\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
                let t = Instant::now();
                write.write_all(request.as_bytes()).await.expect("send");
                let mut line = String::new();
                read.read_line(&mut line).await.expect("status line");
                let status: u16 = line.split_whitespace().nth(1).and_then(|s| s.parse().ok()).expect("status");
                let mut length = 0usize;
                loop {
                    line.clear();
                    read.read_line(&mut line).await.expect("header");
                    if line == "\r\n" {
                        break;
                    }
                    if let Some((k, v)) = line.split_once(':') {
                        if k.eq_ignore_ascii_case("content-length") {
                            length = v.trim().parse().expect("content-length");
                        }
                    }
                }
                let mut answer = vec![0; length];
                read.read_exact(&mut answer).await.expect("body");
                latencies.push(t.elapsed());
                *statuses.entry(status).or_default() += 1;
            }
            (latencies, statuses)
        }));
    }
    let mut all: Vec<Duration> = Vec::new();
    let mut statuses: BTreeMap<u16, usize> = BTreeMap::new();
    for t in tasks {
        let (l, s) = t.await.expect("task");
        all.extend(l);
        for (k, n) in s {
            *statuses.entry(k).or_default() += n;
        }
    }
    let elapsed = start.elapsed();
    all.sort();
    let pct = |p: f64| all[((all.len() as f64 * p) as usize).min(all.len() - 1)];
    println!(
        "{} {kind} requests over {connections} connections in {:.2}s: {:.0} req/s; latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; statuses {statuses:?}",
        all.len(),
        elapsed.as_secs_f64(),
        all.len() as f64 / elapsed.as_secs_f64(),
        pct(0.5).as_secs_f64() * 1e3,
        pct(0.99).as_secs_f64() * 1e3,
        all.last().unwrap().as_secs_f64() * 1e3,
    );
}
