//! One frame or body in, one answer out: the single entry point MLLP and HTTP share for
//! HL7 v2, whether the frame holds one message or an FHS/BHS batch.
//!
//! A batch is split ([`crate::hl7::batch::split`]) and each message goes through the one
//! path, [`Ingest::ingest`], as its own [`RawMessage`] (same tenant, channel and receipt
//! time; its own inbound id and idempotency key). The messages are submitted together, in
//! batch order, so they share the writer's group commits and a stream's messages keep
//! their order; the answer lists their outcomes in that order. A batch that cannot be
//! split (no MSH, envelope out of order, too many messages) is handed to
//! [`Ingest::ingest`] whole, which dead-letters it with the batch's own code.

use crate::hl7::batch::{self, Batch, MAX_BATCH_MESSAGES};
use crate::hl7::batch_ack::build_batch_ack;
use crate::ingest::Ingest;
use crate::message::{Format, RawMessage};
use crate::outcome::{ack_control_id, Outcome, Stored};
use std::future::Future;
use std::pin::Pin;
use std::task::Poll;
use uuid::Uuid;

/// What became of one frame: a single message's outcome, or a batch's.
#[derive(Debug, Clone)]
pub enum FrameOutcome {
    /// The frame was one message (or a batch that could not be split, kept whole).
    Message(Outcome),
    /// The frame was a batch: its envelope and each message's outcome, in order.
    Batch {
        /// The envelope (for the acknowledgement).
        batch: Batch,
        /// One outcome per message, in batch order.
        outcomes: Vec<Outcome>,
    },
}

impl FrameOutcome {
    /// Every message's outcome, in order (one for a single message).
    pub fn outcomes(&self) -> &[Outcome] {
        match self {
            FrameOutcome::Message(o) => std::slice::from_ref(o),
            FrameOutcome::Batch { outcomes, .. } => outcomes,
        }
    }

    /// Whether the frame was split as a batch.
    pub fn is_batch(&self) -> bool {
        matches!(self, FrameOutcome::Batch { .. })
    }

    /// The HL7 v2 answer: the message's ACK, or the batch acknowledgement (see
    /// [`build_batch_ack`]) holding each message's ACK.
    pub fn hl7_ack(&self) -> String {
        match self {
            FrameOutcome::Message(o) => o.hl7_ack(),
            FrameOutcome::Batch { batch, outcomes } => {
                let acks: Vec<String> = outcomes.iter().map(Outcome::hl7_ack).collect();
                let now = chrono::Local::now().fixed_offset();
                build_batch_ack(batch, &acks, &ack_control_id(), now)
            }
        }
    }
}

impl Ingest {
    /// Processes one HL7 v2 frame or body: a batch message by message, anything else as
    /// one message. Returns once every message has committed (or failed).
    pub async fn ingest_frame(&self, raw: RawMessage) -> FrameOutcome {
        if raw.format != Format::Hl7v2 || !batch::is_batch(&raw.bytes) {
            return FrameOutcome::Message(self.ingest(raw).await);
        }
        let batch = match batch::split(&raw.bytes, MAX_BATCH_MESSAGES) {
            Ok(b) => b,
            // Kept whole as a dead letter with the batch's code (see `hl7::decode`).
            Err(_) => return FrameOutcome::Message(self.ingest(raw).await),
        };
        let messages = batch.message_ranges().map(|r| RawMessage {
            id: Uuid::now_v7(),
            tenant: raw.tenant.clone(),
            format: Format::Hl7v2,
            channel: raw.channel.clone(),
            bytes: raw.bytes[r].to_vec(),
            received_at: raw.received_at,
        });
        let outcomes = join_in_order(messages.map(|m| self.ingest(m))).await;
        log_batch(&raw, &batch, &outcomes);
        FrameOutcome::Batch { batch, outcomes }
    }
}

/// Logs one line per batch: counts and codes only.
fn log_batch(raw: &RawMessage, batch: &Batch, outcomes: &[Outcome]) {
    let count = |s: Option<Stored>| outcomes.iter().filter(|o| o.stored == s).count();
    let warnings: Vec<&str> = batch.warnings().iter().map(|w| w.code()).collect();
    let level_warn = !warnings.is_empty();
    // A routed listener learns the tenant per message: name the first one's.
    let tenant =
        (raw.tenant.as_deref()).or_else(|| outcomes.iter().find_map(|o| o.tenant.as_deref()));
    macro_rules! batch_line {
        ($level:ident) => {
            tracing::$level!(
                tenant = tenant.unwrap_or("-"),
                channel = %raw.channel,
                file_header = batch.file.is_some(),
                groups = batch.groups.len(),
                messages = outcomes.len(),
                events = count(Some(Stored::Events)),
                dead_lettered = count(Some(Stored::DeadLettered)),
                duplicate = count(Some(Stored::Duplicate)),
                not_stored = count(None),
                warnings = %warnings.join(","),
                "batch"
            )
        };
    }
    if level_warn {
        batch_line!(warn);
    } else {
        batch_line!(info);
    }
}

/// Awaits all `futures`, polling them in order, and returns their outputs in order.
///
/// Each future is first polled in the order given, so messages reach the writer's queue
/// in batch order (its queue is first come, first served) and still share its commits.
async fn join_in_order<F: Future>(futures: impl Iterator<Item = F>) -> Vec<F::Output> {
    let mut pending: Vec<Pin<Box<F>>> = futures.map(Box::pin).collect();
    let mut results: Vec<Option<F::Output>> = pending.iter().map(|_| None).collect();
    let mut left = pending.len();
    let mut first = 0;
    std::future::poll_fn(|cx| {
        for (i, f) in pending.iter_mut().enumerate().skip(first) {
            if results[i].is_none() {
                if let Poll::Ready(v) = f.as_mut().poll(cx) {
                    results[i] = Some(v);
                    left -= 1;
                }
            }
        }
        while first < results.len() && results[first].is_some() {
            first += 1;
        }
        if left == 0 {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await;
    results.into_iter().flatten().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[tokio::test]
    async fn join_in_order_starts_in_order_and_keeps_the_order() {
        let started = Arc::new(Mutex::new(Vec::new()));
        let futures = (0..50u64).map(|i| {
            let started = started.clone();
            async move {
                started.lock().unwrap().push(i);
                tokio::time::sleep(std::time::Duration::from_millis(50 - i)).await;
                i * 10
            }
        });
        let out = join_in_order(futures).await;
        assert_eq!(out, (0..50).map(|i| i * 10).collect::<Vec<_>>());
        assert_eq!(*started.lock().unwrap(), (0..50).collect::<Vec<_>>());
        assert!(join_in_order(std::iter::empty::<std::future::Ready<()>>())
            .await
            .is_empty());
    }
}
