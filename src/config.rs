//! Configuration: defaults, an optional TOML file, then environment overrides.

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The whole configuration (`intake.toml`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// `sqlite://path` (the embedded default).
    pub database_url: String,
    /// Folder holding `<tenant>/` mapping folders.
    pub mappings_dir: PathBuf,
    /// Token that sees every tenant over HTTP.
    pub admin_token: Option<String>,
    /// Tokens that see one tenant each: tenant id -> token.
    pub tenant_tokens: BTreeMap<String, String>,
    /// The HTTP server.
    pub http: HttpConfig,
    /// MLLP listeners.
    pub mllp: Vec<MllpListenerConfig>,
    /// The batching writer.
    pub writer: WriterSettings,
    /// Mapping files.
    pub mappings: MappingsSettings,
    /// The RabbitMQ publisher; absent (or without a URL): no outbox, no publisher.
    pub amqp: Option<AmqpSettings>,
    /// FHIR servers polled for new and changed resources, one per tenant.
    pub fhir_pull: Vec<FhirPullSettings>,
}

/// `[[fhir_pull]]`: poll one tenant's FHIR R4 server. Secrets live here (or in the
/// environment), never in the mapping folders.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FhirPullSettings {
    /// The tenant every pulled resource belongs to (must have a mapping folder).
    pub tenant: String,
    /// Service base URL, e.g. `https://fhir.example.org/r4`.
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
    #[serde(default = "default_pull_interval")]
    pub interval_ms: u64,
    /// `_count` asked for per page.
    #[serde(default = "default_page_size")]
    pub page_size: u32,
    /// Longest back-off between retries (seconds).
    #[serde(default = "default_pull_retry_max")]
    pub retry_max_secs: u64,
    /// Timeout of one HTTP request (seconds).
    #[serde(default = "default_pull_timeout")]
    pub timeout_secs: u64,
}

fn default_pull_interval() -> u64 {
    60_000
}
fn default_page_size() -> u32 {
    100
}
fn default_pull_retry_max() -> u64 {
    300
}
fn default_pull_timeout() -> u64 {
    60
}

impl FhirPullSettings {
    /// The adapter's view of these settings, with the token read from `token_env` when
    /// named. Errors name the variable, never its value.
    pub fn to_adapter(&self) -> Result<intake_adapters::fhir_pull::PullConfig> {
        let token = match (&self.token, &self.token_env) {
            (Some(_), Some(_)) => bail!(
                "[[fhir_pull]] for tenant {:?}: set token or token_env, not both",
                self.tenant
            ),
            (Some(t), None) => Some(t.clone()),
            (None, Some(var)) => Some(
                std::env::var(var)
                    .ok()
                    .filter(|v| !v.is_empty())
                    .with_context(|| {
                        format!(
                            "[[fhir_pull]] for tenant {:?}: environment variable {var} (token_env) is not set",
                            self.tenant
                        )
                    })?,
            ),
            (None, None) => None,
        };
        Ok(intake_adapters::fhir_pull::PullConfig {
            tenant: self.tenant.clone(),
            base_url: self.base_url.clone(),
            token,
            resource_types: self.resource_types.clone(),
            interval: Duration::from_millis(self.interval_ms.max(1)),
            page_size: self.page_size.max(1),
            retry_max: Duration::from_secs(self.retry_max_secs.max(1)),
            timeout: Duration::from_secs(self.timeout_secs.max(1)),
        })
    }
}

/// `[amqp]`: publish every event to a RabbitMQ topic exchange through the outbox.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AmqpSettings {
    /// `amqp://user:password@host:5672/%2f` (or `INTAKE_AMQP_URL`); empty: no broker.
    pub url: String,
    /// Topic exchange, declared durable on connect.
    pub exchange: String,
    /// Events claimed and published per round (confirms awaited per round).
    pub batch: usize,
    /// Longest wait between reconnection attempts (back-off from 100 ms doubles to this).
    pub retry_max_secs: u64,
    /// Milliseconds between outbox polls when idle (commits wake the publisher anyway).
    pub poll_interval_ms: u64,
    /// Seconds to wait for the broker's confirms of a round before reconnecting.
    pub confirm_timeout_secs: u64,
    /// Seconds a publisher lease lasts without renewal (one publisher per database).
    pub lease_secs: u64,
}

impl Default for AmqpSettings {
    fn default() -> Self {
        AmqpSettings {
            url: String::new(),
            exchange: "intake.events".into(),
            batch: 256,
            retry_max_secs: 30,
            poll_interval_ms: 200,
            confirm_timeout_secs: 30,
            lease_secs: 30,
        }
    }
}

