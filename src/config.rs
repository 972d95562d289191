//! Configuration: defaults, an optional TOML file, then environment overrides.
//!
//! Each component's table (`[http]`, `[[mllp]]`, `[amqp]`, `[[fhir_pull]]`) is the
//! component's own settings struct, with its defaults and checks, from
//! `intake_adapters::<component>::config`; this file only embeds them and lists them in
//! [`Config::components`]. A new component adds its field and one line there.
//!
//! It is the one module of the `intake` library target, so that the fuzz targets reach
//! [`Config::parse`]; the binary re-exports it as `crate::config`.

use anyhow::{Context, Result};
use intake_adapters::amqp::config::AmqpConfig;
use intake_adapters::component::ComponentConfig;
use intake_adapters::fhir_pull::config::PullServers;
use intake_adapters::http::config::HttpConfig;
use intake_adapters::mllp::config::MllpConfig;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

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
    /// The named, scoped tokens, stored hashed (`intake token create` writes it; a
    /// running server reads it again when it changes).
    pub tokens_file: PathBuf,
    /// Connections all listeners (MLLP and HTTP) may hold together; one more is closed at
    /// once (`CONNECTION_LIMIT`), so sockets never take the descriptors the store needs.
    pub max_connections_total: usize,
    /// The HTTP server.
    pub http: HttpConfig,
    /// MLLP listeners.
    pub mllp: Vec<MllpConfig>,
    /// The batching writer.
    pub writer: WriterSettings,
    /// Mapping files.
    pub mappings: MappingsSettings,
    /// The RabbitMQ publisher; absent (or without a URL): no outbox, no publisher.
    pub amqp: Option<AmqpConfig>,
    /// FHIR servers polled for new and changed resources, one per tenant.
    pub fhir_pull: PullServers,
}

/// `[writer]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WriterSettings {
    /// Most messages per transaction.
    pub max_batch: usize,
    /// Microseconds to wait for more messages before committing (0: no wait).
    pub max_wait_us: u64,
    /// Most events per transaction (a message with more is committed alone).
    pub max_batch_events: usize,
}

/// `[mappings]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MappingsSettings {
    /// Milliseconds between checks of the mappings folder for edits (0: no hot reload).
    pub reload_interval_ms: u64,
    /// Staged deploys: a tenant's edited mappings go live on hot reload only once its
    /// golden samples (`samples_dir/<tenant>/`) pass. Off: every valid save goes live.
    pub staged: bool,
    /// Folder of `<tenant>/` golden samples that staged deploys run.
    pub samples_dir: PathBuf,
    /// How many versions of each tenant's mappings the history keeps (for rollback).
    pub history: usize,
}

impl Default for MappingsSettings {
    fn default() -> Self {
        MappingsSettings {
            reload_interval_ms: 1000,
            staged: true,
            samples_dir: "samples".into(),
            history: 10,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            database_url: "sqlite://data/intake.db".into(),
            mappings_dir: "mappings".into(),
            admin_token: None,
            tenant_tokens: BTreeMap::new(),
            tokens_file: "data/tokens.toml".into(),
            max_connections_total: 4096,
            http: HttpConfig::default(),
            mllp: vec![MllpConfig::default()],
            writer: WriterSettings::default(),
            mappings: MappingsSettings::default(),
            amqp: None,
            fhir_pull: PullServers::default(),
        }
    }
}

impl Default for WriterSettings {
    fn default() -> Self {
        WriterSettings {
            max_batch: 512,
            max_wait_us: 0,
            max_batch_events: 4096,
        }
    }
}

impl Config {
    /// The configuration a file's text gives (defaults for what it leaves out), without
    /// the environment: pure, for `load` and the fuzz target.
    pub fn parse(text: &str) -> Result<Config, toml::de::Error> {
        toml::from_str(text)
    }

    /// Defaults, then the file (if given), then environment variables.
    pub fn load(file: Option<&Path>) -> Result<Config> {
        let mut config = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading config file {}", path.display()))?;
                Config::parse(&text)
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
        if let Some(v) = env("INTAKE_TOKENS_FILE") {
            config.tokens_file = v.into();
        }
        if let Some(v) = env("INTAKE_AMQP_URL") {
            config.amqp.get_or_insert_with(AmqpConfig::default).url = v;
        }
        if let Some(v) = env("INTAKE_HTTP_ADDR") {
            config.http.addr = v.parse().context("INTAKE_HTTP_ADDR must be host:port")?;
        }
        if let Some(v) = env("INTAKE_MLLP_ADDR") {
            let addr = v.parse().context("INTAKE_MLLP_ADDR must be host:port")?;
            match config.mllp.first_mut() {
                Some(l) => l.addr = addr,
                None => config.mllp.push(MllpConfig {
                    addr,
                    ..Default::default()
                }),
            }
        }
        Ok(config)
    }

    /// The publisher settings when a broker is configured (an `[amqp]` URL).
    pub fn broker(&self) -> Option<&AmqpConfig> {
        self.amqp.as_ref().filter(|a| a.has_broker())
    }

    /// Every configured component, in start order: the pollers and the publisher, the
    /// MLLP listeners in file order, and the HTTP server last (its `intake listening:
    /// http` line tells that everything is up).
    pub fn components(&self) -> Vec<&dyn ComponentConfig> {
        let mut all: Vec<&dyn ComponentConfig> = vec![&self.fhir_pull];
        all.extend(self.broker().map(|a| a as &dyn ComponentConfig));
        all.extend(self.mllp.iter().map(|l| l as &dyn ComponentConfig));
        all.push(&self.http);
        all
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
    fn defaults_run_one_listener_and_the_http_server() {
        let c: Config = toml::from_str("").unwrap();
        assert_eq!(c.mllp.len(), 1);
        assert_eq!(c.mllp[0].addr.to_string(), "127.0.0.1:2575");
        assert_eq!(c.mllp[0].tenant.as_deref(), Some("demo"));
        assert_eq!(c.http.addr.to_string(), "127.0.0.1:8080");
        assert!(c.fhir_pull.0.is_empty());
        assert_eq!(c.components().len(), 3, "pull (none), mllp, http");
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
        let p = &c.fhir_pull.0[0];
        assert_eq!((p.interval_ms, p.page_size), (60_000, 100));
        let err = c.fhir_pull.check().unwrap_err().to_string();
        assert!(err.contains("INTAKE_TEST_NO_SUCH_VAR"), "{err}");
        let c: Config = toml::from_str(
            "[[fhir_pull]]\ntenant = \"demo\"\nbase_url = \"https://f/r4\"\nresource_types = [\"Patient\"]\ntoken = \"t\"\ninterval_ms = 5\n\
             [[fhir_pull]]\ntenant = \"demo\"\nbase_url = \"https://g/r4\"\nresource_types = [\"Patient\"]\n",
        )
        .unwrap();
        let a = &c.fhir_pull.0[0];
        assert_eq!(a.bearer_token().unwrap().as_deref(), Some("t"));
        assert_eq!(a.interval(), std::time::Duration::from_millis(5));
        assert!(c.fhir_pull.check().is_err(), "one server per tenant");
        assert!(toml::from_str::<Config>(
            "[[fhir_pull]]\ntenant = \"d\"\nbase_url = \"x\"\nresource_types = []\nintervall = 1\n"
        )
        .is_err());
    }
}
