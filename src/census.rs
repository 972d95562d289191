//! `intake census`: a tenant's census (the visits admitted now, or at an instant), and
//! `intake projections rebuild`: the census folded again from every stored event.

use crate::cli::AtArgs;
use crate::config::Config;
use crate::context::open_store;
use anyhow::Result;
use intake_pipeline::census;
use intake_pipeline::mapping::catalogue::Catalogue;
use intake_pipeline::mapping::Tenants;
use intake_pipeline::store::Store;
use intake_pipeline::timeline::Clock;
use std::process::ExitCode;
use std::sync::Arc;

/// The store, migrated when it is the embedded one, and the tenants whose catalogues
/// the fold follows (none when the mappings do not load here: the shipped catalogue).
async fn open(config: &Config) -> Result<(Arc<dyn Store>, Tenants)> {
    let store = open_store(config).await?;
    if config.database_url.starts_with("sqlite:") {
        store.migrate().await?;
    }
    let tenants = Tenants::load(&config.mappings_dir).unwrap_or_default();
    Ok((store, tenants))
}

/// Prints the census of `tenant` as JSON: now (the projection, caught up first), or at
/// the instant `at` asks for (folded from the events).
pub async fn show(
    config: &Config,
    tenant: &str,
    location: Option<&str>,
    at: &AtArgs,
) -> Result<ExitCode> {
    let at = crate::events::instant(at.as_of.as_deref(), at.as_recorded.as_deref())?;
    let (store, tenants) = open(config).await?;
    let visits = match at {
        Some(at) => {
            let catalogue = tenants.get(tenant).map(|t| t.catalogue.clone());
            let catalogue = catalogue.as_deref().unwrap_or(Catalogue::shipped());
            census::census_at(store.as_ref(), tenant, catalogue, at, location).await?
        }
        None => {
            census::catch_up(store.as_ref(), &tenants).await?;
            census::from_projection(store.census_states(tenant, location).await?)
        }
    };
    let answer = serde_json::json!({
        "tenant": tenant,
        "clock": at.map_or(Clock::Recorded, |a| a.clock),
        "at": at.map(|a| a.time.to_rfc3339()),
        "count": visits.len(),
        "visits": visits,
    });
    out!("{}", serde_json::to_string_pretty(&answer)?);
    Ok(ExitCode::SUCCESS)
}

/// Forgets the census and folds every stored event again; prints the position reached.
pub async fn rebuild(config: &Config) -> Result<ExitCode> {
    let (store, tenants) = open(config).await?;
    store.reset_projection().await?;
    let position = census::catch_up(store.as_ref(), &tenants).await?;
    out!(
        "{}",
        serde_json::json!({"projection": "census", "position": position})
    );
    Ok(ExitCode::SUCCESS)
}
