//! The event log's SQL on PostgreSQL: one statement per step, whatever the batch size.

use super::PgTx;
use crate::event::EventEnvelope;
use crate::store::backend::{DeadLetterRow, EventRow, EventSql, InboundRow, Res, StoredAnswer};
use crate::store::EventQuery;
use uuid::Uuid;

/// The advisory lock that serializes event appends across instances ("intake" + 1).
const APPEND_LOCK: i64 = 0x696e_7461_6b65_0001;

/// Events as [`EventEnvelope`] reads them; `$n` placeholders follow the SELECT.
pub(super) const EVENT_COLUMNS: &str = "event_id, stream_id, stream_type, event_type, \
     event_version, tenant_id, data, metadata, \
     to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') AS created_at, \
     created_by, global_position";

/// One array per column of `rows`.
fn column<'r, R, T>(rows: &'r [R], f: impl Fn(&'r R) -> T) -> Vec<T> {
    rows.iter().map(f).collect()
}

#[async_trait::async_trait]
impl EventSql for PgTx {
    async fn insert_inbound(&mut self, rows: &[InboundRow<'_>]) -> Res<Vec<Uuid>> {
        Ok(sqlx::query_scalar(
            "INSERT INTO inbound_messages (id, tenant_id, sending_facility, control_id, channel, \
             message_type, raw, received_at, outcome, ack_code, reason_code, event_count, format, \
             detail) \
             SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], \
             $6::text[], $7::bytea[], $8::timestamptz[], $9::text[], $10::text[], $11::text[], \
             $12::int4[], $13::text[], $14::text[]) ON CONFLICT DO NOTHING RETURNING id",
        )
        .bind(column(rows, |r| r.id))
        .bind(column(rows, |r| r.tenant))
        .bind(column(rows, |r| r.sending_facility))
        .bind(column(rows, |r| r.control_id))
        .bind(column(rows, |r| r.channel))
        .bind(column(rows, |r| r.message_type))
        .bind(column(rows, |r| r.raw))
        .bind(column(rows, |r| r.received_at))
        .bind(column(rows, |r| r.outcome))
        .bind(column(rows, |r| r.ack))
        .bind(column(rows, |r| r.reason_code))
        .bind(column(rows, |r| r.event_count))
        .bind(column(rows, |r| r.format))
        .bind(column(rows, |r| r.detail))
        .fetch_all(&mut *self.tx)
        .await?)
    }

    async fn stored_answers(&mut self, keys: &[[&str; 3]]) -> Res<Vec<StoredAnswer>> {
        Ok(sqlx::query_as(
            "SELECT m.tenant_id, m.sending_facility, m.control_id, m.ack_code, m.reason_code \
             FROM inbound_messages m \
             JOIN UNNEST($1::text[], $2::text[], $3::text[]) AS k(t, f, c) \
               ON m.tenant_id = k.t AND m.sending_facility = k.f AND m.control_id = k.c",
        )
        .bind(column(keys, |k| k[0]))
        .bind(column(keys, |k| k[1]))
        .bind(column(keys, |k| k[2]))
        .fetch_all(&mut *self.tx)
        .await?)
    }

    async fn lock_appends(&mut self) -> Res<()> {
        // Held until the transaction ends: appends are serialized and positions become
        // visible in order.
        if !self.locked {
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(APPEND_LOCK)
                .execute(&mut *self.tx)
                .await?;
            self.locked = true;
        }
        Ok(())
    }

    async fn stored_event_ids(&mut self, ids: &[Uuid]) -> Res<Vec<Uuid>> {
        Ok(
            sqlx::query_scalar("SELECT event_id FROM events WHERE event_id = ANY($1)")
                .bind(ids)
                .fetch_all(&mut *self.tx)
                .await?,
        )
    }

    async fn stream_heads(&mut self, streams: &[Uuid]) -> Res<Vec<(Uuid, i64)>> {
        // One index probe per stream (its last version), not a scan of every version: a
        // long visit's thousandth event costs what its first did.
        Ok(sqlx::query_as(
            "SELECT s.id, h.v FROM UNNEST($1::uuid[]) AS s(id) CROSS JOIN LATERAL \
             (SELECT event_version AS v FROM events WHERE stream_id = s.id \
              ORDER BY event_version DESC LIMIT 1) AS h",
        )
        .bind(streams)
        .fetch_all(&mut *self.tx)
        .await?)
    }

    async fn insert_events(&mut self, rows: &[EventRow<'_>]) -> Res<Vec<(Uuid, i64)>> {
        // One statement appends the events and, when a broker is configured, queues them in
        // the outbox; WITH ORDINALITY keeps positions in the order of the arrays.
        Ok(sqlx::query_as(
            "WITH appended AS ( \
               INSERT INTO events (event_id, stream_id, stream_type, event_type, event_version, \
                 tenant_id, data, metadata, created_at, created_by, inbound_id) \
               SELECT e, s, st, et, v, t, d::jsonb, m::jsonb, now(), cb, ib \
               FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::int8[], \
                 $6::text[], $7::text[], $8::text[], $9::text[], $11::uuid[]) WITH ORDINALITY \
                 AS u(e, s, st, et, v, t, d, m, cb, ib, i) ORDER BY i \
               RETURNING event_id, global_position, tenant_id), \
             queued AS ( \
               INSERT INTO outbox (global_position, tenant_id, created_at) \
               SELECT global_position, tenant_id, now() FROM appended WHERE $10) \
             SELECT event_id, global_position FROM appended",
        )
        .bind(column(rows, |r| r.event.event_id))
        .bind(column(rows, |r| r.event.stream_id))
        .bind(column(rows, |r| r.event.stream_type.as_str()))
        .bind(column(rows, |r| r.event.event_type.as_str()))
        .bind(column(rows, |r| r.version))
        .bind(column(rows, |r| r.event.tenant_id.as_str()))
        .bind(column(rows, |r| r.event.data.to_string()))
        .bind(column(rows, |r| r.event.metadata.to_string()))
        .bind(column(rows, |r| r.created_by))
        .bind(self.outbox)
        .bind(column(rows, |r| r.event.message_id))
        .fetch_all(&mut *self.tx)
        .await?)
    }

    async fn insert_dead_letters(&mut self, rows: &[DeadLetterRow<'_>]) -> Res<()> {
        sqlx::query(
            "INSERT INTO dead_letters (id, inbound_id, tenant_id, stage, reason_code, detail, \
             created_at) \
             SELECT i, i, t, s, c, d, now() \
             FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[]) \
             AS u(i, t, s, c, d)",
        )
        .bind(column(rows, |r| r.id))
        .bind(column(rows, |r| r.tenant))
        .bind(column(rows, |r| r.stage))
        .bind(column(rows, |r| r.reason_code))
        .bind(column(rows, |r| r.detail))
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    async fn select_events(&mut self, q: &EventQuery) -> Res<Vec<EventEnvelope>> {
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM events \
             WHERE global_position > $1 AND ($2::text IS NULL OR tenant_id = $2) \
             AND ($3::uuid IS NULL OR stream_id = $3) ORDER BY global_position LIMIT $4"
        );
        Ok(sqlx::query_as(&sql)
            .bind(q.after)
            .bind(q.tenant.as_deref())
            .bind(q.stream_id)
            .bind(q.limit)
            .fetch_all(&mut *self.tx)
            .await?)
    }

    async fn stream_events(&mut self, streams: &[Uuid]) -> Res<Vec<EventEnvelope>> {
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE stream_id = ANY($1) \
             ORDER BY global_position"
        );
        Ok(sqlx::query_as(&sql)
            .bind(streams)
            .fetch_all(&mut *self.tx)
            .await?)
    }
}
