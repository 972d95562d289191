//! The HTTP API: health, bearer-token auth and tenant isolation, errors that never echo
//! content, and HL7 v2 over HTTP through the same pipeline.

mod common;

use common::{msa, Adt, SendAdt, Server, ADMIN, DEMO_TOKEN, STRICT_TOKEN};

fn error_code(body: &str) -> String {
    let v: serde_json::Value =
        serde_json::from_str(body).unwrap_or_else(|_| panic!("JSON error body: {body}"));
    v["error"]["code"].as_str().unwrap().to_string()
}

on_each_backend! {
    async fn health_and_auth() {
        let server = Server::start();
        assert_eq!(server.http("GET", "/healthz", None, b"").0, 200);
        assert_eq!(server.http("GET", "/readyz", None, b"").0, 200);

        let (s, b) = server.http("GET", "/api/v1/tenants/demo/events", None, b"");
        assert_eq!((s, error_code(&b).as_str()), (401, "UNAUTHORIZED"));
        let (s, b) = server.http("GET", "/api/v1/tenants/demo/events", Some("wrong"), b"");
        assert_eq!((s, error_code(&b).as_str()), (401, "UNAUTHORIZED"));
        let (s, b) = server.http(
            "GET",
            "/api/v1/tenants/demo/events",
            Some(STRICT_TOKEN),
            b"",
        );
        assert_eq!((s, error_code(&b).as_str()), (403, "FORBIDDEN"));
        let (s, b) = server.http("GET", "/api/v1/tenants/nope/events", Some(ADMIN), b"");
        assert_eq!((s, error_code(&b).as_str()), (404, "TENANT_NOT_FOUND"));
        let (s, b) = server.http(
            "GET",
            "/api/v1/tenants/demo/events?limit=abc",
            Some(DEMO_TOKEN),
            b"",
        );
        assert_eq!((s, error_code(&b).as_str()), (400, "INVALID_QUERY"));
        assert!(!b.contains("abc"), "errors never echo input: {b}");
        let (s, _) = server.http("GET", "/api/v1/tenants/demo/events", Some(DEMO_TOKEN), b"");
        assert_eq!(s, 200);
        let (s, _) = server.http("GET", "/api/v1/tenants/strict/events", Some(ADMIN), b"");
        assert_eq!(s, 200, "the admin token sees every tenant");
    }
}

on_each_backend! {
    async fn tenants_see_only_their_own_events() {
        let server = Server::start();
        let mut c = server.routed_client().await;
        for (fac, ctrl) in [("DEMO_HOSP", "D1"), ("STRICT_HOSP", "S1")] {
            assert_eq!(
                msa(&c
                    .ack(Adt {
                        facility: fac,
                        control_id: ctrl,
                        ..Default::default()
                    })
                    .await)
                .0,
                "AA"
            );
        }
        for (tenant, token, ctrl) in [("demo", DEMO_TOKEN, "D1"), ("strict", STRICT_TOKEN, "S1")] {
            let (s, b) = server.http(
                "GET",
                &format!("/api/v1/tenants/{tenant}/events"),
                Some(token),
                b"",
            );
            assert_eq!(s, 200);
            let v: serde_json::Value = serde_json::from_str(&b).unwrap();
            let events = v["events"].as_array().unwrap();
            assert_eq!(events.len(), 1);
            assert_eq!(events[0]["tenant_id"], tenant);
            assert_eq!(events[0]["metadata"]["control_id"], ctrl);
        }
    }
}

