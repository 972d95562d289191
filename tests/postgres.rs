//! PostgreSQL in production shape: row-level security isolates tenants even from
//! hand-written queries; several `intake serve` instances share one database without
//! storing a message twice or losing an event; the engine refuses roles that RLS does not
//! apply to and a schema that was not migrated.

mod common;

use common::pg::{self, Database};
use common::{msa, Adt, Options, SendAdt, Server, ADMIN, DEMO_TOKEN};
use intake_adapters::mllp::client::MllpClient;
use sqlx::{Connection, PgConnection, Row};
use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::time::Duration;

fn require_pg() -> bool {
    pg::available()
}

/// Stores events and dead letters for two tenants through a real server.
async fn two_tenants(server: &Server) {
    let mut c = server.client().await;
    assert_eq!(msa(&c.ack(Adt::default()).await).0, "AA");
    assert_eq!(
        msa(&c
            .ack(Adt {
                control_id: "BAD",
                trigger: "A99",
                ..Default::default()
            })
            .await)
        .0,
        "AA",
        "dead-lettered: stored, acknowledged"
    );
    let mut routed = server.routed_client().await;
    let strict = Adt {
        facility: "STRICT_HOSP",
        control_id: "S1",
        visit: "SV1",
        ..Default::default()
    };
    assert_eq!(msa(&routed.ack(strict).await).0, "AA");
    let bad = Adt {
        facility: "STRICT_HOSP",
        control_id: "S2",
        trigger: "A99",
        ..Default::default()
    };
    assert_eq!(
        msa(&routed.ack(bad).await).0,
        "AE",
        "strict answers AE for dead letters"
    );
}

async fn count(c: &mut PgConnection, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(&mut *c).await.unwrap()
}

