//! `[[fhir_pull]]`: the FHIR servers polled, one table per tenant, and their checks.
//! Secrets live here (or in the environment), never in the mapping folders; errors never
//! repeat a token or the base URL.

use reqwest::Url;
use serde::Deserialize;
use std::time::Duration;

/// One `[[fhir_pull]]` table in `intake.toml`: poll one tenant's FHIR R4 server.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PullConfig {
    /// The tenant every pulled resource belongs to (must have a mapping folder).
    pub tenant: String,
    /// Service base URL, e.g. `https://fhir.example.org/r4` (http or https).
    pub base_url: String,
    /// Bearer token (prefer `token_env`).
    #[serde(default)]
    pub token: Option<String>,
    /// Name of an environment variable holding the bearer token.
    #[serde(default)]
    pub token_env: Option<String>,
    /// Resource types searched each round, in this order.
    pub resource_types: Vec<String>,
    /// Milliseconds between rounds.
    #[serde(default = "default_interval")]
    pub interval_ms: u64,
    /// `_count` asked for per page.
    #[serde(default = "default_page_size")]
    pub page_size: u32,
    /// Longest back-off between retries and failed rounds (seconds).
    #[serde(default = "default_retry_max")]
    pub retry_max_secs: u64,
    /// Timeout of one HTTP request, connect to last body byte (seconds).
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
}

fn default_interval() -> u64 {
    60_000
}
fn default_page_size() -> u32 {
    100
}
fn default_retry_max() -> u64 {
    300
}
fn default_timeout() -> u64 {
    60
}

/// Every `[[fhir_pull]]` table: at most one per tenant (the cursors are kept per tenant
/// and resource type).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(transparent)]
pub struct PullServers(pub Vec<PullConfig>);

/// A pull configuration that cannot be used. Messages never repeat the token; the URL is
/// named only by its problem.
#[derive(Debug, thiserror::Error)]
pub enum InvalidPull {
    /// The base URL does not parse, is not http(s) or carries credentials or a query.
    #[error("FHIR pull for tenant {tenant:?}: base_url must be an http:// or https:// URL without user info, query or fragment")]
    BaseUrl {
        /// The tenant.
        tenant: String,
    },
    /// A resource type is not shaped like one.
    #[error(
        "FHIR pull for tenant {tenant:?}: resource type {index} is not a FHIR resource type name"
    )]
    ResourceType {
        /// The tenant.
        tenant: String,
        /// Its index in `resource_types`.
        index: usize,
    },
    /// No resource type to poll.
    #[error("FHIR pull for tenant {tenant:?}: resource_types is empty")]
    NoResourceTypes {
        /// The tenant.
        tenant: String,
    },
    /// Both `token` and `token_env` are set.
    #[error("[[fhir_pull]] for tenant {tenant:?}: set token or token_env, not both")]
    TwoTokens {
        /// The tenant.
        tenant: String,
    },
    /// `token_env` names a variable that is not set (or empty).
    #[error(
        "[[fhir_pull]] for tenant {tenant:?}: environment variable {var} (token_env) is not set"
    )]
    TokenEnvUnset {
        /// The tenant.
        tenant: String,
        /// The variable's name.
        var: String,
    },
    /// Two tables for one tenant.
    #[error("[[fhir_pull]]: tenant {tenant:?} appears twice")]
    TenantTwice {
        /// The tenant.
        tenant: String,
    },
    /// The HTTP client could not be built (TLS set-up).
    #[error("FHIR pull for tenant {tenant:?}: HTTP client: {reason}")]
    Client {
        /// The tenant.
        tenant: String,
        /// What failed.
        reason: String,
    },
}

impl PullServers {
    /// Checks every table, and that no tenant has two.
    pub fn check(&self) -> Result<(), InvalidPull> {
        let mut seen = std::collections::BTreeSet::new();
        for p in &self.0 {
            if !seen.insert(p.tenant.as_str()) {
                return Err(InvalidPull::TenantTwice {
                    tenant: p.tenant.clone(),
                });
            }
            p.check()?;
        }
        Ok(())
    }
}

impl PullConfig {
    /// Checks the base URL, the resource types and the token (without connecting).
    pub fn check(&self) -> Result<(), InvalidPull> {
        self.base()?;
        self.bearer_token()?;
        Ok(())
    }

