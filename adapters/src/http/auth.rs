//! Bearer tokens: an admin token sees every tenant, a tenant token only its own. Tokens
//! are compared in constant time; auth happens before any body is read.

use super::error::ApiError;
use axum::http::{header, HeaderMap};
use std::collections::BTreeMap;
use subtle::ConstantTimeEq;

/// The API's bearer tokens.
#[derive(Debug, Clone, Default)]
pub struct Auth {
    /// Sees every tenant.
    pub admin_token: Option<String>,
    /// tenant id -> token.
    pub tenant_tokens: BTreeMap<String, String>,
}

/// Whom a token belongs to.
enum Caller {
    Admin,
    Tenant(String),
}

impl Auth {
    /// Whether no token at all is configured (every `/api` request gets 401).
    pub fn is_empty(&self) -> bool {
        self.admin_token.is_none() && self.tenant_tokens.is_empty()
    }

    /// Checks that the request's token grants `tenant`.
    pub fn grants(&self, headers: &HeaderMap, tenant: &str) -> Result<(), ApiError> {
        match self.caller(headers)? {
            Caller::Tenant(t) if t != tenant => Err(ApiError::Forbidden),
            _ => Ok(()),
        }
    }

    /// Checks that the request carries a known token (routes without a tenant).
    pub fn authenticated(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        self.caller(headers).map(|_| ())
    }

    /// Checks that the request carries the admin token (admin routes, e.g. a rollback).
    pub fn admin(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        match self.caller(headers)? {
            Caller::Admin => Ok(()),
            Caller::Tenant(_) => Err(ApiError::AdminOnly),
        }
    }

    fn caller(&self, headers: &HeaderMap) -> Result<Caller, ApiError> {
        let token = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or(ApiError::Unauthorized)?;
        let eq = |a: &str| bool::from(a.as_bytes().ct_eq(token.as_bytes()));
        if self.admin_token.as_deref().is_some_and(eq) {
            return Ok(Caller::Admin);
        }
        self.tenant_tokens
            .iter()
            .find(|(_, t)| eq(t))
            .map(|(tenant, _)| Caller::Tenant(tenant.clone()))
            .ok_or(ApiError::Unauthorized)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bearer(token: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            format!("Bearer {token}").parse().unwrap(),
        );
        h
    }

    #[test]
    fn admin_sees_all_tenants_a_tenant_token_its_own() {
        let auth = Auth {
            admin_token: Some("root".into()),
            tenant_tokens: [("demo".to_string(), "d".to_string())].into(),
        };
        assert_eq!(auth.grants(&bearer("root"), "other"), Ok(()));
        assert_eq!(auth.grants(&bearer("d"), "demo"), Ok(()));
        assert_eq!(auth.grants(&bearer("d"), "other"), Err(ApiError::Forbidden));
        assert_eq!(
            auth.grants(&bearer("x"), "demo"),
            Err(ApiError::Unauthorized)
        );
        assert_eq!(
            auth.grants(&HeaderMap::new(), "demo"),
            Err(ApiError::Unauthorized)
        );
    }
}
