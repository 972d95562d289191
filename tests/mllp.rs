//! End-to-end over MLLP against the real binary: ACK rules, idempotency, dead letters,
//! hostile frames, concurrency.

mod common;

use common::{err_segment, msa, Adt, Options, SendAdt, Server};
use intake_adapters::mllp::client::MllpClient;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

on_each_backend! {
    async fn admission_transfer_discharge_become_three_events_on_one_stream() {
        let server = Server::start();
        let mut c = server.client().await;
        let root = common::repo().join("samples/demo");
        for (file, ctrl) in [
            ("a01-admit.hl7", "DEMO-A01-0001"),
            ("a02-transfer.hl7", "DEMO-A02-0001"),
            ("a03-discharge.hl7", "DEMO-A03-0001"),
        ] {
            let ack = c
                .send(&std::fs::read(root.join(file)).unwrap())
                .await
                .unwrap();
            assert_eq!(
                msa(&ack),
                ("AA".to_string(), ctrl.to_string()),
                "{file}: {ack}"
            );
            assert!(
                ack.starts_with("MSH|^~\\&|INTAKE|INTAKE|ADT1|DEMO_HOSP|"),
                "sender and receiver swapped: {ack}"
            );
            assert!(ack.contains("|P|2.5.1"), "echoes the version: {ack}");
            assert!(err_segment(&ack).is_none());
        }
        let events = server.events("demo").await;
        assert_eq!(
            events
                .iter()
                .map(|e| e.event_type.as_str())
                .collect::<Vec<_>>(),
            ["AdmissionCreated", "LocationChanged", "DischargeCompleted"]
        );
        assert_eq!(
            events.iter().map(|e| e.event_version).collect::<Vec<_>>(),
            [1, 2, 3]
        );
        assert!(events
            .iter()
            .all(|e| e.stream_id == events[0].stream_id && e.stream_type == "Admission"));
        let d0 = &events[0].data;
        assert_eq!(d0["patient_mrn"], "MRN100234");
        assert_eq!(d0["visit_number"], "V20261122-0001");
        assert_eq!(d0["admitted_at"], "2026-11-22T08:25:00-05:00");
        assert_eq!(d0["patient_class"], "I");
        assert_eq!(d0["location"], "WEST4");
        assert_eq!(d0["bed"], "B");
        assert_eq!(d0["attending_id"], "D1234");
        assert_eq!(d0["admission_type"], "E");
        let d1 = &events[1].data;
        assert_eq!(
            (d1["from_location"].as_str(), d1["to_location"].as_str()),
            (Some("WEST4"), Some("ICU1"))
        );
        assert_eq!(
            (d1["from_bed"].as_str(), d1["to_bed"].as_str()),
            (Some("B"), Some("A"))
        );
        assert_eq!(d1["effective_at"], "2026-11-22T14:00:00-05:00");
        assert_eq!(d1["reason"], "TRN");
        let d2 = &events[2].data;
        assert_eq!(d2["discharged_at"], "2026-11-25T10:10:00-05:00");
        assert_eq!(d2["disposition"], "01");
        let m = &events[1].metadata;
        assert_eq!(m["control_id"], "DEMO-A02-0001");
        assert_eq!(m["message_type"], "ADT^A02");
        assert_eq!(m["mapping"]["file"], "adt.yaml");

        // A resend is answered like the first time and stores nothing.
        let ack = c
            .send(&std::fs::read(root.join("a02-transfer.hl7")).unwrap())
            .await
            .unwrap();
        assert_eq!(msa(&ack).0, "AA");
        assert_eq!(server.events("demo").await.len(), 3);

        // The same events come out of the HTTP API, in global order.
        let (status, body) = server.http(
            "GET",
            "/api/v1/tenants/demo/events?after=1&limit=10",
            Some(common::DEMO_TOKEN),
            b"",
        );
        assert_eq!(status, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["events"].as_array().unwrap().len(), 2);
        assert_eq!(v["events"][0]["event_type"], "LocationChanged");
        assert_eq!(v["next_after"], 3);
    }
}

