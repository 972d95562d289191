//! Dead-letter support: a message the mapping cannot handle is dead-lettered; support
//! fixes the mapping and replays; replays are exclusive (two at once never take the same
//! letter), tenant-scoped, and a dry run stores nothing.

mod common;

use common::{msa, Adt, SendAdt, Server};
use std::collections::BTreeSet;
use std::process::Command;

/// Runs `intake dlq ...` against the server's database and mappings.
fn dlq(server: &Server, args: &[&str]) -> (bool, Vec<serde_json::Value>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_intake"))
        .arg("--config")
        .arg(server.dir.join("intake.toml"))
        .arg("dlq")
        .args(args)
        .env_remove("INTAKE_DATABASE_URL")
        .env_remove("INTAKE_MAPPINGS_DIR")
        .output()
        .unwrap();
    let lines = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (
        out.status.success(),
        lines,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

on_each_backend! {
    async fn fixed_mappings_replay_exclusively_within_one_tenant() {
        let server = Server::start();
        let mut c = server.client().await;
        let mut controls = Vec::new();
        for i in 0..20 {
            let ctrl = format!("R{i}");
            let visit = format!("RV{i}");
            let ack = c.ack(Adt { trigger: "A04", control_id: &ctrl, visit: &visit, ..Default::default() }).await;
            assert_eq!(msa(&ack), ("AA".to_string(), ctrl.clone()));
            controls.push(ctrl);
        }
        let mut routed = server.routed_client().await;
        let ack = routed.ack(Adt { trigger: "A04", facility: "STRICT_HOSP", control_id: "S1", ..Default::default() }).await;
        assert_eq!(msa(&ack).0, "AE");

        let (ok, open, _) = dlq(&server, &["list", "--tenant", "demo"]);
        assert!(ok);
        assert_eq!(open.len(), 20);
        assert!(open.iter().all(|d| d["reason_code"] == "UNMAPPED_MESSAGE_TYPE"));

        // Still unmapped: a dry run says so and changes nothing.
        let (ok, results, _) = dlq(&server, &["replay", "--tenant", "demo", "--dry-run"]);
        assert!(!ok, "letters that still fail make the command fail");
        assert!(results.iter().all(|r| r["still_failing"] == "UNMAPPED_MESSAGE_TYPE"));

        // Support fixes the mapping (a rule for A04), then dry-runs again.
        for t in ["demo", "strict"] {
            let file = server.dir.join("mappings").join(t).join("adt.yaml");
            let mut yaml = std::fs::read_to_string(&file).unwrap();
            yaml.push_str(common::A04_RULE);
            std::fs::write(&file, yaml).unwrap();
        }
        let (ok, results, err) = dlq(&server, &["replay", "--tenant", "demo", "--dry-run"]);
        assert!(ok, "{err}");
        assert_eq!(results.len(), 20);
        assert!(err.contains("would replay 20 dead letter(s), would append 20 event(s)"), "{err}");
        assert!(results.iter().all(|r| r["would_append"] == 1 && r["still_failing"].is_null()));
        // The preview shows each event as `intake map` prints it.
        assert!(results.iter().all(|r| r["events"][0]["event_type"] == "PatientRegistered"
            && r["events"][0]["data"]["visit_number"].is_string()));
        assert!(server.events("demo").await.is_empty(), "a dry run stores nothing");

        // Two replays at once, ten letters each: every letter is taken by exactly one.
        let config = server.dir.join("intake.toml");
        let spawn = || {
            Command::new(env!("CARGO_BIN_EXE_intake"))
                .arg("--config")
                .arg(&config)
                .args(["dlq", "replay", "--tenant", "demo", "--limit", "10", "--batch", "3"])
                .env_remove("INTAKE_DATABASE_URL")
                .env_remove("INTAKE_MAPPINGS_DIR")
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        };
        let (a, b) = (spawn(), spawn());
        let mut taken = Vec::new();
        for child in [a, b] {
            let out = child.wait_with_output().unwrap();
            assert!(out.status.success());
            for l in String::from_utf8_lossy(&out.stdout).lines() {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                assert_eq!((v["events"].as_u64(), v["appended"].as_u64()), (Some(1), Some(1)));
                taken.push(v["id"].as_str().unwrap().to_string());
            }
        }
        let unique: BTreeSet<&String> = taken.iter().collect();
        assert_eq!((taken.len(), unique.len()), (20, 20), "each letter replayed exactly once");

        // The events are those the message would have produced the first time.
        let events = server.events("demo").await;
        let (audit, events): (Vec<_>, Vec<_>) = events.into_iter().partition(|e| e.stream_type == "Audit");
        let stored: BTreeSet<String> = events
            .iter()
            .map(|e| e.metadata["control_id"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(stored, controls.iter().cloned().collect());
        assert!(events.iter().all(|e| e.event_type == "PatientRegistered" && e.created_by == "intake/replay"));
        // Each batch of each replay left one audit entry naming the CLI user and the ids.
        assert!(audit.len() >= 8, "two replays of 10 in batches of 3: at least 4 batches each");
        let mut audited: Vec<String> = audit
            .iter()
            .flat_map(|e| e.data["ids"].as_array().unwrap().iter().map(|i| i.as_str().unwrap().to_string()))
            .collect();
        audited.sort();
        taken.sort();
        assert_eq!(audited, taken, "each letter in exactly one audit entry");
        assert!(audit.iter().all(|e| e.event_type == "DeadLettersReplayed"
            && e.data["actor"].as_str().unwrap().starts_with("cli:")
            && e.data["filter"]["tenant"] == "demo"));

        // The other tenant's letter was not touched by demo's replays.
        assert_eq!(dlq(&server, &["list", "--tenant", "demo"]).1.len(), 0);
        let (_, strict, _) = dlq(&server, &["list", "--tenant", "strict"]);
        assert_eq!(strict.len(), 1);
        let (_, replayed, _) = dlq(&server, &["list", "--tenant", "demo", "--status", "replayed"]);
        assert_eq!(replayed.len(), 20);

        // Replaying again finds nothing open; discarding takes the strict letter.
        let (ok, results, _) = dlq(&server, &["replay", "--tenant", "demo"]);
        assert!(ok && results.is_empty());
        let id = strict[0]["id"].as_str().unwrap();
        // `show`: the facts and the shape, no values; `--raw`: the exact bytes.
        let shown = |args: &[&str]| {
            let out = Command::new(env!("CARGO_BIN_EXE_intake"))
                .arg("--config")
                .arg(server.dir.join("intake.toml"))
                .args(["dlq", "show"])
                .args(args)
                .output()
                .unwrap();
            (out.status.success(), out.stdout, String::from_utf8_lossy(&out.stderr).into_owned())
        };
        let (ok, masked, _) = shown(&[id, "--tenant", "strict"]);
        let masked: serde_json::Value = serde_json::from_slice(&masked).unwrap();
        assert!(ok);
        assert_eq!(masked["dead_letter"]["reason_code"], "UNMAPPED_MESSAGE_TYPE");
        assert_eq!(masked["structure"][0]["segment"], "MSH");
        let (ok, raw, _) = shown(&[id, "--raw", "--reason", "ticket 42"]);
        assert!(ok && raw.starts_with(b"MSH|^~\\&|"));
        let name = "Doe"; // the PID name every `Adt` carries
        assert!(String::from_utf8_lossy(&raw).contains(name));
        assert!(!masked.to_string().contains(name), "{masked}");
        assert_eq!(masked["bytes"].as_u64(), Some(raw.len() as u64));
        let (ok, _, e) = shown(&[id, "--tenant", "demo"]);
        assert!(!ok && e.contains("no dead letter"), "another tenant's letter is not found: {e}");

        // A bare discard takes nothing, nor one without a reason; a dry run changes nothing;
        // an id not open is reported.
        let (ok, _, e) = dlq(&server, &["discard", "--tenant", "strict"]);
        assert!(!ok && e.contains("say which letters: --id, --code, --type"), "{e}");
        let (ok, _, e) = dlq(&server, &["discard", "--tenant", "strict", "--id", id]);
        assert!(!ok && e.contains("say why: --reason"), "{e}");
        let (ok, would, _) = dlq(&server, &["discard", "--tenant", "strict", "--all", "--dry-run"]);
        assert!(ok && would.len() == 1 && would[0]["status"] == "would_discard");
        let (ok, would, _) = dlq(&server, &["discard", "--tenant", "strict", "--facility", "NOWHERE", "--dry-run"]);
        assert!(ok && would.is_empty(), "a filter that matches nothing takes nothing");
        assert_eq!(dlq(&server, &["list", "--tenant", "strict"]).1.len(), 1);
        let discard = ["discard", "--tenant", "strict", "--type", "ADT^A04", "--reason", "test feed"];
        let (ok, discarded, _) = dlq(&server, &discard);
        assert!(ok);
        assert_eq!(discarded.len(), 1);
        let (ok, again, e) = dlq(&server, &["discard", "--tenant", "strict", "--id", id, "--reason", "again"]);
        assert!(!ok && again.is_empty() && e.contains("not an open dead letter"), "{e}");
        let (_, strict, _) = dlq(&server, &["list", "--tenant", "strict", "--status", "all"]);
        assert_eq!(strict[0]["status"], "discarded");
        assert_eq!((strict[0]["control_id"].as_str(), strict[0]["sending_facility"].as_str()), (Some("S1"), Some("STRICT_HOSP")));

        // strict's audit stream: the raw view and the discard, with actor and reason.
        let audit: Vec<_> = server.events("strict").await.into_iter().filter(|e| e.stream_type == "Audit").collect();
        let kinds: Vec<(&str, &str)> = audit
            .iter()
            .map(|e| (e.event_type.as_str(), e.data["reason"].as_str().unwrap_or("")))
            .collect();
        assert_eq!(kinds, [("RawMessageViewed", "ticket 42"), ("DeadLettersDiscarded", "test feed")]);
        assert!(audit.iter().all(|e| e.data["ids"][0] == id));
        assert!(!serde_json::to_string(&audit).unwrap().contains(name), "no PHI in the audit");

        // The server kept serving throughout.
        assert_eq!(msa(&c.ack(Adt { control_id: "AFTER", ..Default::default() }).await).0, "AA");
    }
}

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

on_each_backend! {
    async fn the_dead_letter_api_lists_shows_replays_and_discards_within_the_token_tenant() {
        use common::{DEMO_TOKEN, STRICT_TOKEN};
        let server = Server::start();
        let mut c = server.client().await;
        for i in 0..3 {
            let ctrl = format!("H{i}");
            c.ack(Adt { trigger: "A04", control_id: &ctrl, ..Default::default() }).await;
        }
        let mut routed = server.routed_client().await;
        routed.ack(Adt { trigger: "A04", facility: "STRICT_HOSP", control_id: "S1", ..Default::default() }).await;
        let base = "/api/v1/tenants/demo/dead-letters";

        let (status, body) = server.http("GET", base, Some(DEMO_TOKEN), b"");
        assert_eq!(status, 200, "{body}");
        let letters = json(&body)["dead_letters"].as_array().unwrap().clone();
        assert_eq!(letters.len(), 3);
        assert_eq!(server.http("GET", base, Some(STRICT_TOKEN), b"").0, 403);
        let (status, body) = server.http("GET", &format!("{base}?status=gone"), Some(DEMO_TOKEN), b"");
        assert_eq!((status, json(&body)["error"]["code"].as_str()), (400, Some("INVALID_QUERY")));
        // Paging: a full page names the cursor of the next; the pages do not overlap.
        let (status, body) = server.http("GET", &format!("{base}?limit=2&type=ADT%5EA04&facility=DEMO_HOSP"), Some(DEMO_TOKEN), b"");
        assert_eq!(status, 200, "{body}");
        let page1 = json(&body);
        assert_eq!(page1["dead_letters"].as_array().map(Vec::len), Some(2));
        let next = page1["next_after"].as_str().unwrap();
        let (_, body) = server.http("GET", &format!("{base}?limit=2&after={next}"), Some(DEMO_TOKEN), b"");
        let page2 = json(&body);
        assert_eq!((page2["dead_letters"].as_array().map(Vec::len), page2["next_after"].is_null()), (Some(1), true));
        assert_ne!(page2["dead_letters"][0]["id"], page1["dead_letters"][1]["id"]);
        let (_, body) = server.http("GET", &format!("{base}?code=MAPPING_REQUIRED_FIELD"), Some(DEMO_TOKEN), b"");
        assert_eq!(json(&body)["dead_letters"].as_array().unwrap().len(), 0);

        // One letter, with the message support needs to fix the mapping.
        let id = letters[0]["id"].as_str().unwrap();
        let (status, body) = server.http("GET", &format!("{base}/{id}"), Some(DEMO_TOKEN), b"");
        assert_eq!(status, 200);
        let v = json(&body);
        assert_eq!(v["dead_letter"]["reason_code"], "UNMAPPED_MESSAGE_TYPE");
        assert!(v.get("message").is_none(), "masked by default: {body}");
        let (status, body) = server.http("GET", &format!("{base}/{id}?raw=true"), Some(DEMO_TOKEN), b"");
        assert_eq!(status, 200, "{body}");
        assert!(json(&body)["message"].as_str().unwrap().starts_with("MSH|^~\\&|"));
        // Another tenant's letter does not exist under this tenant.
        let (_, body) = server.http("GET", "/api/v1/tenants/strict/dead-letters", Some(STRICT_TOKEN), b"");
        let strict_id = json(&body)["dead_letters"][0]["id"].as_str().unwrap().to_string();
        for (method, path) in [
            ("GET", format!("{base}/{strict_id}")),
            ("POST", format!("{base}/{strict_id}/replay")),
            ("POST", format!("{base}/{strict_id}/discard")),
        ] {
            let (status, body) = server.http(method, &path, Some(DEMO_TOKEN), br#"{"reason": "r"}"#);
            assert_eq!((status, json(&body)["error"]["code"].as_str()), (404, Some("DEAD_LETTER_NOT_FOUND")), "{path}");
        }

        // Still unmapped: 422, and the letter stays open.
        let (status, body) = server.http("POST", &format!("{base}/{id}/replay"), Some(DEMO_TOKEN), b"");
        assert_eq!(status, 422, "{body}");
        assert_eq!(json(&body)["replayed"]["still_failing"], "UNMAPPED_MESSAGE_TYPE");

        // Fix the mapping; the running server reloads it.
        let file = server.dir.join("mappings/demo/adt.yaml");
        let mut yaml = std::fs::read_to_string(&file).unwrap();
        yaml.push_str(common::A04_RULE);
        std::fs::write(&file, yaml).unwrap();
        let dry = format!("{base}/replay");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
        loop {
            let (status, body) = server.http("POST", &dry, Some(DEMO_TOKEN), br#"{"dry_run": true}"#);
            assert_eq!(status, 200, "{body}");
            let v = json(&body);
            if v["would_replay"] == 3 {
                assert_eq!(v["would_append"], 3);
                assert_eq!(v["results"][0]["events"][0]["event_type"], "PatientRegistered");
                break;
            }
            assert!(std::time::Instant::now() < deadline, "mapping not reloaded: {body}");
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
        let stored = server.events("demo").await;
        assert!(stored.iter().all(|e| e.stream_type == "Audit"), "a dry run stores nothing");

        let (status, body) = server.http("POST", &format!("{base}/{id}/replay"), Some(DEMO_TOKEN), b"");
        assert_eq!((status, json(&body)["replayed"]["appended"].as_u64()), (200, Some(1)), "{body}");
        let (status, body) = server.http("POST", &dry, Some(DEMO_TOKEN), br#"{"code": "UNMAPPED_MESSAGE_TYPE", "limit": 10}"#);
        let v = json(&body);
        assert_eq!((status, v["replayed"].as_u64(), v["appended"].as_u64()), (200, Some(2), Some(2)), "{body}");
        let (_, body) = server.http("POST", &dry, Some(DEMO_TOKEN), b"{}");
        assert_eq!(json(&body)["replayed"], 0, "nothing left open");
        let events = server.events("demo").await;
        let audit: Vec<_> = events.iter().filter(|e| e.stream_type == "Audit").collect();
        assert_eq!(events.len() - audit.len(), 3);
        // The raw view and the two replays that took letters, each under the token's name.
        let kinds: Vec<&str> = audit.iter().map(|e| e.event_type.as_str()).collect();
        assert_eq!(kinds, ["RawMessageViewed", "DeadLettersReplayed", "DeadLettersReplayed", "DeadLettersReplayed"]);
        assert!(audit.iter().all(|e| e.data["actor"] == "tenant:demo"));
        // The events API reads the audit stream by its type and key.
        let (status, body) = server.http("GET", "/api/v1/tenants/demo/events?stream_type=Audit&key=audit", Some(DEMO_TOKEN), b"");
        assert_eq!((status, json(&body)["events"].as_array().map(Vec::len)), (200, Some(4)), "{body}");
        let (status, body) = server.http("POST", &dry, Some(DEMO_TOKEN), br#"{"limit": "all"}"#);
        assert_eq!((status, json(&body)["error"]["code"].as_str()), (400, Some("INVALID_BODY")));

        // Discard the strict letter with its own token; a second discard finds nothing open.
        let path = format!("/api/v1/tenants/strict/dead-letters/{strict_id}/discard");
        let (status, body) = server.http("POST", &path, Some(STRICT_TOKEN), b"");
        assert_eq!((status, json(&body)["error"]["code"].as_str()), (400, Some("INVALID_BODY")), "a discard needs a reason");
        let bulk = "/api/v1/tenants/strict/dead-letters/discard";
        let (status, body) = server.http("POST", bulk, Some(STRICT_TOKEN), br#"{"reason": "r"}"#);
        assert_eq!((status, json(&body)["error"]["code"].as_str()), (400, Some("INVALID_BODY")), "a bulk discard needs a filter");
        let (status, body) = server.http("POST", bulk, Some(STRICT_TOKEN), br#"{"all": true, "dry_run": true}"#);
        assert_eq!((status, json(&body)["would_discard"].as_u64()), (200, Some(1)), "{body}");
        let reason = br#"{"reason": "test feed"}"#;
        assert_eq!(server.http("POST", &path, Some(STRICT_TOKEN), reason).0, 200);
        assert_eq!(server.http("POST", &path, Some(STRICT_TOKEN), reason).0, 404);
        let (_, body) = server.http("GET", "/api/v1/tenants/strict/dead-letters?status=discarded", Some(STRICT_TOKEN), b"");
        assert_eq!(json(&body)["dead_letters"].as_array().unwrap().len(), 1);
    }
}

on_each_backend! {
    async fn a_dead_letter_in_8859_1_or_utf_16_comes_back_byte_for_byte() {
        let server = Server::start();
        let mut c = server.client().await;
        // An unmapped type in 8859/1 ("Begoña", ñ = 0xF1), and bytes that are UTF-16.
        let latin1 = b"MSH|^~\\&|HIS|DEMO_HOSP|||20240101||ZZZ^Z01|L1|P|2.5|||||||8859/1\rPID|1||M1^^^H||Bego\xf1a^Ana\r".to_vec();
        let utf16: Vec<u8> = "MSH|^~\\&|HIS|DEMO_HOSP|||20240101||ZZZ^Z01|U1|P|2.5\r"
            .encode_utf16()
            .flat_map(u16::to_le_bytes)
            .collect();
        for bytes in [&latin1, &utf16] {
            let _ = c.send(bytes).await.unwrap();
        }
        let (_, letters, _) = dlq(&server, &["list", "--tenant", "demo"]);
        assert_eq!(letters.len(), 2, "{letters:?}");
        let mut back = Vec::new();
        for l in &letters {
            let out = Command::new(env!("CARGO_BIN_EXE_intake"))
                .arg("--config")
                .arg(server.dir.join("intake.toml"))
                .args(["dlq", "show", "--raw", l["id"].as_str().unwrap()])
                .output()
                .unwrap();
            assert!(out.status.success());
            back.push(out.stdout);
        }
        assert!(back.contains(&latin1), "8859/1 unchanged");
        assert!(back.contains(&utf16), "UTF-16 unchanged");

        // Over HTTP, with the phi scope: the text decoded by its own charset, and the exact
        // bytes in base64.
        use base64::Engine as _;
        let mut texts = Vec::new();
        for l in &letters {
            let path = format!("/api/v1/tenants/demo/dead-letters/{}?raw=true", l["id"].as_str().unwrap());
            let (status, body) = server.http("GET", &path, Some(common::DEMO_TOKEN), b"");
            assert_eq!(status, 200, "{body}");
            let v = json(&body);
            let bytes = base64::engine::general_purpose::STANDARD.decode(v["raw_base64"].as_str().unwrap()).unwrap();
            assert!(bytes == latin1 || bytes == utf16, "exact bytes");
            texts.push((v["charset"].as_str().unwrap().to_string(), v["message"].as_str().unwrap().to_string()));
        }
        assert!(texts.iter().any(|(_, t)| t.contains("Bego\u{f1}a")), "{texts:?}");
        assert!(texts.iter().any(|(_, t)| t.starts_with("MSH|^~\\&|HIS|DEMO_HOSP|||20240101||ZZZ^Z01|U1")), "{texts:?}");
    }
}
