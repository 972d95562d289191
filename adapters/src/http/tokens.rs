//! Named, scoped API tokens, stored hashed.
//!
//! A token is a random secret (`intake_` and 64 hex digits) that `intake token create`
//! prints once. Only its SHA-256 is kept, in the tokens file (TOML, `[[token]]` tables),
//! so no plaintext token needs to sit in `intake.toml` or on disk. Each token has a name
//! (the actor in audit events), one tenant or `*` (every tenant), and scopes:
//!
//! | scope | grants |
//! |---|---|
//! | `ingest` | posting HL7 v2 and FHIR |
//! | `read` | events and streams |
//! | `support` | dead letters and inbound messages, masked; replay and discard |
//! | `phi` | raw messages, and searches by business key (MRN, visit number) |
//! | `admin` | every scope, and the admin routes (`/metrics`, mapping rollback) |

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::Path;
use subtle::ConstantTimeEq;

/// What a token may do (see the module table).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Post messages.
    Ingest,
    /// Read events and streams.
    Read,
    /// Dead letters and messages, masked; replay and discard.
    Support,
    /// Raw messages and business-key searches.
    Phi,
    /// Everything, and the admin routes.
    Admin,
}

impl Scope {
    /// Every scope, in order.
    pub const ALL: [Scope; 5] = [
        Scope::Ingest,
        Scope::Read,
        Scope::Support,
        Scope::Phi,
        Scope::Admin,
    ];

    /// The scope's name as written in the tokens file and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Scope::Ingest => "ingest",
            Scope::Read => "read",
            Scope::Support => "support",
            Scope::Phi => "phi",
            Scope::Admin => "admin",
        }
    }

    /// Reads a scope name.
    pub fn parse(name: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|s| s.name() == name)
    }
}

/// The tenant a token sees: `*` in the file for every tenant.
pub const EVERY_TENANT: &str = "*";

/// One `[[token]]` table of the tokens file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenEntry {
    /// Unique name: the actor in audit events and logs.
    pub name: String,
    /// Tenant id, or `*` for every tenant.
    pub tenant: String,
    /// What the token may do.
    pub scopes: Vec<Scope>,
    /// Lower-case hex SHA-256 of the token.
    pub sha256: String,
    /// When it was created (RFC 3339), for the operator's eyes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
}

impl TokenEntry {
    /// Whether this entry's hash is `digest` ([`hash`] of the presented token), compared
    /// in constant time.
    pub fn matches(&self, digest: &str) -> bool {
        bool::from(self.sha256.as_bytes().ct_eq(digest.as_bytes()))
    }
}

/// The tokens file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokensFile {
    /// The tokens, in the order they were created.
    #[serde(default, rename = "token")]
    pub tokens: Vec<TokenEntry>,
}

/// Why a tokens file could not be used. Never quotes the file's content.
#[derive(Debug, thiserror::Error)]
pub enum TokensError {
    /// The file could not be read or written.
    #[error("tokens file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not a valid tokens file.
    #[error("tokens file {path}: {what}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong (a line and a column, or a duplicate name).
        what: String,
    },
}

