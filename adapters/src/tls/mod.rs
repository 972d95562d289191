//! TLS for the listeners (MLLP and HTTP) and for `intake send`, with rustls.
//!
//! - [`config::TlsConfig`]: a listener's `tls` table: certificate and key files, and for
//!   mutual TLS a client CA and an allow-list of client names.
//! - [`server::TlsServer`]: the handshake on an accepted socket. The files are read again
//!   when they change, so a renewed certificate takes effect without a restart.
//! - [`client::TlsClient`]: the client side, for `intake send --tls`.
//!
//! Errors name files and reasons, never a file's content (a key file's bytes are secret).

pub mod client;
pub mod config;
mod internal_events;
mod pem;
pub mod server;

pub use config::{TlsConfig, TlsVersion};

/// Reads every certificate of a PEM file (at least one), to check a CA file early.
pub fn read_certificates(what: &'static str, path: &std::path::Path) -> Result<usize, TlsError> {
    pem::certificates(what, path).map(|c| c.len())
}

/// Why TLS settings could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A certificate, key or CA file could not be read as PEM.
    #[error("{what} {path}: {reason}")]
    Read {
        /// Which file: "certificate", "private key", "client CA", "CA".
        what: &'static str,
        /// The file.
        path: std::path::PathBuf,
        /// Why (never the file's content).
        reason: String,
    },
    /// The files read, but rustls refused them (e.g. a key that does not match the
    /// certificate, a CA that is not a CA).
    #[error("{what}: {reason}")]
    Invalid {
        /// What was being set up.
        what: &'static str,
        /// rustls' reason.
        reason: String,
    },
    /// `allowed_clients` without `client_ca_file`: no client certificate would be asked for.
    #[error("allowed_clients needs client_ca_file (mutual TLS)")]
    AllowListWithoutCa,
    /// A client certificate without its key, or a key without its certificate.
    #[error("a client certificate and its key go together")]
    CertWithoutKey,
}
