//! The command line: the subcommands and their arguments (the contract in DESIGN.md).

use crate::dlq::DlqCommand;
use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// HL7 v2 / FHIR R4 integration engine.
#[derive(Parser)]
#[command(name = "intake", version, about)]
pub struct Cli {
    /// Configuration file (TOML). Without it, the embedded defaults are used.
    #[arg(long, global = true, env = "INTAKE_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run the listeners (MLLP, HTTP) until SIGTERM or Ctrl-C.
    Serve,
    /// Apply database migrations.
    Migrate,
    /// Validate mapping files; prints file:line:col errors and exits 1 on any.
    Check {
        /// Mappings folder (default: the configured one).
        #[arg(long)]
        mappings: Option<PathBuf>,
        /// Print one JSON document (tenants and errors) instead of text.
        #[arg(long)]
        json: bool,
        /// Also write a JUnit XML report to this file.
        #[arg(long, value_name = "FILE")]
        junit: Option<PathBuf>,
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
        /// Only this tenant's samples (`DIR/<tenant>/`).
        #[arg(long)]
        tenant: Option<String>,
        /// Print one JSON document (cases, coverage, totals) instead of text.
        #[arg(long)]
        json: bool,
        /// Also write a JUnit XML report to this file.
        #[arg(long, value_name = "FILE")]
        junit: Option<PathBuf>,
    },
    /// MLLP client: send the messages in FILEs in order; summarize the ACK codes.
    Send {
        /// host:port of the MLLP listener.
        #[arg(long)]
        to: String,
        /// Seconds to wait for each ACK.
        #[arg(long, default_value_t = 30)]
        timeout: u64,
        /// Print nothing but errors (the summary only when a message was not accepted).
        #[arg(long, short, conflicts_with = "verbose")]
        quiet: bool,
        /// Print every ACK, segment by segment.
        #[arg(long, short)]
        verbose: bool,
        #[command(flatten)]
        tls: TlsArgs,
        /// Files holding one or more HL7 v2 messages (split at each MSH), or one FHS/BHS
        /// batch (sent as one frame).
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Bulk ingest through the same pipeline: HL7 v2 files, FHS/BHS batches, MLLP dumps,
    /// FHIR NDJSON, resources and Bundles; resumable, idempotent.
    Import {
        /// Tenant every message is bound to (like a bound listener).
        #[arg(long)]
        tenant: String,
        /// Files, folders (read recursively, in sorted order) and `-` for standard input.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// No progress bar and no summary: errors only (the exit status tells the outcome).
        #[arg(long, short)]
        quiet: bool,
        /// Ignore saved checkpoints and read every input from its start (what was stored
        /// before counts as duplicates).
        #[arg(long)]
        from_start: bool,
        /// Largest message kept; larger ones are not stored (MESSAGE_TOO_LARGE).
        #[arg(long, default_value_t = 16 << 20)]
        max_message_bytes: usize,
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
    /// One stream: found by its type and natural key, or `show ID`; prints its id, its
    /// events and its state folded from them, now or at an instant (exit 1 when it has
    /// no events).
    #[command(args_conflicts_with_subcommands = true)]
    Streams {
        /// The tenant that owns the stream.
        #[arg(long)]
        tenant: Option<String>,
        /// The stream type, e.g. `Admission` or `Patient`.
        #[arg(long = "type")]
        stream_type: Option<String>,
        /// The natural key, e.g. the visit number or the MRN.
        #[arg(long)]
        key: Option<String>,
        #[command(flatten)]
        at: AtArgs,
        #[command(subcommand)]
        command: Option<StreamsCommand>,
    },
    /// A tenant's census: the visits admitted now (the read model) or at an instant
    /// (`--as-of`, `--as-recorded`: folded from the events), by location and bed.
    Census {
        /// The tenant.
        #[arg(long)]
        tenant: String,
        /// Only this location (unit).
        #[arg(long)]
        location: Option<String>,
        #[command(flatten)]
        at: AtArgs,
    },
    /// Read models: `rebuild` folds the census again from every stored event.
    Projections {
        #[command(subcommand)]
        command: ProjectionsCommand,
    },
    /// A tenant's mapping versions: the history of what went live, and rollback.
    Mappings {
        #[command(subcommand)]
        command: crate::deploy::MappingsCommand,
    },
    /// Named, scoped API tokens: create (printed once, stored hashed), list, revoke.
    Token {
        #[command(subcommand)]
        command: crate::token::TokenCommand,
    },
    /// Find inbound messages (newest first): by outcome, type, facility, control id, time
    /// received, MRN or visit; each with its events and dead letter, never its content.
    Messages {
        #[command(flatten)]
        find: crate::messages::Find,
    },
    /// Preview what another mapping version would make of stored messages (the events
    /// it adds, removes and changes); `--apply` appends what it adds, as corrections.
    Remap {
        #[command(flatten)]
        remap: crate::remap::RemapArgs,
    },
    /// Retention: empty the raw bytes of messages older than each tenant's
    /// `retention: raw_messages_days` (rows, events and open dead letters' raws stay).
    Prune {
        #[command(flatten)]
        prune: crate::prune::PruneArgs,
    },
    /// Support operations on dead letters: list, replay, discard.
    Dlq {
        #[command(subcommand)]
        command: DlqCommand,
    },
    /// Exit 0 when a running `intake serve` answers GET /healthz with 200 (the container
    /// image's HEALTHCHECK).
    #[command(hide = true)]
    Healthcheck {
        /// The HTTP address to ask (default: the configured one; 0.0.0.0 is asked on
        /// 127.0.0.1).
        #[arg(long)]
        addr: Option<std::net::SocketAddr>,
        /// Seconds to wait for the answer.
        #[arg(long, default_value_t = 3)]
        timeout: u64,
    },
}

/// `intake streams show`.
#[derive(Subcommand)]
pub enum StreamsCommand {
    /// The stream with this id: its events and state, now or at an instant.
    Show {
        /// The stream id (UUID).
        id: uuid::Uuid,
        /// The tenant that owns the stream.
        #[arg(long)]
        tenant: String,
        #[command(flatten)]
        at: AtArgs,
    },
}

/// A point in time for a stream or the census.
#[derive(clap::Args, Clone, Default)]
pub struct AtArgs {
    /// The state as of this instant, by the events' own time (RFC 3339): what had
    /// happened by then, late messages included.
    #[arg(long)]
    pub as_of: Option<String>,
    /// The state as the store knew it at this instant (RFC 3339): events committed by
    /// then, in commit order.
    #[arg(long)]
    pub as_recorded: Option<String>,
}

/// `intake projections`.
#[derive(Subcommand)]
pub enum ProjectionsCommand {
    /// Forget the census and fold every stored event again.
    Rebuild,
}

/// `intake send`'s TLS options.
#[derive(Debug, Clone, clap::Args)]
pub struct TlsArgs {
    /// Connect over TLS; the server's certificate is checked against --ca, else the
    /// public web roots.
    #[arg(long)]
    pub tls: bool,
    /// CA certificates (PEM) the server's certificate must chain to (implies --tls).
    #[arg(long, value_name = "FILE")]
    pub ca: Option<PathBuf>,
    /// Client certificate chain (PEM) for mutual TLS (implies --tls; needs --key).
    #[arg(long, value_name = "FILE", requires = "key")]
    pub cert: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(long, value_name = "FILE", requires = "cert")]
    pub key: Option<PathBuf>,
    /// The name the server's certificate must carry (default: the host of --to).
    #[arg(long, value_name = "NAME")]
    pub server_name: Option<String>,
}
