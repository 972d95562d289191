//! `intake import --tenant T PATH...`: bulk ingest of files through the same pipeline as
//! the listeners — the same `process()`, idempotency and dead letters — on channel
//! `import`, bound to the tenant given.
//!
//! A reader thread cuts the inputs into messages ([`split`], [`read`]); this task keeps
//! up to [`IN_FLIGHT`] of them in the engine at once (processing runs on every runtime
//! thread), so the batching writer forms large group commits. Each input's checkpoint
//! ([`checkpoint`]) is saved in the store's poll cursors as committed messages advance it;
//! a re-run resumes from it, and skips inputs imported to their end.

mod checkpoint;
mod read;
mod split;
mod summary;

use crate::config::Config;
use crate::context::{load_tenants, open_store};
use anyhow::{bail, Context, Result};
use checkpoint::Checkpoint;
use intake_pipeline::ingest::Ingest;
use intake_pipeline::mapping::reload::TenantsHandle;
use intake_pipeline::store::Store;
use intake_pipeline::writer::{Writer, WriterConfig};
use intake_pipeline::{Outcome, RawMessage};
use read::{Input, Item};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use summary::{Progress, Summary, MESSAGE_TOO_LARGE, TRUNCATED_FRAME};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

/// Messages in the engine at once (processing or waiting for their commit).
pub const IN_FLIGHT: usize = 8192;
/// The writer's batch limit during an import (at least; `[writer] max_batch` if larger).
pub const MAX_BATCH: usize = 4096;
/// How often checkpoints are saved and the progress message refreshed.
const TICK: Duration = Duration::from_millis(500);

/// The arguments of `intake import`.
pub struct Options {
    /// The tenant every message is bound to.
    pub tenant: String,
    /// Files, folders and `-`.
    pub paths: Vec<PathBuf>,
    /// No progress bar and no summary; errors only.
    pub quiet: bool,
    /// Ignore saved checkpoints: read every input from its start.
    pub from_start: bool,
    /// Largest message kept (larger ones are not stored: `MESSAGE_TOO_LARGE`).
    pub max_message_bytes: usize,
}

