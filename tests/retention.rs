//! Retention of raw messages (`intake prune`): the raw bytes of messages older than the
//! tenant's policy are emptied, in batches and audited; recent messages, tenants without
//! a policy and open dead letters keep theirs; a dry run counts the same and changes
//! nothing; a resend of a pruned message is still a duplicate with the first ACK; events
//! stay as they were; every raw view answers `RAW_PRUNED`; and the schema itself refuses
//! any other change to a raw message.

mod common;

use common::{err_segment, msa, Adt, SendAdt, Server, DEMO_TOKEN};
use serde_json::Value;
use sqlx::Connection;
use std::collections::BTreeMap;

/// Demo keeps raw messages this many days; strict has no policy.
const DAYS: i64 = 30;

/// A session as the engine's role on PostgreSQL, in the engine's cross-tenant scope.
async fn engine_session(server: &Server) -> sqlx::PgConnection {
    let mut c = sqlx::PgConnection::connect(&server.database_url)
        .await
        .unwrap();
    sqlx::query("SELECT set_config('app.tenant_id', '*', false)")
        .execute(&mut c)
        .await
        .unwrap();
    c
}

/// (raw bytes, pruned) of every inbound message, by control id, read with SQL as the
/// engine's role.
async fn raws(server: &Server) -> BTreeMap<String, (Vec<u8>, bool)> {
    let sql = "SELECT coalesce(control_id, ''), raw, pruned_at IS NOT NULL FROM inbound_messages";
    let rows: Vec<(String, Vec<u8>, bool)> = match common::backend() {
        common::Backend::Postgres => {
            let mut c = engine_session(server).await;
            sqlx::query_as(sql).fetch_all(&mut c).await.unwrap()
        }
        common::Backend::Sqlite => {
            let mut c = sqlx::SqliteConnection::connect(&server.database_url)
                .await
                .unwrap();
            sqlx::query_as(sql).fetch_all(&mut c).await.unwrap()
        }
    };
    rows.into_iter().map(|(c, raw, p)| (c, (raw, p))).collect()
}

/// Runs one hand-written statement as the engine's role; the database's error if refused.
async fn exec(server: &Server, sql: &str) -> Result<u64, String> {
    let done = match common::backend() {
        common::Backend::Postgres => {
            let mut c = engine_session(server).await;
            sqlx::query(sql)
                .execute(&mut c)
                .await
                .map(|r| r.rows_affected())
        }
        common::Backend::Sqlite => {
            let mut c = sqlx::SqliteConnection::connect(&server.database_url)
                .await
                .unwrap();
            sqlx::query(sql)
                .execute(&mut c)
                .await
                .map(|r| r.rows_affected())
        }
    };
    done.map_err(|e| e.to_string())
}

/// Every event of both tenants but the audit entries, as JSON.
async fn message_events(server: &Server) -> Vec<Value> {
    let mut all = server.events("demo").await;
    all.extend(server.events("strict").await);
    all.iter()
        .filter(|e| e.stream_type != "Audit")
        .map(|e| serde_json::to_value(e).unwrap())
        .collect()
}

/// `intake prune ARGS --as-of AS_OF`: (success, one JSON value per stdout line, stderr).
fn prune(server: &Server, as_of: &str, args: &[&str]) -> (bool, Vec<Value>, String) {
    let mut all = vec!["prune", "--as-of", as_of];
    all.extend_from_slice(args);
    let (ok, out, err) = server.cli(&all);
    let lines = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (ok, lines, err)
}

