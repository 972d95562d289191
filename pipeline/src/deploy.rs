//! Staged deploys, the rollback side: a tenant's mapping versions that went live are kept
//! in the store ([`MappingHistory`]) with their files; [`rollback`] writes an earlier
//! version's files back into the tenant's folder, where hot reload picks them up (a version
//! that was live before goes live again without its samples: see the binary's stage).

use crate::audit::{audit_event, Actor, AuditAction};
use crate::mapping::{LoadError, Tenants};
use crate::store::{ExpectedVersion, Store, StoreError};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// What a rollback did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RolledBack {
    /// The tenant.
    pub tenant: String,
    /// The version that was live (the newest row of the history).
    pub from: String,
    /// The version restored.
    pub to: String,
    /// The history row restored.
    pub seq: i64,
    /// The files written into the tenant's folder.
    pub written: Vec<String>,
    /// The files removed from it (not part of the restored version).
    pub removed: Vec<String>,
}

/// Why a rollback could not happen. Messages name tenants, versions and files only.
#[derive(Debug, thiserror::Error)]
pub enum RollbackError {
    /// The history holds no earlier version to go back to.
    #[error("tenant {0} has no earlier mapping version in the history")]
    NothingToRollBack(String),
    /// `--to` names no row of this tenant's history.
    #[error("tenant {tenant} has no mapping version #{seq} in the history")]
    NoSuchVersion {
        /// The tenant.
        tenant: String,
        /// The row asked for.
        seq: i64,
    },
    /// The restored files would not load (e.g. another tenant now claims its facility).
    #[error("the restored version of {tenant} does not load: {}", first(.errors))]
    DoesNotLoad {
        /// The tenant.
        tenant: String,
        /// The load errors, located in a scratch copy of the folder.
        errors: Vec<LoadError>,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The tenant's folder could not be written.
    #[error("writing {path}: {message}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The I/O error.
        message: String,
    },
}