impl AmqpSettings {
    /// The adapter's view of these settings.
    pub fn to_adapter(&self) -> intake_adapters::amqp::PublisherConfig {
        intake_adapters::amqp::PublisherConfig {
            url: self.url.clone(),
            exchange: self.exchange.clone(),
            batch: self.batch.max(1),
            retry_max: Duration::from_secs(self.retry_max_secs.max(1)),
            poll_interval: Duration::from_millis(self.poll_interval_ms.max(1)),
            confirm_timeout: Duration::from_secs(self.confirm_timeout_secs.max(1)),
            lease: Duration::from_secs(self.lease_secs.max(1)),
        }
    }
}

/// `[http]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Address to bind.
    pub addr: SocketAddr,
}

/// `[[mllp]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MllpListenerConfig {
    /// Address to bind.
    pub addr: SocketAddr,
    /// Tenant bound to this listener; absent: route by MSH-4/MSH-6.
    #[serde(default)]
    pub tenant: Option<String>,
    /// Largest frame accepted (bytes).
    #[serde(default = "default_max_frame")]
    pub max_frame_bytes: usize,
    /// Seconds a connection may be idle between messages.
    #[serde(default = "default_idle")]
    pub idle_timeout_secs: u64,
    /// Seconds one frame may take from start to end.
    #[serde(default = "default_frame_timeout")]
    pub frame_timeout_secs: u64,
}

/// `[writer]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WriterSettings {
    /// Most messages per transaction.
    pub max_batch: usize,
    /// Microseconds to wait for more messages before committing (0: no wait).
    pub max_wait_us: u64,
}

/// `[mappings]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MappingsSettings {
    /// Milliseconds between checks of the mappings folder for edits (0: no hot reload).
    pub reload_interval_ms: u64,
}

impl Default for MappingsSettings {
    fn default() -> Self {
        MappingsSettings {
            reload_interval_ms: 1000,
        }
    }
}

fn default_max_frame() -> usize {
    1 << 20
}
fn default_idle() -> u64 {
    3600
}
fn default_frame_timeout() -> u64 {
    30
}

impl Default for Config {
    fn default() -> Self {
        Config {
            database_url: "sqlite://data/intake.db".into(),
            mappings_dir: "mappings".into(),
            admin_token: None,
            tenant_tokens: BTreeMap::new(),
            http: HttpConfig::default(),
            mllp: vec![MllpListenerConfig::default()],
            writer: WriterSettings::default(),
            mappings: MappingsSettings::default(),
            amqp: None,
            fhir_pull: Vec::new(),
        }
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            addr: "127.0.0.1:8080".parse().expect("valid default address"),
        }
    }
}

impl Default for MllpListenerConfig {
    fn default() -> Self {
        MllpListenerConfig {
            addr: "127.0.0.1:2575".parse().expect("valid default address"),
            tenant: Some("demo".into()),
            max_frame_bytes: default_max_frame(),
            idle_timeout_secs: default_idle(),
            frame_timeout_secs: default_frame_timeout(),
        }
    }
}

impl Default for WriterSettings {
    fn default() -> Self {
        WriterSettings {
            max_batch: 512,
            max_wait_us: 0,
        }
    }
}

impl MllpListenerConfig {
    /// The adapter's view of this listener.
    pub fn to_adapter(&self) -> intake_adapters::mllp::listener::MllpConfig {
        intake_adapters::mllp::listener::MllpConfig {
            addr: self.addr,
            tenant: self.tenant.clone(),
            max_frame_bytes: self.max_frame_bytes,
            idle_timeout: Duration::from_secs(self.idle_timeout_secs),
            frame_timeout: Duration::from_secs(self.frame_timeout_secs),
        }
    }
}