on_each_backend! {
    async fn hl7v2_over_http_uses_the_same_pipeline_and_idempotency() {
        let server = Server::start();
        let msg = Adt {
            control_id: "H1",
            ..Default::default()
        }
        .build();
        let (s, ack) = server.http("POST", "/api/v1/tenants/demo/hl7v2", Some(DEMO_TOKEN), &msg);
        assert_eq!((s, msa(&ack)), (200, ("AA".into(), "H1".into())));
        // The same message over MLLP is a duplicate of the one posted over HTTP.
        let mut c = server.client().await;
        assert_eq!(msa(&c.send(&msg).await.unwrap()).0, "AA");
        assert_eq!(server.events("demo").await.len(), 1);

        let (s, ack) = server.http(
            "POST",
            "/api/v1/tenants/demo/hl7v2",
            Some(DEMO_TOKEN),
            b"<xml/>",
        );
        assert_eq!((s, msa(&ack).0.as_str()), (400, "AR"));
        let (s, b) = server.http(
            "POST",
            "/api/v1/tenants/strict/hl7v2",
            Some(DEMO_TOKEN),
            &msg,
        );
        assert_eq!((s, error_code(&b).as_str()), (403, "FORBIDDEN"));
        let big = vec![b'M'; 2 << 20];
        let (s, b) = server.http("POST", "/api/v1/tenants/demo/hl7v2", Some(DEMO_TOKEN), &big);
        assert_eq!((s, error_code(&b).as_str()), (413, "PAYLOAD_TOO_LARGE"));
        assert_eq!(
            server.http("GET", "/healthz", None, b"").0,
            200,
            "still serving"
        );
    }
}

/// The stream id the README documents: UUIDv5 of `tenant NUL type NUL key` in intake's
/// namespace, computed here without intake's code.
fn documented_stream_id(tenant: &str, stream_type: &str, key: &str) -> String {
    let ns = uuid::Uuid::parse_str("6f1c3a2e-9b47-4d0a-8e55-2c7d1f9ab3e4").unwrap();
    uuid::Uuid::new_v5(&ns, format!("{tenant}\0{stream_type}\0{key}").as_bytes()).to_string()
}

