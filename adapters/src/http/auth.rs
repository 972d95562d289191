//! Who is calling: the request's bearer token, looked up by its hash among the tokens
//! file's entries (re-read when the file changes) and the configuration's own tokens.
//!
//! [`Auth::caller`] runs on the headers alone, before any body is read (see `guard.rs`).
//! Each route then declares the [`Scope`] it needs (`guard::need`), and a handler that acts
//! on a caller's behalf takes the [`Caller`] (its name is the actor in audit events).

use super::error::ApiError;
use super::tokens::{Scope, TokenEntry, TokensError, TokensFile, EVERY_TENANT};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// How often at most the tokens file is looked at for changes.
const RECHECK: Duration = Duration::from_millis(500);

/// The API's tokens.
#[derive(Debug, Default)]
pub struct Auth {
    /// Tokens from the configuration (`admin_token`, `[tenant_tokens]`), hashed at start.
    fixed: Vec<TokenEntry>,
    /// The tokens file, if any, and what was last read from it.
    file: Option<Watched>,
}

#[derive(Debug)]
struct Watched {
    path: PathBuf,
    state: Mutex<FileState>,
}

#[derive(Debug)]
struct FileState {
    checked: Instant,
    stamp: Option<(SystemTime, u64)>,
    tokens: Arc<Vec<TokenEntry>>,
}

/// The caller of a request, once its token is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The token's name.
    pub name: String,
    /// Its tenant, or `*`.
    pub tenant: String,
    /// Its scopes.
    pub scopes: Vec<Scope>,
}

impl Caller {
    /// Whether the caller has `scope` (`admin` has every scope).
    pub fn has(&self, scope: Scope) -> bool {
        self.scopes.contains(&scope) || self.scopes.contains(&Scope::Admin)
    }

    /// Whether the caller sees `tenant`.
    pub fn sees(&self, tenant: &str) -> bool {
        self.tenant == EVERY_TENANT || self.tenant == tenant
    }

    /// `Ok` when the caller has `scope`, else the 403 that names it.
    pub fn need(&self, scope: Scope) -> Result<(), ApiError> {
        match self.has(scope) {
            true => Ok(()),
            false => Err(ApiError::ScopeMissing(scope)),
        }
    }
}

impl Auth {
    /// The configuration's plaintext tokens (kept for existing set-ups): `admin` has the
    /// admin scope on every tenant; a `[tenant_tokens]` entry, named `tenant:<id>`, has
    /// every scope but admin on its tenant.
    pub fn new(
        admin: Option<&str>,
        tenant_tokens: impl IntoIterator<Item = (String, String)>,
        tokens_file: Option<PathBuf>,
    ) -> Result<Auth, TokensError> {
        let entry = |name: String, tenant: String, scopes: Vec<Scope>, secret: &str| TokenEntry {
            name,
            tenant,
            scopes,
            sha256: super::tokens::hash(secret),
            created_at: None,
        };
        let mut fixed: Vec<TokenEntry> = admin
            .map(|a| entry("admin".into(), EVERY_TENANT.into(), vec![Scope::Admin], a))
            .into_iter()
            .collect();
        for (tenant, secret) in tenant_tokens {
            let scopes = vec![Scope::Ingest, Scope::Read, Scope::Support, Scope::Phi];
            fixed.push(entry(format!("tenant:{tenant}"), tenant, scopes, &secret));
        }
        let file = match tokens_file {
            None => None,
            Some(path) => {
                let tokens = TokensFile::read(&path)?.tokens;
                Some(Watched {
                    state: Mutex::new(FileState {
                        checked: Instant::now(),
                        stamp: stamp(&path),
                        tokens: Arc::new(tokens),
                    }),
                    path,
                })
            }
        };
        Ok(Auth { fixed, file })
    }

    /// Whether no token at all is configured (every `/api` request gets 401).
    pub fn is_empty(&self) -> bool {
        self.fixed.is_empty() && self.file_tokens().is_empty()
    }

    /// The tenants the tokens file names (each must exist).
    pub fn file_tenants(&self) -> Vec<String> {
        self.file_tokens()
            .iter()
            .map(|t| t.tenant.clone())
            .filter(|t| t != EVERY_TENANT)
            .collect()
    }

    /// The caller the request's bearer token names, or 401.
    pub fn caller(&self, headers: &HeaderMap) -> Result<Caller, ApiError> {
        let secret = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or(ApiError::Unauthorized)?;
        self.caller_of(secret)
    }

    /// The caller token `secret` names, or 401.
    pub fn caller_of(&self, secret: &str) -> Result<Caller, ApiError> {
        self.caller_by_digest(&super::tokens::hash(secret))
    }

    /// The caller of the token whose SHA-256 (hex) is `digest`, or 401: how a console
    /// session, which keeps only the digest, finds its caller again on every request.
    pub fn caller_by_digest(&self, digest: &str) -> Result<Caller, ApiError> {
        let file = self.file_tokens();
        // Every entry is compared, so the time taken says nothing about which matched.
        let mut found = None;
        for t in self.fixed.iter().chain(file.iter()) {
            if t.matches(digest) && found.is_none() {
                found = Some(t);
            }
        }
        found
            .map(|t| Caller {
                name: t.name.clone(),
                tenant: t.tenant.clone(),
                scopes: t.scopes.clone(),
            })
            .ok_or(ApiError::Unauthorized)
    }

    /// The file's tokens, re-read when its modification time or size changed. A file
    /// that no longer reads keeps the tokens last read (and says so in the log).
    fn file_tokens(&self) -> Arc<Vec<TokenEntry>> {
        let Some(w) = &self.file else {
            return Arc::default();
        };
        let mut state = w.state.lock().expect("tokens lock");
        if state.checked.elapsed() >= RECHECK {
            state.checked = Instant::now();
            let now = stamp(&w.path);
            if now != state.stamp {
                match TokensFile::read(&w.path) {
                    Ok(f) => {
                        state.tokens = Arc::new(f.tokens);
                        state.stamp = now;
                        super::internal_events::TokensReloaded {
                            count: state.tokens.len(),
                        }
                        .emit();
                    }
                    Err(e) => super::internal_events::TokensFileInvalid { error: &e }.emit(),
                }
            }
        }
        state.tokens.clone()
    }
}

fn stamp(path: &std::path::Path) -> Option<(SystemTime, u64)> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

/// A handler's caller; `guard::auth_first` put it in the request (401 when absent).
impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Caller>()
            .cloned()
            .ok_or(ApiError::Unauthorized)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bearer(token: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            format!("Bearer {token}").parse().unwrap(),
        );
        h
    }

    #[test]
    fn configured_tokens_name_their_caller_and_scopes() {
        let auth = Auth::new(Some("root"), [("demo".into(), "d".into())], None).unwrap();
        let admin = auth.caller(&bearer("root")).unwrap();
        assert!(admin.sees("other") && admin.has(Scope::Phi) && admin.has(Scope::Admin));
        let demo = auth.caller(&bearer("d")).unwrap();
        assert_eq!(demo.name, "tenant:demo");
        assert!(demo.sees("demo") && !demo.sees("other"));
        assert!(demo.has(Scope::Phi) && !demo.has(Scope::Admin));
        assert_eq!(
            demo.need(Scope::Admin),
            Err(ApiError::ScopeMissing(Scope::Admin))
        );
        assert_eq!(auth.caller(&bearer("x")), Err(ApiError::Unauthorized));
        assert_eq!(auth.caller(&HeaderMap::new()), Err(ApiError::Unauthorized));
    }
}
