//! `intake token create|list|revoke`: the named, scoped API tokens in the tokens file.
//!
//! `create` prints the new token once, on stdout; the file keeps only its SHA-256. A
//! running `intake serve` reads the file again when it changes, so a new token works and
//! a revoked one stops within a second, without a restart.

use crate::config::Config;
use crate::context::load_tenants;
use anyhow::{bail, Context, Result};
use clap::Subcommand;
use intake_adapters::http::tokens::{self, Scope, TokenEntry, TokensFile, EVERY_TENANT};
use std::process::ExitCode;

/// `intake token ...`.
#[derive(Subcommand)]
pub enum TokenCommand {
    /// Create a token and print it once (only its hash is stored).
    Create {
        /// Unique name: the actor in audit events.
        #[arg(long)]
        name: String,
        /// The tenant it sees, or `*` for every tenant.
        #[arg(long)]
        tenant: String,
        /// ingest, read, support, phi or admin; repeat or separate with commas.
        #[arg(long = "scope", required = true, value_delimiter = ',')]
        scopes: Vec<String>,
    },
    /// List the tokens (names, tenants, scopes: never a secret) as JSON lines.
    List,
    /// Remove a token by name.
    Revoke {
        /// The token's name.
        #[arg(long)]
        name: String,
    },
}

/// Runs a `token` subcommand on the configured tokens file.
pub fn run(config: &Config, command: TokenCommand) -> Result<ExitCode> {
    let path = &config.tokens_file;
    let mut file = TokensFile::read(path)?;
    match command {
        TokenCommand::Create {
            name,
            tenant,
            scopes,
        } => {
            let scopes = scopes
                .iter()
                .map(|s| {
                    Scope::parse(s.trim()).with_context(|| {
                        format!("unknown scope {s:?}: ingest, read, support, phi or admin")
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            if name.is_empty() || file.tokens.iter().any(|t| t.name == name) {
                bail!("a token named {name:?} exists already (names are unique; revoke it first)");
            }
            if tenant != EVERY_TENANT {
                let known =
                    load_tenants(&config.mappings_dir).is_some_and(|t| t.get(&tenant).is_some());
                if !known {
                    bail!(
                        "no tenant {tenant:?} in {} (or use --tenant '*')",
                        config.mappings_dir.display()
                    );
                }
            }
            let secret = tokens::generate();
            file.tokens.push(TokenEntry {
                name: name.clone(),
                tenant,
                scopes,
                sha256: tokens::hash(&secret),
                created_at: Some(
                    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                ),
            });
            file.write(path)?;
            eprintln!(
                "token {name:?} stored hashed in {}; it is shown once:",
                path.display()
            );
            out!("{secret}");
        }
        TokenCommand::List => {
            for t in &file.tokens {
                let scopes: Vec<_> = t.scopes.iter().map(|s| s.name()).collect();
                out!(
                    "{}",
                    serde_json::json!({"name": t.name, "tenant": t.tenant, "scopes": scopes, "created_at": t.created_at})
                );
            }
        }
        TokenCommand::Revoke { name } => {
            let before = file.tokens.len();
            file.tokens.retain(|t| t.name != name);
            if file.tokens.len() == before {
                bail!("no token named {name:?} in {}", path.display());
            }
            file.write(path)?;
            eprintln!("token {name:?} revoked");
        }
    }
    Ok(ExitCode::SUCCESS)
}
