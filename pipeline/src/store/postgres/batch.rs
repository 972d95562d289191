//! Group commit on PostgreSQL: a whole batch in one transaction and a constant number of
//! statements whatever its size (arrays bound once and expanded with `UNNEST`, so the
//! statement text, and its prepared plan, never changes with the batch size).

use super::{begin_scoped, check_expected};
use crate::event::NewEvent;
use crate::hl7::ack::AckCode;
use crate::outcome::Outcome;
use crate::pipeline::{Disposition, Processed};
use crate::store::{created_by, duplicate, outcome, ExpectedVersion};
use sqlx::{PgPool, Postgres, Row, Transaction};
use std::collections::{HashMap, HashSet};
use uuid::Uuid;

/// The advisory lock that serializes event appends across instances ("intake" + 1).
const APPEND_LOCK: i64 = 0x696e_7461_6b65_0001;

type Tx = Transaction<'static, Postgres>;

/// Commits every message of `batch`, or none of them.
pub(super) async fn commit_all(
    pool: &PgPool,
    batch: &[Processed],
    outbox: bool,
) -> Result<Vec<Outcome>, sqlx::Error> {
    let mut tx = begin_scoped(pool, "*").await?;
    let inserted = insert_inbound(&mut tx, batch).await?;
    let fresh: Vec<&Processed> = batch
        .iter()
        .filter(|p| inserted.contains(&p.raw.id))
        .collect();
    let rows: Vec<(&NewEvent, String)> = fresh
        .iter()
        .filter_map(|p| match &p.disposition {
            Disposition::Events(ev) => Some(ev.iter().map(move |e| (e, created_by(p)))),
            Disposition::DeadLetter { .. } => None,
        })
        .flatten()
        .collect();
    let positions = append_events(&mut tx, &rows, outbox).await?;
    insert_dead_letters(&mut tx, &fresh).await?;
    let firsts = first_answers(&mut tx, batch, &inserted).await?;
    let outcomes = batch
        .iter()
        .map(|p| match inserted.contains(&p.raw.id) {
            true => Ok(outcome(p, &positions)),
            false => firsts
                .get(&p.raw.id)
                .cloned()
                .ok_or_else(|| sqlx::Error::Protocol("inbound message id collision".into())),
        })
        .collect::<Result<Vec<_>, _>>()?;
    tx.commit().await?;
    Ok(outcomes)
}

/// Appends `events` to their stream after checking `expected` against the first one's
/// stream; `Ok(Err((stream, actual)))` is a version conflict.
pub(super) async fn append_checked(
    pool: &PgPool,
    expected: ExpectedVersion,
    events: &[NewEvent],
    created_by: &str,
    outbox: bool,
) -> Result<Result<Vec<i64>, (Uuid, i64)>, sqlx::Error> {
    let Some(first) = events.first() else {
        return Ok(Ok(Vec::new()));
    };
    let mut tx = begin_scoped(pool, &first.tenant_id).await?;
    lock_appends(&mut tx).await?;
    let current: i64 = sqlx::query_scalar(
        "SELECT COALESCE(MAX(event_version), 0) FROM events WHERE stream_id = $1",
    )
    .bind(first.stream_id)
    .fetch_one(&mut *tx)
    .await?;
    if !check_expected(expected, current) {
        return Ok(Err((first.stream_id, current)));
    }
    let rows: Vec<(&NewEvent, String)> =
        events.iter().map(|e| (e, created_by.to_string())).collect();
    let positions = append_events(&mut tx, &rows, outbox).await?;
    tx.commit().await?;
    Ok(Ok(events
        .iter()
        .filter_map(|e| positions.get(&e.event_id).copied())
        .collect()))
}

