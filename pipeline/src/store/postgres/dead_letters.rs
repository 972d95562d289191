//! Dead-letter SQL on PostgreSQL. Claims are exclusive: `FOR UPDATE SKIP LOCKED` lets two
//! replays (on two instances, or two support people) run at once, each taking letters the
//! other does not hold, and none waits for the other.

use super::PgTx;
use crate::store::backend::{ClaimedLetter, DeadLetterSql, RawRow, Res};
use crate::store::{DeadLetter, DeadLetterFilter, StoreError};
use sqlx::postgres::PgArguments;
use sqlx::Arguments;
use uuid::Uuid;

/// Open letters `filter` selects (of `dead_letters d JOIN inbound_messages i`); `$1`
/// tenant, `$2` ids, `$3` code, `$4` limit, `$5` type, `$6` facility, `$7` since, `$8`
/// until, `$9` after.
const SELECTED: &str = "d.status = 'open' AND ($1::text IS NULL OR d.tenant_id = $1) \
     AND (cardinality($2::uuid[]) = 0 OR d.id = ANY($2)) \
     AND ($3::text IS NULL OR d.reason_code = $3) \
     AND ($5::text IS NULL OR i.message_type = $5) \
     AND ($6::text IS NULL OR i.sending_facility = $6) \
     AND ($7::timestamptz IS NULL OR i.received_at >= $7) \
     AND ($8::timestamptz IS NULL OR i.received_at < $8) \
     AND ($9::uuid IS NULL OR d.id > $9) ORDER BY d.id LIMIT $4";

/// `filter` bound to [`SELECTED`]'s placeholders.
fn selected_args(filter: &DeadLetterFilter) -> Res<PgArguments> {
    let mut args = PgArguments::default();
    let bound = args
        .add(filter.tenant.as_deref())
        .and_then(|()| args.add(&filter.ids))
        .and_then(|()| args.add(filter.code.as_deref()))
        .and_then(|()| args.add(filter.limit))
        .and_then(|()| args.add(filter.message_type.as_deref()))
        .and_then(|()| args.add(filter.sending_facility.as_deref()))
        .and_then(|()| args.add(filter.since))
        .and_then(|()| args.add(filter.until))
        .and_then(|()| args.add(filter.after));
    bound.map_err(|e| StoreError::Unavailable(format!("dead-letter filter: {e}")))?;
    Ok(args)
}

#[async_trait::async_trait]
impl DeadLetterSql for PgTx {
    async fn list_dead_letters(&mut self, tenant: Option<&str>) -> Res<Vec<DeadLetter>> {
        Ok(sqlx::query_as(
            "SELECT d.id, d.tenant_id, d.stage, d.reason_code, d.detail, d.status, i.message_type, \
             i.sending_facility, i.control_id, i.channel, \
             to_char(i.received_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') \
             AS received_at, \
             to_char(d.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') \
             AS created_at, d.attempts \
             FROM dead_letters d JOIN inbound_messages i ON i.id = d.inbound_id \
             WHERE ($1::text IS NULL OR d.tenant_id = $1) ORDER BY d.created_at, d.id",
        )
        .bind(tenant)
        .fetch_all(&mut *self.tx)
        .await?)
    }

    async fn dead_letter_raw(&mut self, tenant: Option<&str>, id: Uuid) -> Res<Option<RawRow>> {
        Ok(sqlx::query_as(
            "SELECT i.raw, \
             to_char(i.pruned_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') \
             AS pruned_at FROM dead_letters d JOIN inbound_messages i ON i.id = d.inbound_id \
             WHERE d.id = $1 AND ($2::text IS NULL OR d.tenant_id = $2)",
        )
        .bind(id)
        .bind(tenant)
        .fetch_optional(&mut *self.tx)
        .await?)
    }

    async fn select_letters(
        &mut self,
        filter: &DeadLetterFilter,
        claim: bool,
    ) -> Res<Vec<ClaimedLetter>> {
        let sql = format!(
            "SELECT d.id, i.tenant_id, i.channel, i.raw, i.received_at, i.format \
             FROM dead_letters d JOIN inbound_messages i ON i.id = d.inbound_id \
             WHERE {SELECTED}{}",
            if claim {
                " FOR UPDATE OF d SKIP LOCKED"
            } else {
                ""
            }
        );
        let args = selected_args(filter)?;
        Ok(sqlx::query_as_with(&sql, args)
            .fetch_all(&mut *self.tx)
            .await?)
    }

    async fn count_resend(&mut self, key: [&str; 3]) -> Res<()> {
        sqlx::query(
            "UPDATE dead_letters SET attempts = attempts + 1 WHERE inbound_id = \
             (SELECT id FROM inbound_messages WHERE tenant_id = $1 AND sending_facility = $2 \
             AND control_id = $3)",
        )
        .bind(key[0])
        .bind(key[1])
        .bind(key[2])
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    async fn mark_replayed(&mut self, ids: &[Uuid]) -> Res<()> {
        sqlx::query("UPDATE dead_letters SET status = 'replayed' WHERE id = ANY($1)")
            .bind(ids)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    async fn discard_letters(
        &mut self,
        filter: &DeadLetterFilter,
    ) -> Res<Vec<(Uuid, Option<String>)>> {
        let sql = format!(
            "UPDATE dead_letters SET status = 'discarded' WHERE id IN \
             (SELECT d.id FROM dead_letters d JOIN inbound_messages i ON i.id = d.inbound_id \
             WHERE {SELECTED} FOR UPDATE OF d SKIP LOCKED) \
             RETURNING id, tenant_id"
        );
        let args = selected_args(filter)?;
        Ok(sqlx::query_as_with(&sql, args)
            .fetch_all(&mut *self.tx)
            .await?)
    }
}
