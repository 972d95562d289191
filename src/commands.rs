//! Dispatches a subcommand to the file that runs it.

use crate::cli::{Command, ProjectionsCommand, StreamsCommand};
use crate::config::Config;
use crate::context::{load_tenants, open_store, redact_url};
use anyhow::Result;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

/// Runs one subcommand.
pub async fn run(config_file: Option<&Path>, command: Command) -> Result<ExitCode> {
    let config = Config::load(config_file)?;
    // An import logs no line per message unless INTAKE_LOG asks: the summary counts them.
    init_logging(match command {
        Command::Import { .. } => "warn",
        _ => "info,sqlx=warn",
    });
    match command {
        Command::Serve => crate::serve::serve(config).await,
        Command::Migrate => {
            let store = open_store(&config).await?;
            store.migrate().await?;
            out!("migrations applied to {}", redact_url(&config.database_url));
            Ok(ExitCode::SUCCESS)
        }
        Command::Check {
            mappings,
            json,
            junit,
        } => {
            // A configuration file's tenant names are checked against its own folder.
            let own = config_file.is_some()
                && (mappings.is_none() || mappings.as_ref() == Some(&config.mappings_dir));
            let dir = mappings.unwrap_or_else(|| config.mappings_dir.clone());
            let report = crate::mapping::CheckReport { json, junit };
            crate::mapping::check(&dir, own.then_some(&config), &report)
        }
        Command::Map { tenant, files } => crate::mapping::map(&config, &tenant, &files),
        Command::Test {
            dir,
            mappings,
            update,
            tenant,
            json,
            junit,
        } => match load_tenants(&mappings.unwrap_or(config.mappings_dir)) {
            Some(tenants) => {
                let opts = crate::golden::Options {
                    update,
                    tenant,
                    json,
                    junit,
                };
                crate::golden::run(&dir, &tenants, &opts)
            }
            None => Ok(ExitCode::FAILURE),
        },
        Command::Send {
            to,
            timeout,
            quiet,
            verbose,
            tls,
            files,
        } => {
            let opts = crate::send::SendOptions {
                timeout: Duration::from_secs(timeout),
                quiet,
                verbose,
                tls: crate::send::tls(&to, &tls)?,
            };
            crate::send::send(&to, opts, &files).await
        }
        Command::Import {
            tenant,
            paths,
            quiet,
            from_start,
            max_message_bytes,
        } => {
            let opts = crate::import::Options {
                tenant,
                paths,
                quiet,
                from_start,
                max_message_bytes,
            };
            crate::import::run(&config, opts).await
        }
        Command::Dlq { command } => crate::dlq::run(&config, command).await,
        Command::Healthcheck { addr, timeout } => {
            crate::health::run(
                addr.unwrap_or(config.http.addr),
                Duration::from_secs(timeout),
            )
            .await
        }
        Command::Messages { find } => crate::messages::run(&config, find).await,
        Command::Remap { remap } => crate::remap::run(&config, remap).await,
        Command::Prune { prune } => crate::prune::run(&config, prune).await,
        Command::Mappings { command } => crate::deploy::run(&config, command).await,
        Command::Token { command } => crate::token::run(&config, command),
        Command::Events {
            tenant,
            stream,
            after,
            follow,
        } => crate::events::events(&config, tenant, stream, after, follow).await,
        Command::Streams {
            command: Some(StreamsCommand::Show { id, tenant, at }),
            ..
        } => {
            let at = crate::events::instant(at.as_of.as_deref(), at.as_recorded.as_deref())?;
            crate::events::show(&config, &tenant, id, at).await
        }
        Command::Streams {
            tenant: Some(tenant),
            stream_type: Some(stream_type),
            key: Some(key),
            at,
            command: None,
        } => {
            let at = crate::events::instant(at.as_of.as_deref(), at.as_recorded.as_deref())?;
            crate::events::stream(&config, &tenant, &stream_type, &key, at).await
        }
        Command::Census {
            tenant,
            location,
            at,
        } => crate::census::show(&config, &tenant, location.as_deref(), &at).await,
        Command::Projections {
            command: ProjectionsCommand::Rebuild,
        } => crate::census::rebuild(&config).await,
        Command::Streams { .. } => {
            anyhow::bail!("intake streams needs --tenant, --type and --key, or show ID --tenant T")
        }
    }
}

fn init_logging(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("INTAKE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default))
        // lapin logs whole frames (event bodies, so PHI) at debug and trace: never more
        // than its warnings, whatever INTAKE_LOG asks for.
        .add_directive("lapin=warn".parse().expect("valid directive"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}
