//! The census: per tenant, the visits currently admitted, by location and bed, with MRN,
//! class and since when.
//!
//! Now, it is read from the projection the [`spawn_runner`] task keeps current
//! (`store/projections.rs`); at an instant (`as_of`, `as_recorded`) it is folded from the
//! tenant's events on the spot ([`census_at`]), by the same fold, so the two agree.

use crate::event::EventEnvelope;
use crate::mapping::catalogue::Catalogue;
use crate::mapping::reload::TenantsHandle;
use crate::metrics::Metrics;
use crate::store::projections::{StoredState, CENSUS_STREAM_TYPE, ON_CENSUS};
use crate::store::{EventLog, EventQuery, Store, StoreError};
use crate::timeline::{self, At};
use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use uuid::Uuid;

/// One visit on the census.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CensusEntry {
    /// The visit's stream.
    pub stream_id: Uuid,
    /// The visit number.
    pub visit_number: Option<String>,
    /// The patient's MRN.
    pub patient_mrn: Option<String>,
    /// The location (unit).
    pub location: Option<String>,
    /// The bed.
    pub bed: Option<String>,
    /// The patient class (I, E, O...).
    pub patient_class: Option<String>,
    /// `admitted` or `on_leave`.
    pub status: String,
    /// Since when (the admission's time).
    pub since: Option<String>,
    /// The attending doctor's id.
    pub attending_id: Option<String>,
    /// The stream version the entry reflects.
    pub version: i64,
}

impl CensusEntry {
    /// The census entry of a visit's state, if the visit is on the census.
    pub fn of(stream_id: Uuid, version: i64, state: &Map<String, Value>) -> Option<CensusEntry> {
        let text = |k: &str| state.get(k).and_then(Value::as_str).map(str::to_string);
        let status = text("status").filter(|s| ON_CENSUS.contains(&s.as_str()))?;
        Some(CensusEntry {
            stream_id,
            visit_number: text("visit_number"),
            patient_mrn: text("patient_mrn"),
            location: text("location"),
            bed: text("bed"),
            patient_class: text("patient_class"),
            status,
            since: text("since"),
            attending_id: text("attending_id"),
            version,
        })
    }
}

/// Orders entries by location, bed and visit (the projection's rows come by location
/// and stream).
fn sorted(mut entries: Vec<CensusEntry>) -> Vec<CensusEntry> {
    entries.sort_by(|a, b| {
        (&a.location, &a.bed, &a.visit_number).cmp(&(&b.location, &b.bed, &b.visit_number))
    });
    entries
}

/// The census from the projection's stored states.
pub fn from_projection(states: Vec<StoredState>) -> Vec<CensusEntry> {
    sorted(
        states
            .iter()
            .filter_map(|s| CensusEntry::of(s.stream_id, s.version, &s.state))
            .collect(),
    )
}

/// The census of `tenant` at `at`, folded from its events: each visit's state at that
/// instant, on that clock (`location` filters).
pub async fn census_at(
    log: &dyn EventLog,
    tenant: &str,
    catalogue: &Catalogue,
    at: At,
    location: Option<&str>,
) -> Result<Vec<CensusEntry>, StoreError> {
    let mut by_stream: BTreeMap<Uuid, Vec<EventEnvelope>> = BTreeMap::new();
    let mut after = 0;
    loop {
        let q = EventQuery {
            tenant: Some(tenant.to_string()),
            stream_id: None,
            after,
            limit: 1000,
        };
        let page = log.read_events(&q).await?;
        let full = page.len() == 1000;
        after = page.last().map_or(after, |e| e.global_position);
        for e in page
            .into_iter()
            .filter(|e| e.stream_type == CENSUS_STREAM_TYPE)
        {
            by_stream.entry(e.stream_id).or_default().push(e);
        }
        if !full {
            break;
        }
    }
    let entries = by_stream
        .iter()
        .filter_map(|(id, events)| {
            let s = timeline::state_at(catalogue, *id, events, Some(at));
            CensusEntry::of(*id, s.version, &s.state)
        })
        .filter(|e| location.is_none_or(|l| e.location.as_deref() == Some(l)))
        .collect();
    Ok(sorted(entries))
}

/// How many events the runner folds per step.
pub const STEP: i64 = 500;

/// Runs the census projection until `shutdown`: every `idle` it folds the events committed
/// since its last step, and straight on while a full [`STEP`] shows a backlog (errors are
/// logged and retried). Under load each step folds many writer batches in one
/// transaction, instead of one small write transaction per batch competing with the
/// writer for the database's one write lock and fsync. Its position is in the store, so
/// a restart resumes where it stopped.
pub fn spawn_runner(
    store: Arc<dyn Store>,
    tenants: TenantsHandle,
    metrics: Arc<Metrics>,
    idle: Duration,
    mut shutdown: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let step = store.advance_projection(&tenants.current(), STEP).await;
            if let Ok((position, head)) = store.projection_lag().await {
                metrics.census.set(position, head);
            }
            let wait = match step {
                Ok(a) if a.to - a.from >= STEP => Duration::ZERO,
                Ok(_) => idle,
                Err(e) => {
                    tracing::warn!(code = e.code(), "census projection step failed; retrying");
                    idle * 5
                }
            };
            if *shutdown.borrow() {
                return;
            }
            if !wait.is_zero() {
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    r = shutdown.changed() => if r.is_err() || *shutdown.borrow() { return },
                }
            }
        }
    })
}

/// Folds every event not folded yet (the CLI's `projections rebuild` and `census`
/// catch up this way); returns the position reached.
pub async fn catch_up(
    store: &dyn Store,
    tenants: &crate::mapping::Tenants,
) -> Result<i64, StoreError> {
    loop {
        let a = store.advance_projection(tenants, STEP * 4).await?;
        if a.to == a.from {
            return Ok(a.to);
        }
    }
}