impl Config {
    /// Defaults, then the file (if given), then environment variables.
    pub fn load(file: Option<&Path>) -> Result<Config> {
        let mut config = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading config file {}", path.display()))?;
                toml::from_str(&text)
                    .with_context(|| format!("in config file {}", path.display()))?
            }
            None => Config::default(),
        };
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        if let Some(v) = env("INTAKE_DATABASE_URL") {
            config.database_url = v;
        }
        if let Some(v) = env("INTAKE_MAPPINGS_DIR") {
            config.mappings_dir = v.into();
        }
        if let Some(v) = env("INTAKE_ADMIN_TOKEN") {
            config.admin_token = Some(v);
        }
        if let Some(v) = env("INTAKE_AMQP_URL") {
            config.amqp.get_or_insert_with(AmqpSettings::default).url = v;
        }
        if let Some(v) = env("INTAKE_HTTP_ADDR") {
            config.http.addr = v.parse().context("INTAKE_HTTP_ADDR must be host:port")?;
        }
        if let Some(v) = env("INTAKE_MLLP_ADDR") {
            let addr = v.parse().context("INTAKE_MLLP_ADDR must be host:port")?;
            match config.mllp.first_mut() {
                Some(l) => l.addr = addr,
                None => config.mllp.push(MllpListenerConfig {
                    addr,
                    ..Default::default()
                }),
            }
        }
        Ok(config)
    }

    /// Checks the `[[fhir_pull]]` tables: at most one per tenant (the cursors are kept per
    /// tenant and resource type).
    pub fn check_fhir_pull(&self) -> Result<()> {
        let mut seen = std::collections::BTreeSet::new();
        for p in &self.fhir_pull {
            if !seen.insert(p.tenant.as_str()) {
                bail!("[[fhir_pull]]: tenant {:?} appears twice", p.tenant);
            }
        }
        Ok(())
    }

    /// The publisher settings when a broker is configured (an `[amqp]` URL).
    pub fn broker(&self) -> Option<&AmqpSettings> {
        self.amqp.as_ref().filter(|a| !a.url.trim().is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_settings_and_unknown_keys() {
        let c: Config = toml::from_str(
            "database_url = \"sqlite://x.db\"\n[[mllp]]\naddr = \"0.0.0.0:2576\"\nmax_frame_bytes = 10\n[tenant_tokens]\ndemo = \"t\"\n",
        )
        .unwrap();
        assert_eq!(c.mllp.len(), 1);
        assert_eq!(
            c.mllp[0].tenant, None,
            "a configured listener routes unless bound"
        );
        assert_eq!(c.mllp[0].max_frame_bytes, 10);
        assert_eq!(c.tenant_tokens["demo"], "t");
        assert!(toml::from_str::<Config>("databse_url = 1").is_err());
        assert_eq!(
            c.mappings.reload_interval_ms, 1000,
            "hot reload is on by default"
        );
        let c: Config = toml::from_str("[mappings]\nreload_interval_ms = 0\n").unwrap();
        assert_eq!(c.mappings.reload_interval_ms, 0);
        assert!(toml::from_str::<Config>("[mappings]\nreload_ms = 1\n").is_err());
    }

    #[test]
    fn amqp_section_is_optional_and_typed() {
        let c: Config = toml::from_str("").unwrap();
        assert!(c.broker().is_none(), "no broker by default");
        let c: Config = toml::from_str("[amqp]\nexchange = \"x\"\n").unwrap();
        assert!(c.broker().is_none(), "no URL, no broker");
        let c: Config =
            toml::from_str("[amqp]\nurl = \"amqp://127.0.0.1:5672/%2f\"\nbatch = 10\n").unwrap();
        let a = c.broker().unwrap();
        assert_eq!((a.exchange.as_str(), a.batch), ("intake.events", 10));
        assert!(toml::from_str::<Config>("[amqp]\nurll = \"x\"\n").is_err());
    }

    #[test]
    fn fhir_pull_tables_and_tokens() {
        let c: Config = toml::from_str(
            "[[fhir_pull]]\ntenant = \"demo\"\nbase_url = \"https://f/r4\"\nresource_types = [\"Patient\"]\ntoken_env = \"INTAKE_TEST_NO_SUCH_VAR\"\n",
        )
        .unwrap();
        let p = &c.fhir_pull[0];
        assert_eq!((p.interval_ms, p.page_size), (60_000, 100));
        let err = p.to_adapter().unwrap_err().to_string();
        assert!(err.contains("INTAKE_TEST_NO_SUCH_VAR"), "{err}");
        let c: Config = toml::from_str(
            "[[fhir_pull]]\ntenant = \"demo\"\nbase_url = \"https://f/r4\"\nresource_types = [\"Patient\"]\ntoken = \"t\"\ninterval_ms = 5\n\
             [[fhir_pull]]\ntenant = \"demo\"\nbase_url = \"https://g/r4\"\nresource_types = [\"Patient\"]\n",
        )
        .unwrap();
        let a = c.fhir_pull[0].to_adapter().unwrap();
        assert_eq!(a.token.as_deref(), Some("t"));
        assert_eq!(a.interval, Duration::from_millis(5));
        assert!(c.check_fhir_pull().is_err(), "one server per tenant");
        assert!(toml::from_str::<Config>(
            "[[fhir_pull]]\ntenant = \"d\"\nbase_url = \"x\"\nresource_types = []\nintervall = 1\n"
        )
        .is_err());
    }
}
