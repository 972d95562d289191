//! The batching writer: one per database, group commit.
//!
//! Every adapter submits processed messages here. The writer takes whatever has queued
//! up (bounded by `max_batch`, optionally waiting up to `max_wait` for more), commits it
//! in one transaction, and only then answers each submitter — so an acknowledgement
//! never leaves before its commit, and many connections share one fsync. A batch also
//! stops at `max_batch_events` events: a message with thousands of events is committed
//! in a batch of its own, and the small messages queued around it do not wait for it.

use crate::metrics::{Histogram, BATCH_BOUNDS};
use crate::outcome::Outcome;
use crate::pipeline::Processed;
use crate::store::Store;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, Notify};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Batching limits.
#[derive(Debug, Clone, Copy)]
pub struct WriterConfig {
    /// Most messages in one transaction.
    pub max_batch: usize,
    /// Most events in one transaction, unless one message alone holds more (it is then
    /// committed alone).
    pub max_batch_events: usize,
    /// How long to wait for more messages once one is queued (0: commit what is there;
    /// messages that arrive during a commit form the next batch anyway).
    pub max_wait: Duration,
    /// Submissions queued before submitters wait (back-pressure).
    pub queue: usize,
}

impl Default for WriterConfig {
    fn default() -> Self {
        WriterConfig {
            max_batch: 512,
            max_batch_events: 4096,
            max_wait: Duration::ZERO,
            queue: 8192,
        }
    }
}

/// Counters for `/metrics` and benchmarks.
#[derive(Debug)]
pub struct WriterStats {
    /// Transactions committed.
    pub batches: AtomicU64,
    /// Messages committed.
    pub messages: AtomicU64,
    /// Transactions that failed.
    pub failed_batches: AtomicU64,
    /// Messages per committed transaction.
    pub batch_sizes: Histogram,
}

impl Default for WriterStats {
    fn default() -> Self {
        WriterStats {
            batches: AtomicU64::default(),
            messages: AtomicU64::default(),
            failed_batches: AtomicU64::default(),
            batch_sizes: Histogram::new(BATCH_BOUNDS),
        }
    }
}

struct Job {
    item: Processed,
    reply: Reply,
}

/// Handle for submitting messages; clone freely. The writer stops once every handle
/// is dropped and the queue is drained.
#[derive(Clone)]
pub struct Writer {
    tx: mpsc::Sender<Job>,
    stats: Arc<WriterStats>,
    committed: Arc<Notify>,
}

impl Writer {
    /// Starts the writer task on `store`.
    pub fn spawn(store: Arc<dyn Store>, config: WriterConfig) -> (Writer, JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(config.queue.max(1));
        let stats = Arc::new(WriterStats::default());
        let committed = Arc::new(Notify::new());
        let task = tokio::spawn(run(store, config, rx, stats.clone(), committed.clone()));
        (
            Writer {
                tx,
                stats,
                committed,
            },
            task,
        )
    }

    /// Submits a message and waits until its batch has committed; when nothing could be
    /// stored (database failed, writer stopped) the outcome says so.
    pub async fn submit(&self, item: Processed) -> Outcome {
        let (reply, answer) = oneshot::channel();
        let stopped = Outcome::not_stored(&item);
        if self.tx.send(Job { item, reply }).await.is_err() {
            return stopped;
        }
        answer.await.unwrap_or(stopped)
    }

    /// The writer's counters.
    pub fn stats(&self) -> &WriterStats {
        &self.stats
    }

    /// Notified after every committed batch (one stored permit when nobody waits): the
    /// outbox publisher wakes on it instead of polling.
    pub fn committed(&self) -> Arc<Notify> {
        self.committed.clone()
    }
}

async fn run(
    store: Arc<dyn Store>,
    config: WriterConfig,
    mut rx: mpsc::Receiver<Job>,
    stats: Arc<WriterStats>,
    committed: Arc<Notify>,
) {
    let max = config.max_batch.max(1);
    let max_events = config.max_batch_events.max(1);
    let mut items: Vec<Processed> = Vec::with_capacity(max);
    let mut replies = Vec::with_capacity(max);
    // A message that would have made the last batch too heavy starts the next one.
    let mut carried: Option<Job> = None;
    loop {
        let first = match carried.take() {
            Some(j) => j,
            None => match rx.recv().await {
                Some(j) => j,
                None => break,
            },
        };
        let mut events = weight(&first.item);
        take(first, &mut items, &mut replies);
        let deadline = Instant::now() + config.max_wait;
        while items.len() < max {
            let next = match rx.try_recv() {
                Ok(j) => j,
                Err(_) if config.max_wait.is_zero() => break,
                Err(_) => match tokio::time::timeout_at(deadline, rx.recv()).await {
                    Ok(Some(j)) => j,
                    _ => break,
                },
            };
            if events + weight(&next.item) > max_events {
                carried = Some(next);
                break;
            }
            events += weight(&next.item);
            take(next, &mut items, &mut replies);
        }
        let result = store.commit_batch(&items).await;
        let n = items.len();
        match result {
            Ok(outcomes) => {
                stats.batches.fetch_add(1, Ordering::Relaxed);
                stats.messages.fetch_add(n as u64, Ordering::Relaxed);
                stats.batch_sizes.observe(n as f64);
                tracing::debug!(batch = n, "batch committed");
                committed.notify_one();
                for ((reply, outcome), item) in replies.drain(..).zip(outcomes).zip(&items) {
                    let _ = reply.send(outcome.unwrap_or_else(|_| Outcome::not_stored(item)));
                }
            }
            Err(e) => {
                stats.failed_batches.fetch_add(1, Ordering::Relaxed);
                tracing::error!(batch = n, code = e.code(), error = %e, "batch commit failed");
                for (reply, item) in replies.drain(..).zip(&items) {
                    let _ = reply.send(Outcome::not_stored(item));
                }
            }
        }
        items.clear();
    }
}

type Reply = oneshot::Sender<Outcome>;

/// What a message weighs in a batch: its events (at least 1).
fn weight(item: &Processed) -> usize {
    match &item.disposition {
        crate::pipeline::Disposition::Events(events) => events.len().max(1),
        _ => 1,
    }
}

fn take(j: Job, items: &mut Vec<Processed>, replies: &mut Vec<Reply>) {
    items.push(j.item);
    replies.push(j.reply);
}
