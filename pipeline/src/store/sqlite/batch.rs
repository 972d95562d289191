//! Group commit on SQLite: a whole batch of processed messages in one transaction and a
//! constant number of statements (multi-row inserts), whatever the batch size.
//!
//! sqlx runs each SQLite statement on a worker thread, so every statement costs a thread
//! round trip; batching statements, not only transactions, is what keeps ACKs fast.

use super::now;
use crate::event::NewEvent;
use crate::hl7::ack::AckCode;
use crate::outcome::Outcome;
use crate::pipeline::{Disposition, Processed};
use crate::store::{created_by, outcome, StoreError, StoreOptions};
use chrono::SecondsFormat;
use sqlx::{QueryBuilder, Row, Sqlite, SqlitePool, Transaction};
use std::collections::{HashMap, HashSet};
use uuid::Uuid;

/// Rows per multi-row statement (12 columns × 256 stays far below SQLite's 32766
/// bound parameters).
const ROWS: usize = 256;

/// Commits every message of `batch`, or none of them.
pub(super) async fn commit_all(
    pool: &SqlitePool,
    batch: &[Processed],
    options: StoreOptions,
) -> Result<Vec<Outcome>, StoreError> {
    let now = now();
    let mut tx = pool.begin().await?;
    let inserted = insert_inbound(&mut tx, batch).await?;
    let fresh: Vec<&Processed> = batch
        .iter()
        .filter(|p| inserted.contains(&p.raw.id))
        .collect();
    let positions = insert_events(&mut tx, &fresh, &now, options.outbox).await?;
    insert_dead_letters(&mut tx, &fresh, &now).await?;
    let mut outcomes = Vec::with_capacity(batch.len());
    for p in batch {
        outcomes.push(if inserted.contains(&p.raw.id) {
            outcome(p, &positions)
        } else {
            duplicate(&mut tx, p).await?
        });
    }
    tx.commit().await?;
    Ok(outcomes)
}

/// Inserts the raw messages; returns the ids that were new (the others' keys were
/// already stored: duplicates).
async fn insert_inbound(
    tx: &mut Transaction<'_, Sqlite>,
    batch: &[Processed],
) -> Result<HashSet<Uuid>, StoreError> {
    let mut inserted = HashSet::with_capacity(batch.len());
    for chunk in batch.chunks(ROWS) {
        let mut q = QueryBuilder::<Sqlite>::new(
            "INSERT INTO inbound_messages (id, tenant_id, sending_facility, control_id, channel, \
             message_type, raw, received_at, outcome, ack_code, reason_code, event_count, format) ",
        );
        q.push_values(chunk, |mut row, p| {
            let (outcome, ack, reason, count) = match &p.disposition {
                Disposition::Events(ev) => ("stored", AckCode::Accept, None, ev.len() as i64),
                Disposition::DeadLetter { rejection, ack } => {
                    ("dead_lettered", *ack, Some(rejection.reason.code()), 0)
                }
            };
            let key = p.key.as_ref();
            row.push_bind(p.raw.id)
                .push_bind(p.tenant.as_deref())
                .push_bind(key.map(|k| k.sending_facility.as_str()))
                .push_bind(key.map(|k| k.control_id.as_str()))
                .push_bind(p.raw.channel.as_str())
                .push_bind(p.message_type.as_deref())
                .push_bind(p.raw.bytes.as_slice())
                .push_bind(
                    p.raw
                        .received_at
                        .to_rfc3339_opts(SecondsFormat::Micros, true),
                )
                .push_bind(outcome)
                .push_bind(ack.as_letter())
                .push_bind(reason)
                .push_bind(count)
                .push_bind(p.raw.format.as_str());
        });
        q.push(" ON CONFLICT DO NOTHING RETURNING id");
        let ids: Vec<Uuid> = q.build_query_scalar().fetch_all(&mut **tx).await?;
        inserted.extend(ids);
    }
    Ok(inserted)
}

/// Appends the events of new messages (see [`append_events`]).
async fn insert_events(
    tx: &mut Transaction<'_, Sqlite>,
    fresh: &[&Processed],
    now: &str,
    outbox: bool,
) -> Result<HashMap<Uuid, i64>, StoreError> {
    let rows: Vec<(&NewEvent, String)> = fresh
        .iter()
        .filter_map(|p| match &p.disposition {
            Disposition::Events(ev) => Some(ev.iter().map(move |e| (e, created_by(p)))),
            Disposition::DeadLetter { .. } => None,
        })
        .flatten()
        .collect();
    append_events(tx, &rows, now, outbox).await
}

