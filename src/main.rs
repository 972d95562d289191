//! `intake`: the command-line entry point. Parses arguments and hands off to `commands`.

/// Prints a line to stdout. A closed pipe (`intake events | head`) ends the process
/// quietly instead of panicking as `println!` would.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if let Err(e) = writeln!(std::io::stdout().lock(), $($arg)*) {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                std::process::exit(0);
            }
        }
    }};
}

mod commands;
mod config;
mod dlq;
mod golden;
mod serve;

use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// HL7 v2 / FHIR R4 integration engine.
#[derive(Parser)]
#[command(name = "intake", version, about)]
struct Cli {
    /// Configuration file (TOML). Without it, the embedded defaults are used.
    #[arg(long, global = true, env = "INTAKE_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the listeners (MLLP, HTTP) until SIGTERM or Ctrl-C.
    Serve,
    /// Apply database migrations.
    Migrate,
    /// Validate mapping files; prints file:line:col errors and exits 1 on any.
    Check {
        /// Mappings folder (default: the configured one).
        #[arg(long)]
        mappings: Option<PathBuf>,
    },
    /// Dry-run: parse and map messages, print the events as JSON; stores nothing.
    Map {
        /// Tenant whose mappings to use.
        #[arg(long)]
        tenant: String,
        /// Files holding one or more HL7 v2 messages, or (.json / .xml) one FHIR resource or Bundle.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Golden-file tests: run samples/<tenant>/<case>.hl7 and compare with <case>.events.json.
    Test {
        /// Folder of `<tenant>/` sample folders.
        #[arg(default_value = "samples")]
        dir: PathBuf,
        /// Mappings folder (default: the configured one).
        #[arg(long)]
        mappings: Option<PathBuf>,
        /// Write the `.events.json` files from the actual output instead of comparing.
        #[arg(long)]
        update: bool,
    },
    /// MLLP client: send the messages in FILEs in order, print each ACK.
    Send {
        /// host:port of the MLLP listener.
        #[arg(long)]
        to: String,
        /// Seconds to wait for each ACK.
        #[arg(long, default_value_t = 30)]
        timeout: u64,
        /// Files holding one or more HL7 v2 messages, or (.json / .xml) one FHIR resource or Bundle.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Print stored events as JSON lines, in global order.
    Events {
        /// Only this tenant's events.
        #[arg(long)]
        tenant: Option<String>,
        /// Only this stream's events (UUID).
        #[arg(long)]
        stream: Option<uuid::Uuid>,
        /// Start after this global position.
        #[arg(long, default_value_t = 0)]
        after: i64,
        /// Keep waiting for new events.
        #[arg(long)]
        follow: bool,
    },
    /// Support operations on dead letters: list, replay, discard.
    Dlq {
        #[command(subcommand)]
        command: dlq::DlqCommand,
    },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
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
