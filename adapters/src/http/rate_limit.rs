//! `[http]`'s rate limits: per source address, checked before the token is even looked
//! at (so guessing tokens is as slow as anything else), then per token. Both come before
//! any body is read; an answer over the limit is 429 `RATE_LIMITED` with `Retry-After`.

use super::auth::Caller;
use super::error::ApiError;
use super::internal_events::RateLimitHit;
use crate::rate::RateLimiter;
use axum::extract::{ConnectInfo, Request};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// The limits of one HTTP server.
#[derive(Debug)]
pub struct RateLimits {
    per_address: Option<RateLimiter<IpAddr>>,
    per_token: Option<RateLimiter<String>>,
}

impl RateLimits {
    /// Requests per second per token and per source address (0: no limit); each allows
    /// bursts of twice its rate.
    pub fn new(per_token: u32, per_address: u32) -> Self {
        RateLimits {
            per_address: RateLimiter::new(per_address, per_address.saturating_mul(2)),
            per_token: RateLimiter::new(per_token, per_token.saturating_mul(2)),
        }
    }

    /// Counts `request` against its source address.
    pub fn address(&self, request: &Request) -> Result<(), ApiError> {
        let (Some(limiter), Some(ConnectInfo(peer))) = (
            &self.per_address,
            request.extensions().get::<ConnectInfo<SocketAddr>>(),
        ) else {
            return Ok(());
        };
        limiter.take(&peer.ip()).map_err(|wait| {
            RateLimitHit {
                peer: *peer,
                token: None,
            }
            .emit();
            limited(wait)
        })
    }

    /// Counts a request of `caller` against its token.
    pub fn token(&self, caller: &Caller, request: &Request) -> Result<(), ApiError> {
        let Some(limiter) = &self.per_token else {
            return Ok(());
        };
        limiter.take(&caller.name).map_err(|wait| {
            if let Some(ConnectInfo(peer)) = request.extensions().get::<ConnectInfo<SocketAddr>>() {
                RateLimitHit {
                    peer: *peer,
                    token: Some(&caller.name),
                }
                .emit();
            }
            limited(wait)
        })
    }
}

/// 429 with the whole seconds to wait (at least 1).
fn limited(wait: Duration) -> ApiError {
    ApiError::RateLimited(wait.as_secs_f64().ceil().max(1.0) as u64)
}