/// Inserts the raw messages in key order (two instances inserting overlapping keys then
/// wait on each other in one order, never in a cycle); returns the ids that were new.
async fn insert_inbound(tx: &mut Tx, batch: &[Processed]) -> Result<HashSet<Uuid>, sqlx::Error> {
    let mut order: Vec<&Processed> = batch.iter().collect();
    order.sort_by_key(|p| {
        p.key
            .as_ref()
            .map(|k| (&k.tenant, &k.sending_facility, &k.control_id))
    });
    let n = order.len();
    let (mut ids, mut tenants, mut facilities, mut controls) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let (mut channels, mut types, mut raws, mut received) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let (mut outcomes, mut acks, mut reasons, mut counts) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let mut formats = Vec::with_capacity(n);
    for p in order {
        let (outcome, ack, reason, count) = match &p.disposition {
            Disposition::Events(ev) => ("stored", AckCode::Accept, None, ev.len() as i32),
            Disposition::DeadLetter { rejection, ack } => {
                ("dead_lettered", *ack, Some(rejection.reason.code()), 0)
            }
        };
        let key = p.key.as_ref();
        ids.push(p.raw.id);
        tenants.push(p.tenant.as_deref());
        facilities.push(key.map(|k| k.sending_facility.as_str()));
        controls.push(key.map(|k| k.control_id.as_str()));
        channels.push(p.raw.channel.as_str());
        types.push(p.message_type.as_deref());
        formats.push(p.raw.format.as_str());
        raws.push(p.raw.bytes.as_slice());
        received.push(p.raw.received_at);
        outcomes.push(outcome);
        acks.push(ack.as_letter());
        reasons.push(reason);
        counts.push(count);
    }
    let inserted: Vec<Uuid> = sqlx::query_scalar(
        "INSERT INTO inbound_messages (id, tenant_id, sending_facility, control_id, channel, \
         message_type, raw, received_at, outcome, ack_code, reason_code, event_count, format) \
         SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], \
         $6::text[], $7::bytea[], $8::timestamptz[], $9::text[], $10::text[], $11::text[], \
         $12::int4[], $13::text[]) ON CONFLICT DO NOTHING RETURNING id",
    )
    .bind(&ids)
    .bind(&tenants)
    .bind(&facilities)
    .bind(&controls)
    .bind(&channels)
    .bind(&types)
    .bind(&raws)
    .bind(&received)
    .bind(&outcomes)
    .bind(&acks)
    .bind(&reasons)
    .bind(&counts)
    .bind(&formats)
    .fetch_all(&mut **tx)
    .await?;
    Ok(inserted.into_iter().collect())
}

/// Takes the append lock: held until commit, so appends are serialized and positions
/// become visible in order.
async fn lock_appends(tx: &mut Tx) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(APPEND_LOCK)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Appends events in order, each at its stream's next version; returns the global
/// position of each appended event id.
///
/// Replay-safe: an event whose id is already stored (the same source mapped again, e.g.
/// a later version of a FHIR resource that repeats earlier events) is skipped, not an
/// error, and takes no version; so is a repeat of an id within `rows`.
pub(super) async fn append_events(
    tx: &mut Tx,
    rows: &[(&NewEvent, String)],
    outbox: bool,
) -> Result<HashMap<Uuid, i64>, sqlx::Error> {
    let mut positions = HashMap::with_capacity(rows.len());
    if rows.is_empty() {
        return Ok(positions);
    }
    lock_appends(tx).await?;
    let ids: Vec<Uuid> = rows.iter().map(|(e, _)| e.event_id).collect();
    let mut seen: HashSet<Uuid> =
        sqlx::query_scalar::<_, Uuid>("SELECT event_id FROM events WHERE event_id = ANY($1)")
            .bind(&ids)
            .fetch_all(&mut **tx)
            .await?
            .into_iter()
            .collect();
    let rows: Vec<&(&NewEvent, String)> = rows
        .iter()
        .filter(|(e, _)| seen.insert(e.event_id))
        .collect();
    if rows.is_empty() {
        return Ok(positions);
    }
    let mut streams: Vec<Uuid> = rows.iter().map(|(e, _)| e.stream_id).collect();
    streams.sort_unstable();
    streams.dedup();
    let mut version: HashMap<Uuid, i64> = HashMap::with_capacity(streams.len());
    for r in sqlx::query(
        "SELECT stream_id, MAX(event_version) FROM events WHERE stream_id = ANY($1) \
         GROUP BY stream_id",
    )
    .bind(&streams)
    .fetch_all(&mut **tx)
    .await?
    {
        version.insert(r.try_get(0)?, r.try_get(1)?);
    }
    let n = rows.len();
    let (mut event_ids, mut stream_ids, mut stream_types, mut event_types) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let (mut versions, mut tenants, mut data, mut metadata, mut by) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    for (e, created_by) in rows {
        let v = version.entry(e.stream_id).or_insert(0);
        *v += 1;
        event_ids.push(e.event_id);
        stream_ids.push(e.stream_id);
        stream_types.push(e.stream_type.as_str());
        event_types.push(e.event_type.as_str());
        versions.push(*v);
        tenants.push(e.tenant_id.as_str());
        data.push(e.data.to_string());
        metadata.push(e.metadata.to_string());
        by.push(created_by.as_str());
    }
    // One statement appends the events and, when a broker is configured, queues them in
    // the outbox; WITH ORDINALITY keeps positions in the order of the arrays.
    let inserted = sqlx::query(
        "WITH appended AS ( \
           INSERT INTO events (event_id, stream_id, stream_type, event_type, event_version, \
             tenant_id, data, metadata, created_at, created_by) \
           SELECT e, s, st, et, v, t, d::jsonb, m::jsonb, now(), cb \
           FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::int8[], \
             $6::text[], $7::text[], $8::text[], $9::text[]) WITH ORDINALITY \
             AS u(e, s, st, et, v, t, d, m, cb, i) ORDER BY i \
           RETURNING event_id, global_position, tenant_id), \
         queued AS ( \
           INSERT INTO outbox (global_position, tenant_id, created_at) \
           SELECT global_position, tenant_id, now() FROM appended WHERE $10) \
         SELECT event_id, global_position FROM appended",
    )
    .bind(&event_ids)
    .bind(&stream_ids)
    .bind(&stream_types)
    .bind(&event_types)
    .bind(&versions)
    .bind(&tenants)
    .bind(&data)
    .bind(&metadata)
    .bind(&by)
    .bind(outbox)
    .fetch_all(&mut **tx)
    .await?;
    for r in inserted {
        positions.insert(r.try_get(0)?, r.try_get(1)?);
    }
    Ok(positions)
}

