//! Everything the HTTP server logs itself (requests are logged by the pipeline, per
//! message, with ids and codes). Fields are addresses and error kinds only.

/// No token is configured: every `/api` request will get 401.
pub struct NoTokens;

impl NoTokens {
    /// Logs it.
    pub fn emit(self) {
        tracing::warn!(
            "no INTAKE_ADMIN_TOKEN or tenant tokens configured: every /api request will get 401"
        );
    }
}

/// Accepting a connection failed (e.g. out of file descriptors); the server goes on.
pub struct ServeFailed<'a> {
    /// The error (an accept or socket error: no request content).
    pub error: &'a std::io::Error,
}

impl ServeFailed<'_> {
    /// Logs it.
    pub fn emit(self) {
        tracing::warn!(error = %self.error, "HTTP accept failed; serving on");
    }
}

/// A connection over `[http] max_connections` was closed at once.
pub struct ConnectionRefused {
    /// The client's address.
    pub peer: std::net::SocketAddr,
    /// The limit.
    pub limit: usize,
}

impl ConnectionRefused {
    /// Logs it.
    pub fn emit(self) {
        tracing::warn!(peer = %self.peer, limit = self.limit, code = "CONNECTION_LIMIT", "HTTP connection refused: too many open");
    }
}
