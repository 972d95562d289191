//! Hot reload of the mapping files while the engine runs.
//!
//! A [`TenantsHandle`] holds the current [`Tenants`] snapshot; a message takes one
//! snapshot ([`TenantsHandle::current`]) and is mapped entirely by it. The watcher
//! ([`spawn_watcher`]) polls the mappings folder, and when a file's content changed it
//! loads the whole folder again: a valid load replaces the snapshot, an invalid one is
//! refused (its `file:line:col` errors are logged) and the previous version keeps serving.

use super::{LoadError, Tenants};
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The shared, swappable tenants snapshot. Cheap to clone: clones share one snapshot.
#[derive(Clone, Debug)]
pub struct TenantsHandle {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    current: RwLock<Arc<Tenants>>,
    ok: AtomicU64,
    refused: AtomicU64,
}

/// How many reloads were applied and how many were refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReloadStats {
    /// Changes that loaded and now serve.
    pub ok: u64,
    /// Changes refused (invalid, or dropping a bound tenant); the previous version serves.
    pub refused: u64,
}

impl TenantsHandle {
    /// A handle serving `tenants`.
    pub fn new(tenants: Arc<Tenants>) -> Self {
        TenantsHandle {
            inner: Arc::new(Inner {
                current: RwLock::new(tenants),
                ok: AtomicU64::new(0),
                refused: AtomicU64::new(0),
            }),
        }
    }

    /// The current snapshot. Take it once per message and map the whole message with it.
    pub fn current(&self) -> Arc<Tenants> {
        self.inner
            .current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Replaces the snapshot; messages already mapping keep the one they took.
    pub fn replace(&self, tenants: Arc<Tenants>) {
        *self
            .inner
            .current
            .write()
            .unwrap_or_else(|e| e.into_inner()) = tenants;
    }

    /// Reload outcomes so far.
    pub fn stats(&self) -> ReloadStats {
        ReloadStats {
            ok: self.inner.ok.load(Ordering::Relaxed),
            refused: self.inner.refused.load(Ordering::Relaxed),
        }
    }
}

/// Polls `dir` every `interval` and reloads the mappings when a file's content changed.
/// A load that fails validation, or lacks a tenant in `required` (tenants bound to a
/// listener), is refused and logged. Stops when `shutdown` turns true or its sender goes.
pub fn spawn_watcher(
    dir: PathBuf,
    handle: TenantsHandle,
    interval: Duration,
    required: BTreeSet<String>,
    mut shutdown: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(interval.max(Duration::from_millis(10)));
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let state = Arc::new(std::sync::Mutex::new(Tracker::default()));
        // The first poll (at once) checks the folder against the snapshot loaded before
        // the watcher started, so a change made in between is not missed.
        let mut first = true;
        loop {
            if *shutdown.borrow() {
                return;
            }
            tokio::select! {
                _ = ticks.tick() => {}
                r = shutdown.changed() => if r.is_err() || *shutdown.borrow() { return },
            }
            let (dir, handle, required, state) =
                (dir.clone(), handle.clone(), required.clone(), state.clone());
            let initial = std::mem::take(&mut first);
            let polled = tokio::task::spawn_blocking(move || {
                let mut tracker = state.lock().unwrap_or_else(|e| e.into_inner());
                if tracker.changed(&dir) {
                    reload(&dir, &handle, &required, initial);
                }
            })
            .await;
            if polled.is_err() {
                tracing::error!("mapping watcher poll failed; retrying at the next interval");
            }
        }
    })
}

/// What a reload did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The new snapshot serves; these tenants changed version (or were added/removed).
    Applied(Vec<String>),
    /// The load was refused with these errors; the previous snapshot serves.
    Refused(Vec<LoadError>),
}

