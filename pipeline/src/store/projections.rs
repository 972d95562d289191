//! The census read model over any backend: the folded state of every Admission stream,
//! kept from the event stream by [`Projections::advance_projection`], which moves the
//! projection's position and writes the states it folded in one transaction (so a crash
//! at any point resumes from a position and states that agree).

use super::backend::{Backend, EventSql, ProjectionSql, Res, Scope, StateRow, Tx, Work};
use super::{EventQuery, StoreError};
use crate::mapping::catalogue::Catalogue;
use crate::mapping::Tenants;
use serde_json::{Map, Value};
use std::collections::HashMap;
use uuid::Uuid;

/// The census projection's name (its row in `projection_positions`).
pub const CENSUS: &str = "census";

/// The stream type the census folds.
pub const CENSUS_STREAM_TYPE: &str = "Admission";

/// The visit statuses that put a visit on the census.
pub const ON_CENSUS: [&str; 2] = ["admitted", "on_leave"];

/// What one step of the projection did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Advanced {
    /// The position it started from.
    pub from: i64,
    /// The position it reached.
    pub to: i64,
    /// Events folded (of the census's stream type).
    pub folded: usize,
}

/// One stream's stored state.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredState {
    /// The stream.
    pub stream_id: Uuid,
    /// Its version at the projection's position.
    pub version: i64,
    /// The folded state.
    pub state: Map<String, Value>,
}

/// Read models kept from the event stream.
#[async_trait::async_trait]
pub trait Projections: Send + Sync {
    /// Folds up to `limit` events after the census's position into the stored states,
    /// each by its tenant's catalogue in `tenants` (the shipped one for a tenant not
    /// loaded), and moves the position past them, in one transaction. When another
    /// instance moved the position first, nothing is written and `to == from`.
    async fn advance_projection(
        &self,
        tenants: &Tenants,
        limit: i64,
    ) -> Result<Advanced, StoreError>;

    /// Forgets the census's states and position: the next steps fold every event again.
    async fn reset_projection(&self) -> Result<(), StoreError>;

    /// The visits of `tenant` on the census (at `location`, when given), by location.
    async fn census_states(
        &self,
        tenant: &str,
        location: Option<&str>,
    ) -> Result<Vec<StoredState>, StoreError>;

    /// The census's position and the newest event's: their difference is its lag.
    async fn projection_lag(&self) -> Result<(i64, i64), StoreError>;
}

#[async_trait::async_trait]
impl<B: Backend> Projections for B {
    async fn advance_projection(&self, tenants: &Tenants, limit: i64) -> Res<Advanced> {
        // A plain read first: a caught-up projection takes no write lock.
        let (position, head) = self.projection_lag().await?;
        if head <= position {
            return Ok(Advanced {
                from: position,
                to: position,
                folded: 0,
            });
        }
        // Read and fold outside any write transaction: the writer's commits do not wait
        // while a step decodes and folds hundreds of events. The write at the end moves
        // the position only from where this step read it, so a step that raced another
        // instance's is undone, never applied twice.
        let mut tx = self.begin(Scope::All, Work::Single).await?;
        let from = tx.projection_position(CENSUS).await?;
        let q = EventQuery {
            tenant: None,
            stream_id: None,
            after: from,
            limit,
        };
        let events = tx.select_events(&q).await?;
        let Some(to) = events.last().map(|e| e.global_position) else {
            tx.rollback().await?;
            return Ok(Advanced {
                from,
                to: from,
                folded: 0,
            });
        };
        let visits: Vec<_> = events
            .iter()
            .filter(|e| e.stream_type == CENSUS_STREAM_TYPE)
            .collect();
        let mut ids: Vec<Uuid> = visits.iter().map(|e| e.stream_id).collect();
        ids.sort_unstable();
        ids.dedup();
        let mut states: HashMap<Uuid, (StateRow, Map<String, Value>)> = HashMap::new();
        for row in tx.stream_states(&ids).await? {
            let state = serde_json::from_str(&row.state).unwrap_or_default();
            states.insert(row.stream_id, (row, state));
        }
        for e in &visits {
            let (row, state) = states.entry(e.stream_id).or_insert_with(|| {
                let row = StateRow {
                    stream_id: e.stream_id,
                    tenant_id: e.tenant_id.clone(),
                    stream_type: e.stream_type.clone(),
                    version: 0,
                    status: None,
                    location: None,
                    state: String::new(),
                };
                (row, Map::new())
            });
            let catalogue = tenants
                .get(&e.tenant_id)
                .map_or(Catalogue::shipped(), |t| t.catalogue.as_ref());
            catalogue.fold_event(state, e);
            row.version = e.event_version;
        }
        let rows: Vec<StateRow> = states
            .into_values()
            .map(|(mut row, state)| {
                let text = |k: &str| state.get(k).and_then(Value::as_str).map(str::to_string);
                row.status = text("status");
                row.location = text("location");
                row.state = Value::Object(state).to_string();
                row
            })
            .collect();
        tx.commit().await?;
        let mut tx = self.begin(Scope::All, Work::Atomic).await?;
        if !rows.is_empty() {
            tx.put_stream_states(&rows).await?;
        }
        if !tx.move_projection(CENSUS, from, to).await? {
            tx.rollback().await?;
            return Ok(Advanced {
                from,
                to: from,
                folded: 0,
            });
        }
        tx.commit().await?;
        Ok(Advanced {
            from,
            to,
            folded: visits.len(),
        })
    }

    async fn reset_projection(&self) -> Res<()> {
        let mut tx = self.begin(Scope::All, Work::Atomic).await?;
        tx.clear_projection(CENSUS).await?;
        tx.commit().await
    }

    async fn census_states(&self, tenant: &str, location: Option<&str>) -> Res<Vec<StoredState>> {
        let mut tx = self.begin(Scope::Tenant(tenant), Work::Single).await?;
        let rows = tx
            .states_with_status(tenant, CENSUS_STREAM_TYPE, &ON_CENSUS, location)
            .await?;
        tx.commit().await?;
        Ok(rows
            .into_iter()
            .map(|r| StoredState {
                stream_id: r.stream_id,
                version: r.version,
                state: serde_json::from_str(&r.state).unwrap_or_default(),
            })
            .collect())
    }

    async fn projection_lag(&self) -> Res<(i64, i64)> {
        let mut tx = self.begin(Scope::All, Work::Single).await?;
        let position = tx.projection_position(CENSUS).await?;
        let head = tx.head_position().await?;
        tx.commit().await?;
        Ok((position, head))
    }
}
