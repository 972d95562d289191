//! Retention of raw messages over any backend: the bytes of a tenant's messages received
//! before a cutoff are emptied, in bounded batches (each one short unit of work with its
//! audit event, so SQLite's write lock is never held long while `intake serve` runs).
//!
//! The inbound row stays: its idempotency key and stored ACK still answer a resend, and
//! its events are never touched. A message whose dead letter is open keeps its raw
//! (replay maps it); the schema's triggers refuse any other change to a raw message.

use super::append::append_events;
use super::backend::{retry, Backend, Res, RetentionSql, Scope, Tx, Work};
use crate::audit::{audit_event, Actor, AuditAction, AUDIT_CREATED_BY};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::json;
use uuid::Uuid;

/// One batch of a tenant's pruning.
#[derive(Debug, Clone)]
pub struct PruneRequest<'a> {
    /// The tenant whose messages are pruned.
    pub tenant: &'a str,
    /// Its policy: days a raw message is kept (recorded in the audit event).
    pub days: u32,
    /// Messages received before this instant are pruned.
    pub cutoff: DateTime<Utc>,
    /// Only messages whose id sorts after this one (the `last` of the previous batch).
    pub after: Option<Uuid>,
    /// At most this many messages.
    pub limit: i64,
}

/// What one batch pruned (or, previewed, would prune).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Pruned {
    /// Messages whose raw bytes were emptied.
    pub messages: u64,
    /// The bytes they held.
    pub bytes: u64,
    /// The last message taken, in id order: the `after` of the next batch.
    pub last: Option<Uuid>,
}

/// Emptying old raw messages by each tenant's policy.
#[async_trait::async_trait]
pub trait Retention: Send + Sync {
    /// What [`Retention::prune_raw`] would take for `request`: a plain read that takes no
    /// lock and changes nothing.
    async fn preview_prune(&self, request: &PruneRequest<'_>) -> Res<Pruned>;

    /// Empties the raw bytes of the messages `request` selects, records when, and appends
    /// `actor`'s audit event to the tenant's `Audit` stream, in one unit of work.
    async fn prune_raw(&self, request: &PruneRequest<'_>, actor: &Actor) -> Res<Pruned>;
}

#[async_trait::async_trait]
impl<B: Backend> Retention for B {
    async fn preview_prune(&self, r: &PruneRequest<'_>) -> Res<Pruned> {
        let mut tx = self.begin(Scope::Tenant(r.tenant), Work::Single).await?;
        let rows = tx.prunable(r.tenant, r.cutoff, r.after, r.limit).await?;
        tx.commit().await?;
        Ok(totals(&rows))
    }

    async fn prune_raw(&self, r: &PruneRequest<'_>, actor: &Actor) -> Res<Pruned> {
        retry(|| prune(self, r, actor)).await
    }
}

/// One try of a batch: select, empty, audit, commit.
async fn prune<B: Backend>(b: &B, r: &PruneRequest<'_>, actor: &Actor) -> Res<Pruned> {
    let mut tx = b.begin(Scope::Tenant(r.tenant), Work::Atomic).await?;
    let rows = tx.prunable(r.tenant, r.cutoff, r.after, r.limit).await?;
    let pruned = totals(&rows);
    if rows.is_empty() {
        tx.commit().await?;
        return Ok(pruned);
    }
    let ids: Vec<Uuid> = rows.iter().map(|(id, _)| *id).collect();
    tx.prune(&ids).await?;
    let details = json!({
        "days": r.days,
        "cutoff": r.cutoff.to_rfc3339_opts(SecondsFormat::Micros, true),
        "counts": {"messages": pruned.messages, "bytes": pruned.bytes},
        "first": ids.first(),
        "last": ids.last(),
    });
    let at = Utc::now();
    let audit = audit_event(AuditAction::RawMessagesPruned, actor, r.tenant, details, at);
    append_events(&mut tx, &[(&audit, AUDIT_CREATED_BY)]).await?;
    tx.commit().await?;
    Ok(pruned)
}

/// The count, bytes and last id of `rows` (id, raw length), which are in id order.
fn totals(rows: &[(Uuid, i64)]) -> Pruned {
    Pruned {
        messages: rows.len() as u64,
        bytes: rows
            .iter()
            .map(|(_, n)| u64::try_from(*n).unwrap_or(0))
            .sum(),
        last: rows.last().map(|(id, _)| *id),
    }
}
