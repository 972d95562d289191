//! The SQLite store's own tests: group commit and dedupe, appends, the outbox and its
//! lease, poll cursors.

use super::SqliteStore;
use crate::event::{event_id, stream_id, EventEnvelope, NewEvent};
use crate::hl7::ack::AckCode;
use crate::message::{Format, IdempotencyKey, RawMessage};
use crate::outcome::{Outcome, Stored};
use crate::pipeline::{Disposition, Processed};
use crate::reason::{Reason, Rejection};
use crate::store::{
    Cursors, DeadLetters, EventLog, EventQuery, ExpectedVersion, Outbox, Store, StoreError,
    StoreOptions,
};
use chrono::Utc;
use std::time::Duration;

fn ev(i: usize) -> NewEvent {
    NewEvent {
        event_id: event_id(Utc::now(), "t", "k", i),
        stream_id: stream_id("t", "Admission", "V1"),
        stream_type: "Admission".into(),
        stream_key: "V1".into(),
        event_type: "AdmissionCreated".into(),
        tenant_id: "t".into(),
        data: serde_json::json!({"i": i}),
        metadata: serde_json::json!({}),
        message_id: None,
    }
}

#[tokio::test]
async fn appends_check_the_expected_version_and_events_are_immutable() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir, false).await;
    assert_eq!(
        store
            .append(ExpectedVersion::NoStream, &[ev(0)], "test")
            .await
            .unwrap(),
        [1]
    );
    match store
        .append(ExpectedVersion::NoStream, &[ev(1)], "test")
        .await
    {
        Err(StoreError::Conflict {
            actual: 1,
            expected: ExpectedVersion::NoStream,
            ..
        }) => {}
        other => panic!("expected a conflict, got {other:?}"),
    }
    match store
        .append(ExpectedVersion::Exact(5), &[ev(1)], "test")
        .await
    {
        Err(e @ StoreError::Conflict { actual: 1, .. }) => {
            assert_eq!(e.code(), "STREAM_CONFLICT")
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(
        store
            .append(ExpectedVersion::Exact(1), &[ev(1), ev(2)], "test")
            .await
            .unwrap(),
        [2, 3]
    );
    let q = EventQuery {
        tenant: Some("t".into()),
        stream_id: None,
        after: 0,
        limit: 10,
    };
    let read = store.read_events(&q).await.unwrap();
    assert_eq!(
        read.iter().map(|e| e.event_version).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    for sql in ["UPDATE events SET data = '{}'", "DELETE FROM events"] {
        let err = sqlx::query(sql).execute(&store.pool).await.unwrap_err();
        assert!(err.to_string().contains("append-only"), "{err}");
    }
}

async fn store(dir: &tempfile::TempDir, outbox: bool) -> SqliteStore {
    let store = SqliteStore::open(
        &format!("sqlite://{}/s.db", dir.path().display()),
        StoreOptions { outbox },
    )
    .await
    .unwrap();
    store.migrate().await.unwrap();
    store
}

fn positions(events: &[EventEnvelope]) -> Vec<i64> {
    events.iter().map(|e| e.global_position).collect()
}

#[tokio::test]
async fn appended_events_are_queued_only_with_the_outbox_on() {
    let dir = tempfile::tempdir().unwrap();
    let off = store(&dir, false).await;
    off.append(ExpectedVersion::Any, &[ev(0)], "test")
        .await
        .unwrap();
    assert_eq!(off.outbox_backlog().await.unwrap(), 0);
    drop(off);
    let on = store(&dir, true).await;
    on.append(ExpectedVersion::Any, &[ev(1), ev(2)], "test")
        .await
        .unwrap();
    assert_eq!(on.outbox_backlog().await.unwrap(), 2);
    let lease = Duration::from_secs(30);
    let batch = on.outbox_claim("a", lease, 10).await.unwrap().unwrap();
    assert_eq!(positions(&batch), [2, 3], "in global order, not event 1");
    assert_eq!(batch[0].event_version, 2);
    on.outbox_mark_published(&[2]).await.unwrap();
    assert_eq!(on.outbox_backlog().await.unwrap(), 1);
    let batch = on.outbox_claim("a", lease, 10).await.unwrap().unwrap();
    assert_eq!(positions(&batch), [3]);
    on.outbox_mark_published(&[3]).await.unwrap();
    assert_eq!(on.outbox_backlog().await.unwrap(), 0);
    assert!(on
        .outbox_claim("a", lease, 10)
        .await
        .unwrap()
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn one_publisher_holds_the_lease_until_it_expires() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir, true).await;
    store
        .append(ExpectedVersion::Any, &[ev(0), ev(1)], "test")
        .await
        .unwrap();
    // Seconds apart, so that a loaded machine's slow commit cannot pass for an expiry: each
    // "still held" check has 2 s to spare (sleeps only ever run long).
    let lease = Duration::from_secs(4);
    let a = store.outbox_claim("a", lease, 1).await.unwrap();
    assert_eq!(positions(&a.unwrap()), [1], "limit applies");
    assert!(
        store.outbox_claim("b", lease, 10).await.unwrap().is_none(),
        "b gets nothing while a's lease is valid"
    );
    // With less than half its lease left, a's claim renews it.
    tokio::time::sleep(Duration::from_millis(2400)).await;
    let a = store.outbox_claim("a", lease, 10).await.unwrap();
    assert_eq!(positions(&a.unwrap()), [1, 2]);
    tokio::time::sleep(Duration::from_millis(2000)).await;
    assert!(
        store.outbox_claim("b", lease, 10).await.unwrap().is_none(),
        "past a's first lease, but a renewed it"
    );
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let b = store.outbox_claim("b", lease, 10).await.unwrap();
    assert_eq!(positions(&b.unwrap()), [1, 2], "b takes the expired lease");
    assert!(
        store.outbox_claim("a", lease, 10).await.unwrap().is_none(),
        "and now a waits"
    );
}

#[tokio::test]
async fn poll_cursors_are_per_tenant_and_source_and_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir, false).await;
    assert_eq!(store.poll_cursor("t", "fhir:Patient").await.unwrap(), None);
    store
        .set_poll_cursor("t", "fhir:Patient", "a")
        .await
        .unwrap();
    store
        .set_poll_cursor("t", "fhir:Patient", "b")
        .await
        .unwrap();
    store
        .set_poll_cursor("u", "fhir:Patient", "x")
        .await
        .unwrap();
    assert_eq!(
        store
            .poll_cursor("t", "fhir:Patient")
            .await
            .unwrap()
            .as_deref(),
        Some("b")
    );
    assert_eq!(
        store.poll_cursor("t", "fhir:Encounter").await.unwrap(),
        None
    );
    assert_eq!(
        store
            .poll_cursor("u", "fhir:Patient")
            .await
            .unwrap()
            .as_deref(),
        Some("x")
    );
}