/// Appends events in order, each at its stream's next version (one version query and
/// one multi-row insert per chunk, plus one multi-row outbox insert per chunk when
/// `outbox` is on); returns the global position of each event id.
pub(super) async fn append_events(
    tx: &mut Transaction<'_, Sqlite>,
    rows: &[(&NewEvent, String)],
    now: &str,
    outbox: bool,
) -> Result<HashMap<Uuid, i64>, StoreError> {
    let mut positions = HashMap::with_capacity(rows.len());
    // Replay-safe: an event whose id is already stored (the same source mapped again, e.g.
    // a later version of a FHIR resource that repeats earlier events) is skipped, not an
    // error, and takes no version; so is a repeat of an id within `rows`.
    let mut seen: HashSet<Uuid> = HashSet::new();
    for chunk in rows.chunks(ROWS) {
        let mut q = QueryBuilder::<Sqlite>::new("SELECT event_id FROM events WHERE event_id IN (");
        let mut list = q.separated(", ");
        for (e, _) in chunk {
            list.push_bind(e.event_id);
        }
        q.push(")");
        seen.extend(q.build_query_scalar::<Uuid>().fetch_all(&mut **tx).await?);
    }
    let rows: Vec<&(&NewEvent, String)> = rows
        .iter()
        .filter(|(e, _)| seen.insert(e.event_id))
        .collect();
    if rows.is_empty() {
        return Ok(positions);
    }
    // Current version of every stream the batch touches, in one query per chunk.
    let mut streams: Vec<Uuid> = rows.iter().map(|(e, _)| e.stream_id).collect();
    streams.sort_unstable();
    streams.dedup();
    let mut version: HashMap<Uuid, i64> = HashMap::with_capacity(streams.len());
    for chunk in streams.chunks(ROWS) {
        let mut q = QueryBuilder::<Sqlite>::new(
            "SELECT stream_id, MAX(event_version) FROM events WHERE stream_id IN (",
        );
        let mut list = q.separated(", ");
        for s in chunk {
            list.push_bind(*s);
        }
        q.push(") GROUP BY stream_id");
        for r in q.build().fetch_all(&mut **tx).await? {
            version.insert(r.try_get(0)?, r.try_get(1)?);
        }
    }
    for chunk in rows.chunks(ROWS) {
        let mut q = QueryBuilder::<Sqlite>::new(
            "INSERT INTO events (event_id, stream_id, stream_type, event_type, event_version, \
             tenant_id, data, metadata, created_at, created_by) ",
        );
        q.push_values(chunk, |mut row, &&(e, ref created_by)| {
            let v = version.entry(e.stream_id).or_insert(0);
            *v += 1;
            row.push_bind(e.event_id)
                .push_bind(e.stream_id)
                .push_bind(e.stream_type.as_str())
                .push_bind(e.event_type.as_str())
                .push_bind(*v)
                .push_bind(e.tenant_id.as_str())
                .push_bind(e.data.to_string())
                .push_bind(e.metadata.to_string())
                .push_bind(now)
                .push_bind(created_by.as_str());
        });
        q.push(" RETURNING event_id, global_position, tenant_id");
        let returned = q.build().fetch_all(&mut **tx).await?;
        let mut queued: Vec<(i64, String)> = Vec::with_capacity(returned.len());
        for r in returned {
            let position: i64 = r.try_get(1)?;
            positions.insert(r.try_get(0)?, position);
            if outbox {
                queued.push((position, r.try_get(2)?));
            }
        }
        if !queued.is_empty() {
            // Queued for the publisher in the events' own transaction.
            let mut q = QueryBuilder::<Sqlite>::new(
                "INSERT INTO outbox (global_position, tenant_id, created_at) ",
            );
            q.push_values(&queued, |mut row, (position, tenant)| {
                row.push_bind(*position)
                    .push_bind(tenant.as_str())
                    .push_bind(now);
            });
            q.build().execute(&mut **tx).await?;
        }
    }
    Ok(positions)
}

async fn insert_dead_letters(
    tx: &mut Transaction<'_, Sqlite>,
    fresh: &[&Processed],
    now: &str,
) -> Result<(), StoreError> {
    let dead: Vec<&Processed> = fresh
        .iter()
        .copied()
        .filter(|p| matches!(p.disposition, Disposition::DeadLetter { .. }))
        .collect();
    for chunk in dead.chunks(ROWS) {
        let mut q = QueryBuilder::<Sqlite>::new(
            "INSERT INTO dead_letters (id, inbound_id, tenant_id, stage, reason_code, detail, created_at) ",
        );
        q.push_values(chunk, |mut row, p| {
            let Disposition::DeadLetter { rejection, .. } = &p.disposition else {
                unreachable!("filtered above")
            };
            row.push_bind(p.raw.id)
                .push_bind(p.raw.id)
                .push_bind(p.tenant.as_deref())
                .push_bind(rejection.reason.stage().as_str())
                .push_bind(rejection.reason.code())
                .push_bind(rejection.detail.as_deref())
                .push_bind(now);
        });
        q.build().execute(&mut **tx).await?;
    }
    Ok(())
}

/// The first copy's answer, for a message whose key was already stored.
async fn duplicate(
    tx: &mut Transaction<'_, Sqlite>,
    p: &Processed,
) -> Result<Outcome, StoreError> {
    let Some(k) = &p.key else {
        return Err(StoreError::Unavailable(
            "inbound message id collision".into(),
        ));
    };
    let row = sqlx::query(
        "SELECT ack_code, reason_code FROM inbound_messages \
         WHERE tenant_id = ? AND sending_facility = ? AND control_id = ?",
    )
    .bind(&k.tenant)
    .bind(&k.sending_facility)
    .bind(&k.control_id)
    .fetch_one(&mut **tx)
    .await?;
    let ack: String = row.try_get(0)?;
    let reason: Option<String> = row.try_get(1)?;
    Ok(crate::store::duplicate(p, &ack, reason.as_deref()))
}