on_each_backend! {
    async fn a_stream_is_found_by_its_type_and_key_over_http_and_the_cli() {
        let server = Server::start();
        let mut c = server.routed_client().await;
        for (trigger, ctrl, visit, facility) in [
            ("A01", "K1", "V-K1", "DEMO_HOSP"),
            ("A02", "K2", "V-K1", "DEMO_HOSP"),
            ("A01", "K3", "V-K2", "DEMO_HOSP"),
            ("A01", "K4", "V-K1", "STRICT_HOSP"),
        ] {
            let adt = Adt { trigger, control_id: ctrl, visit, facility, ..Default::default() };
            assert_eq!(msa(&c.ack(adt).await).0, "AA");
        }
        let expected = documented_stream_id("demo", "Admission", "V-K1");
        let get = |query: &str, token: &str| {
            server.http("GET", &format!("/api/v1/tenants/demo/events?{query}"), Some(token), b"")
        };
        let (s, b) = get("stream_type=Admission&key=V-K1", DEMO_TOKEN);
        assert_eq!(s, 200, "{b}");
        let v: serde_json::Value = serde_json::from_str(&b).unwrap();
        assert_eq!(v["stream_id"], expected.as_str());
        let events = v["events"].as_array().unwrap();
        let controls: Vec<&str> =
            events.iter().map(|e| e["metadata"]["control_id"].as_str().unwrap()).collect();
        assert_eq!(controls, ["K1", "K2"], "only this tenant's events of this visit");
        assert!(events.iter().all(|e| e["stream_id"] == expected.as_str()));
        // The same as asking by the id itself.
        let (_, by_id) = get(&format!("stream={expected}"), DEMO_TOKEN);
        let by_id: serde_json::Value = serde_json::from_str(&by_id).unwrap();
        assert_eq!(by_id["events"], v["events"]);
        // Keys are URL-decoded like any query value; an unknown key is an empty stream.
        let (s, b) = get("stream_type=Admission&key=V%2DK2", DEMO_TOKEN);
        let v2: serde_json::Value = serde_json::from_str(&b).unwrap();
        assert_eq!((s, v2["events"].as_array().unwrap().len()), (200, 1));
        let (_, b) = get("stream_type=Admission&key=NO-SUCH-VISIT", DEMO_TOKEN);
        let none: serde_json::Value = serde_json::from_str(&b).unwrap();
        assert_eq!(none["events"].as_array().unwrap().len(), 0);

        // Half a lookup, or two at once, is a precise error that never echoes the key.
        for query in [
            "key=V-K1",
            "stream_type=Admission",
            "stream_type=&key=V-K1",
            &format!("stream={expected}&stream_type=Admission&key=V-K1"),
        ] {
            let (s, b) = get(query, DEMO_TOKEN);
            assert_eq!((s, error_code(&b).as_str()), (400, "INVALID_QUERY"), "{query}");
            assert!(!b.contains("V-K1"), "never echoes the key: {b}");
        }
        // Another tenant's token cannot look into demo's streams.
        let (s, b) = get("stream_type=Admission&key=V-K1", STRICT_TOKEN);
        assert_eq!((s, error_code(&b).as_str()), (403, "FORBIDDEN"));

        // The CLI finds the same stream.
        let cli = |args: &[&str]| {
            std::process::Command::new(env!("CARGO_BIN_EXE_intake"))
                .arg("--config")
                .arg(server.dir.join("intake.toml"))
                .arg("streams")
                .args(args)
                .env_remove("INTAKE_DATABASE_URL")
                .env_remove("INTAKE_MAPPINGS_DIR")
                .output()
                .unwrap()
        };
        let out = cli(&["--tenant", "demo", "--type", "Admission", "--key", "V-K1"]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let shown: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(shown["stream_id"], expected.as_str());
        assert_eq!(shown["version"], 2);
        assert_eq!(shown["events"], v["events"]);
        let out = cli(&["--tenant", "strict", "--type", "Admission", "--key", "V-K1"]);
        let strict: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(strict["stream_id"], documented_stream_id("strict", "Admission", "V-K1").as_str());
        assert_eq!(strict["events"].as_array().unwrap().len(), 1);
        let out = cli(&["--tenant", "demo", "--type", "Admission", "--key", "NO-SUCH-VISIT"]);
        assert_eq!(out.status.code(), Some(1), "an empty stream exits 1");
        assert!(String::from_utf8_lossy(&out.stderr).contains("no events in stream"));
    }
}

/// Sends `head` on a fresh connection and reads what comes back within `wait` (empty if
/// the server says nothing), and whether the server closed the connection.
fn exchange(server: &Server, head: &[u8], wait: std::time::Duration) -> (String, bool) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(server.http).unwrap();
    s.set_read_timeout(Some(wait)).unwrap();
    s.write_all(head).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let closed = loop {
        match s.read(&mut buf) {
            Ok(0) => break true,
            Ok(n) => {
                got.extend_from_slice(&buf[..n]);
                if got.windows(4).any(|w| w == b"\r\n\r\n") && got.ends_with(b"}") {
                    break false;
                }
            }
            Err(_) => break false,
        }
    };
    (String::from_utf8_lossy(&got).into_owned(), closed)
}