/// Loads `dir` and, when valid and every `required` tenant is present, replaces the
/// snapshot. Logs the outcome and counts it, unless `initial` and nothing changed.
pub fn reload(
    dir: &Path,
    handle: &TenantsHandle,
    required: &BTreeSet<String>,
    initial: bool,
) -> Outcome {
    let loaded = Tenants::load(dir).and_then(|t| {
        let missing: Vec<LoadError> = required
            .iter()
            .filter(|r| t.get(r).is_none())
            .map(|r| LoadError {
                file: dir.join(r),
                line: 0,
                column: 0,
                message: format!(
                    "tenant {r} is bound to a listener: its mappings cannot be removed"
                ),
            })
            .collect();
        if missing.is_empty() {
            Ok(t)
        } else {
            Err(missing)
        }
    });
    match loaded {
        Ok(new) => {
            let old = handle.current();
            let changed = changes(&old, &new);
            if initial && changed.is_empty() {
                return Outcome::Applied(changed);
            }
            for name in &changed {
                match (old.get(name), new.get(name)) {
                    (_, Some(t)) => tracing::info!(
                        tenant = %name,
                        version = %t.version,
                        previous = %old.get(name).map(|o| o.version.as_str()).unwrap_or("-"),
                        "mappings reloaded"
                    ),
                    (Some(_), None) => tracing::warn!(tenant = %name, "tenant removed"),
                    (None, None) => {}
                }
            }
            handle.replace(Arc::new(new));
            handle.inner.ok.fetch_add(1, Ordering::Relaxed);
            Outcome::Applied(changed)
        }
        Err(errors) => {
            for e in &errors {
                tracing::error!(error = %e, "mapping file error");
            }
            tracing::error!(
                errors = errors.len(),
                "mapping change refused; the previous version keeps serving"
            );
            handle.inner.refused.fetch_add(1, Ordering::Relaxed);
            Outcome::Refused(errors)
        }
    }
}

/// Tenants added, removed, or with another version.
fn changes(old: &Tenants, new: &Tenants) -> Vec<String> {
    let names: BTreeSet<&str> = old
        .iter()
        .chain(new.iter())
        .map(|t| t.name.as_str())
        .collect();
    names
        .into_iter()
        .filter(|n| old.get(n).map(|t| &t.version) != new.get(n).map(|t| &t.version))
        .map(str::to_string)
        .collect()
}

/// Remembers the folder's last fingerprint and content hash.
#[derive(Default)]
struct Tracker {
    fingerprint: Option<Vec<(PathBuf, u64, Option<SystemTime>)>>,
    content: Option<[u8; 32]>,
}

impl Tracker {
    /// True when some file's content (or the set of files) changed since the last call;
    /// true on the first call. Cheap (metadata only) unless a fingerprint changed.
    fn changed(&mut self, dir: &Path) -> bool {
        let mut entries = Vec::new();
        walk(dir, 0, &mut entries);
        entries.sort();
        if self.fingerprint.as_ref() == Some(&entries) {
            return false;
        }
        let mut hash = Sha256::new();
        for (path, size, _) in &entries {
            hash.update(path.as_os_str().as_encoded_bytes());
            hash.update([0]);
            if *size != u64::MAX {
                match std::fs::read(path) {
                    Ok(bytes) => hash.update(&bytes),
                    Err(_) => hash.update([0xff]),
                }
            }
            hash.update([0]);
        }
        let content: [u8; 32] = hash.finalize().into();
        self.fingerprint = Some(entries);
        self.content.replace(content) != Some(content)
    }
}

/// (path, size, mtime) of every file under `dir`; directories as (path, u64::MAX, None).
fn walk(dir: &Path, depth: u32, out: &mut Vec<(PathBuf, u64, Option<SystemTime>)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.filter_map(Result::ok) {
        let path = entry.path();
        let Ok(meta) = std::fs::metadata(&path) else {
            continue;
        };
        if meta.is_dir() {
            out.push((path.clone(), u64::MAX, None));
            if depth < 8 {
                walk(&path, depth + 1, out);
            }
        } else {
            out.push((path, meta.len(), meta.modified().ok()));
        }
    }
}

#[cfg(test)]
mod tests;