/// A processed message of tenant `t` with key (`t`, `F`, `control`): `events` or, when
/// `None`, a dead letter answered `AE`.
fn processed(control: &str, events: Option<Vec<NewEvent>>) -> Processed {
    let disposition = match events {
        Some(events) => Disposition::Events(events),
        None => Disposition::DeadLetter {
            rejection: Rejection::new(Reason::UnmappedMessageType),
            ack: AckCode::Error,
        },
    };
    Processed {
        raw: RawMessage::new(
            Some("t".into()),
            Format::Hl7v2,
            "mllp:test",
            control.as_bytes().to_vec(),
        ),
        header: None,
        tenant: Some("t".into()),
        mapped_by: None,
        key: Some(IdempotencyKey {
            tenant: "t".into(),
            sending_facility: "F".into(),
            control_id: control.into(),
        }),
        message_type: None,
        disposition,
        skipped: Vec::new(),
    }
}

fn stored(results: &[Result<Outcome, StoreError>]) -> Vec<(Stored, AckCode, Option<&str>)> {
    results
        .iter()
        .map(|r| {
            let o = r.as_ref().expect("committed");
            (o.stored.expect("stored"), o.ack, o.code())
        })
        .collect()
}

#[tokio::test]
async fn a_batch_stores_each_key_once_and_duplicates_get_the_first_answer() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir, false).await;
    let first = store
        .commit_batch(&[
            processed("C1", Some(vec![ev(0)])),
            processed("C2", None),
            processed("C1", Some(vec![ev(1)])),
        ])
        .await
        .unwrap();
    let dead = Some("UNMAPPED_MESSAGE_TYPE");
    assert_eq!(
        stored(&first),
        [
            (Stored::Events, AckCode::Accept, None),
            (Stored::DeadLettered, AckCode::Error, dead),
            (Stored::Duplicate, AckCode::Accept, None),
        ]
    );
    assert_eq!(first[0].as_ref().unwrap().positions, [1]);
    // A resend of both, in another batch: nothing new, each gets its first answer.
    let again = store
        .commit_batch(&[processed("C2", Some(vec![ev(2)])), processed("C1", None)])
        .await
        .unwrap();
    assert_eq!(
        stored(&again),
        [
            (Stored::Duplicate, AckCode::Error, dead),
            (Stored::Duplicate, AckCode::Accept, None),
        ]
    );
    let q = EventQuery {
        tenant: None,
        stream_id: None,
        after: 0,
        limit: 10,
    };
    assert_eq!(store.read_events(&q).await.unwrap().len(), 1);
    assert_eq!(store.dead_letters(None).await.unwrap().len(), 1);
}

#[test]
fn statements_take_power_of_two_chunks() {
    let rows: Vec<u32> = (0..300).collect();
    let sizes: Vec<usize> = super::chunks(&rows).map(<[u32]>::len).collect();
    assert_eq!(sizes, [256, 32, 8, 4]);
    let sizes: Vec<usize> = super::chunks(&rows[..7]).map(<[u32]>::len).collect();
    assert_eq!(sizes, [4, 2, 1]);
    let joined: Vec<u32> = super::chunks(&rows[..600.min(rows.len())])
        .flatten()
        .copied()
        .collect();
    assert_eq!(joined, rows, "every row once, in order");
    assert_eq!(super::chunks::<u32>(&[]).count(), 0);
}
