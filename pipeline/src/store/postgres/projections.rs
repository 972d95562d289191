//! Read-model SQL on PostgreSQL; `stream_states` is under row-level security like every
//! tenant table (the projection runner works in the engine's all-tenants scope).

use super::PgTx;
use crate::store::backend::{ProjectionSql, Res, StateRow};
use sqlx::Row;
use uuid::Uuid;

const STATE_COLUMNS: &str =
    "stream_id, tenant_id, stream_type, version, status, location, state::text";

fn state_row(r: &sqlx::postgres::PgRow) -> Res<StateRow> {
    Ok(StateRow {
        stream_id: r.try_get(0)?,
        tenant_id: r.try_get(1)?,
        stream_type: r.try_get(2)?,
        version: r.try_get(3)?,
        status: r.try_get(4)?,
        location: r.try_get(5)?,
        state: r.try_get(6)?,
    })
}

#[async_trait::async_trait]
impl ProjectionSql for PgTx {
    async fn projection_position(&mut self, name: &str) -> Res<i64> {
        let p: Option<i64> =
            sqlx::query_scalar("SELECT position FROM projection_positions WHERE name = $1")
                .bind(name)
                .fetch_optional(&mut *self.tx)
                .await?;
        Ok(p.unwrap_or(0))
    }

    async fn move_projection(&mut self, name: &str, from: i64, to: i64) -> Res<bool> {
        let moved = sqlx::query(
            "INSERT INTO projection_positions (name, position, updated_at) VALUES ($1, $3, now()) \
             ON CONFLICT (name) DO UPDATE SET position = $3, updated_at = now() \
             WHERE projection_positions.position = $2",
        )
        .bind(name)
        .bind(from)
        .bind(to)
        .execute(&mut *self.tx)
        .await?
        .rows_affected();
        Ok(moved == 1)
    }

    async fn stream_states(&mut self, streams: &[Uuid]) -> Res<Vec<StateRow>> {
        let sql = format!("SELECT {STATE_COLUMNS} FROM stream_states WHERE stream_id = ANY($1)");
        sqlx::query(&sql)
            .bind(streams)
            .fetch_all(&mut *self.tx)
            .await?
            .iter()
            .map(state_row)
            .collect()
    }

    async fn put_stream_states(&mut self, rows: &[StateRow]) -> Res<()> {
        let col = |f: fn(&StateRow) -> String| rows.iter().map(f).collect::<Vec<_>>();
        sqlx::query(
            "INSERT INTO stream_states (stream_id, tenant_id, stream_type, version, status, \
               location, state) \
             SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::int8[], $5::text[], \
               $6::text[], $7::text[]::jsonb[]) \
             ON CONFLICT (stream_id) DO UPDATE SET version = EXCLUDED.version, \
               status = EXCLUDED.status, location = EXCLUDED.location, state = EXCLUDED.state",
        )
        .bind(rows.iter().map(|r| r.stream_id).collect::<Vec<_>>())
        .bind(col(|r| r.tenant_id.clone()))
        .bind(col(|r| r.stream_type.clone()))
        .bind(rows.iter().map(|r| r.version).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.status.clone()).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.location.clone()).collect::<Vec<_>>())
        .bind(col(|r| r.state.clone()))
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    async fn clear_projection(&mut self, name: &str) -> Res<()> {
        sqlx::query("DELETE FROM stream_states")
            .execute(&mut *self.tx)
            .await?;
        sqlx::query("DELETE FROM projection_positions WHERE name = $1")
            .bind(name)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    async fn states_with_status(
        &mut self,
        tenant: &str,
        stream_type: &str,
        statuses: &[&str],
        location: Option<&str>,
    ) -> Res<Vec<StateRow>> {
        let sql = format!(
            "SELECT {STATE_COLUMNS} FROM stream_states WHERE tenant_id = $1 \
             AND stream_type = $2 AND status = ANY($3) AND ($4::text IS NULL OR location = $4) \
             ORDER BY location, stream_id"
        );
        sqlx::query(&sql)
            .bind(tenant)
            .bind(stream_type)
            .bind(statuses)
            .bind(location)
            .fetch_all(&mut *self.tx)
            .await?
            .iter()
            .map(state_row)
            .collect()
    }

    async fn head_position(&mut self) -> Res<i64> {
        let p: Option<i64> = sqlx::query_scalar("SELECT MAX(global_position) FROM events")
            .fetch_one(&mut *self.tx)
            .await?;
        Ok(p.unwrap_or(0))
    }
}
