//! What the MLLP listener logs about connections (each message is logged once by the
//! pipeline, with ids and codes). Fields are peer addresses, codes and socket errors,
//! never frame content.
//!
//! Two logs still sit in the listener's frame handling (`listener.rs`: `FRAME_TOO_LARGE`
//! and the closing code of a failed read), left in place while the ACK builder moves.

use std::net::SocketAddr;

/// Accepting a connection failed (the listener retries after a pause).
pub struct AcceptFailed<'a> {
    /// The socket error.
    pub error: &'a std::io::Error,
}

impl AcceptFailed<'_> {
    /// Logs it.
    pub fn emit(self) {
        tracing::warn!(error = %self.error, "accept failed");
    }
}

/// A connection over the listener's `max_connections` was closed at once.
pub struct ConnectionRefused {
    /// The sender's address.
    pub peer: SocketAddr,
    /// The limit.
    pub limit: usize,
}

impl ConnectionRefused {
    /// Logs it.
    pub fn emit(self) {
        tracing::warn!(peer = %self.peer, limit = self.limit, code = "CONNECTION_LIMIT", "connection refused: too many open");
    }
}

/// A connection was accepted (and its TLS handshake, if any, done).
pub struct ConnectionOpened<'a> {
    /// The sender's address.
    pub peer: SocketAddr,
    /// Under mutual TLS, the name on the client's certificate (a system name, not PHI).
    pub client: Option<&'a str>,
}

impl ConnectionOpened<'_> {
    /// Logs it.
    pub fn emit(self) {
        match self.client {
            Some(client) => tracing::debug!(peer = %self.peer, client, "connection opened"),
            None => tracing::debug!(peer = %self.peer, "connection opened"),
        }
    }
}

/// A connection ended normally (the peer closed it, or shutdown).
pub struct ConnectionEnded {
    /// The sender's address.
    pub peer: SocketAddr,
}

impl ConnectionEnded {
    /// Logs it.
    pub fn emit(self) {
        tracing::debug!(peer = %self.peer, "connection closed");
    }
}

/// An ACK could not be written; the connection is closed.
pub struct AckNotSent<'a> {
    /// The sender's address.
    pub peer: SocketAddr,
    /// The socket error.
    pub error: &'a std::io::Error,
}

impl AckNotSent<'_> {
    /// Logs it.
    pub fn emit(self) {
        tracing::info!(peer = %self.peer, error = %self.error, "could not send ACK; connection closed");
    }
}

/// A connection's sender went past the listener's messages-per-second limit per address:
/// its next frames are read later (logged once per connection).
pub struct MessagesPaced {
    /// The sender's address.
    pub peer: SocketAddr,
}

impl MessagesPaced {
    /// Logs it.
    pub fn emit(self) {
        tracing::info!(peer = %self.peer, code = "RATE_LIMITED", "sender over its rate limit: reading its messages more slowly");
    }
}