/// Runs an import; exit status 0 when everything read was stored, 1 when something was
/// not (or an input could not be read), 130 / 143 when interrupted by SIGINT / SIGTERM.
pub async fn run(config: &Config, opts: Options) -> Result<ExitCode> {
    let Some(tenants) = load_tenants(&config.mappings_dir) else {
        return Ok(ExitCode::FAILURE);
    };
    if tenants.get(&opts.tenant).is_none() {
        bail!(
            "no tenant {:?} in {}",
            opts.tenant,
            config.mappings_dir.display()
        );
    }
    let paths = opts.paths.clone();
    let mut inputs = tokio::task::spawn_blocking(move || read::find(&paths)).await??;
    if inputs.iter().filter(|i| i.is_stdin()).count() > 1 {
        bail!("standard input (-) can be read only once");
    }
    let store = open_store(config).await?;
    store
        .prepare_serving()
        .await
        .context("preparing the database")?;

    let mut summary = Summary::default();
    let mut checkpoints = Vec::with_capacity(inputs.len());
    let mut active = Vec::with_capacity(inputs.len());
    for (i, input) in inputs.iter_mut().enumerate() {
        let saved = match (&input.key, opts.from_start) {
            (Some(key), false) => store.poll_cursor(&opts.tenant, key).await?,
            _ => None,
        };
        let saved = saved.and_then(|c| c.parse::<u64>().ok());
        input.start = saved.filter(|&o| o <= input.size).unwrap_or(0);
        // Imported to its end before: skipped (`--from-start` reads it again).
        if saved.is_some() && input.start == input.size {
            summary.skipped += 1;
        } else {
            active.push(i);
        }
        checkpoints.push(Checkpoint::at(input.start));
    }
    summary.inputs = active.len();
    let total = (!active.iter().any(|&i| inputs[i].is_stdin())).then(|| {
        active
            .iter()
            .map(|&i| inputs[i].size - inputs[i].start)
            .sum()
    });
    let progress = Progress::new(
        total,
        !opts.quiet && std::io::IsTerminal::is_terminal(&std::io::stderr()),
    );

    let writer_config = WriterConfig {
        max_batch: config.writer.max_batch.max(MAX_BATCH),
        max_wait: Duration::ZERO,
        // No one waits on an ACK here: batches are as large as throughput wants.
        max_batch_events: usize::MAX,
        queue: IN_FLIGHT,
    };
    let (writer, writer_task) = Writer::spawn(store.clone(), writer_config);
    let ingest = Ingest::new(TenantsHandle::new(Arc::new(tenants)), writer);
    let (tx, mut rx) = mpsc::channel(1024);
    let list = active
        .iter()
        .map(|&i| (inputs[i].path.clone(), inputs[i].kind, inputs[i].start))
        .collect();
    let limit = opts.max_message_bytes;
    let reader = std::thread::spawn(move || read::read_all(list, limit, tx));

    let signal = interrupt();
    tokio::pin!(signal);
    let mut tick = tokio::time::interval(TICK);
    let mut inflight: JoinSet<(usize, u64, u64, Outcome)> = JoinSet::new();
    let (mut reading, mut interrupted) = (true, None);
    let (mut base, mut answered) = (0u64, 0u64);
    loop {
        if !reading && inflight.is_empty() {
            break;
        }
        tokio::select! {
            code = &mut signal, if interrupted.is_none() => {
                interrupted = Some(code);
                reading = false;
                rx.close();
            }
            Some(joined) = inflight.join_next(), if !inflight.is_empty() => {
                let (i, seq, end, out) = joined.context("a message task failed")?;
                answered += 1;
                let stored = summary.record(&out);
                checkpoints[i].done(seq, end, stored);
                checkpoints[i].finish(inputs[i].size);
            }
            item = rx.recv(), if reading && inflight.len() < IN_FLIGHT => match item {
                None => reading = false,
                Some(Item::Message { input, seq, format, piece }) => {
                    let i = active[input];
                    summary.read += 1;
                    progress.set_bytes(base + piece.end - inputs[i].start);
                    let failed = match (piece.oversized, piece.truncated) {
                        (Some(_), _) => Some(MESSAGE_TOO_LARGE),
                        (None, true) => Some(TRUNCATED_FRAME),
                        (None, false) => None,
                    };
                    if let Some(code) = failed {
                        progress.println(format!(
                            "intake import: {}: the message ending at byte {} was not stored ({code})",
                            inputs[i].path.display(), piece.end
                        ));
                        summary.not_stored(code);
                        answered += 1;
                        checkpoints[i].done(seq, piece.end, false);
                        continue;
                    }
                    let raw = RawMessage::new(Some(opts.tenant.clone()), format, "import", piece.bytes);
                    let ingest = ingest.clone();
                    let end = piece.end;
                    inflight.spawn(async move { (i, seq, end, ingest.ingest(raw).await) });
                }
                Some(Item::Done { input, messages, ignored }) => {
                    let i = active[input];
                    base += inputs[i].size.saturating_sub(inputs[i].start);
                    summary.ignored_bytes += ignored;
                    checkpoints[i].read_all(messages);
                    checkpoints[i].finish(inputs[i].size);
                }
                Some(Item::Failed { input, error }) => {
                    let i = active[input];
                    base += inputs[i].size.saturating_sub(inputs[i].start);
                    progress.println(format!("intake import: {error}"));
                    summary.failed += 1;
                }
            },
            _ = tick.tick() => {
                save(&*store, &opts.tenant, &inputs, &mut checkpoints).await;
                progress.set_messages(answered);
            }
        }
    }
    save(&*store, &opts.tenant, &inputs, &mut checkpoints).await;
    drop(rx);
    drop(ingest);
    writer_task.await.ok();
    if interrupted.is_none() {
        reader.join().ok();
    }
    progress.finish();
    summary.interrupted = interrupted.is_some();
    if !opts.quiet {
        out!("{}", summary.render(progress.elapsed()));
    }
    Ok(match interrupted {
        Some(code) => ExitCode::from(code),
        None if summary.incomplete() => ExitCode::FAILURE,
        None => ExitCode::SUCCESS,
    })
}

/// Saves the checkpoints that moved. A failure is reported and retried at the next
/// tick: the checkpoint only makes a re-run faster, idempotency keeps it correct.
async fn save(store: &dyn Store, tenant: &str, inputs: &[Input], checkpoints: &mut [Checkpoint]) {
    for (input, c) in inputs.iter().zip(checkpoints.iter_mut()) {
        let Some(key) = &input.key else { continue };
        if !c.dirty {
            continue;
        }
        match store
            .set_poll_cursor(tenant, key, &c.offset.to_string())
            .await
        {
            Ok(()) => c.dirty = false,
            Err(e) => tracing::warn!(code = e.code(), "import checkpoint not saved"),
        }
    }
}

/// Resolves on the first SIGINT (130) or SIGTERM (143); a second one ends the process
/// at once.
async fn interrupt() -> u8 {
    let code = first_signal().await;
    tokio::spawn(async {
        first_signal().await;
        std::process::exit(130);
    });
    code
}

async fn first_signal() -> u8 {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            return tokio::select! {
                _ = tokio::signal::ctrl_c() => 130,
                _ = term.recv() => 143,
            };
        }
    }
    let _ = tokio::signal::ctrl_c().await;
    130
}
