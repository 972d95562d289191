//! End-to-end hot reload against the real binary: a broken mapping edit is refused and
//! logged while the previous version keeps serving; a valid edit takes effect without a
//! restart; every message is mapped by exactly one version.

mod common;

use common::{msa, Adt, Options, Server};
use intake_pipeline::event::EventEnvelope;
use std::time::{Duration, Instant};

const DEADLINE: Duration = Duration::from_secs(20);

fn version(e: &EventEnvelope) -> String {
    e.metadata["mapping"]["version"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn admit(server: &Server, n: u32) -> EventEnvelope {
    let (ctrl, visit) = (format!("R{n}"), format!("V{n}"));
    let msg = Adt {
        control_id: &ctrl,
        visit: &visit,
        ..Default::default()
    };
    let ack = server.client().await.send(&msg.build()).await.unwrap();
    assert_eq!(msa(&ack), ("AA".to_string(), ctrl.clone()), "{ack}");
    let events = server.events("demo").await;
    let e = events.last().unwrap();
    assert_eq!(e.metadata["control_id"], ctrl.as_str());
    e.clone()
}

async fn until_logged(server: &Server, needle: &str) {
    let deadline = Instant::now() + DEADLINE;
    while !server.log.lock().unwrap().contains(needle) {
        if Instant::now() > deadline {
            panic!("never logged: {needle}\n{}", server.log.lock().unwrap());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn mapping_edits_apply_without_restart_and_broken_ones_are_refused() {
    let server = Server::start_with(Options {
        reload_interval_ms: Some(200),
        log: Some("info,sqlx=warn".into()),
        ..Default::default()
    });
    let file = server.dir.join("mappings/demo/adt.yaml");
    let original = std::fs::read_to_string(&file).unwrap();
    let first = admit(&server, 1).await;
    let v0 = version(&first);
    assert!(first.data.get("ward_code").is_none());

    // Broken: an invalid path. Refused with file:line:col; the old version keeps serving.
    let location = "location:       { path: PV1.3.1 }";
    assert!(original.contains(location));
    std::fs::write(
        &file,
        original.replace(location, "location:       { path: PV1.x.1 }"),
    )
    .unwrap();
    until_logged(&server, "mapping change refused").await;
    until_logged(&server, "demo/adt.yaml:15:39: invalid path").await;
    tokio::time::sleep(Duration::from_millis(400)).await; // two more intervals
    let e = admit(&server, 2).await;
    assert_eq!(version(&e), v0, "a refused change must not serve");
    assert_eq!(e.data["location"], "WARD1");

    // Fixed with a real change: the new field appears under a new version.
    let fixed = original.replace(
        location,
        &format!("{location}\n          ward_code:      {{ path: PV1.3.1 }}"),
    );
    std::fs::write(&file, fixed).unwrap();
    let deadline = Instant::now() + DEADLINE;
    let mut n = 3;
    let new = loop {
        let e = admit(&server, n).await;
        if version(&e) != v0 {
            break e;
        }
        assert!(Instant::now() < deadline, "the fixed mapping never served");
        n += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(new.data["ward_code"], "WARD1");
    until_logged(&server, &format!("version={}", version(&new))).await;

    // Exactly one version per message: old-version events lack the field, new ones have it.
    for e in server.events("demo").await {
        let has_field = e.data.get("ward_code").is_some();
        assert_eq!(has_field, version(&e) != v0, "{}", e.metadata);
    }
    let log = server.log.lock().unwrap().clone();
    assert!(log.contains("mappings reloaded"), "{log}");
    for phi in ["MRN-", "Doe", "Alex", "19800214"] {
        assert!(!log.contains(phi), "the log must not carry message content");
    }
}

#[tokio::test]
async fn a_reload_that_lets_two_tenants_claim_one_facility_is_refused() {
    let server = Server::start_with(Options {
        reload_interval_ms: Some(200),
        log: Some("info,sqlx=warn".into()),
        ..Default::default()
    });
    // demo now also claims strict's MSH-4: one hospital's messages could land in the other.
    let file = server.dir.join("mappings/demo/tenant.yaml");
    let original = std::fs::read_to_string(&file).unwrap();
    let claim = "sending_facilities: [DEMO_HOSP]";
    assert!(original.contains(claim));
    std::fs::write(
        &file,
        original.replace(
            claim,
            "sending_facilities: [DEMO_HOSP, \"STRICT_HOSP^1.2.3^ISO\"]",
        ),
    )
    .unwrap();
    until_logged(&server, "mapping change refused").await;
    // Reported at the later tenant's claim (load order), naming the earlier one.
    until_logged(
        &server,
        "strict/tenant.yaml:4:24: routing.sending_facilities",
    )
    .await;
    until_logged(&server, "claimed by tenant").await;

    // The old routing keeps serving: strict's message is stored under strict only.
    let ack = server
        .routed_client()
        .await
        .send(
            &Adt {
                control_id: "X1",
                facility: "STRICT_HOSP^1.2.3^ISO",
                ..Default::default()
            }
            .build(),
        )
        .await
        .unwrap();
    assert_eq!(msa(&ack).0, "AA", "{ack}");
    assert_eq!(server.events("strict").await.len(), 1);
    assert!(server.events("demo").await.is_empty());
}