async fn insert_dead_letters(tx: &mut Tx, fresh: &[&Processed]) -> Result<(), sqlx::Error> {
    let mut ids = Vec::new();
    let mut tenants = Vec::new();
    let mut stages = Vec::new();
    let mut codes = Vec::new();
    let mut details = Vec::new();
    for p in fresh {
        if let Disposition::DeadLetter { rejection, .. } = &p.disposition {
            ids.push(p.raw.id);
            tenants.push(p.tenant.as_deref());
            stages.push(rejection.reason.stage().as_str());
            codes.push(rejection.reason.code());
            details.push(rejection.detail.as_deref());
        }
    }
    if ids.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO dead_letters (id, inbound_id, tenant_id, stage, reason_code, detail, created_at) \
         SELECT i, i, t, s, c, d, now() \
         FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[]) AS u(i, t, s, c, d)",
    )
    .bind(&ids)
    .bind(&tenants)
    .bind(&stages)
    .bind(&codes)
    .bind(&details)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The first copy's answer for each message whose key was already stored (one query).
async fn first_answers(
    tx: &mut Tx,
    batch: &[Processed],
    inserted: &HashSet<Uuid>,
) -> Result<HashMap<Uuid, Outcome>, sqlx::Error> {
    let dups: Vec<&Processed> = batch
        .iter()
        .filter(|p| !inserted.contains(&p.raw.id) && p.key.is_some())
        .collect();
    let mut answers = HashMap::with_capacity(dups.len());
    if dups.is_empty() {
        return Ok(answers);
    }
    let keys = |f: fn(&crate::message::IdempotencyKey) -> &str| -> Vec<&str> {
        dups.iter().filter_map(|p| p.key.as_ref().map(f)).collect()
    };
    let rows = sqlx::query(
        "SELECT m.tenant_id, m.sending_facility, m.control_id, m.ack_code, m.reason_code \
         FROM inbound_messages m \
         JOIN UNNEST($1::text[], $2::text[], $3::text[]) AS k(t, f, c) \
           ON m.tenant_id = k.t AND m.sending_facility = k.f AND m.control_id = k.c",
    )
    .bind(keys(|k| &k.tenant))
    .bind(keys(|k| &k.sending_facility))
    .bind(keys(|k| &k.control_id))
    .fetch_all(&mut **tx)
    .await?;
    let mut by_key: HashMap<(String, String, String), (String, Option<String>)> = HashMap::new();
    for r in rows {
        by_key.insert(
            (r.try_get(0)?, r.try_get(1)?, r.try_get(2)?),
            (r.try_get(3)?, r.try_get(4)?),
        );
    }
    for p in dups {
        let k = p.key.as_ref().expect("filtered above");
        let key = (
            k.tenant.clone(),
            k.sending_facility.clone(),
            k.control_id.clone(),
        );
        if let Some((ack, reason)) = by_key.get(&key) {
            answers.insert(p.raw.id, duplicate(p, ack, reason.as_deref()));
        }
    }
    Ok(answers)
}
