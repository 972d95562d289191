//! The census read model and point-in-time state: after a burst on 8 connections the
//! census equals the fold of the stored events, and still does after `intake projections
//! rebuild` and after a kill -9 mid-burst; `as_of` follows the events' own time (a late
//! transfer changes it), `as_recorded` what the store knew; tenants are isolated.

mod common;

use common::{msa, Server, DEMO_TOKEN, STRICT_TOKEN};
use intake_adapters::mllp::client::MllpClient;
use intake_pipeline::event::stream_id;
use std::collections::BTreeMap;
use std::time::Duration;

/// An ADT message of visit `visit` at `location` (unit^room^bed), happening at `evn`
/// (an HL7 time with its offset).
fn adt(trigger: &str, control: &str, visit: &str, location: &str, evn: &str) -> Vec<u8> {
    format!(
        "MSH|^~\\&|ADT1|DEMO_HOSP|INTAKE|INTAKE|{evn}||ADT^{trigger}^ADT_{trigger}|{control}|P|2.5.1\r\
         EVN|{trigger}|{evn}|||OP1|{evn}\r\
         PID|1||MRN-{visit}^^^DEMO_HOSP^MR||Doe^Alex||19800214|F\r\
         PV1|1|I|{location}||||D1234|||MED||||1|||D1234|IP|{visit}\r"
    )
    .into_bytes()
}

/// The messages of connection `conn`: visits admitted, some moved, some discharged.
fn burst(conn: usize, per_conn: usize, tag: &str) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for i in 0..per_conn {
        let visit = format!("V{tag}{conn}-{i}");
        let ctrl = |k: &str| format!("{tag}{conn}-{i}-{k}");
        out.push(adt(
            "A01",
            &ctrl("a"),
            &visit,
            &format!("U{conn}^{i}^A"),
            "20261122080000+0000",
        ));
        if i % 3 == 1 {
            out.push(adt(
                "A02",
                &ctrl("t"),
                &visit,
                &format!("X{conn}^{i}^B"),
                "20261122090000+0000",
            ));
        }
        if i % 4 == 2 {
            out.push(adt("A03", &ctrl("d"), &visit, "", "20261122100000+0000"));
        }
    }
    out
}

