//! The event log's SQL on SQLite: multi-row statements of up to [`ROWS`] rows.

use super::{chunks, push_list, rfc3339, SqliteTx};
use crate::event::EventEnvelope;
use crate::store::backend::{DeadLetterRow, EventRow, EventSql, InboundRow, Res, StoredAnswer};
use crate::store::EventQuery;
use sqlx::{QueryBuilder, Row, Sqlite};
use uuid::Uuid;

/// The event columns of `events e`, named as [`EventEnvelope`] reads them.
pub(super) const EVENT_COLUMNS: &str = "e.event_id AS event_id, e.stream_id AS stream_id, \
     e.stream_type AS stream_type, e.event_type AS event_type, \
     e.event_version AS event_version, e.tenant_id AS tenant_id, e.data AS data, \
     e.metadata AS metadata, e.created_at AS created_at, e.created_by AS created_by, \
     e.global_position AS global_position";

#[async_trait::async_trait]
impl EventSql for SqliteTx {
    async fn insert_inbound(&mut self, rows: &[InboundRow<'_>]) -> Res<Vec<Uuid>> {
        let mut inserted = Vec::with_capacity(rows.len());
        for chunk in chunks(rows) {
            let mut q = QueryBuilder::<Sqlite>::new(
                "INSERT INTO inbound_messages (id, tenant_id, sending_facility, control_id, \
                 channel, message_type, raw, received_at, outcome, ack_code, reason_code, \
                 event_count, format, detail) ",
            );
            q.push_values(chunk, |mut row, r| {
                row.push_bind(r.id)
                    .push_bind(r.tenant)
                    .push_bind(r.sending_facility)
                    .push_bind(r.control_id)
                    .push_bind(r.channel)
                    .push_bind(r.message_type)
                    .push_bind(r.raw)
                    .push_bind(rfc3339(r.received_at))
                    .push_bind(r.outcome)
                    .push_bind(r.ack)
                    .push_bind(r.reason_code)
                    .push_bind(r.event_count)
                    .push_bind(r.format)
                    .push_bind(r.detail);
            });
            q.push(" ON CONFLICT DO NOTHING RETURNING id");
            let ids: Vec<Uuid> = q.build_query_scalar().fetch_all(self.conn.get()).await?;
            inserted.extend(ids);
        }
        Ok(inserted)
    }

    async fn stored_answers(&mut self, keys: &[[&str; 3]]) -> Res<Vec<StoredAnswer>> {
        let mut answers = Vec::with_capacity(keys.len());
        for chunk in chunks(keys) {
            let mut q = QueryBuilder::<Sqlite>::new(
                "SELECT tenant_id, sending_facility, control_id, ack_code, reason_code \
                 FROM inbound_messages \
                 WHERE (tenant_id, sending_facility, control_id) IN (VALUES ",
            );
            let mut list = q.separated(", ");
            for [tenant, facility, control] in chunk {
                list.push("(")
                    .push_bind_unseparated(*tenant)
                    .push_unseparated(", ")
                    .push_bind_unseparated(*facility)
                    .push_unseparated(", ")
                    .push_bind_unseparated(*control)
                    .push_unseparated(")");
            }
            q.push(")");
            answers.extend(q.build_query_as().fetch_all(self.conn.get()).await?);
        }
        Ok(answers)
    }

    async fn lock_appends(&mut self) -> Res<()> {
        // One writer at a time: a write transaction holds the database's lock until it ends.
        Ok(())
    }

    async fn stored_event_ids(&mut self, ids: &[Uuid]) -> Res<Vec<Uuid>> {
        let mut stored = Vec::new();
        for chunk in chunks(ids) {
            let mut q = QueryBuilder::new("SELECT event_id FROM events WHERE event_id IN ");
            push_list(&mut q, chunk);
            stored.extend(
                q.build_query_scalar::<Uuid>()
                    .fetch_all(self.conn.get())
                    .await?,
            );
        }
        Ok(stored)
    }

    async fn stream_heads(&mut self, streams: &[Uuid]) -> Res<Vec<(Uuid, i64)>> {
        let mut heads = Vec::with_capacity(streams.len());
        for chunk in chunks(streams) {
            // One index probe per stream (MAX of one stream's versions reads the last
            // entry), not a scan of every version that GROUP BY would make: a long
            // visit's thousandth event costs what its first did.
            let mut q = QueryBuilder::new(
                "SELECT id, v FROM (SELECT s.column1 AS id, \
                 (SELECT MAX(event_version) FROM events WHERE stream_id = s.column1) AS v \
                 FROM (VALUES ",
            );
            let mut list = q.separated(", ");
            for id in chunk {
                list.push("(")
                    .push_bind_unseparated(*id)
                    .push_unseparated(")");
            }
            q.push(") AS s) WHERE v IS NOT NULL");
            heads.extend(
                q.build_query_as::<(Uuid, i64)>()
                    .fetch_all(self.conn.get())
                    .await?,
            );
        }
        Ok(heads)
    }

    async fn insert_events(&mut self, rows: &[EventRow<'_>]) -> Res<Vec<(Uuid, i64)>> {
        let mut positions = Vec::with_capacity(rows.len());
        for chunk in chunks(rows) {
            let mut q = QueryBuilder::<Sqlite>::new(
                "INSERT INTO events (event_id, stream_id, stream_type, event_type, event_version, \
                 tenant_id, data, metadata, created_at, created_by, inbound_id) ",
            );
            q.push_values(chunk, |mut row, r| {
                let e = r.event;
                row.push_bind(e.event_id)
                    .push_bind(e.stream_id)
                    .push_bind(e.stream_type.as_str())
                    .push_bind(e.event_type.as_str())
                    .push_bind(r.version)
                    .push_bind(e.tenant_id.as_str())
                    .push_bind(e.data.to_string())
                    .push_bind(e.metadata.to_string())
                    .push_bind(self.now.as_str())
                    .push_bind(r.created_by)
                    .push_bind(e.message_id);
            });
            q.push(" RETURNING event_id, global_position, tenant_id");
            let returned = q.build().fetch_all(self.conn.get()).await?;
            let mut queued: Vec<(i64, String)> = Vec::with_capacity(returned.len());
            for r in returned {
                let position: i64 = r.try_get(1)?;
                positions.push((r.try_get(0)?, position));
                if self.outbox {
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
                        .push_bind(self.now.as_str());
                });
                q.build().execute(self.conn.get()).await?;
            }
        }
        Ok(positions)
    }

    async fn insert_dead_letters(&mut self, rows: &[DeadLetterRow<'_>]) -> Res<()> {
        for chunk in chunks(rows) {
            let mut q = QueryBuilder::<Sqlite>::new(
                "INSERT INTO dead_letters (id, inbound_id, tenant_id, stage, reason_code, detail, \
                 created_at) ",
            );
            q.push_values(chunk, |mut row, r| {
                row.push_bind(r.id)
                    .push_bind(r.id)
                    .push_bind(r.tenant)
                    .push_bind(r.stage)
                    .push_bind(r.reason_code)
                    .push_bind(r.detail)
                    .push_bind(self.now.as_str());
            });
            q.build().execute(self.conn.get()).await?;
        }
        Ok(())
    }

    async fn select_events(&mut self, q: &EventQuery) -> Res<Vec<EventEnvelope>> {
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM events e \
             WHERE e.global_position > ?1 AND (?2 IS NULL OR e.tenant_id = ?2) \
             AND (?3 IS NULL OR e.stream_id = ?3) ORDER BY e.global_position LIMIT ?4"
        );
        Ok(sqlx::query_as(&sql)
            .bind(q.after)
            .bind(q.tenant.as_deref())
            .bind(q.stream_id)
            .bind(q.limit)
            .fetch_all(self.conn.get())
            .await?)
    }

    async fn stream_events(&mut self, streams: &[Uuid]) -> Res<Vec<EventEnvelope>> {
        let mut events = Vec::new();
        for chunk in chunks(streams) {
            let mut q = QueryBuilder::new(format!(
                "SELECT {EVENT_COLUMNS} FROM events e WHERE e.stream_id IN "
            ));
            push_list(&mut q, chunk);
            events.extend(
                q.build_query_as::<EventEnvelope>()
                    .fetch_all(self.conn.get())
                    .await?,
            );
        }
        events.sort_by_key(|e| e.global_position);
        Ok(events)
    }
}
