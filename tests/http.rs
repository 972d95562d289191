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
