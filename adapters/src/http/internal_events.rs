//! Everything the HTTP server logs itself (requests are logged by the pipeline, per
//! message, with ids and codes). Fields are addresses and error kinds only.

/// No token is configured: every `/api` request will get 401.
pub struct NoTokens;

impl NoTokens {
    /// Logs it.
    pub fn emit(self) {
        tracing::warn!(
            "no token configured (INTAKE_ADMIN_TOKEN, [tenant_tokens] or the tokens file): every /api request will get 401"
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

/// The tokens file changed and was read again.
pub struct TokensReloaded {
    /// Tokens it holds.
    pub count: usize,
}

impl TokensReloaded {
    /// Logs it.
    pub fn emit(self) {
        tracing::info!(tokens = self.count, "tokens file reloaded");
    }
}

/// The tokens file changed and no longer reads: the tokens last read stay in force.
pub struct TokensFileInvalid<'a> {
    /// Why (a path and a line: never the file's content).
    pub error: &'a super::tokens::TokensError,
}

impl TokensFileInvalid<'_> {
    /// Logs it.
    pub fn emit(self) {
        tracing::error!(error = %self.error, code = "TOKENS_FILE_INVALID", "tokens file not reloaded; the last good one stays in force");
    }
}

/// A request was refused over a rate limit (429 `RATE_LIMITED`).
pub struct RateLimitHit<'a> {
    /// The client's address.
    pub peer: std::net::SocketAddr,
    /// The token's name, when the per-token limit refused it (names are not secrets).
    pub token: Option<&'a str>,
}

impl RateLimitHit<'_> {
    /// Logs it.
    pub fn emit(self) {
        match self.token {
            Some(token) => {
                tracing::info!(peer = %self.peer, token, code = "RATE_LIMITED", "request over the token's rate limit")
            }
            None => {
                tracing::info!(peer = %self.peer, code = "RATE_LIMITED", "request over the address's rate limit")
            }
        }
    }
}
