//! Read-model SQL on SQLite.

use super::{chunks, push_list, SqliteTx};
use crate::store::backend::{ProjectionSql, Res, StateRow};
use sqlx::{QueryBuilder, Row, Sqlite};
use uuid::Uuid;

fn state_row(r: &sqlx::sqlite::SqliteRow) -> Res<StateRow> {
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

const STATE_COLUMNS: &str = "stream_id, tenant_id, stream_type, version, status, location, state";

#[async_trait::async_trait]
impl ProjectionSql for SqliteTx {
    async fn projection_position(&mut self, name: &str) -> Res<i64> {
        let p: Option<i64> =
            sqlx::query_scalar("SELECT position FROM projection_positions WHERE name = ?1")
                .bind(name)
                .fetch_optional(self.conn.get())
                .await?;
        Ok(p.unwrap_or(0))
    }

    async fn move_projection(&mut self, name: &str, from: i64, to: i64) -> Res<bool> {
        let moved = sqlx::query(
            "INSERT INTO projection_positions (name, position, updated_at) VALUES (?1, ?3, ?4) \
             ON CONFLICT (name) DO UPDATE SET position = ?3, updated_at = ?4 \
             WHERE projection_positions.position = ?2",
        )
        .bind(name)
        .bind(from)
        .bind(to)
        .bind(self.now.as_str())
        .execute(self.conn.get())
        .await?
        .rows_affected();
        Ok(moved == 1)
    }

    async fn stream_states(&mut self, streams: &[Uuid]) -> Res<Vec<StateRow>> {
        let mut rows = Vec::with_capacity(streams.len());
        for chunk in chunks(streams) {
            let mut q = QueryBuilder::<Sqlite>::new(format!(
                "SELECT {STATE_COLUMNS} FROM stream_states WHERE stream_id IN "
            ));
            push_list(&mut q, chunk);
            for r in q.build().fetch_all(self.conn.get()).await? {
                rows.push(state_row(&r)?);
            }
        }
        Ok(rows)
    }

    async fn put_stream_states(&mut self, rows: &[StateRow]) -> Res<()> {
        for chunk in chunks(rows) {
            let mut q = QueryBuilder::<Sqlite>::new(format!(
                "INSERT OR REPLACE INTO stream_states ({STATE_COLUMNS}) "
            ));
            q.push_values(chunk, |mut b, r| {
                b.push_bind(r.stream_id)
                    .push_bind(r.tenant_id.as_str())
                    .push_bind(r.stream_type.as_str())
                    .push_bind(r.version)
                    .push_bind(r.status.as_deref())
                    .push_bind(r.location.as_deref())
                    .push_bind(r.state.as_str());
            });
            q.build().execute(self.conn.get()).await?;
        }
        Ok(())
    }

    async fn clear_projection(&mut self, name: &str) -> Res<()> {
        sqlx::query("DELETE FROM stream_states")
            .execute(self.conn.get())
            .await?;
        sqlx::query("DELETE FROM projection_positions WHERE name = ?1")
            .bind(name)
            .execute(self.conn.get())
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
        let mut q = QueryBuilder::<Sqlite>::new(format!(
            "SELECT {STATE_COLUMNS} FROM stream_states WHERE tenant_id = "
        ));
        q.push_bind(tenant)
            .push(" AND stream_type = ")
            .push_bind(stream_type)
            .push(" AND status IN ");
        push_list(&mut q, statuses.iter().copied());
        if let Some(l) = location {
            q.push(" AND location = ").push_bind(l);
        }
        q.push(" ORDER BY location, stream_id");
        q.build()
            .fetch_all(self.conn.get())
            .await?
            .iter()
            .map(state_row)
            .collect()
    }

    async fn head_position(&mut self) -> Res<i64> {
        let p: Option<i64> = sqlx::query_scalar("SELECT MAX(global_position) FROM events")
            .fetch_one(self.conn.get())
            .await?;
        Ok(p.unwrap_or(0))
    }
}
