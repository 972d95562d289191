//! The subcommands other than `serve`.

use crate::config::Config;
use crate::Command;
use anyhow::{bail, Context, Result};
use intake_adapters::mllp::client::{split_messages, MllpClient};
use intake_pipeline::mapping::Tenants;
use intake_pipeline::store::{self, EventQuery, Store, StoreOptions};
use intake_pipeline::{process, Disposition, RawMessage};
use serde_json::json;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// Runs one subcommand.
pub async fn run(config_file: Option<&Path>, command: Command) -> Result<ExitCode> {
    let config = Config::load(config_file)?;
    init_logging();
    match command {
        Command::Serve => crate::serve::serve(config).await,
        Command::Migrate => {
            let store = open_store(&config).await?;
            store.migrate().await?;
            out!("migrations applied to {}", redact_url(&config.database_url));
            Ok(ExitCode::SUCCESS)
        }
        Command::Check { mappings } => Ok(check(&mappings.unwrap_or(config.mappings_dir))),
        Command::Map { tenant, files } => map(&config, &tenant, &files),
        Command::Test {
            dir,
            mappings,
            update,
        } => match load_tenants(&mappings.unwrap_or(config.mappings_dir)) {
            Some(tenants) => crate::golden::run(&dir, &tenants, update),
            None => Ok(ExitCode::FAILURE),
        },
        Command::Send { to, timeout, files } => {
            send(&to, Duration::from_secs(timeout), &files).await
        }
        Command::Dlq { command } => crate::dlq::run(&config, command).await,
        Command::Events {
            tenant,
            stream,
            after,
            follow,
        } => events(&config, tenant, stream, after, follow).await,
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("INTAKE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"))
        // lapin logs whole frames (event bodies, so PHI) at debug and trace: never more
        // than its warnings, whatever INTAKE_LOG asks for.
        .add_directive("lapin=warn".parse().expect("valid directive"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

/// Opens the configured store: SQLite (the embedded default) or PostgreSQL.
pub async fn open_store(config: &Config) -> Result<Arc<dyn Store>> {
    let options = StoreOptions {
        outbox: config.broker().is_some(),
    };
    store::open(&config.database_url, options)
        .await
        .with_context(|| format!("opening the database {}", redact_url(&config.database_url)))
}

/// A database URL without its password, for messages.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let creds = &url[scheme + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// Loads mappings, printing every error as `file:line:col: message`.
pub fn load_tenants(dir: &Path) -> Option<Tenants> {
    match Tenants::load(dir) {
        Ok(t) => Some(t),
        Err(errors) => {
            for e in &errors {
                eprintln!("{e}");
            }
            eprintln!("{} error(s) in {}", errors.len(), dir.display());
            None
        }
    }
}

fn check(dir: &Path) -> ExitCode {
    let Some(tenants) = load_tenants(dir) else {
        return ExitCode::FAILURE;
    };
    for t in tenants.iter() {
        let codes: Vec<&str> = t.rules.message_codes().collect();
        let types: Vec<&str> = t.fhir.rules.resource_types().collect();
        let fhir = if types.is_empty() {
            String::new()
        } else {
            format!("; FHIR {}", types.join(", "))
        };
        out!(
            "ok: tenant {} (mapping version {}): {}{fhir}",
            t.name,
            t.version,
            codes.join(", ")
        );
    }
    ExitCode::SUCCESS
}

fn map(config: &Config, tenant: &str, files: &[PathBuf]) -> Result<ExitCode> {
    let Some(tenants) = load_tenants(&config.mappings_dir) else {
        return Ok(ExitCode::FAILURE);
    };
    if tenants.get(tenant).is_none() {
        bail!("no tenant {tenant:?} in {}", config.mappings_dir.display());
    }
    let mut failed = false;
    let mut out = std::io::stdout().lock();
    for file in files {
        let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
        // A FHIR file (.json / .xml) is one resource or Bundle, mapped as if posted.
        let (channel, messages) = if is_fhir_file(file) {
            ("fhir", vec![bytes])
        } else {
            ("map", split_messages(&bytes))
        };
        for (i, message) in messages.into_iter().enumerate() {
            let p = process(
                RawMessage::new(Some(tenant.into()), channel, message),
                &tenants,
            );
            let line = match &p.disposition {
                Disposition::Events(events) => {
                    json!({"file": file, "message": i + 1, "events": events})
                }
                Disposition::DeadLetter { rejection, .. } => {
                    failed = true;
                    json!({"file": file, "message": i + 1, "dead_letter": {
                        "stage": rejection.reason.stage(), "code": rejection.reason.code(), "detail": rejection.detail,
                    }})
                }
            };
            writeln!(out, "{}", serde_json::to_string_pretty(&line)?)?;
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// Whether a file holds FHIR (a resource or Bundle): its extension is .json or .xml.
pub fn is_fhir_file(path: &Path) -> bool {
    path.extension()
        .and_then(|x| x.to_str())
        .is_some_and(|x| x.eq_ignore_ascii_case("json") || x.eq_ignore_ascii_case("xml"))
}

async fn send(to: &str, timeout: Duration, files: &[PathBuf]) -> Result<ExitCode> {
    let mut client = MllpClient::connect(to, timeout)
        .await
        .with_context(|| format!("connecting to {to}"))?;
    let (mut sent, mut accepted) = (0, 0);
    for file in files {
        let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
        for message in split_messages(&bytes) {
            let ack = client
                .send(&message)
                .await
                .with_context(|| format!("sending {}", file.display()))?;
            sent += 1;
            let code = ack
                .split('\r')
                .find(|s| s.starts_with("MSA"))
                .and_then(|s| s.get(4..6))
                .unwrap_or("");
            if code == "AA" || code == "CA" {
                accepted += 1;
            }
            out!("{}: {}", file.display(), code);
            for segment in ack.split('\r').filter(|s| !s.is_empty()) {
                out!("  {segment}");
            }
        }
    }
    eprintln!("sent {sent} message(s), {accepted} accepted");
    Ok(if sent == accepted {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

async fn events(
    config: &Config,
    tenant: Option<String>,
    stream: Option<uuid::Uuid>,
    mut after: i64,
    follow: bool,
) -> Result<ExitCode> {
    let store = open_store(config).await?;
    if config.database_url.starts_with("sqlite:") {
        store.migrate().await?; // a fresh embedded database starts empty
    }
    let mut out = std::io::stdout();
    loop {
        let q = EventQuery {
            tenant: tenant.clone(),
            stream_id: stream,
            after,
            limit: 1000,
        };
        let batch = store.read_events(&q).await?;
        for e in &batch {
            writeln!(out, "{}", serde_json::to_string(e)?)?;
            after = e.global_position;
        }
        out.flush()?;
        if batch.len() < 1000 {
            if !follow {
                return Ok(ExitCode::SUCCESS);
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}
