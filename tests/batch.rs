//! FHS/BHS batches end to end against the real binary: split over MLLP and HTTP, each
//! message under its own key, one bad message failing alone, resends storing nothing
//! twice, the batch acknowledgement, refused envelopes, and `intake send` of a batch file.

mod common;

use common::{Adt, Backend, Server};
use sqlx::Connection;
use std::process::Command;

/// A batch of `messages`, with an FHS when `file` is set.
fn batch(file: bool, messages: &[Vec<u8>], bts: &str) -> Vec<u8> {
    let mut out = Vec::new();
    if file {
        out.extend_from_slice(
            b"FHS|^~\\&|ADT1|DEMO_HOSP|INTAKE|INTAKE|20261122083000||||FILE-77\r",
        );
    }
    out.extend_from_slice(b"BHS|^~\\&|ADT1|DEMO_HOSP|INTAKE|INTAKE|20261122083000||||BATCH-9\r");
    for m in messages {
        out.extend_from_slice(m);
    }
    out.extend_from_slice(format!("BTS|{bts}\r").as_bytes());
    if file {
        out.extend_from_slice(b"FTS|1\r");
    }
    out
}

/// Admit, an unmapped A99 (dead letter), transfer: one visit.
fn three(facility: &str, prefix: &str) -> Vec<Vec<u8>> {
    let id = |n: &str| format!("{prefix}{n}");
    let (a, b, c) = (id("1"), id("2"), id("3"));
    let adt = |trigger, control_id: &str, location| {
        Adt {
            trigger,
            control_id,
            facility,
            visit: "BV1",
            location,
            ..Default::default()
        }
        .build()
    };
    vec![
        adt("A01", &a, "WARD1^101^A"),
        adt("A99", &b, "WARD1^101^A"),
        adt("A02", &c, "ICU^1^A"),
    ]
}

fn segments(ack: &str) -> Vec<&str> {
    ack.split('\r').filter(|s| !s.is_empty()).collect()
}

/// (MSA-1, MSA-2) of every message in a batch acknowledgement.
fn msas(ack: &str) -> Vec<(String, String)> {
    segments(ack)
        .into_iter()
        .filter(|s| s.starts_with("MSA|"))
        .map(|s| {
            let f: Vec<&str> = s.split('|').collect();
            (f[1].to_string(), f[2].to_string())
        })
        .collect()
}

fn field(segment: &str, n: usize) -> &str {
    segment.split('|').nth(n).unwrap_or("")
}

/// Inbound rows in the SQLite file (None on PostgreSQL, where the store's reads are used).
async fn inbound_rows(server: &Server) -> Option<i64> {
    if common::backend() != Backend::Sqlite {
        return None;
    }
    let mut c = sqlx::SqliteConnection::connect(&server.database_url)
        .await
        .unwrap();
    Some(
        sqlx::query_scalar("SELECT count(*) FROM inbound_messages")
            .fetch_one(&mut c)
            .await
            .unwrap(),
    )
}

