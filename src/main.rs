//! `intake`: the command-line entry point. Parses arguments ([`cli`]) and hands off to
//! [`commands`].

#[macro_use]
mod out;

mod census;
mod cli;
mod commands;
mod context;
mod deploy;
mod dlq;
mod events;
mod golden;
mod health;
mod import;
mod junit;
mod mapping;
mod messages;
mod prune;
mod remap;
mod send;
mod serve;
mod stage;
mod token;

use clap::Parser;
// The configuration lives in the library target (`src/lib.rs`), where the fuzz targets
// reach it; `crate::config` keeps naming it here.
use intake::config;

fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build();
    let runtime = match runtime {
        Ok(r) => r,
        Err(e) => {
            eprintln!("intake: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(commands::run(cli.config.as_deref(), cli.command)) {
        Ok(code) => code,
        Err(e)
            if e.chain().any(|c| {
                c.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            }) =>
        {
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("intake: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