on_each_backend! {
    async fn enhanced_mode_gets_commit_acknowledgements() {
        let server = Server::start();
        let mut c = server.client().await;
        let ack = c
            .ack(Adt {
                control_id: "E1",
                msh_tail: "|||AL|NE",
                ..Default::default()
            })
            .await;
        assert_eq!(msa(&ack), ("CA".into(), "E1".into()));
        let ack = c
            .ack(Adt {
                control_id: "E2",
                trigger: "A99",
                msh_tail: "|||AL|NE",
                ..Default::default()
            })
            .await;
        assert_eq!(msa(&ack).0, "CA", "dead letters are accepted by default");
        let ack = c
            .send(b"MSH|^~\\&|X|Y|||20260101||ADT^A01||P|2.5|||AL")
            .await
            .unwrap();
        assert_eq!(
            msa(&ack).0,
            "CA",
            "missing control id is dead-lettered, not rejected"
        );
    }
}

on_each_backend! {
    async fn bad_messages_are_dead_lettered_with_precise_codes_and_the_connection_keeps_working() {
        let server = Server::start();
        let mut c = server.client().await;
        let mut other = server.client().await;

        let ack = c.send(b"this is not HL7 at all").await.unwrap();
        assert_eq!(msa(&ack), ("AR".into(), "".into()));
        assert!(err_segment(&ack).unwrap().contains("NOT_HL7"), "{ack}");

        let ack = c
            .ack(Adt {
                trigger: "A99",
                control_id: "U1",
                ..Default::default()
            })
            .await;
        assert_eq!(
            msa(&ack),
            ("AA".into(), "U1".into()),
            "dead letter: the engine has custody"
        );

        let no_visit = String::from_utf8(
            Adt {
                control_id: "R1",
                visit: "",
                ..Default::default()
            }
            .build(),
        )
        .unwrap();
        let ack = c.send(no_visit.as_bytes()).await.unwrap();
        assert_eq!(msa(&ack).0, "AA");

        let ack = c
            .send(b"MSH|^~\\&|A|DEMO_HOSP|B|C|20260101||ADT^A01|M1|P|2.5\rPID|1\rxx|broken\rPV1|1")
            .await
            .unwrap();
        assert_eq!(msa(&ack), ("AA".into(), "M1".into()));

        // The same connection and another one keep working.
        assert_eq!(
            msa(&c
                .ack(Adt {
                    control_id: "OK1",
                    ..Default::default()
                })
                .await)
            .0,
            "AA"
        );
        assert_eq!(
            msa(&other
                .ack(Adt {
                    control_id: "OK2",
                    visit: "V2",
                    ..Default::default()
                })
                .await)
            .0,
            "AA"
        );

        let dl = server.dead_letters().await;
        let codes: Vec<(&str, &str, Option<&str>)> = dl
            .iter()
            .map(|d| {
                (
                    d.stage.as_str(),
                    d.reason_code.as_str(),
                    d.detail.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            codes,
            [
                ("decode", "NOT_HL7", None),
                ("map", "UNMAPPED_MESSAGE_TYPE", Some("ADT^A99")),
                (
                    "map",
                    "MAPPING_REQUIRED_FIELD",
                    Some("stream key of AdmissionCreated (PV1.19.1)")
                ),
                ("parse", "MALFORMED_SEGMENT", Some("segment 3")),
            ]
        );
        // No dead-letter field carries message content.
        let all = serde_json::to_string(&dl).unwrap();
        assert!(
            !all.contains("MRN-") && !all.contains("Doe") && !all.contains("broken"),
            "{all}"
        );
        assert_eq!(server.events("demo").await.len(), 2);

        // A resent dead letter gets the same answer and is not stored twice.
        assert_eq!(
            msa(&c
                .ack(Adt {
                    trigger: "A99",
                    control_id: "U1",
                    ..Default::default()
                })
                .await)
            .0,
            "AA"
        );
        assert_eq!(server.dead_letters().await.len(), 4);
    }
}

on_each_backend! {
    async fn tenant_policy_answers_ae_for_dead_letters_and_routing_uses_msh4() {
        let server = Server::start();
        let mut c = server.routed_client().await;
        let ack = c
            .ack(Adt {
                trigger: "A99",
                control_id: "S1",
                facility: "STRICT_HOSP",
                ..Default::default()
            })
            .await;
        assert_eq!(msa(&ack), ("AE".into(), "S1".into()));
        let err = err_segment(&ack).unwrap();
        assert!(
            err.contains("UNMAPPED_MESSAGE_TYPE") && err.contains("201"),
            "{err}"
        );
        // Resend: the same AE, nothing stored twice.
        let again = c
            .ack(Adt {
                trigger: "A99",
                control_id: "S1",
                facility: "STRICT_HOSP",
                ..Default::default()
            })
            .await;
        assert_eq!(msa(&again).0, "AE");
        assert!(err_segment(&again)
            .unwrap()
            .contains("UNMAPPED_MESSAGE_TYPE"));

        let ack = c
            .ack(Adt {
                control_id: "S2",
                facility: "STRICT_HOSP",
                ..Default::default()
            })
            .await;
        assert_eq!(msa(&ack).0, "AA");
        let ack = c
            .ack(Adt {
                control_id: "S3",
                facility: "NOBODY",
                ..Default::default()
            })
            .await;
        assert_eq!(msa(&ack).0, "AA", "unknown tenant is dead-lettered");
        assert_eq!(server.events("strict").await.len(), 1);
        assert_eq!(server.events("demo").await.len(), 0);
        let dead = server.dead_letters().await;
        let codes: Vec<&str> = dead.iter().map(|d| d.reason_code.as_str()).collect();
        assert_eq!(codes, ["UNMAPPED_MESSAGE_TYPE", "UNKNOWN_TENANT"]);
        // Support sees which facility codes found no claim (codes, not PHI).
        assert_eq!(
            dead[1].detail.as_deref(),
            Some(r#"MSH-4 "NOBODY", MSH-6 "INTAKE""#)
        );
    }
}

on_each_backend! {
    async fn oversized_and_endless_frames_are_rejected_without_memory_growth() {
        let server = Server::start_with(Options {
            mllp_extra: "max_frame_bytes = 65536\nframe_timeout_secs = 2".into(),
            ..Default::default()
        });
        let mut c = server.client().await;
        assert_eq!(msa(&c.ack(Adt::default()).await).0, "AA");
        let before = server.rss_kib();

        // Oversized: 8 MiB in one frame. AR with FRAME_TOO_LARGE, the connection stays usable.
        let mut big = Adt {
            control_id: "BIG1",
            ..Default::default()
        }
        .build();
        big.extend(std::iter::repeat_n(b'X', 8 << 20));
        let ack = c.send(&big).await.unwrap();
        assert_eq!(msa(&ack), ("AR".into(), "BIG1".into()));
        assert!(err_segment(&ack).unwrap().contains("FRAME_TOO_LARGE"));
        assert_eq!(
            msa(&c
                .ack(Adt {
                    control_id: "AFTER",
                    visit: "V9",
                    ..Default::default()
                })
                .await)
            .0,
            "AA"
        );

        // Endless: a frame that never ends. The server closes it after frame_timeout.
        let endless = tokio::spawn({
            let addr = server.mllp[0];
            async move {
                let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
                s.write_all(b"\x0bMSH|^~\\&|").await.unwrap();
                let chunk = vec![b'Y'; 64 * 1024];
                let mut sent = 0usize;
                let start = std::time::Instant::now();
                while start.elapsed() < Duration::from_secs(30) {
                    match s.write_all(&chunk).await {
                        Ok(()) => sent += chunk.len(),
                        Err(_) => return (sent, true),
                    }
                }
                (sent, false)
            }
        });
        // Meanwhile, everyone else is served.
        let mut other = server.client().await;
        for i in 0..5 {
            let ctrl = format!("DURING{i}");
            let ack = other
                .ack(Adt {
                    control_id: &ctrl,
                    visit: "V3",
                    ..Default::default()
                })
                .await;
            assert_eq!(msa(&ack).0, "AA");
        }
        let (sent, closed) = endless.await.unwrap();
        assert!(closed, "the server must close an endless frame");
        assert!(
            sent > 65536,
            "the sender got past the limit before being cut off ({sent} bytes)"
        );
        let after = server.rss_kib();
        assert!(
            after < before + 16 * 1024,
            "RSS grew from {before} KiB to {after} KiB after {sent} + 8 MiB bytes"
        );
        assert_eq!(server.events("demo").await.len(), 7);
    }
}

on_each_backend! {
    async fn eight_concurrent_connections_store_every_message_exactly_once() {
        let server = Server::start();
        let per_conn = 40;
        let mut tasks = Vec::new();
        for conn in 0..8 {
            let addr = server.mllp[0];
            tasks.push(tokio::spawn(async move {
                let mut c = MllpClient::connect(addr, Duration::from_secs(20))
                    .await
                    .unwrap();
                for i in 0..per_conn {
                    // Visits interleave across connections; each visit gets A01 then A02s.
                    let visit = format!("V{}", i % 10);
                    let ctrl = format!("C{conn}-{i}");
                    let trigger = if i < 10 && conn == 0 { "A01" } else { "A02" };
                    let ack = c
                        .ack(Adt {
                            trigger,
                            control_id: &ctrl,
                            visit: &visit,
                            ..Default::default()
                        })
                        .await;
                    assert_eq!(msa(&ack), ("AA".into(), ctrl.clone()));
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let events = server.events("demo").await;
        assert_eq!(events.len(), 8 * per_conn);
        let mut ids: Vec<_> = events
            .iter()
            .map(|e| e.metadata["control_id"].as_str().unwrap().to_string())
            .collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 8 * per_conn, "every control id exactly once");
        // Versions are gap-free per stream.
        let mut by_stream: std::collections::BTreeMap<_, Vec<i64>> = Default::default();
        for e in &events {
            by_stream
                .entry(e.stream_id)
                .or_default()
                .push(e.event_version);
        }
        for versions in by_stream.values() {
            assert_eq!(*versions, (1..=versions.len() as i64).collect::<Vec<_>>());
        }
    }
}

on_each_backend! {
    async fn charsets_and_segment_separators_are_decoded_before_parsing() {
        let server = Server::start();
        let mut c = server.client().await;
        let msg = |ctrl: &str, charset: &str, location: &[u8], sep: &[u8]| -> Vec<u8> {
            let mut m = Vec::new();
            m.extend_from_slice(format!("MSH|^~\\&|ADT1|DEMO_HOSP|INTAKE|INTAKE|20261122083000||ADT^A01|{ctrl}|P|2.5||||||{charset}").as_bytes());
            m.extend_from_slice(sep);
            m.extend_from_slice(b"PID|1||M1^^^H^MR");
            m.extend_from_slice(sep);
            m.extend_from_slice(b"PV1|1|I|");
            m.extend_from_slice(location);
            m.extend_from_slice(format!("||||||||||||||||{ctrl}").as_bytes());
            m.extend_from_slice(sep);
            m
        };
        type Case<'a> = (&'a str, &'a str, &'a [u8], &'a [u8], &'a str);
        let cases: [Case; 6] = [
            ("CS1", "8859/1", b"B\xe2timent", b"\r", "Bâtiment"),
            (
                "CS2",
                "UNICODE UTF-8",
                "Bâtiment".as_bytes(),
                b"\n",
                "Bâtiment",
            ),
            ("CS3", "8859/15", b"\xa4uro", b"\r\n", "€uro"),
            ("CS4", "UNICODE UTF-8", b"B\xe2timent", b"\r", "Bâtiment"), // invalid UTF-8: windows-1252 fallback
            ("CS5", "", b"Caf\\E\\\\X0A\\\\T\\x", b"\r", "Caf\\\n&x"),
            ("CS6", "ASCII", b"Stra\xdfe", b"\n", "Straße"),
        ];
        for (ctrl, charset, loc, sep, _) in &cases {
            let ack = c.send(&msg(ctrl, charset, loc, sep)).await.unwrap();
            assert_eq!(msa(&ack), ("AA".into(), ctrl.to_string()), "{ctrl}: {ack}");
        }
        let bom: Vec<u8> = [b"\xef\xbb\xbf".as_slice(), &msg("CS7", "", b"BOM", b"\r")].concat();
        assert_eq!(msa(&c.send(&bom).await.unwrap()).0, "AA");
        let events = server.events("demo").await;
        assert_eq!(
            events.len(),
            7,
            "no dead letters: {:?}",
            server.dead_letters().await
        );
        for (i, (ctrl, _, _, _, want)) in cases.iter().enumerate() {
            assert_eq!(events[i].data["location"], *want, "{ctrl}");
        }
        let ack = c.send(&msg("CS8", "ISO IR87", b"X", b"\r")).await.unwrap();
        assert_eq!(msa(&ack), ("AA".into(), "CS8".into()));
        assert_eq!(
            server.dead_letters().await[0].reason_code,
            "UNSUPPORTED_CHARSET"
        );
    }
}

on_each_backend! {
    async fn metrics_count_ack_latencies_and_batch_sizes() {
        let server = Server::start();
        let mut c = server.client().await;
        for ctrl in ["H1", "H2", "H3"] {
            let ack = c.ack(Adt { control_id: ctrl, visit: ctrl, ..Adt::default() }).await;
            assert_eq!(msa(&ack).0, "AA", "{ack}");
        }
        let (_, body) = server.http("GET", "/metrics", Some(common::ADMIN), b"");
        assert!(body.contains("# TYPE intake_ack_latency_seconds histogram"), "{body}");
        assert!(body.contains("intake_ack_latency_seconds_count 3\n"), "{body}");
        assert!(body.contains("intake_ack_latency_seconds_bucket{le=\"+Inf\"} 3\n"), "{body}");
        // One connection waits for each ACK, so each message was a batch of its own.
        assert!(body.contains("intake_writer_batch_messages_bucket{le=\"1\"} 3\n"), "{body}");
        assert!(body.contains("intake_writer_batch_messages_count 3\n"), "{body}");
    }
}

on_each_backend! {
    async fn a_filtered_message_is_acknowledged_kept_and_counted_without_a_dead_letter() {
        let server = Server::start();
        let mut c = server.client().await;
        // tests/fixtures: ADT^A14 is `ignore: true` with a reason.
        let pending = Adt { trigger: "A14", control_id: "F1", ..Adt::default() };
        let ack = c.ack(pending).await;
        assert_eq!(msa(&ack), ("AA".to_string(), "F1".to_string()), "{ack}");
        assert!(err_segment(&ack).is_none(), "{ack}");
        // A resend is a duplicate of it: the same AA, nothing stored twice.
        let again = c.ack(Adt { trigger: "A14", control_id: "F1", ..Adt::default() }).await;
        assert_eq!(msa(&again).0, "AA");
        // The engine keeps serving: the next message maps as usual.
        let ack = c.ack(Adt { control_id: "F2", ..Adt::default() }).await;
        assert_eq!(msa(&ack).0, "AA");

        assert!(server.dead_letters().await.is_empty());
        assert_eq!(server.events("demo").await.len(), 1);
        assert_eq!(
            server.inbound_outcomes().await,
            [
                (
                    "F1".to_string(),
                    "filtered".to_string(),
                    Some("pending admissions are not used by this tenant".to_string())
                ),
                ("F2".to_string(), "stored".to_string(), None),
            ]
        );
        let (_, body) = server.http("GET", "/metrics", Some(common::ADMIN), b"");
        assert!(
            body.contains("intake_messages_total{tenant=\"demo\",outcome=\"filtered\",code=\"\"} 1\n"),
            "{body}"
        );
        assert!(
            body.contains("intake_messages_total{tenant=\"demo\",outcome=\"duplicate\",code=\"\"} 1\n"),
            "{body}"
        );
    }
}

on_each_backend! {
    async fn a_bad_obx_is_skipped_and_recorded_while_the_good_results_are_stored() {
        let server = Server::start_with(common::Options {
            shipped_mappings: true,
            ..Default::default()
        });
        let mut c = server.client().await;
        // The shipped ORU rules say on_item_error: skip; OBX 2 has no OBX-3.
        let sample = std::fs::read_to_string(common::repo().join("samples/demo/oru-one-bad-obx.hl7")).unwrap();
        let ack = c.send(sample.replace('\n', "\r").as_bytes()).await.unwrap();
        assert_eq!(msa(&ack), ("AA".to_string(), "DEMO-ORU-0009".to_string()), "{ack}");
        let events = server.events("demo").await;
        assert_eq!(events.len(), 3);
        for e in &events {
            assert_eq!(
                e.metadata["skipped_items"],
                serde_json::json!([{"event": "LabResultReceived", "index": 2,
                    "code": "MAPPING_REQUIRED_FIELD", "detail": "field code (OBX.3.1)"}]),
                "{}", e.metadata
            );
        }
        assert!(server.dead_letters().await.is_empty());
        // Every OBX bad: nothing to keep, so the message is a dead letter with the reason.
        let all_bad: Vec<String> = sample
            .replace("DEMO-ORU-0009", "DEMO-ORU-0010")
            .lines()
            .map(|l| match l.strip_prefix("OBX|") {
                Some(rest) => {
                    let mut f: Vec<&str> = rest.split('|').collect();
                    f[2] = "";
                    format!("OBX|{}", f.join("|"))
                }
                None => l.to_string(),
            })
            .collect();
        let ack = c.send(all_bad.join("\r").as_bytes()).await.unwrap();
        assert_eq!(msa(&ack).0, "AA", "{ack}");
        let dead = server.dead_letters().await;
        assert_eq!(dead.len(), 1);
        assert_eq!(dead[0].reason_code, "MAPPING_REQUIRED_FIELD");
        assert_eq!(server.events("demo").await.len(), 3);
        let (_, body) = server.http("GET", "/metrics", Some(common::ADMIN), b"");
        assert!(
            body.contains("intake_items_skipped_total{tenant=\"demo\",code=\"MAPPING_REQUIRED_FIELD\"} 1\n"),
            "{body}"
        );
    }
}

on_each_backend! {
    async fn a_message_without_a_key_of_its_own_is_stored_once_however_often_it_is_resent() {
        let server = Server::start();
        let mut c = server.client().await;
        // The first two fail before MSH-10 can be read as their key (a broken segment id,
        // no MSH-9); the third, for contrast, fails in mapping under its own key.
        let keyless: [&[u8]; 3] = [
            b"MSH|^~\\&|ADT1|DEMO_HOSP|INTAKE|INTAKE|20261122083000||ADT^A01|K1|P|2.5.1\rEVN|A01\rp!d|broken\r",
            b"MSH|^~\\&|ADT1|DEMO_HOSP|INTAKE|INTAKE|20261122083000|||K2|P|2.5.1\rEVN|A01\r",
            b"MSH|^~\\&|ADT1|DEMO_HOSP|INTAKE|INTAKE|20261122083000||ADT^A01|K3|P|2.5.1|||||KLINGON\rEVN|A01\r",
        ];
        let mut first = Vec::new();
        for msg in keyless {
            first.push(c.send(msg).await.unwrap());
        }
        for _ in 0..2 {
            for (msg, ack) in keyless.iter().zip(&first) {
                let again = c.send(msg).await.unwrap();
                assert_eq!(msa(&again), msa(ack), "a resend gets the first answer");
                assert_eq!(err_segment(&again), err_segment(ack));
            }
        }
        let codes: Vec<String> = server
            .dead_letters()
            .await
            .iter()
            .map(|d| d.reason_code.clone())
            .collect();
        assert_eq!(codes.len(), 3, "one dead letter per distinct message: {codes:?}");
        let attempts: Vec<i32> = server.dead_letters().await.iter().map(|d| d.attempts).collect();
        assert_eq!(attempts, [3, 3, 3], "each received three times");
        let outcomes = server.inbound_outcomes().await;
        assert_eq!(outcomes.len(), 3, "one raw row each: {outcomes:?}");
        // A different message is a different key, even with the same fault.
        let other = b"MSH|^~\\&|ADT1|DEMO_HOSP|INTAKE|INTAKE|20261122083001|||K2|P|2.5.1\rEVN|A01\r";
        c.send(other).await.unwrap();
        assert_eq!(server.dead_letters().await.len(), 4);
    }
}

on_each_backend! {
    async fn connections_over_the_listener_limit_are_closed_and_the_others_served() {
        let server = Server::start_with(Options {
            mllp_extra: "max_connections = 2".into(),
            log: Some("warn".into()),
            ..Default::default()
        });
        let mut a = server.client().await;
        let mut b = server.client().await;
        for (c, ctrl) in [(&mut a, "L1"), (&mut b, "L2")] {
            let adt = Adt { control_id: ctrl, visit: ctrl, ..Default::default() };
            assert_eq!(msa(&c.ack(adt).await).0, "AA");
        }
        // A third is accepted and closed at once: it reads end-of-stream.
        use tokio::io::AsyncReadExt;
        let mut third = tokio::net::TcpStream::connect(server.mllp[0]).await.unwrap();
        let mut buf = [0u8; 16];
        let read = tokio::time::timeout(std::time::Duration::from_secs(5), third.read(&mut buf)).await;
        assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "closed: {read:?}");
        // The two keep being served; once one leaves, a new one gets in.
        let adt = Adt { control_id: "L3", visit: "L3", ..Default::default() };
        assert_eq!(msa(&a.ack(adt).await).0, "AA");
        drop(b);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            let mut c = server.client().await;
            let adt = Adt { control_id: "L4", visit: "L4", ..Default::default() };
            if let Ok(ack) = c.send(&adt.build()).await {
                assert_eq!(msa(&ack).0, "AA");
                break;
            }
            assert!(std::time::Instant::now() < deadline, "a freed slot was never reused");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        // The log is read from the server's stderr by another thread: give it a moment.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while !server.log.lock().unwrap().contains("CONNECTION_LIMIT") {
            assert!(std::time::Instant::now() < deadline, "CONNECTION_LIMIT never logged");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
}

#[tokio::test]
async fn the_total_connection_limit_spans_every_listener_and_http() {
    use tokio::io::AsyncReadExt;
    let server = Server::start_with(Options {
        top_config: "max_connections_total = 3".into(),
        log: Some("warn".into()),
        ..Default::default()
    });
    let mut a = server.client().await;
    let mut b = server.client().await;
    let mut routed = server.routed_client().await;
    for (c, ctrl) in [(&mut a, "T1"), (&mut b, "T2")] {
        let adt = Adt {
            control_id: ctrl,
            visit: ctrl,
            ..Default::default()
        };
        assert_eq!(msa(&c.ack(adt).await).0, "AA");
    }
    let adt = Adt {
        control_id: "T3",
        visit: "T3",
        ..Default::default()
    };
    assert_eq!(msa(&routed.ack(adt).await).0, "AA");
    // A fourth connection, on either listener or on HTTP, is closed at once.
    for addr in [server.mllp[0], server.mllp[1], server.http] {
        let mut extra = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut buf = [0u8; 16];
        let read = tokio::time::timeout(Duration::from_secs(5), extra.read(&mut buf)).await;
        assert!(
            matches!(read, Ok(Ok(0)) | Ok(Err(_))),
            "{addr} closed: {read:?}"
        );
    }
    // One leaves: HTTP gets its place.
    drop(routed);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let mut s = tokio::net::TcpStream::connect(server.http).await.unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: intake\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut answer = String::new();
        let _ = s.read_to_string(&mut answer).await;
        if answer.starts_with("HTTP/1.1 200") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "a freed place was never reused"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let adt = Adt {
        control_id: "T4",
        visit: "T4",
        ..Default::default()
    };
    assert_eq!(
        msa(&a.ack(adt).await).0,
        "AA",
        "the others are served throughout"
    );
    assert!(
        server.log.lock().unwrap().contains("limit=3"),
        "logged with the total limit"
    );
}

on_each_backend! {
    async fn an_oru_over_the_event_limit_is_dead_lettered_and_others_are_served() {
        let server = Server::start_with(Options {
            shipped_mappings: true,
            ..Default::default()
        });
        let mut c = server.client().await;
        let mut oru = String::from(
            "MSH|^~\\&|LAB|DEMO_HOSP|INTAKE|INTAKE|20261122083000||ORU^R01^ORU_R01|BIG1|P|2.5.1\r\
             PID|1||MRN1^^^DEMO_HOSP^MR||Doe^Alex\rOBR|1|P1|F1|CBC\r",
        );
        for i in 0..10_001 {
            oru.push_str(&format!("OBX|{}|NM|HGB||13||||||F\r", i + 1));
        }
        let ack = c.send(oru.as_bytes()).await.unwrap();
        assert_eq!(msa(&ack).0, "AA", "stored as a dead letter: {ack}");
        let dl = server.dead_letters().await;
        assert_eq!(dl[0].reason_code, "MAPPING_TOO_MANY_EVENTS");
        assert_eq!(dl[0].detail.as_deref(), Some("more than 10000 events or items"));
        assert!(server.events("demo").await.is_empty(), "nothing of it stored as events");
        let adt = Adt { control_id: "AFTER", ..Default::default() };
        assert_eq!(msa(&c.ack(adt).await).0, "AA", "still serving");
    }
}

on_each_backend! {
    async fn messages_over_the_segment_or_repetition_limit_are_dead_lettered_and_others_served() {
        // The test tenant sets tighter limits than the defaults.
        let tmp = tempfile::tempdir().unwrap();
        let _db = common::prepare(tmp.path(), &Options::default());
        let settings = tmp.path().join("mappings/demo/tenant.yaml");
        let mut yaml = std::fs::read_to_string(&settings).unwrap();
        yaml.push_str("\nmax_segments_per_message: 20\nmax_repetitions_per_field: 10\n");
        std::fs::write(&settings, yaml).unwrap();
        let server = Server::start_in(tmp.path());
        let mut c = server.client().await;
        let mut many = Adt { control_id: "SEG", visit: "V-SEG", ..Default::default() }.build();
        for i in 0..20 {
            many.extend(format!("NTE|{}||note\r", i + 1).bytes());
        }
        let ack = c.send(&many).await.unwrap();
        assert_eq!(msa(&ack), ("AA".into(), "SEG".into()), "kept as a dead letter: {ack}");
        let text = String::from_utf8(Adt { control_id: "REP", visit: "V-REP", ..Default::default() }.build()).unwrap();
        let ids = ["X^^^DEMO_HOSP^MR"; 11].join("~");
        let reps = text.replacen("MRN-V-REP^^^DEMO_HOSP^MR", &ids, 1);
        let ack = c.send(reps.as_bytes()).await.unwrap();
        assert_eq!(msa(&ack).0, "AA", "{ack}");
        let mut letters: Vec<(String, Option<String>)> = server
            .dead_letters()
            .await
            .into_iter()
            .map(|d| (d.reason_code, d.detail))
            .collect();
        letters.sort();
        assert_eq!(
            letters,
            [
                ("FIELD_TOO_MANY_REPETITIONS".into(), Some("segment 3 (PID-3), limit 10".into())),
                ("MESSAGE_TOO_MANY_SEGMENTS".into(), Some("limit 20".into())),
            ]
        );
        assert!(server.events("demo").await.is_empty());
        let adt = Adt { control_id: "AFTER", ..Default::default() };
        assert_eq!(msa(&c.ack(adt).await).0, "AA", "still serving");
        assert!(!server.events("demo").await.is_empty());
    }
}

on_each_backend! {
    async fn unfinished_frames_share_a_budget_and_a_stalled_one_cannot_hold_it_for_ever() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        // The budget is raised to its floor: one whole 1 MiB frame and two read buffers.
        let server = Server::start_with(Options {
            mllp_extra: "max_buffered_bytes = 1\nframe_timeout_secs = 2".into(),
            ..Default::default()
        });
        // A starts a frame of almost 1 MiB and stalls: it holds most of the budget.
        let mut a = tokio::net::TcpStream::connect(server.mllp[0]).await.unwrap();
        let mut stalled = vec![0x0b];
        stalled.extend(std::iter::repeat_n(b'x', 1_000_000));
        a.write_all(&stalled).await.unwrap();
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        // B's 300 KB message must wait for budget, and gets it when A's frame times out.
        let mut big = Adt { control_id: "BIG", ..Default::default() }.build();
        big.extend(b"ZZZ|");
        big.extend(std::iter::repeat_n(b'y', 300_000));
        big.extend(b"\r");
        let started = std::time::Instant::now();
        let mut b = server.client().await;
        let ack = b.send(&big).await.unwrap();
        let waited = started.elapsed();
        assert_eq!(msa(&ack), ("AA".into(), "BIG".into()));
        assert!(waited >= std::time::Duration::from_millis(500), "B waited for A's budget: {waited:?}");
        // A's connection was closed by its frame timeout.
        let mut buf = [0u8; 8];
        let read = tokio::time::timeout(std::time::Duration::from_secs(5), a.read(&mut buf)).await;
        assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "{read:?}");
        // Small messages flowed meanwhile, and still do.
        let adt = Adt { control_id: "SMALL", visit: "VS", ..Default::default() };
        assert_eq!(msa(&server.client().await.ack(adt).await).0, "AA");
    }
}

#[tokio::test]
async fn a_sender_over_its_message_rate_is_paced_not_refused() {
    let server = Server::start_with(Options {
        mllp_extra: "max_messages_per_second_per_address = 20".into(),
        log: Some("info".into()),
        ..Default::default()
    });
    let mut c = server.client().await;
    let started = std::time::Instant::now();
    for i in 0..80 {
        let id = format!("PACE{i}");
        let ack = c
            .ack(Adt {
                control_id: &id,
                visit: &id,
                ..Default::default()
            })
            .await;
        assert_eq!(msa(&ack).0, "AA");
    }
    // A burst of 40, then 20 a second: 80 messages take at least about 2 s.
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(1800), "not paced: {took:?}");
    assert!(server.log.lock().unwrap().contains("RATE_LIMITED"));
    assert_eq!(server.inbound_outcomes().await.len(), 80, "nothing refused");
}