#[tokio::test]
async fn a_session_scoped_to_one_tenant_sees_and_writes_no_row_of_another() {
    if !require_pg() {
        return;
    }
    common::set_backend(common::Backend::Postgres);
    let server = Server::start();
    two_tenants(&server).await;
    // The engine's own role, as a hand-written session would use it.
    let mut c = PgConnection::connect(&server.database_url).await.unwrap();

    // No scope: nothing at all.
    for table in ["events", "inbound_messages", "dead_letters"] {
        assert_eq!(
            count(&mut c, &format!("SELECT count(*) FROM {table}")).await,
            0,
            "{table} unscoped"
        );
    }

    let mut tx = c.begin().await.unwrap();
    sqlx::query("SELECT set_config('app.tenant_id', 'demo', true)")
        .execute(&mut *tx)
        .await
        .unwrap();
    for table in ["events", "inbound_messages", "dead_letters"] {
        let tenants: Vec<Option<String>> =
            sqlx::query_scalar(&format!("SELECT DISTINCT tenant_id FROM {table}"))
                .fetch_all(&mut *tx)
                .await
                .unwrap();
        assert_eq!(tenants, [Some("demo".to_string())], "{table} as demo");
        let other: i64 = sqlx::query_scalar(&format!(
            "SELECT count(*) FROM {table} WHERE tenant_id = 'strict' OR tenant_id IS NULL"
        ))
        .fetch_one(&mut *tx)
        .await
        .unwrap();
        assert_eq!(
            other, 0,
            "{table}: no strict rows even when asked for by name"
        );
    }
    // Writing a row of another tenant is refused by the policy's WITH CHECK.
    let insert = sqlx::query(
        "INSERT INTO events (event_id, stream_id, stream_type, event_type, event_version, tenant_id, \
         data, metadata, created_at, created_by) VALUES (gen_random_uuid(), gen_random_uuid(), 'Admission', \
         'AdmissionCreated', 1, 'strict', '{}', '{}', now(), 'hand')",
    )
    .execute(&mut *tx)
    .await
    .unwrap_err();
    let code = insert
        .as_database_error()
        .and_then(|d| d.code())
        .unwrap()
        .to_string();
    assert_eq!(code, "42501", "row-level security violation: {insert}");
    tx.rollback().await.unwrap();

    // Re-scoping to another tenant's rows by UPDATE/DELETE is not even privileged.
    let mut tx = c.begin().await.unwrap();
    sqlx::query("SELECT set_config('app.tenant_id', '*', true)")
        .execute(&mut *tx)
        .await
        .unwrap();
    for sql in [
        "UPDATE events SET data = '{}'",
        "DELETE FROM events",
        "DELETE FROM inbound_messages",
    ] {
        let e = sqlx::query(sql).execute(&mut *tx).await.unwrap_err();
        assert_eq!(
            e.as_database_error().and_then(|d| d.code()).unwrap(),
            "42501",
            "{sql}: {e}"
        );
        tx.rollback().await.unwrap();
        tx = c.begin().await.unwrap();
        sqlx::query("SELECT set_config('app.tenant_id', '*', true)")
            .execute(&mut *tx)
            .await
            .unwrap();
    }
    let all: Vec<String> = sqlx::query_scalar("SELECT DISTINCT tenant_id FROM events ORDER BY 1")
        .fetch_all(&mut *tx)
        .await
        .unwrap();
    assert_eq!(all, ["demo", "strict"], "the engine's own scope sees both");
    tx.rollback().await.unwrap();

    // Through the HTTP API the reads run in the token's tenant scope.
    let (status, body) = server.http("GET", "/api/v1/tenants/demo/events", Some(DEMO_TOKEN), b"");
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let tenants: BTreeSet<&str> = v["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["tenant_id"].as_str().unwrap())
        .collect();
    assert_eq!(tenants, BTreeSet::from(["demo"]));
    let strict_stream = server.events("strict").await[0].stream_id;
    let (status, body) = server.http(
        "GET",
        &format!("/api/v1/tenants/demo/events?stream={strict_stream}"),
        Some(DEMO_TOKEN),
        b"",
    );
    assert_eq!(
        (status, body.contains("\"events\":[]")),
        (200, true),
        "{body}"
    );
    let (status, _) = server.http(
        "GET",
        "/api/v1/tenants/strict/events",
        Some(DEMO_TOKEN),
        b"",
    );
    assert_eq!(status, 403);
    let (status, body) = server.http("GET", "/api/v1/tenants/strict/events", Some(ADMIN), b"");
    assert_eq!(status, 200);
    assert!(body.contains("\"tenant_id\":\"strict\""));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_one_database_store_each_message_once_and_versions_stay_gap_free() {
    if !require_pg() {
        return;
    }
    common::set_backend(common::Backend::Postgres);
    let db = Database::create();
    let opts = Options {
        database_url: Some(db.app_url.clone()),
        ..Default::default()
    };
    let a = Server::start_with(opts.clone());
    let b = Server::start_with(opts);
    // Both instances get the same burst (a sender failing over and resending), on few
    // streams so that appends contend for the same stream versions.
    const MESSAGES: usize = 300;
    const STREAMS: usize = 5;
    let mut tasks = Vec::new();
    for (server, conns) in [(&a, 3), (&b, 3)] {
        for conn in 0..conns {
            let addr = server.mllp[0];
            tasks.push(tokio::spawn(async move {
                let mut c = MllpClient::connect(addr, Duration::from_secs(20))
                    .await
                    .unwrap();
                let mut acks = Vec::new();
                // Each connection walks the whole set from a different starting point.
                for k in 0..MESSAGES {
                    let i = (k + conn * 97) % MESSAGES;
                    let ctrl = format!("M{i}");
                    let visit = format!("V{}", i % STREAMS);
                    let ack = c
                        .ack(Adt {
                            control_id: &ctrl,
                            visit: &visit,
                            ..Default::default()
                        })
                        .await;
                    acks.push((msa(&ack), ctrl));
                }
                acks
            }));
        }
    }
    for t in tasks {
        for ((code, echoed), ctrl) in t.await.unwrap() {
            assert_eq!((code.as_str(), echoed.as_str()), ("AA", ctrl.as_str()));
        }
    }
    let events = a.events("demo").await;
    let mut per_control: BTreeMap<String, usize> = BTreeMap::new();
    let mut per_stream: BTreeMap<uuid::Uuid, Vec<(i64, i64)>> = BTreeMap::new();
    for e in &events {
        *per_control
            .entry(e.metadata["control_id"].as_str().unwrap().into())
            .or_default() += 1;
        per_stream
            .entry(e.stream_id)
            .or_default()
            .push((e.global_position, e.event_version));
    }
    assert_eq!(per_control.len(), MESSAGES, "every message stored");
    assert!(per_control.values().all(|&n| n == 1), "none stored twice");
    assert_eq!(per_stream.len(), STREAMS);
    for (stream, rows) in per_stream {
        let versions: Vec<i64> = rows.iter().map(|r| r.1).collect();
        let expected: Vec<i64> = (1..=versions.len() as i64).collect();
        assert_eq!(
            versions, expected,
            "stream {stream}: gap-free, in position order"
        );
    }
    // The inbound table agrees: one row per control id.
    let mut c = PgConnection::connect(&db.owner_url).await.unwrap();
    let mut tx = c.begin().await.unwrap();
    sqlx::query("SELECT set_config('app.tenant_id', 'demo', true)")
        .execute(&mut *tx)
        .await
        .unwrap();
    let rows = sqlx::query("SELECT count(*), count(DISTINCT control_id) FROM inbound_messages")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert_eq!(
        (rows.get::<i64, _>(0), rows.get::<i64, _>(1)),
        (MESSAGES as i64, MESSAGES as i64)
    );
    tx.rollback().await.unwrap();
    drop((a, b));
}

/// Runs `intake serve` on `url` and returns (exit success, stderr).
fn serve_once(url: &str) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    common::prepare(
        dir.path(),
        &Options {
            database_url: Some(url.into()),
            ..Default::default()
        },
    );
    let out = Command::new(env!("CARGO_BIN_EXE_intake"))
        .arg("--config")
        .arg(dir.path().join("intake.toml"))
        .arg("serve")
        .env_remove("INTAKE_DATABASE_URL")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn serve_refuses_roles_that_bypass_row_level_security_and_unmigrated_schemas() {
    if !require_pg() {
        return;
    }
    let db = Database::create();
    // The tables' owner: RLS is forced on it, but it could turn that off again.
    let (ok, err) = serve_once(&db.owner_url);
    assert!(!ok && err.contains("row-level security"), "{err}");
    // A superuser bypasses RLS altogether.
    let admin = pg::admin_url();
    let (prefix, _) = admin.rsplit_once('/').unwrap();
    let (ok, err) = serve_once(&format!("{prefix}/{}", db.name));
    assert!(!ok && err.contains("row-level security"), "{err}");
    // A database nobody migrated.
    let empty = Database::create_unmigrated();
    let (ok, err) = serve_once(&empty.app_url);
    assert!(!ok && err.contains("intake migrate"), "{err}");
    // `intake migrate` as the owner, then the engine's role serves.
    let out = Command::new(env!("CARGO_BIN_EXE_intake"))
        .arg("migrate")
        .env("INTAKE_DATABASE_URL", &empty.owner_url)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut server = {
        let dir = tempfile::tempdir().unwrap();
        let opts = Options {
            database_url: Some(empty.app_url.clone()),
            ..Default::default()
        };
        common::prepare(dir.path(), &opts);
        let s = Server::start_in_with(dir.path(), &opts);
        (s, dir)
    };
    let mut c = server.0.client().await;
    assert_eq!(msa(&c.ack(Adt::default()).await).0, "AA");
    server.0.kill();
}
