//! What TLS logs: listener names, codes and reasons from rustls, never certificate or
//! key bytes.

use super::TlsError;

/// A listener's certificate files changed and were read again.
pub struct TlsReloaded<'a> {
    /// The listener, e.g. "mllp 0.0.0.0:2575".
    pub listener: &'a str,
}

impl TlsReloaded<'_> {
    /// Logs it.
    pub fn emit(self) {
        tracing::info!(
            listener = self.listener,
            code = "TLS_RELOADED",
            "TLS certificate files read again"
        );
    }
}

/// A listener's certificate files changed but no longer load: the last good ones stay.
pub struct TlsReloadFailed<'a> {
    /// The listener.
    pub listener: &'a str,
    /// Why (file and reason, never content).
    pub error: &'a TlsError,
}

impl TlsReloadFailed<'_> {
    /// Logs it.
    pub fn emit(self) {
        tracing::error!(listener = self.listener, code = "TLS_RELOAD_FAILED", error = %self.error, "TLS certificate files changed but do not load; the previous ones stay in force");
    }
}