on_each_backend! {
    async fn requests_are_refused_on_their_headers_and_slow_ones_are_cut_off() {
        let server = Server::start_with(common::Options {
            http_extra: "header_read_timeout_ms = 800".into(),
            ..Default::default()
        });
        let short = std::time::Duration::from_secs(3);
        // No token, a 10 MiB body announced, `Expect: 100-continue`: 401 at once, no
        // `100 Continue`, and the body is never asked for.
        let (answer, _) = exchange(
            &server,
            b"POST /api/v1/tenants/demo/hl7v2 HTTP/1.1\r\nHost: x\r\nContent-Length: 10485760\r\nExpect: 100-continue\r\n\r\n",
            short,
        );
        assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
        assert!(!answer.contains("100 Continue"), "{answer}");
        assert!(answer.contains("\"UNAUTHORIZED\""), "{answer}");
        // Another tenant's token on FHIR: refused before the body, as an OperationOutcome.
        let (answer, _) = exchange(
            &server,
            format!("POST /api/v1/tenants/strict/fhir HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {DEMO_TOKEN}\r\nContent-Type: application/fhir+json\r\nContent-Length: 10485760\r\nExpect: 100-continue\r\n\r\n").as_bytes(),
            short,
        );
        assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
        assert!(!answer.contains("100 Continue") && answer.contains("OperationOutcome"), "{answer}");

        // A path segment that does not parse: JSON, the input never echoed, with or
        // without a token.
        for token in [None, Some(DEMO_TOKEN)] {
            let (s, b) = server.http("GET", "/api/v1/tenants/demo/dead-letters/not-a-uuid-XYZ", token, b"");
            let code = error_code(&b);
            assert_eq!((s, code.as_str()), if token.is_some() { (400, "INVALID_REQUEST") } else { (401, "UNAUTHORIZED") });
            assert!(!b.contains("XYZ"), "{b}");
        }
        let (s, b) = server.http("DELETE", "/api/v1/tenants/demo/events", Some(DEMO_TOKEN), b"");
        assert_eq!((s, error_code(&b).as_str()), (405, "METHOD_NOT_ALLOWED"));

        // Slow loris: a header trickled a byte at a time is cut off after the header-read
        // timeout (800 ms here), while others are served meanwhile.
        use std::io::{Read, Write};
        let mut slow = std::net::TcpStream::connect(server.http).unwrap();
        slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ").unwrap();
        let started = std::time::Instant::now();
        slow.set_read_timeout(Some(std::time::Duration::from_millis(200))).unwrap();
        let closed_after = loop {
            if slow.write_all(b"a").is_err() {
                break started.elapsed();
            }
            let mut buf = [0u8; 256];
            // Read returns once the server closes (0) or answers with an error.
            if slow.read(&mut buf).is_ok() {
                break started.elapsed();
            }
            assert_eq!(server.http("GET", "/healthz", None, b"").0, 200, "others are served");
            assert!(started.elapsed() < std::time::Duration::from_secs(10), "never cut off");
        };
        assert!(closed_after >= std::time::Duration::from_millis(700), "{closed_after:?}");
        assert_eq!(server.http("GET", "/healthz", None, b"").0, 200, "still serving");
    }
}