impl TokensFile {
    /// Reads `path`; a missing file holds no tokens.
    pub fn read(path: &Path) -> Result<TokensFile, TokensError> {
        let shown = path.display().to_string();
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(source) => {
                return Err(TokensError::Io {
                    path: shown,
                    source,
                })
            }
        };
        let file: TokensFile = toml::from_str(&text).map_err(|e| TokensError::Invalid {
            path: shown.clone(),
            // The span, not toml's message: a message may quote a line (a hash, a name).
            what: match e.span() {
                Some(span) => {
                    let line = text[..span.start].matches('\n').count() + 1;
                    format!(
                        "line {line}: not a [[token]] table with name, tenant, scopes and sha256"
                    )
                }
                None => "not a tokens file".into(),
            },
        })?;
        file.check()
            .map_err(|what| TokensError::Invalid { path: shown, what })?;
        Ok(file)
    }

    /// Checks names are unique and hashes well formed.
    fn check(&self) -> Result<(), String> {
        for (i, t) in self.tokens.iter().enumerate() {
            let n = i + 1;
            if t.name.is_empty() || self.tokens[..i].iter().any(|o| o.name == t.name) {
                return Err(format!("token {n}: names must be unique and not empty"));
            }
            if t.sha256.len() != 64 || !t.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(format!("token {n} ({}): sha256 is 64 hex digits", t.name));
            }
            if t.scopes.is_empty() {
                return Err(format!("token {n} ({}): no scopes", t.name));
            }
        }
        Ok(())
    }

    /// Writes the file (mode 0600), replacing it atomically.
    pub fn write(&self, path: &Path) -> Result<(), TokensError> {
        let io = |source| TokensError::Io {
            path: path.display().to_string(),
            source,
        };
        let mut text = String::from(
            "# intake API tokens: SHA-256 hashes only (intake token create|list|revoke).\n\n",
        );
        text.push_str(&toml::to_string(self).expect("tokens serialize"));
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let tmp = path.with_extension("toml.tmp");
        {
            use std::io::Write;
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create(true).truncate(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut f = options.open(&tmp).map_err(io)?;
            f.write_all(text.as_bytes()).map_err(io)?;
            f.sync_all().map_err(io)?;
        }
        std::fs::rename(&tmp, path).map_err(io)
    }
}

/// Lower-case hex SHA-256 of a token.
pub fn hash(secret: &str) -> String {
    intake_pipeline::hex(&Sha256::digest(secret.as_bytes()))
}

/// A new random token: `intake_` and 32 bytes from the OS's generator, in hex.
pub fn generate() -> String {
    let mut bytes = [0u8; 32];
    getrandom::getrandom(&mut bytes).expect("the OS random generator");
    format!("intake_{}", intake_pipeline::hex(&bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_round_trips_through_the_file_as_its_hash_only() {
        let dir = std::env::temp_dir().join(format!("intake-tokens-{}", std::process::id()));
        let path = dir.join("tokens.toml");
        let secret = generate();
        assert!(secret.starts_with("intake_") && secret.len() == 71);
        let file = TokensFile {
            tokens: vec![TokenEntry {
                name: "epic-adt".into(),
                tenant: "demo".into(),
                scopes: vec![Scope::Ingest],
                sha256: hash(&secret),
                created_at: None,
            }],
        };
        file.write(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains(&secret));
        let back = TokensFile::read(&path).unwrap();
        assert_eq!(back, file);
        let t = &back.tokens[0];
        assert!(t.matches(&hash(&secret)) && !t.matches(&hash("intake_00")));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_bad_file_is_refused_without_quoting_it() {
        let dir = std::env::temp_dir().join(format!("intake-tokens-bad-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("tokens.toml");
        std::fs::write(&path, "[[token]]\nname = \"a\"\ntenant = \"SECRETISH\"\nscopes = [\"root\"]\nsha256 = \"00\"\n").unwrap();
        let e = TokensFile::read(&path).unwrap_err().to_string();
        assert!(
            e.contains("line ") && !e.contains("SECRETISH") && !e.contains("root"),
            "{e}"
        );
        std::fs::write(&path, format!("[[token]]\nname = \"a\"\ntenant = \"*\"\nscopes = [\"read\"]\nsha256 = \"{}\"\n[[token]]\nname = \"a\"\ntenant = \"*\"\nscopes = [\"read\"]\nsha256 = \"{}\"\n", hash("x"), hash("y"))).unwrap();
        let e = TokensFile::read(&path).unwrap_err().to_string();
        assert!(e.contains("token 2: names must be unique"), "{e}");
        assert!(TokensFile::read(&dir.join("absent.toml"))
            .unwrap()
            .tokens
            .is_empty());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
