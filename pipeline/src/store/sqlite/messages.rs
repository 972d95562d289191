//! Message-browser SQL on SQLite.

use super::events::EVENT_COLUMNS;
use super::{chunks, push_list, rfc3339, SqliteTx};
use crate::event::EventEnvelope;
use crate::store::backend::{ClaimedLetter, MessageSql, Res};
use crate::store::messages::{key_hash, EventRef, KeyRow, MessageQuery, MessageRow};
use sqlx::{QueryBuilder, Sqlite};
use uuid::Uuid;

#[async_trait::async_trait]
impl MessageSql for SqliteTx {
    async fn insert_message_keys(&mut self, rows: &[KeyRow<'_>]) -> Res<()> {
        for chunk in chunks(rows) {
            let mut q = QueryBuilder::<Sqlite>::new(
                "INSERT OR IGNORE INTO message_keys (tenant_id, kind, key_hash, message_id) ",
            );
            q.push_values(chunk, |mut row, r| {
                row.push_bind(r.tenant)
                    .push_bind(r.kind)
                    .push_bind(r.hash.clone())
                    .push_bind(r.message_id);
            });
            q.build().execute(self.conn.get()).await?;
        }
        Ok(())
    }

    async fn select_messages(&mut self, m: &MessageQuery) -> Res<Vec<MessageRow>> {
        let mut q = QueryBuilder::<Sqlite>::new(
            "SELECT i.id AS id, i.tenant_id AS tenant_id, i.received_at AS received_at, \
             i.channel AS channel, i.format AS format, i.message_type AS message_type, \
             i.sending_facility AS sending_facility, i.control_id AS control_id, \
             i.outcome AS outcome, i.ack_code AS ack_code, i.reason_code AS reason_code, \
             i.detail AS detail, d.status AS dl_status, d.reason_code AS dl_reason_code, \
             d.detail AS dl_detail, d.attempts AS dl_attempts, i.pruned_at AS pruned_at \
             FROM inbound_messages i LEFT JOIN dead_letters d ON d.inbound_id = i.id WHERE 1 = 1",
        );
        if let Some(t) = &m.tenant {
            q.push(" AND i.tenant_id = ").push_bind(t.clone());
        }
        if let Some(o) = m.outcome {
            q.push(" AND i.outcome = ").push_bind(o.column());
        }
        for (column, value) in [
            ("i.message_type", &m.message_type),
            ("i.sending_facility", &m.sending_facility),
            ("i.control_id", &m.control_id),
        ] {
            if let Some(v) = value {
                q.push(format!(" AND {column} = ")).push_bind(v.clone());
            }
        }
        // Times are stored in one fixed RFC 3339 format, so text order is time order.
        if let Some(t) = m.since {
            q.push(" AND i.received_at >= ").push_bind(rfc3339(t));
        }
        if let Some(t) = m.until {
            q.push(" AND i.received_at < ").push_bind(rfc3339(t));
        }
        if let Some((kind, value)) = &m.key {
            let tenant = m.tenant.clone().unwrap_or_default();
            q.push(" AND i.id IN (SELECT message_id FROM message_keys WHERE tenant_id = ")
                .push_bind(tenant.clone())
                .push(" AND key_hash = ")
                .push_bind(key_hash(&tenant, *kind, value))
                .push(")");
        }
        if let Some(b) = m.before {
            q.push(" AND i.id < ").push_bind(b);
        }
        q.push(" ORDER BY i.id DESC LIMIT ").push_bind(m.limit);
        Ok(q.build_query_as().fetch_all(self.conn.get()).await?)
    }

    async fn events_of_messages(&mut self, ids: &[Uuid]) -> Res<Vec<EventRef>> {
        let mut q = QueryBuilder::<Sqlite>::new(
            "SELECT inbound_id AS message_id, event_id, event_type, stream_type, stream_id, \
             event_version, global_position FROM events WHERE inbound_id IN ",
        );
        push_list(&mut q, ids.iter().copied());
        q.push(" ORDER BY global_position");
        Ok(q.build_query_as().fetch_all(self.conn.get()).await?)
    }

    async fn message_events(&mut self, ids: &[Uuid]) -> Res<Vec<EventEnvelope>> {
        let mut q = QueryBuilder::<Sqlite>::new(format!(
            "SELECT {EVENT_COLUMNS} FROM events e WHERE e.inbound_id IN "
        ));
        push_list(&mut q, ids.iter().copied());
        q.push(" ORDER BY e.global_position");
        Ok(q.build_query_as().fetch_all(self.conn.get()).await?)
    }

    async fn inbound_inputs(&mut self, ids: &[Uuid]) -> Res<Vec<ClaimedLetter>> {
        let mut q = QueryBuilder::<Sqlite>::new(
            "SELECT id, tenant_id, channel, raw, received_at, format FROM inbound_messages \
             WHERE pruned_at IS NULL AND id IN ",
        );
        push_list(&mut q, ids.iter().copied());
        Ok(q.build_query_as().fetch_all(self.conn.get()).await?)
    }
}
