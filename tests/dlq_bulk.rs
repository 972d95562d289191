//! Bulk dead-letter work as support staff run it after a mapping fix: thousands of letters
//! replayed in batches, with progress; a replay killed midway and resumed by two replays at
//! once stores each letter's events once, and audits each letter once. A preview takes no
//! write lock.

mod common;

use common::{Adt, SendAdt, Server};
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

const LETTERS: usize = 5000;

/// `intake` against the server's configuration.
fn intake(server: &Server) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_intake"));
    c.arg("--config")
        .arg(server.dir.join("intake.toml"))
        .env_remove("INTAKE_DATABASE_URL")
        .env_remove("INTAKE_MAPPINGS_DIR");
    c
}

/// Sends `n` A04s (unmapped by the test mappings: each one a dead letter), then adds a
/// rule for A04 to demo's mappings.
async fn letters_then_fix(server: &Server, n: usize) {
    let mut c = server.client().await;
    for i in 0..n {
        let (ctrl, visit) = (format!("B{i}"), format!("BV{i}"));
        c.ack(Adt {
            trigger: "A04",
            control_id: &ctrl,
            visit: &visit,
            ..Default::default()
        })
        .await;
    }
    server.add_a04_rule("demo");
}

on_each_backend! {
    async fn a_bulk_replay_killed_and_resumed_twice_at_once_stores_and_audits_each_letter_once() {
        let server = Server::start();
        letters_then_fix(&server, LETTERS).await;
        assert_eq!(server.dead_letters().await.len(), LETTERS);

        // A replay in batches of 100, killed once it has reported five committed batches.
        let mut first = intake(&server)
            .args(["dlq", "replay", "--tenant", "demo", "--batch", "100", "--reason", "fix 7"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut progress = BufReader::new(first.stderr.take().unwrap()).lines();
        let mut reported = Vec::new();
        while reported.len() < 5 {
            let line = progress.next().expect("progress lines").unwrap();
            if line.starts_with("replayed ") {
                reported.push(line);
            }
        }
        first.kill().unwrap();
        first.wait().unwrap();
        assert!(reported[4].starts_with("replayed 500 so far; last id "), "{reported:?}");
        let partial = server.events("demo").await.iter().filter(|e| e.stream_type != "Audit").count();
        assert!((500..LETTERS).contains(&partial), "killed midway: {partial} replayed");

        // Resumed by two replays at once; neither takes a letter the other took.
        let spawn = || {
            intake(&server)
                .args(["dlq", "replay", "--tenant", "demo", "--batch", "100", "--reason", "fix 7"])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        };
        let (a, b) = (spawn(), spawn());
        for child in [a, b] {
            let out = child.wait_with_output().unwrap();
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        }

        // Every letter is replayed, and each message's event is stored once.
        let (audit, events): (Vec<_>, Vec<_>) = server
            .events("demo")
            .await
            .into_iter()
            .partition(|e| e.stream_type == "Audit");
        let controls: BTreeSet<&str> = events.iter().map(|e| e.metadata["control_id"].as_str().unwrap()).collect();
        assert_eq!((events.len(), controls.len()), (LETTERS, LETTERS));
        let letters = server.dead_letters().await;
        assert!(letters.iter().all(|d| d.status == "replayed"));
        // The batch in flight at the kill rolled back with its audit entry: each letter is
        // in exactly one entry, and every entry is the CLI's, with the reason.
        let mut audited: Vec<String> = audit
            .iter()
            .flat_map(|e| e.data["ids"].as_array().unwrap().iter().map(|i| i.as_str().unwrap().to_string()))
            .collect();
        audited.sort();
        let mut ids: Vec<String> = letters.iter().map(|d| d.id.to_string()).collect();
        ids.sort();
        assert_eq!(audited, ids);
        assert!(audit.iter().all(|e| e.data["reason"] == "fix 7" && e.data["counts"]["replayed"].as_u64().is_some()));
    }
}

/// A preview reads; it runs while another process holds SQLite's write lock.
#[tokio::test]
async fn a_replay_preview_runs_while_the_write_lock_is_held() {
    use sqlx::Connection;
    common::set_backend(common::Backend::Sqlite);
    let server = Server::start();
    letters_then_fix(&server, 3).await;
    let url = std::fs::read_to_string(server.dir.join("database_url")).unwrap();
    let mut holder = sqlx::SqliteConnection::connect(&url).await.unwrap();
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut holder)
        .await
        .unwrap();

    let out = intake(&server)
        .args(["dlq", "replay", "--tenant", "demo", "--dry-run"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("would replay 3 dead letter(s), would append 3 event(s)"),
        "{err}"
    );
    let previews: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(previews.len(), 3);
    assert!(previews
        .iter()
        .all(|p| p["events"][0]["data"]["visit_number"].is_string()));

    // The real replay needs the lock: it waits for the holder, then does the work.
    let replay = intake(&server)
        .args(["dlq", "replay", "--tenant", "demo"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    sqlx::query("ROLLBACK").execute(&mut holder).await.unwrap();
    let out = replay.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        server
            .events("demo")
            .await
            .iter()
            .filter(|e| e.stream_type != "Audit")
            .count(),
        3
    );
}