on_each_backend! {
    async fn old_raw_messages_are_pruned_and_everything_else_stays() {
        let server = Server::start();
        let settings = server.dir.join("mappings/demo/tenant.yaml");
        let mut yaml = std::fs::read_to_string(&settings).unwrap();
        yaml.push_str(&format!("\nretention:\n  raw_messages_days: {DAYS}\n"));
        std::fs::write(&settings, yaml).unwrap();

        // Old messages: one that became events, one dead letter left open, one discarded;
        // and strict's, which has no policy.
        let mut c = server.client().await;
        let mut acks = BTreeMap::new();
        for (ctrl, trigger, visit) in [("OLD1", "A01", "V1"), ("OPEN1", "A99", "V2"), ("GONE1", "A99", "V3")] {
            let ack = c.ack(Adt { trigger, control_id: ctrl, visit, ..Default::default() }).await;
            assert_eq!(msa(&ack), ("AA".to_string(), ctrl.to_string()));
            acks.insert(ctrl, (msa(&ack), err_segment(&ack)));
        }
        let mut routed = server.routed_client().await;
        let strict = Adt { facility: "STRICT_HOSP", control_id: "S1", visit: "SV1", ..Default::default() };
        assert_eq!(msa(&routed.ack(strict).await).0, "AA");
        let letters = server.dead_letters().await;
        let id_of = |ctrl: &str| letters.iter().find(|d| d.control_id.as_deref() == Some(ctrl)).unwrap().id.to_string();
        let (gone, open) = (id_of("GONE1"), id_of("OPEN1"));
        let (ok, _, err) = server.cli(&["dlq", "discard", "--tenant", "demo", "--id", gone.as_str(), "--reason", "test"]);
        assert!(ok, "{err}");

        // The cutoff falls here: what came before is older than the policy allows.
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let cutoff = chrono::Utc::now();
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let ack = c.ack(Adt { control_id: "NEW1", visit: "V4", ..Default::default() }).await;
        assert_eq!(msa(&ack).0, "AA");
        let as_of = (cutoff + chrono::Duration::days(DAYS))
            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true);

        let before = raws(&server).await;
        let events = message_events(&server).await;
        assert!(!events.is_empty());
        let old_bytes = (before["OLD1"].0.len() + before["GONE1"].0.len()) as u64;

        // A dry run counts what a prune would take, and changes nothing.
        let (ok, dry, err) = prune(&server, &as_of, &["--dry-run"]);
        assert!(ok, "{err}");
        assert_eq!(dry.len(), 1, "only demo has a policy: {dry:?}");
        assert_eq!((dry[0]["tenant"].as_str(), dry[0]["messages"].as_u64()), (Some("demo"), Some(2)));
        assert_eq!(dry[0]["bytes"].as_u64(), Some(old_bytes));
        assert_eq!(dry[0]["dry_run"], true);
        assert!(err.contains("strict: no retention policy"), "{err}");
        assert!(err.contains("would prune 2 raw message(s)"), "{err}");
        assert_eq!(raws(&server).await, before, "a dry run changes nothing");

        // The prune takes the same, one message per transaction here.
        let (ok, done, err) = prune(&server, &as_of, &["--batch", "1"]);
        assert!(ok, "{err}");
        assert_eq!((done[0]["messages"].as_u64(), done[0]["bytes"].as_u64()), (Some(2), Some(old_bytes)));
        assert_eq!(done[0]["cutoff"], dry[0]["cutoff"]);
        let after = raws(&server).await;
        for ctrl in ["OLD1", "GONE1"] {
            assert_eq!(after[ctrl], (Vec::new(), true), "{ctrl} pruned");
        }
        for ctrl in ["OPEN1", "NEW1", "S1"] {
            assert_eq!(after[ctrl], before[ctrl], "{ctrl} kept");
        }
        assert!(!err.contains("Doe") && !err.contains("MRN-"), "no content: {err}");
        let (ok, again, _) = prune(&server, &as_of, &[]);
        assert!(ok);
        assert_eq!(again[0]["messages"], 0, "nothing left to prune");

        // Events are untouched; each batch is audited with counts, never content.
        assert_eq!(message_events(&server).await, events);
        let audit: Vec<_> = server.events("demo").await.into_iter()
            .filter(|e| e.event_type == "RawMessagesPruned").collect();
        assert_eq!(audit.len(), 2, "one entry per batch that pruned");
        assert!(audit.iter().all(|e| e.data["counts"]["messages"] == 1 && e.data["days"] == DAYS));
        assert!(audit.iter().all(|e| e.data["actor"].as_str().unwrap().starts_with("cli:")));

        // A resend of a pruned message is still a duplicate, answered as the first time.
        for ctrl in ["OLD1", "GONE1"] {
            let trigger = if ctrl == "OLD1" { "A01" } else { "A99" };
            let visit = if ctrl == "OLD1" { "V1" } else { "V3" };
            let ack = c.ack(Adt { trigger, control_id: ctrl, visit, ..Default::default() }).await;
            assert_eq!((msa(&ack), err_segment(&ack)), acks[ctrl], "{ctrl}");
        }
        assert_eq!(raws(&server).await.len(), after.len(), "no row added");
        assert_eq!(message_events(&server).await, events, "no event added");

        // Every raw view says the raw is gone; the facts remain.
        let base = "/api/v1/tenants/demo/dead-letters";
        let (status, body) = server.http("GET", &format!("{base}/{gone}?raw=true"), Some(DEMO_TOKEN), b"");
        assert_eq!(status, 410, "{body}");
        assert!(body.contains("\"code\":\"RAW_PRUNED\""), "{body}");
        let (status, body) = server.http("GET", &format!("{base}/{gone}"), Some(DEMO_TOKEN), b"");
        assert_eq!(status, 200, "{body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert!(v["raw_pruned_at"].is_string() && v["dead_letter"]["status"] == "discarded", "{body}");
        let (status, _) = server.http("GET", &format!("{base}/{open}?raw=true"), Some(DEMO_TOKEN), b"");
        assert_eq!(status, 200, "an open letter's raw is kept");
        let (ok, _, err) = server.cli(&["dlq", "show", gone.as_str(), "--raw"]);
        assert!(!ok && err.contains("RAW_PRUNED"), "{err}");
        let (ok, out, err) = server.cli(&["dlq", "show", gone.as_str()]);
        assert!(ok && out.contains("raw_pruned_at"), "{err}");
        let (ok, out, _) = server.cli(&["messages", "--tenant", "demo", "--control-id", "OLD1"]);
        assert!(ok && out.contains("\"raw_pruned_at\""), "{out}");
        let (ok, out, _) = server.cli(&["messages", "--tenant", "demo", "--control-id", "NEW1"]);
        assert!(ok && !out.contains("raw_pruned_at"), "{out}");

        // Re-mapping skips pruned messages and says how many.
        let mappings = server.dir.join("mappings");
        let (ok, _, err) = server.cli(&["remap", "--tenant", "demo", "--mappings", mappings.to_str().unwrap()]);
        assert!(ok, "{err}");
        assert!(err.contains("2 message(s) compared") && err.contains("2 skipped (raw pruned)"), "{err}");

        // The schema allows no other change to a raw message.
        let blob = match common::backend() {
            common::Backend::Postgres => "'\\x'::bytea",
            common::Backend::Sqlite => "X''",
        };
        let now = match common::backend() {
            common::Backend::Postgres => "now()",
            common::Backend::Sqlite => "'2030-01-01T00:00:00.000000Z'",
        };
        for sql in [
            "UPDATE inbound_messages SET raw = raw || raw WHERE control_id = 'NEW1'".to_string(),
            format!("UPDATE inbound_messages SET raw = {blob} WHERE control_id = 'NEW1'"),
            format!("UPDATE inbound_messages SET raw = {blob}, pruned_at = {now} WHERE control_id = 'OPEN1'"),
            "UPDATE inbound_messages SET pruned_at = NULL WHERE control_id = 'OLD1'".to_string(),
            "DELETE FROM inbound_messages WHERE control_id = 'OLD1'".to_string(),
        ] {
            assert!(exec(&server, &sql).await.is_err(), "refused: {sql}");
        }
        let sql = format!("UPDATE inbound_messages SET raw = {blob}, pruned_at = {now} WHERE control_id = 'NEW1'");
        assert_eq!(exec(&server, &sql).await, Ok(1), "pruning itself is allowed");
    }
}

on_each_backend! {
    async fn prune_needs_a_known_tenant_and_a_valid_policy() {
        let server = Server::start();
        let (ok, _, err) = server.cli(&["prune", "--tenant", "nobody"]);
        assert!(!ok && err.contains("no tenant nobody"), "{err}");
        let (ok, out, err) = server.cli(&["prune", "--tenant", "strict"]);
        assert!(ok && out.is_empty() && err.contains("strict: no retention policy"), "{err}");
        let settings = server.dir.join("mappings/strict/tenant.yaml");
        let mut yaml = std::fs::read_to_string(&settings).unwrap();
        yaml.push_str("retention:\n  raw_messages_days: 0\n");
        std::fs::write(&settings, yaml).unwrap();
        let (ok, _, err) = server.cli(&["check"]);
        assert!(!ok && err.contains("tenant.yaml:6:22: retention.raw_messages_days: 0"), "{err}");
        let (ok, _, _) = server.cli(&["prune"]);
        assert!(!ok, "a policy that does not load prunes nothing");
    }
}
