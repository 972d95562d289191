//! `intake dlq show`: one letter's facts and masked shape, or (audited) its exact bytes;
//! once retention pruned the message, its facts and when (`--raw`: `RAW_PRUNED`, exit 1).

use anyhow::{bail, Result};
use intake_pipeline::audit::{self, UNROUTED_TENANT};
use intake_pipeline::store::{ExpectedVersion, Store, StoredRaw, RAW_PRUNED};
use serde_json::json;
use std::process::ExitCode;
use uuid::Uuid;

/// Prints letter `id` (of `tenant`, when given).
pub async fn run(
    store: &dyn Store,
    id: Uuid,
    tenant: Option<String>,
    raw: bool,
    reason: Option<String>,
) -> Result<ExitCode> {
    let letter = store
        .dead_letters(tenant.as_deref())
        .await?
        .into_iter()
        .find(|d| d.id == id);
    let message = store.dead_letter_message(tenant.as_deref(), id).await?;
    let (Some(letter), Some(message)) = (letter, message) else {
        bail!(
            "no dead letter {id}{}",
            tenant
                .map(|t| format!(" of tenant {t}"))
                .unwrap_or_default()
        );
    };
    let message = match message {
        StoredRaw::Kept(bytes) => bytes,
        StoredRaw::Pruned(at) if raw => bail!(
            "{RAW_PRUNED}: the raw message of dead letter {id} was pruned at {at} by its \
             tenant's retention policy"
        ),
        StoredRaw::Pruned(at) => {
            let facts = json!({"dead_letter": letter, "raw_pruned_at": at, "structure": null});
            out!("{}", serde_json::to_string_pretty(&facts)?);
            return Ok(ExitCode::SUCCESS);
        }
    };
    if raw {
        // The record comes first: no raw bytes leave without their audit entry.
        let actor = super::actor(reason)?;
        let owner = letter.tenant_id.as_deref().unwrap_or(UNROUTED_TENANT);
        let event = audit::raw_view(&actor, owner, id, "cli");
        store
            .append(ExpectedVersion::Any, &[event], audit::AUDIT_CREATED_BY)
            .await?;
        use std::io::Write as _;
        std::io::stdout().write_all(&message)?;
        return Ok(ExitCode::SUCCESS);
    }
    let shape = intake_pipeline::hl7::mask::masked_structure(&message);
    out!(
        "{}",
        serde_json::to_string_pretty(
            &json!({"dead_letter": letter, "bytes": message.len(), "structure": shape})
        )?
    );
    Ok(ExitCode::SUCCESS)
}
