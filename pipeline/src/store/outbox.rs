//! The outbox and poll cursors over any backend. Outbox rows are written with their events
//! (see `log::append_events`, under the append lock), so they become visible in position
//! order and the publisher never passes over a row that commits late.

use super::backend::{Backend, CursorSql, OutboxSql, Res, Scope, Tx, Work};
use super::{Cursors, Outbox};
use crate::event::EventEnvelope;
use std::time::Duration;

#[async_trait::async_trait]
impl<B: Backend> Outbox for B {
    async fn outbox_claim(
        &self,
        holder: &str,
        lease: Duration,
        limit: i64,
    ) -> Res<Option<Vec<EventEnvelope>>> {
        let mut tx = self.begin(Scope::All, Work::Single).await?;
        // A lease of ours with more than half its time left needs no write (no fsync):
        // idle polls and busy rounds stay reads.
        let renew = match tx.lease(lease).await? {
            Some(current) if current.holder == holder => !current.fresh,
            Some(current) if current.valid => return Ok(None),
            _ => true,
        };
        if renew && !tx.take_lease(holder, lease).await? {
            tx.rollback().await?;
            return Ok(None);
        }
        let events = tx.unpublished(limit).await?;
        tx.commit().await?;
        Ok(Some(events))
    }

    async fn outbox_mark_published(&self, positions: &[i64]) -> Res<()> {
        if positions.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin(Scope::All, Work::Atomic).await?;
        tx.mark_published(positions).await?;
        tx.commit().await
    }

    async fn outbox_backlog(&self) -> Res<i64> {
        let mut tx = self.begin(Scope::All, Work::Single).await?;
        let n = tx.backlog().await?;
        tx.commit().await?;
        Ok(n)
    }
}

#[async_trait::async_trait]
impl<B: Backend> Cursors for B {
    async fn poll_cursor(&self, tenant: &str, source: &str) -> Res<Option<String>> {
        let mut tx = self.begin(Scope::Tenant(tenant), Work::Single).await?;
        let cursor = tx.cursor(tenant, source).await?;
        tx.commit().await?;
        Ok(cursor)
    }

    async fn set_poll_cursor(&self, tenant: &str, source: &str, cursor: &str) -> Res<()> {
        let mut tx = self.begin(Scope::Tenant(tenant), Work::Single).await?;
        tx.save_cursor(tenant, source, cursor).await?;
        tx.commit().await
    }
}
