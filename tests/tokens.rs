//! Named, scoped tokens end to end: `intake token create` prints a token once and stores
//! its hash; every route declares its scope and refuses a token without it; a running
//! server picks up created and revoked tokens from the file without a restart, and keeps
//! the last good tokens when the file is broken.

mod common;

use common::{Server, ADMIN};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

fn intake(dir: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_intake"))
        .arg("--config")
        .arg(dir.join("intake.toml"))
        .args(args)
        .current_dir(dir)
        .env_remove("INTAKE_TOKENS_FILE")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn create(dir: &Path, name: &str, tenant: &str, scopes: &str) -> String {
    let (ok, stdout, stderr) = intake(
        dir,
        &[
            "token", "create", "--name", name, "--tenant", tenant, "--scope", scopes,
        ],
    );
    assert!(ok, "token create: {stderr}");
    let token = stdout.trim().to_string();
    assert!(token.starts_with("intake_"), "{stdout}");
    token
}

/// Waits until `path` answers `want` with `token` (the server re-reads the file).
fn until_status(server: &Server, path: &str, token: &str, want: u16) {
    let start = Instant::now();
    loop {
        let (s, _) = server.http("GET", path, Some(token), b"");
        if s == want {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{path}: still {s}, want {want}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test]
async fn every_route_declares_its_scope_and_a_token_without_it_gets_403() {
    common::set_backend(common::Backend::Sqlite);
    let server = Server::start();
    let dir = &server.dir;
    let scopes = ["ingest", "read", "support", "phi"];
    let tokens: Vec<(&str, String)> = scopes
        .iter()
        .map(|s| (*s, create(dir, &format!("demo-{s}"), "demo", s)))
        .collect();
    let ops = create(dir, "ops", "*", "admin");
    let file = std::fs::read_to_string(dir.join("data/tokens.toml")).unwrap();
    for (_, t) in &tokens {
        assert!(!file.contains(t.as_str()), "only hashes are stored");
    }
    let (_, list, _) = intake(dir, &["token", "list"]);
    assert_eq!(list.lines().count(), 5);
    assert!(list.contains("\"name\":\"demo-phi\"") && !list.contains("intake_"));

    let id = "00000000-0000-0000-0000-000000000000";
    let base = "/api/v1/tenants/demo";
    let routes = [
        ("POST", format!("{base}/hl7v2"), "ingest"),
        ("POST", format!("{base}/fhir"), "ingest"),
        ("GET", format!("{base}/events"), "read"),
        ("GET", format!("{base}/dead-letters"), "support"),
        ("GET", format!("{base}/dead-letters/{id}"), "support"),
        ("POST", format!("{base}/dead-letters/replay"), "support"),
        ("POST", format!("{base}/dead-letters/discard"), "support"),
        (
            "POST",
            format!("{base}/dead-letters/{id}/replay"),
            "support",
        ),
        (
            "POST",
            format!("{base}/dead-letters/{id}/discard"),
            "support",
        ),
        ("GET", format!("{base}/mappings/history"), "support"),
        ("POST", format!("{base}/mappings/rollback"), "admin"),
        ("GET", "/metrics".to_string(), "admin"),
    ];
    // The new tokens are read from the file by the running server.
    until_status(&server, &format!("{base}/events"), &tokens[1].1, 200);
    for (method, path, need) in &routes {
        for (scope, token) in &tokens {
            let (s, body) = server.http(method, path, Some(token), b"");
            if scope == need {
                assert!(
                    s != 401 && s != 403,
                    "{method} {path} with {scope}: {s} {body}"
                );
            } else {
                assert_eq!(s, 403, "{method} {path} with {scope}: {body}");
                assert!(body.contains("FORBIDDEN"), "{body}");
                assert!(
                    body.contains(&format!("the {need} scope")),
                    "{method} {path}: {body}"
                );
            }
        }
        let (s, body) = server.http(method, path, Some(&ops), b"");
        assert!(s != 401 && s != 403, "admin on {method} {path}: {s} {body}");
    }
    // A dead letter: support sees its shape, a support+phi token the message too.
    let ingest = &tokens[0].1;
    let bad = b"MSH|^~\\&|HIS|DEMO_HOSP|||20240101||ZZZ^Z01|CANARY1|P|2.5\rPID|1||MRN-CANARY^^^H||Canary^Zoe\r";
    assert_eq!(
        server
            .http("POST", &format!("{base}/hl7v2"), Some(ingest), bad)
            .0,
        200
    );
    let (_, list) = server.http(
        "GET",
        &format!("{base}/dead-letters"),
        Some(&tokens[2].1),
        b"",
    );
    let list: serde_json::Value = serde_json::from_str(&list).unwrap();
    let letter = list["dead_letters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["reason_code"] == "UNMAPPED_MESSAGE_TYPE")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let show = format!("{base}/dead-letters/{letter}");
    let (s, masked) = server.http("GET", &show, Some(&tokens[2].1), b"");
    assert_eq!(s, 200, "{masked}");
    assert!(
        !masked.contains("Canary") && !masked.contains("MRN-CANARY"),
        "{masked}"
    );
    let v: serde_json::Value = serde_json::from_str(&masked).unwrap();
    assert!(v.get("message").is_none(), "{masked}");
    // The raw message needs the phi scope, and says so.
    let raw_view = format!("{show}?raw=true");
    let (s, body) = server.http("GET", &raw_view, Some(&tokens[2].1), b"");
    assert_eq!(s, 403, "{body}");
    assert!(body.contains("the phi scope"), "{body}");
    assert_eq!(v["structure"][1]["segment"], "PID", "{list}");
    assert_eq!(v["structure"][1]["field_lengths"][2], 14);
    let both = create(dir, "demo-support-phi", "demo", "support,phi");
    until_status(&server, &raw_view, &both, 200);
    let (_, raw) = server.http("GET", &raw_view, Some(&both), b"");
    assert!(raw.contains("Canary^Zoe"), "{raw}");
    // The views are audited under the token's name.
    let audit = format!("{base}/events?stream_type=Audit&key=audit");
    let (_, seen) = server.http("GET", &audit, Some(&ops), b"");
    assert!(
        seen.contains("RawMessageViewed") && seen.contains("demo-support-phi"),
        "{seen}"
    );

    // A demo token never reaches another tenant, whatever its scope.
    let (s, _) = server.http(
        "GET",
        "/api/v1/tenants/strict/events",
        Some(&tokens[1].1),
        b"",
    );
    assert_eq!(s, 403);
    let (s, _) = server.http("GET", "/api/v1/tenants/strict/events", Some(&ops), b"");
    assert_eq!(s, 200);
    // The configuration's tokens still work beside the file's.
    let (s, _) = server.http("GET", "/metrics", Some(ADMIN), b"");
    assert_eq!(s, 200);
}

#[tokio::test]
async fn a_revoked_token_stops_and_a_broken_file_keeps_the_last_good_tokens() {
    common::set_backend(common::Backend::Sqlite);
    let server = Server::start_with(common::Options {
        log: Some("info".into()),
        ..Default::default()
    });
    let dir = &server.dir;
    let events = "/api/v1/tenants/demo/events";
    let reader = create(dir, "dashboard", "demo", "read");
    until_status(&server, events, &reader, 200);

    // Broken: the server says so (without quoting the file) and keeps the token.
    let path = dir.join("data/tokens.toml");
    let good = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, format!("{good}\n[[token]]\nname = \"PHI-LIKE\"\n")).unwrap();
    let start = Instant::now();
    // The file is looked at when a request comes (at most twice a second).
    while !server.log.lock().unwrap().contains("TOKENS_FILE_INVALID") {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no TOKENS_FILE_INVALID"
        );
        assert_eq!(server.http("GET", events, Some(&reader), b"").0, 200);
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(!server.log.lock().unwrap().contains("PHI-LIKE"));
    assert_eq!(server.http("GET", events, Some(&reader), b"").0, 200);
    let (ok, _, stderr) = intake(dir, &["token", "list"]);
    assert!(
        !ok && stderr.contains("tokens file") && !stderr.contains("PHI-LIKE"),
        "{stderr}"
    );

    // Repaired, then revoked: 401 within a second or so, no restart.
    std::fs::write(&path, &good).unwrap();
    let (ok, _, stderr) = intake(dir, &["token", "revoke", "--name", "dashboard"]);
    assert!(ok, "{stderr}");
    until_status(&server, events, &reader, 401);

    // The CLI's refusals: unknown scope, unknown tenant, a duplicate name.
    let (ok, _, e) = intake(
        dir,
        &[
            "token", "create", "--name", "x", "--tenant", "demo", "--scope", "root",
        ],
    );
    assert!(!ok && e.contains("unknown scope"), "{e}");
    let (ok, _, e) = intake(
        dir,
        &[
            "token", "create", "--name", "x", "--tenant", "nope", "--scope", "read",
        ],
    );
    assert!(!ok && e.contains("no tenant \"nope\""), "{e}");
    create(dir, "x", "demo", "read,support");
    let (ok, _, e) = intake(
        dir,
        &[
            "token", "create", "--name", "x", "--tenant", "demo", "--scope", "read",
        ],
    );
    assert!(!ok && e.contains("exists already"), "{e}");
}

#[tokio::test]
async fn serve_refuses_to_start_on_a_broken_tokens_file_or_a_token_for_a_missing_tenant() {
    common::set_backend(common::Backend::Sqlite);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    common::prepare(dir, &common::Options::default());
    std::fs::create_dir_all(dir.join("data")).unwrap();
    let serve = || {
        Command::new(env!("CARGO_BIN_EXE_intake"))
            .arg("--config")
            .arg(dir.join("intake.toml"))
            .arg("serve")
            .current_dir(dir)
            .env_remove("INTAKE_TOKENS_FILE")
            .output()
            .unwrap()
    };
    std::fs::write(
        dir.join("data/tokens.toml"),
        "[[token]]\nname = \"SECRETNAME\"\ntenant = 3\n",
    )
    .unwrap();
    let out = serve();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("line 3"), "{err}");
    assert!(!err.contains("SECRETNAME"), "{err}");
    let hash = "0".repeat(64);
    std::fs::write(
        dir.join("data/tokens.toml"),
        format!("[[token]]\nname = \"a\"\ntenant = \"gone\"\nscopes = [\"read\"]\nsha256 = \"{hash}\"\n"),
    )
    .unwrap();
    let out = serve();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("gone"), "{err}");
}
