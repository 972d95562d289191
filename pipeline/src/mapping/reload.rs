//! Hot reload of the mapping files while the engine runs.
//!
//! A [`TenantsHandle`] holds the current [`Tenants`] snapshot; a message takes one
//! snapshot ([`TenantsHandle::current`]) and is mapped entirely by it. The watcher
//! ([`spawn_watcher`]) polls the mappings folder, and when a file's content changed it
//! loads the whole folder again: a valid load replaces the snapshot, an invalid one is
//! refused (its `file:line:col` errors are logged) and the previous version keeps serving.
//!
//! Staged deploys: a [`Stage`] decides, per changed tenant, whether its new version may go
//! live (the binary runs the tenant's golden samples). A tenant whose new version is held
//! keeps its previous version while the other tenants' changes apply; the stage hears
//! which versions went live, to keep their history.

use super::{LoadError, Tenant, Tenants};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
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

/// Decides whether a tenant's changed mappings go live, and hears what went live.
pub trait Stage: Send + Sync {
    /// What keeps `tenant`'s new version (one tenant of the freshly loaded `all`) from
    /// going live, one line each (e.g. a golden sample that now fails); empty admits it.
    fn admit(&self, tenant: &Tenant, all: &Tenants) -> Vec<String>;

    /// These tenants' versions went live (after a start or a reload).
    fn applied(&self, tenants: &[Arc<Tenant>]);
}

/// Polls `dir` every `interval` and reloads the mappings when a file's content changed.
/// A load that fails validation, or lacks a tenant in `required` (tenants bound to a
/// listener), is refused and logged. Stops when `shutdown` turns true or its sender goes.
pub fn spawn_watcher(
    dir: PathBuf,
    handle: TenantsHandle,
    interval: Duration,
    required: BTreeSet<String>,
    stage: Option<Arc<dyn Stage>>,
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
            let (dir, handle, required, state, stage) = (
                dir.clone(),
                handle.clone(),
                required.clone(),
                state.clone(),
                stage.clone(),
            );
            let initial = std::mem::take(&mut first);
            let polled = tokio::task::spawn_blocking(move || {
                let mut tracker = state.lock().unwrap_or_else(|e| e.into_inner());
                if tracker.changed(&dir) {
                    reload(&dir, &handle, &required, initial, stage.as_deref());
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
/// snapshot, with each changed tenant that `stage` holds back kept at its previous
/// version. Logs the outcome and counts it, unless `initial` and nothing changed.
pub fn reload(
    dir: &Path,
    handle: &TenantsHandle,
    required: &BTreeSet<String>,
    initial: bool,
    stage: Option<&dyn Stage>,
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
    let old = handle.current();
    let (loaded, held) = match (loaded, stage) {
        (Ok(new), Some(stage)) => staged(dir, &old, new, stage),
        (loaded, _) => (loaded, Vec::new()),
    };
    if !held.is_empty() {
        for e in &held {
            tracing::error!(error = %e, "mapping change held back");
        }
        handle.inner.refused.fetch_add(1, Ordering::Relaxed);
    }
    match loaded {
        Ok(new) => {
            let changed = changes(&old, &new);
            if changed.is_empty() && !held.is_empty() {
                tracing::error!(
                    held = held.len(),
                    "mapping change refused: its samples fail; the previous version keeps serving"
                );
                return Outcome::Refused(held);
            }
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
            let live: Vec<Arc<Tenant>> =
                changed.iter().filter_map(|n| new.get(n).cloned()).collect();
            handle.replace(Arc::new(new));
            handle.inner.ok.fetch_add(1, Ordering::Relaxed);
            if let Some(stage) = stage {
                stage.applied(&live);
            }
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

/// `new` with every changed tenant that `stage` does not admit put back at its `old`
/// version (or left out, when it is new): the snapshot to serve, and why each was held.
fn staged(
    dir: &Path,
    old: &Tenants,
    new: Tenants,
    stage: &dyn Stage,
) -> (Result<Tenants, Vec<LoadError>>, Vec<LoadError>) {
    let mut held = Vec::new();
    let mut by_name: BTreeMap<String, Arc<Tenant>> = BTreeMap::new();
    for t in new.iter() {
        let unchanged = old.get(&t.name).is_some_and(|o| o.version == t.version);
        let problems = if unchanged {
            Vec::new()
        } else {
            stage.admit(t, &new)
        };
        if problems.is_empty() {
            by_name.insert(t.name.clone(), t.clone());
            continue;
        }
        held.extend(problems.into_iter().map(|p| LoadError {
            file: dir.join(&t.name),
            line: 0,
            column: 0,
            message: format!(
                    "version {} held back, {} keeps serving: {p}",
                    t.version,
                    old.get(&t.name)
                        .map_or("no version", |o| o.version.as_str())
                ),
        }));
        if let Some(o) = old.get(&t.name) {
            by_name.insert(o.name.clone(), o.clone());
        }
    }
    // Tenants removed from the folder stay removed: nothing of theirs is left to test.
    if held.is_empty() {
        return (Ok(new), held);
    }
    (Tenants::from_tenants(by_name), held)
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
        // The plugins beside the mappings are part of every enabling tenant's version.
        walk(&super::plugin::dir_beside(dir), 0, &mut entries);
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