on_each_backend! {
    async fn a_batch_is_split_acknowledged_per_message_and_a_resend_stores_nothing_twice() {
        let server = Server::start();
        let mut c = server.client().await;
        let frame = batch(true, &three("DEMO_HOSP", "B"), "3");
        let ack = c.send(&frame).await.unwrap();
        let segs = segments(&ack);
        assert!(segs[0].starts_with("FHS|^~\\&|INTAKE|INTAKE|ADT1|DEMO_HOSP|"), "{ack}");
        assert_eq!(field(segs[0], 11), "FILE-77", "FHS-12 echoes FHS-11: {ack}");
        assert!(segs[1].starts_with("BHS|^~\\&|INTAKE|INTAKE|ADT1|DEMO_HOSP|"), "{ack}");
        assert_eq!(field(segs[1], 11), "BATCH-9", "BHS-12 echoes BHS-11");
        assert_eq!(segs[segs.len() - 2..], ["BTS|3", "FTS|1"]);
        assert_eq!(segs.iter().filter(|s| s.starts_with("MSH|")).count(), 3);
        assert_eq!(
            msas(&ack),
            [("AA".into(), "B1".into()), ("AA".into(), "B2".into()), ("AA".into(), "B3".into())],
            "demo keeps custody of the dead letter: AA"
        );

        // The bad message failed alone; the others are events, in batch order.
        let events = server.events("demo").await;
        let types: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
        assert_eq!(types, ["AdmissionCreated", "LocationChanged"]);
        assert_eq!(events.iter().map(|e| e.event_version).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(events[1].metadata["control_id"], "B3");
        let dl = server.dead_letters().await;
        assert_eq!(dl.len(), 1);
        assert_eq!(dl[0].reason_code, "UNMAPPED_MESSAGE_TYPE");
        let rows = inbound_rows(&server).await;
        assert!(rows.is_none_or(|n| n == 3), "one inbound row per message: {rows:?}");

        // A resend: the same answers, nothing new.
        let again = c.send(&frame).await.unwrap();
        assert_eq!(msas(&again), msas(&ack));
        assert_eq!(server.events("demo").await.len(), 2);
        assert_eq!(server.dead_letters().await.len(), 1);
        assert_eq!(inbound_rows(&server).await, rows);

        // The connection goes on with single messages.
        let single = c.send(&Adt { control_id: "S1", visit: "SV", ..Default::default() }.build()).await.unwrap();
        assert_eq!(common::msa(&single), ("AA".into(), "S1".into()));
        assert!(single.starts_with("MSH|"));
    }
}

on_each_backend! {
    async fn a_strict_tenant_answers_the_bad_message_ae_with_err_and_stores_the_others() {
        let server = Server::start();
        let mut routed = server.routed_client().await;
        let ack = routed.send(&batch(false, &three("STRICT_HOSP", "S"), "5")).await.unwrap();
        let segs = segments(&ack);
        assert!(segs[0].starts_with("BHS|"), "no FHS without an inbound FHS: {ack}");
        assert!(!ack.contains("FHS|") && !ack.contains("FTS|"));
        assert_eq!(segs[segs.len() - 1], "BTS|3", "our count, not the sender's wrong one");
        assert_eq!(
            msas(&ack),
            [("AA".into(), "S1".into()), ("AE".into(), "S2".into()), ("AA".into(), "S3".into())]
        );
        let errs: Vec<&&str> = segs.iter().filter(|s| s.starts_with("ERR|")).collect();
        assert_eq!(errs.len(), 1, "ERR only for the bad message");
        assert!(errs[0].contains("UNMAPPED_MESSAGE_TYPE"));
        assert_eq!(server.events("strict").await.len(), 2);
    }
}

on_each_backend! {
    async fn refused_envelopes_get_precise_codes_and_the_engine_keeps_serving() {
        let server = Server::start();
        let mut c = server.client().await;
        let msg = Adt { control_id: "M1", ..Default::default() }.build();
        let mut malformed = b"BHS|^~\\&\rPID|1\r".to_vec();
        malformed.extend_from_slice(&msg);
        let mut too_many = b"BHS|^~\\&\r".to_vec();
        for i in 0..10_001 {
            too_many.extend_from_slice(format!("MSH|^~\\&|A|F|||1||ADT^A01|T{i}|P|2.5\r").as_bytes());
        }
        for (frame, code) in [
            (b"FHS|^~\\&\rBHS|^~\\&\rBTS|0\rFTS|1\r".to_vec(), "BATCH_EMPTY"),
            (malformed, "BATCH_MALFORMED"),
            (too_many, "BATCH_TOO_MANY_MESSAGES"),
        ] {
            let ack = c.send(&frame).await.unwrap();
            assert!(ack.starts_with("MSH|"), "a plain ACK: {ack}");
            assert_eq!(common::msa(&ack).0, "AR", "{code}: {ack}");
            assert!(common::err_segment(&ack).unwrap().contains(code), "{ack}");
        }
        let mut codes: Vec<String> = server.dead_letters().await.into_iter().map(|d| d.reason_code).collect();
        codes.sort();
        assert_eq!(codes, ["BATCH_EMPTY", "BATCH_MALFORMED", "BATCH_TOO_MANY_MESSAGES"]);
        assert!(server.events("demo").await.is_empty(), "nothing of a refused batch is stored");
        let ack = c.send(&msg).await.unwrap();
        assert_eq!(common::msa(&ack), ("AA".into(), "M1".into()));
    }
}

on_each_backend! {
    async fn a_batch_over_http_is_answered_with_the_batch_acknowledgement() {
        let server = Server::start();
        let path = "/api/v1/tenants/demo/hl7v2";
        let frame = batch(true, &three("DEMO_HOSP", "H"), "3");
        let (status, body) = server.http("POST", path, Some(common::DEMO_TOKEN), &frame);
        assert_eq!(status, 200, "{body}");
        assert!(body.starts_with("FHS|"), "{body}");
        assert_eq!(msas(&body).iter().map(|m| m.1.as_str()).collect::<Vec<_>>(), ["H1", "H2", "H3"]);
        assert!(body.ends_with("BTS|3\rFTS|1\r"), "{body:?}");
        assert_eq!(server.events("demo").await.len(), 2);

        let (status, again) = server.http("POST", path, Some(common::DEMO_TOKEN), &frame);
        assert_eq!(status, 200);
        assert_eq!(msas(&again), msas(&body));
        assert_eq!(server.events("demo").await.len(), 2, "a resent batch stores nothing twice");
        assert_eq!(server.dead_letters().await.len(), 1);

        // A refused batch is a rejected message: 400 with the code.
        let (status, body) = server.http("POST", path, Some(common::DEMO_TOKEN), b"BHS|^~\\&\rBTS|0\r");
        assert_eq!(status, 400, "{body}");
        assert!(body.contains("BATCH_EMPTY"), "{body}");
    }
}

fn send(args: &[&str]) -> (i32, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_intake"))
        .arg("send")
        .args(args)
        .current_dir(dir.path())
        .env_remove("INTAKE_CONFIG")
        .env_remove("INTAKE_LOG")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn intake_send_sends_a_batch_file_as_one_frame_and_summarizes_the_codes() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("batch.hl7");
    // A file with LF line ends and a BOM, as editors write them.
    let mut bytes = b"\xEF\xBB\xBF\n".to_vec();
    bytes.extend_from_slice(&batch(true, &three("DEMO_HOSP", "F"), "3"));
    std::fs::write(&file, String::from_utf8(bytes).unwrap().replace('\r', "\n")).unwrap();
    let single = dir.path().join("single.hl7");
    std::fs::write(
        &single,
        Adt {
            control_id: "F9",
            visit: "FV9",
            ..Default::default()
        }
        .build(),
    )
    .unwrap();
    let to = server.mllp[0].to_string();
    let (code, stdout, stderr) = send(&[
        "--to",
        &to,
        file.to_str().unwrap(),
        single.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert_eq!(stdout, "sent 4 message(s): AA 4\n");
    assert_eq!(
        stderr, "",
        "no progress output when stderr is not a terminal"
    );
    assert_eq!(
        server.events("demo").await.len(),
        3,
        "the batch was split by the engine"
    );

    // --verbose prints each answer; --quiet prints nothing on success.
    let (code, stdout, _) = send(&["--to", &to, "--verbose", file.to_str().unwrap()]);
    assert_eq!(code, 0);
    assert!(stdout.contains("batch.hl7: AA AA AA\n"), "{stdout}");
    assert!(
        stdout.contains("  MSA|AA|F2\n") && stdout.contains("  BTS|3\n"),
        "{stdout}"
    );
    let (code, stdout, stderr) = send(&["--to", &to, "--quiet", file.to_str().unwrap()]);
    assert_eq!((code, stdout.as_str(), stderr.as_str()), (0, "", ""));

    // The strict tenant answers AE for the unmapped message: counted, with its ERR code,
    // and the exit status says not everything was accepted.
    let strict = dir.path().join("strict.hl7");
    std::fs::write(&strict, batch(false, &three("STRICT_HOSP", "G"), "3")).unwrap();
    let routed = server.mllp[1].to_string();
    let (code, stdout, stderr) = send(&["--to", &routed, strict.to_str().unwrap()]);
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert_eq!(
        stdout,
        "sent 3 message(s): AA 2, AE 1\nERR codes: UNMAPPED_MESSAGE_TYPE 1\n"
    );
    assert!(!stdout.contains("G2"), "codes only, never message content");
    let (code, stdout, stderr) = send(&["--to", &routed, "--quiet", strict.to_str().unwrap()]);
    assert_eq!((code, stdout.as_str()), (1, ""));
    assert!(
        stderr.contains("AE 1"),
        "--quiet still reports a failure: {stderr}"
    );
}