    /// The base URL, checked: http(s), a host, no credentials, query or fragment; and the
    /// resource types, checked.
    pub fn base(&self) -> Result<Url, InvalidPull> {
        let tenant = self.tenant.clone();
        let base = Url::parse(self.base_url.trim_end_matches('/'))
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https"))
            .filter(|u| u.host_str().is_some() && u.username().is_empty() && u.password().is_none())
            .filter(|u| u.query().is_none() && u.fragment().is_none())
            .ok_or(InvalidPull::BaseUrl {
                tenant: tenant.clone(),
            })?;
        if self.resource_types.is_empty() {
            return Err(InvalidPull::NoResourceTypes { tenant });
        }
        if let Some(index) = self
            .resource_types
            .iter()
            .position(|t| !intake_pipeline::fhir::looks_like_type(t))
        {
            return Err(InvalidPull::ResourceType { tenant, index });
        }
        Ok(base)
    }

    /// The bearer token: `token`, or the value of the variable `token_env` names.
    pub fn bearer_token(&self) -> Result<Option<String>, InvalidPull> {
        match (&self.token, &self.token_env) {
            (Some(_), Some(_)) => Err(InvalidPull::TwoTokens {
                tenant: self.tenant.clone(),
            }),
            (Some(t), None) => Ok(Some(t.clone())),
            (None, Some(var)) => std::env::var(var)
                .ok()
                .filter(|v| !v.is_empty())
                .map(Some)
                .ok_or_else(|| InvalidPull::TokenEnvUnset {
                    tenant: self.tenant.clone(),
                    var: var.clone(),
                }),
            (None, None) => Ok(None),
        }
    }

    /// Pause between rounds.
    pub fn interval(&self) -> Duration {
        Duration::from_millis(self.interval_ms.max(1))
    }

    /// `_count` asked for per page.
    pub fn page_size(&self) -> u32 {
        self.page_size.max(1)
    }

    /// Longest back-off between retries and failed rounds.
    pub fn retry_max(&self) -> Duration {
        Duration::from_secs(self.retry_max_secs.max(1))
    }

    /// Timeout of one HTTP request.
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_secs.max(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(base: &str) -> PullConfig {
        toml::from_str(&format!(
            "tenant = \"demo\"\nbase_url = \"{base}\"\nresource_types = [\"Patient\"]\ntoken = \"secret\"\n"
        ))
        .unwrap()
    }

    #[test]
    fn defaults_and_unknown_keys() {
        let c = config("https://f/r4");
        assert_eq!(
            (c.interval_ms, c.page_size, c.retry_max_secs, c.timeout_secs),
            (60_000, 100, 300, 60)
        );
        assert_eq!(c.interval(), Duration::from_secs(60));
        assert!(toml::from_str::<PullConfig>(
            "tenant = \"d\"\nbase_url = \"x\"\nresource_types = []\nintervall = 1\n"
        )
        .is_err());
    }

    #[test]
    fn base_urls_and_types_are_checked() {
        assert!(config("https://fhir.example.org/r4/").check().is_ok());
        for bad in [
            "ftp://x/r4",
            "https://user:pw@x/r4",
            "https://x/r4?a=b",
            "not a url",
        ] {
            let e = config(bad).check().unwrap_err();
            assert!(matches!(e, InvalidPull::BaseUrl { .. }), "{bad}");
            assert!(!e.to_string().contains("pw"));
        }
        let mut c = config("http://x");
        c.resource_types = vec!["Patient".into(), "patient; DROP".into()];
        assert!(matches!(
            c.check(),
            Err(InvalidPull::ResourceType { index: 1, .. })
        ));
        c.resource_types.clear();
        assert!(c.check().is_err());
    }

    #[test]
    fn tokens_come_from_the_table_or_the_environment() {
        let mut c = config("https://f/r4");
        assert_eq!(c.bearer_token().unwrap().as_deref(), Some("secret"));
        c.token_env = Some("INTAKE_TEST_NO_SUCH_VAR".into());
        assert!(matches!(
            c.bearer_token(),
            Err(InvalidPull::TwoTokens { .. })
        ));
        c.token = None;
        let err = c.bearer_token().unwrap_err().to_string();
        assert!(err.contains("INTAKE_TEST_NO_SUCH_VAR"), "{err}");
    }

    #[test]
    fn one_table_per_tenant() {
        let servers = PullServers(vec![config("https://f/r4"), config("https://g/r4")]);
        assert!(matches!(
            servers.check(),
            Err(InvalidPull::TenantTwice { .. })
        ));
    }
}
