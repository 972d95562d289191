//! Message-browser SQL on PostgreSQL (row-level security keeps each tenant to its own).

use super::events::EVENT_COLUMNS;
use super::PgTx;
use crate::event::EventEnvelope;
use crate::store::backend::{ClaimedLetter, MessageSql, Res};
use crate::store::messages::{key_hash, EventRef, KeyRow, MessageQuery, MessageRow};
use uuid::Uuid;

#[async_trait::async_trait]
impl MessageSql for PgTx {
    async fn insert_message_keys(&mut self, rows: &[KeyRow<'_>]) -> Res<()> {
        let col = |f: fn(&KeyRow<'_>) -> String| rows.iter().map(f).collect::<Vec<_>>();
        sqlx::query(
            "INSERT INTO message_keys (tenant_id, kind, key_hash, message_id) \
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::bytea[], $4::uuid[]) \
             ON CONFLICT DO NOTHING",
        )
        .bind(col(|r| r.tenant.to_string()))
        .bind(col(|r| r.kind.to_string()))
        .bind(rows.iter().map(|r| r.hash.clone()).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.message_id).collect::<Vec<_>>())
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    async fn select_messages(&mut self, m: &MessageQuery) -> Res<Vec<MessageRow>> {
        let (kind_hash, key_tenant) = match &m.key {
            Some((kind, value)) => {
                let tenant = m.tenant.clone().unwrap_or_default();
                (Some(key_hash(&tenant, *kind, value)), Some(tenant))
            }
            None => (None, None),
        };
        Ok(sqlx::query_as(
            "SELECT i.id, i.tenant_id, \
             to_char(i.received_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') \
             AS received_at, i.channel, i.format, i.message_type, i.sending_facility, \
             i.control_id, i.outcome, i.ack_code, i.reason_code, i.detail, \
             d.status AS dl_status, d.reason_code AS dl_reason_code, d.detail AS dl_detail, \
             d.attempts AS dl_attempts, \
             to_char(i.pruned_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') \
             AS pruned_at \
             FROM inbound_messages i LEFT JOIN dead_letters d ON d.inbound_id = i.id \
             WHERE ($1::text IS NULL OR i.tenant_id = $1) \
             AND ($2::text IS NULL OR i.outcome = $2) \
             AND ($3::text IS NULL OR i.message_type = $3) \
             AND ($4::text IS NULL OR i.sending_facility = $4) \
             AND ($5::text IS NULL OR i.control_id = $5) \
             AND ($6::timestamptz IS NULL OR i.received_at >= $6) \
             AND ($7::timestamptz IS NULL OR i.received_at < $7) \
             AND ($8::bytea IS NULL OR i.id IN (SELECT message_id FROM message_keys \
                  WHERE tenant_id = $9 AND key_hash = $8)) \
             AND ($10::uuid IS NULL OR i.id < $10) \
             ORDER BY i.id DESC LIMIT $11",
        )
        .bind(m.tenant.as_deref())
        .bind(m.outcome.map(|o| o.column()))
        .bind(m.message_type.as_deref())
        .bind(m.sending_facility.as_deref())
        .bind(m.control_id.as_deref())
        .bind(m.since)
        .bind(m.until)
        .bind(kind_hash)
        .bind(key_tenant)
        .bind(m.before)
        .bind(m.limit)
        .fetch_all(&mut *self.tx)
        .await?)
    }

    async fn events_of_messages(&mut self, ids: &[Uuid]) -> Res<Vec<EventRef>> {
        Ok(sqlx::query_as(
            "SELECT inbound_id AS message_id, event_id, event_type, stream_type, stream_id, \
             event_version, global_position FROM events \
             WHERE inbound_id = ANY($1) ORDER BY global_position",
        )
        .bind(ids)
        .fetch_all(&mut *self.tx)
        .await?)
    }

    async fn message_events(&mut self, ids: &[Uuid]) -> Res<Vec<EventEnvelope>> {
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE inbound_id = ANY($1) \
             ORDER BY global_position"
        );
        Ok(sqlx::query_as(&sql)
            .bind(ids)
            .fetch_all(&mut *self.tx)
            .await?)
    }

    async fn inbound_inputs(&mut self, ids: &[Uuid]) -> Res<Vec<ClaimedLetter>> {
        Ok(sqlx::query_as(
            "SELECT id, tenant_id, channel, raw, received_at, format FROM inbound_messages \
             WHERE pruned_at IS NULL AND id = ANY($1)",
        )
        .bind(ids)
        .fetch_all(&mut *self.tx)
        .await?)
    }
}