/// The rollback error of an I/O failure at `path`.
fn io_error(path: &Path, e: std::io::Error) -> RollbackError {
    RollbackError::Io {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

fn first(errors: &[LoadError]) -> String {
    errors.first().map(ToString::to_string).unwrap_or_default()
}

/// Returns `tenant` (in the mappings folder `dir`) to an earlier version: the history row
/// `to`, else the newest one whose version differs from the live one. The files are
/// checked in a scratch copy of `dir` first (the whole folder must load), then written into
/// `dir/<tenant>/`; mapping files not in that version are removed. The rollback is
/// recorded as a new history row (origin `rollback`), keeping `keep` rows, and audited as
/// `actor`'s on the tenant's `Audit` stream.
pub async fn rollback(
    store: &dyn Store,
    dir: &Path,
    tenant: &str,
    to: Option<i64>,
    keep: usize,
    actor: &Actor,
) -> Result<RolledBack, RollbackError> {
    let rows = store.mapping_history(tenant, i64::MAX).await?;
    let live = rows
        .first()
        .ok_or_else(|| RollbackError::NothingToRollBack(tenant.to_string()))?;
    let target = match to {
        Some(seq) => rows
            .iter()
            .find(|r| r.seq == seq)
            .ok_or(RollbackError::NoSuchVersion {
                tenant: tenant.to_string(),
                seq,
            })?,
        None => rows
            .iter()
            .find(|r| r.version != live.version)
            .ok_or_else(|| RollbackError::NothingToRollBack(tenant.to_string()))?,
    };
    let files =
        store
            .mapping_files(tenant, target.seq)
            .await?
            .ok_or(RollbackError::NoSuchVersion {
                tenant: tenant.to_string(),
                seq: target.seq,
            })?;
    verify(dir, tenant, &files, &target.version)?;
    let (written, removed) = restore(&dir.join(tenant), &files)?;
    store
        .record_mapping_version(tenant, &target.version, "rollback", &files, keep)
        .await?;
    let done = RolledBack {
        tenant: tenant.to_string(),
        from: live.version.clone(),
        to: target.version.clone(),
        seq: target.seq,
        written,
        removed,
    };
    let details = serde_json::json!({
        "from": done.from, "to": done.to, "seq": done.seq,
        "written": done.written, "removed": done.removed,
    });
    let event = audit_event(
        AuditAction::MappingRolledBack,
        actor,
        tenant,
        details,
        chrono::Utc::now(),
    );
    store
        .append(
            ExpectedVersion::Any,
            &[event],
            crate::audit::AUDIT_CREATED_BY,
        )
        .await?;
    Ok(done)
}

/// Loads a scratch copy of `dir` whose `tenant` folder holds `files`: the whole folder must
/// load and give `tenant` the version recorded.
fn verify(
    dir: &Path,
    tenant: &str,
    files: &BTreeMap<String, String>,
    version: &str,
) -> Result<(), RollbackError> {
    let loaded = load_with(dir, tenant, files)?;
    match loaded.get(tenant) {
        Some(t) if t.version == version => Ok(()),
        _ => Err(RollbackError::DoesNotLoad {
            tenant: tenant.to_string(),
            errors: vec![LoadError {
                file: dir.join(tenant),
                line: 0,
                column: 0,
                message: format!("the restored files do not give version {version}"),
            }],
        }),
    }
}

/// Loads a scratch copy of `dir` whose `tenant` folder holds `files` (the other tenants
/// as they are): what those files would give, beside today's other tenants.
fn load_with(
    dir: &Path,
    tenant: &str,
    files: &BTreeMap<String, String>,
) -> Result<Tenants, RollbackError> {
    let scratch = tempfile_dir().map_err(|e| io_error(dir, e))?;
    for entry in std::fs::read_dir(dir).map_err(|e| io_error(dir, e))? {
        let entry = entry.map_err(|e| io_error(dir, e))?;
        let name = entry.file_name();
        if entry.path().is_dir() && name != *tenant {
            copy_dir(&entry.path(), &scratch.0.join(&name))
                .map_err(|e| io_error(&entry.path(), e))?;
        }
    }
    restore(&scratch.0.join(tenant), files)?;
    let plugins = crate::mapping::plugin::dir_beside(dir);
    Tenants::load_with(&scratch.0, &plugins).map_err(|errors| RollbackError::DoesNotLoad {
        tenant: tenant.to_string(),
        errors,
    })
}

/// The mappings of `dir` with `tenant` at its recorded version `seq` (row of its history):
/// what `intake remap` and the remap route compare stored messages with.
pub async fn recorded_version(
    store: &dyn Store,
    dir: &Path,
    tenant: &str,
    seq: i64,
) -> Result<Tenants, RollbackError> {
    let files = store
        .mapping_files(tenant, seq)
        .await?
        .ok_or(RollbackError::NoSuchVersion {
            tenant: tenant.to_string(),
            seq,
        })?;
    load_with(dir, tenant, &files)
}

/// Writes `files` into `folder` and removes the mapping files (`*.yaml`, `*.yml`,
/// `tables/*`) that are not among them. Returns what was written and removed.
fn restore(
    folder: &Path,
    files: &BTreeMap<String, String>,
) -> Result<(Vec<String>, Vec<String>), RollbackError> {
    let mut removed = Vec::new();
    for sub in ["", "tables"] {
        let Ok(entries) = std::fs::read_dir(folder.join(sub)) else {
            continue;
        };
        for entry in entries.filter_map(Result::ok) {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            let rel = if sub.is_empty() {
                name.clone()
            } else {
                format!("{sub}/{name}")
            };
            let mapping = if sub.is_empty() {
                name.ends_with(".yaml") || name.ends_with(".yml")
            } else {
                path.is_file()
            };
            if mapping && !files.contains_key(&rel) {
                std::fs::remove_file(&path).map_err(|e| io_error(&path, e))?;
                removed.push(rel);
            }
        }
    }
    let mut written = Vec::new();
    for (rel, text) in files {
        // Only plain relative names were recorded; refuse anything that climbs out.
        if rel.split('/').any(|p| p.is_empty() || p == "..") || rel.starts_with('/') {
            continue;
        }
        let path = folder.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| io_error(parent, e))?;
        }
        if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
            std::fs::write(&path, text).map_err(|e| io_error(&path, e))?;
            written.push(rel.clone());
        }
    }
    removed.sort();
    Ok((written, removed))
}

/// A scratch folder removed when dropped.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn tempfile_dir() -> std::io::Result<Scratch> {
    let path = std::env::temp_dir().join(format!("intake-rollback-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&path)?;
    Ok(Scratch(path))
}

fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}