/// The census as the test folds it from the stored events: visit -> (location, bed).
async fn folded(server: &Server) -> BTreeMap<String, (String, String)> {
    let mut census = BTreeMap::new();
    for e in server
        .events("demo")
        .await
        .iter()
        .filter(|e| e.stream_type == "Admission")
    {
        let visit = e.data["visit_number"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let text = |k: &str| e.data[k].as_str().unwrap_or_default().to_string();
        match e.event_type.as_str() {
            "AdmissionCreated" => {
                census.insert(visit, (text("location"), text("bed")));
            }
            "LocationChanged" => {
                census.insert(visit, (text("to_location"), text("to_bed")));
            }
            "DischargeCompleted" => {
                census.remove(&visit);
            }
            _ => {}
        }
    }
    census
}

/// The census the server answers, once the read model has caught up with every event.
async fn served(
    server: &Server,
    query: &str,
) -> (BTreeMap<String, (String, String)>, serde_json::Value) {
    let head = server
        .events("demo")
        .await
        .iter()
        .map(|e| e.global_position)
        .max()
        .unwrap_or(0);
    for _ in 0..200 {
        let (status, body) = server.http(
            "GET",
            &format!("/api/v1/tenants/demo/census{query}"),
            Some(DEMO_TOKEN),
            b"",
        );
        assert_eq!(status, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        if v["position"].as_i64().is_none_or(|p| p >= head) {
            let census = v["visits"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| {
                    let s = |k: &str| e[k].as_str().unwrap_or_default().to_string();
                    (s("visit_number"), (s("location"), s("bed")))
                })
                .collect();
            return (census, v);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the census did not catch up with position {head}");
}

/// Sends every message of `messages` on its own connection in order; returns the count
/// acknowledged AA (stopping at the first failure: the server may be killed).
async fn send_all(addr: std::net::SocketAddr, messages: Vec<Vec<u8>>) -> usize {
    let Ok(mut c) = MllpClient::connect(addr, Duration::from_secs(10)).await else {
        return 0;
    };
    let mut acked = 0;
    for m in messages {
        match c.send(&m).await {
            Ok(ack) if msa(&ack).0 == "AA" => acked += 1,
            _ => break,
        }
    }
    acked
}

on_each_backend! {
    async fn the_census_is_the_fold_of_the_events_after_a_burst_a_rebuild_and_a_kill_9() {
        let mut server = Server::start();
        let dir = server.dir.clone();
        let tasks: Vec<_> = (0..8)
            .map(|conn| tokio::spawn(send_all(server.mllp[0], burst(conn, 25, "a"))))
            .collect();
        for t in tasks {
            assert!(t.await.unwrap() > 25);
        }
        let expected = folded(&server).await;
        assert!(expected.len() > 100, "{}", expected.len());
        let (census, answer) = served(&server, "").await;
        assert_eq!(census, expected);
        assert_eq!(answer["count"].as_u64(), Some(expected.len() as u64));
        assert_eq!(answer["clock"], "recorded");
        let (by_unit, _) = served(&server, "?location=X3").await;
        let want: BTreeMap<_, _> = expected.iter().filter(|(_, (l, _))| l == "X3").map(|(k, v)| (k.clone(), v.clone())).collect();
        assert!(!want.is_empty());
        assert_eq!(by_unit, want);

        // A rebuild folds every event again, to the same census.
        let (ok, out, err) = server.cli(&["projections", "rebuild"]);
        assert!(ok, "{out}{err}");
        let (ok, out, err) = server.cli(&["census", "--tenant", "demo"]);
        assert!(ok, "{err}");
        let cli: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(cli["count"].as_u64(), Some(expected.len() as u64));
        assert_eq!(served(&server, "").await.0, expected);

        // kill -9 in the middle of a second burst; after a restart the census catches up
        // with exactly what was stored.
        let tasks: Vec<_> = (0..8)
            .map(|conn| tokio::spawn(send_all(server.mllp[0], burst(conn, 60, "b"))))
            .collect();
        tokio::time::sleep(Duration::from_millis(300)).await;
        server.kill();
        let mut acked = 0;
        for t in tasks {
            acked += t.await.unwrap();
        }
        assert!(acked > 0, "the kill happened mid-burst");
        let server = Server::start_in(&dir);
        let expected = folded(&server).await;
        assert_eq!(served(&server, "").await.0, expected);

        // /metrics shows the read model's lag.
        let (status, metrics) = server.http("GET", "/metrics", Some(common::ADMIN), b"");
        assert_eq!(status, 200);
        assert!(metrics.contains("intake_projection_lag_events{projection=\"census\"} 0"), "{metrics}");
    }
}

on_each_backend! {
    async fn as_of_follows_the_events_time_and_as_recorded_what_the_store_knew() {
        let server = Server::start();
        let mut c = server.client().await;
        // Admitted at 08:00 to W1; moved at 10:00 to W2; then a transfer to W3 that
        // happened at 09:00 arrives late, after both.
        assert_eq!(msa(&c.send(&adt("A01", "T1", "VT", "W1^1^A", "20261122080000+0000")).await.unwrap()).0, "AA");
        assert_eq!(msa(&c.send(&adt("A02", "T2", "VT", "W2^2^B", "20261122100000+0000")).await.unwrap()).0, "AA");
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let before_late = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        tokio::time::sleep(Duration::from_millis(1100)).await;
        assert_eq!(msa(&c.send(&adt("A02", "T3", "VT", "W3^3^C", "20261122090000+0000")).await.unwrap()).0, "AA");

        let id = stream_id("demo", "Admission", "VT").to_string();
        let show = |args: &[&str]| -> serde_json::Value {
            let (ok, out, err) = server.cli(&[&["streams", "show", &id, "--tenant", "demo"], args].concat());
            assert!(ok, "{err}");
            serde_json::from_str(&out).unwrap()
        };
        let location = |v: &serde_json::Value| v["state"]["location"].as_str().map(str::to_string);
        let at_0830 = show(&["--as-of", "2026-11-22T08:30:00Z"]);
        assert_eq!(location(&at_0830).as_deref(), Some("W1"));
        assert_eq!(at_0830["clock"], "effective");
        assert_eq!(location(&show(&["--as-of", "2026-11-22T09:30:00Z"])).as_deref(), Some("W3"), "the late transfer happened by then");
        assert_eq!(location(&show(&["--as-of", "2026-11-22T12:00:00Z"])).as_deref(), Some("W2"), "the 10:00 move is the last that happened");
        let recorded = show(&["--as-recorded", &before_late]);
        assert_eq!(location(&recorded).as_deref(), Some("W2"), "before the late transfer arrived");
        assert_eq!(recorded["clock"], "recorded");
        assert_eq!(location(&show(&[])).as_deref(), Some("W3"), "now, as recorded: the late one came last");
        let before = show(&["--as-of", "2026-11-22T07:00:00Z"]);
        assert_eq!((before["version"].as_i64(), before["state"].as_object().map(|s| s.len())), (Some(0), Some(0)));
        let (ok, _, err) = server.cli(&["streams", "show", &id, "--tenant", "demo", "--as-of", "yesterday"]);
        assert!(!ok && err.contains("RFC 3339"), "{err}");

        // The same over HTTP, for the stream and the census.
        let get = |path: String, token: &str| server.http("GET", &path, Some(token), b"");
        let (status, body) = get(format!("/api/v1/tenants/demo/streams/{id}?as_of=2026-11-22T09:30:00Z"), DEMO_TOKEN);
        assert_eq!(status, 200);
        assert_eq!(serde_json::from_str::<serde_json::Value>(&body).unwrap()["state"]["bed"], "C");
        let (status, body) = get(format!("/api/v1/tenants/demo/streams/{id}?as_recorded={before_late}"), DEMO_TOKEN);
        assert_eq!(status, 200);
        assert_eq!(serde_json::from_str::<serde_json::Value>(&body).unwrap()["state"]["location"], "W2");
        let (status, body) = get(format!("/api/v1/tenants/demo/streams/{id}?as_of=soon"), DEMO_TOKEN);
        assert_eq!(status, 400);
        assert!(body.contains("INVALID_QUERY"), "{body}");
        let (status, body) = get("/api/v1/tenants/demo/census?as_of=2026-11-22T09:30:00Z&location=W3".into(), DEMO_TOKEN);
        assert_eq!(status, 200, "{body}");
        let census: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(census["count"], 1);
        assert_eq!(census["visits"][0]["visit_number"], "VT");
        assert_eq!(census["clock"], "effective");
        let (_, body) = get("/api/v1/tenants/demo/census?as_of=2026-11-22T07:00:00Z".into(), DEMO_TOKEN);
        assert_eq!(serde_json::from_str::<serde_json::Value>(&body).unwrap()["count"], 0);

        // Tenant isolation: another tenant's token cannot read this census or stream, and
        // its own census does not hold this tenant's visits.
        let (status, _) = get("/api/v1/tenants/demo/census".into(), STRICT_TOKEN);
        assert_eq!(status, 403);
        let mut routed = server.routed_client().await;
        let strict = adt("A01", "S1", "VS", "S^1^A", "20261122080000+0000");
        let strict = String::from_utf8(strict).unwrap().replace("DEMO_HOSP", "STRICT_HOSP");
        assert_eq!(msa(&routed.send(strict.as_bytes()).await.unwrap()).0, "AA");
        let (status, body) = get("/api/v1/tenants/strict/census?as_of=2099-01-01T00:00:00Z".into(), STRICT_TOKEN);
        assert_eq!(status, 200);
        let visits: Vec<String> = serde_json::from_str::<serde_json::Value>(&body).unwrap()["visits"]
            .as_array().unwrap().iter().map(|v| v["visit_number"].as_str().unwrap().to_string()).collect();
        assert_eq!(visits, ["VS"]);
        let (status, _) = get(format!("/api/v1/tenants/strict/streams/{id}"), STRICT_TOKEN);
        assert_eq!(status, 404);
    }
}