on_each_backend! {
    async fn metrics_need_the_admin_token_except_on_the_metrics_address() {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let server = Server::start_with(common::Options {
            http_extra: format!("metrics_addr = \"127.0.0.1:{port}\""),
            ..Default::default()
        });
        let (s, b) = server.http("GET", "/metrics", None, b"");
        assert_eq!((s, error_code(&b).as_str()), (401, "UNAUTHORIZED"));
        let (s, b) = server.http("GET", "/metrics", Some(DEMO_TOKEN), b"");
        assert_eq!((s, error_code(&b).as_str()), (403, "FORBIDDEN"), "a tenant must not see others' volume");
        let (s, b) = server.http("GET", "/metrics", Some(ADMIN), b"");
        assert!(s == 200 && b.contains("intake_messages_total"), "{s} {b}");

        // The metrics address serves metrics and health openly, and nothing else.
        let get = |path: &str| {
            use std::io::{Read, Write};
            let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
            write!(c, "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
            let mut out = String::new();
            c.read_to_string(&mut out).unwrap();
            out
        };
        let m = get("/metrics");
        assert!(m.starts_with("HTTP/1.1 200") && m.contains("intake_messages_total"), "{m}");
        assert!(get("/healthz").starts_with("HTTP/1.1 200"));
        let api = get("/api/v1/tenants/demo/events");
        assert!(api.starts_with("HTTP/1.1 404") && api.contains("NOT_FOUND"), "{api}");
    }
}

on_each_backend! {
    async fn http_connections_over_the_limit_are_closed_and_mllp_is_unaffected() {
        let server = Server::start_with(common::Options {
            http_extra: "max_connections = 2".into(),
            log: Some("warn".into()),
            ..Default::default()
        });
        use std::io::Read;
        let held: Vec<std::net::TcpStream> =
            (0..2).map(|_| std::net::TcpStream::connect(server.http).unwrap()).collect();
        std::thread::sleep(std::time::Duration::from_millis(200));
        let mut third = std::net::TcpStream::connect(server.http).unwrap();
        third.set_read_timeout(Some(std::time::Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 16];
        assert!(matches!(third.read(&mut buf), Ok(0) | Err(_)), "closed at once");
        // MLLP senders are not starved by HTTP clients.
        let mut c = server.client().await;
        assert_eq!(msa(&c.ack(Adt { control_id: "H1", ..Default::default() }).await).0, "AA");
        drop(held);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let healthy = || {
            use std::io::Write;
            let Ok(mut s) = std::net::TcpStream::connect(server.http) else { return false };
            let _ = s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
            let mut out = String::new();
            let _ = s.read_to_string(&mut out);
            out.starts_with("HTTP/1.1 200")
        };
        while !healthy() {
            assert!(std::time::Instant::now() < deadline, "a freed slot was never reused");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        // The log is read from the server's stderr by another thread: give it a moment.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while !server.log.lock().unwrap().contains("CONNECTION_LIMIT") {
            assert!(std::time::Instant::now() < deadline, "CONNECTION_LIMIT never logged");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}

/// A raw HTTP/1.1 GET: (status, headers, body).
fn get_with_headers(server: &Server, path: &str, token: Option<&str>) -> (u16, String, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(server.http).unwrap();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: intake\r\n{auth}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let (head, body) = resp.split_once("\r\n\r\n").unwrap();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, head.to_ascii_lowercase(), body.to_string())
}

#[test]
fn tokens_and_addresses_over_their_rate_limit_get_429_with_retry_after() {
    let server = Server::start_with(common::Options {
        http_extra: "rate_limit_per_token = 5\nrate_limit_per_address = 0\n".into(),
        ..Default::default()
    });
    let events = "/api/v1/tenants/demo/events?limit=1";
    // A burst of twice the rate passes; then the token waits.
    let statuses: Vec<u16> = (0..15)
        .map(|_| get_with_headers(&server, events, Some(DEMO_TOKEN)).0)
        .collect();
    assert_eq!(statuses[..10], [200; 10], "{statuses:?}");
    assert!(statuses[10..].contains(&429), "{statuses:?}");
    let (status, head, body) = get_with_headers(&server, events, Some(DEMO_TOKEN));
    assert_eq!(
        (status, error_code(&body).as_str()),
        (429, "RATE_LIMITED"),
        "{body}"
    );
    assert!(head.contains("retry-after: 1"), "{head}");
    // Another token has its own bucket.
    assert_eq!(get_with_headers(&server, events, Some(ADMIN)).0, 200);
    // The bucket refills.
    std::thread::sleep(std::time::Duration::from_millis(1200));
    assert_eq!(get_with_headers(&server, events, Some(DEMO_TOKEN)).0, 200);

    // Per address: unauthenticated guesses count too, and FHIR answers an OperationOutcome.
    let server = Server::start_with(common::Options {
        http_extra: "rate_limit_per_address = 5\n".into(),
        ..Default::default()
    });
    let guesses: Vec<u16> = (0..12)
        .map(|i| get_with_headers(&server, events, Some(&format!("guess-{i}"))).0)
        .collect();
    assert_eq!(guesses[..10], [401; 10], "{guesses:?}");
    assert_eq!(guesses[10..], [429; 2], "{guesses:?}");
    let (status, _, body) = get_with_headers(&server, events, Some(DEMO_TOKEN));
    assert_eq!(
        status, 429,
        "the address is limited whatever the token: {body}"
    );
    let (status, body) = server.post_fhir("demo", DEMO_TOKEN, b"{\"resourceType\":\"Patient\"}");
    assert_eq!(status, 429);
    assert!(
        body.contains("\"throttled\"") && body.contains("RATE_LIMITED"),
        "{body}"
    );
    std::thread::sleep(std::time::Duration::from_millis(1200));
    assert_eq!(
        get_with_headers(&server, events, Some(DEMO_TOKEN)).0,
        200,
        "still serving"
    );
}
