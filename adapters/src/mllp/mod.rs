//! MLLP: `0x0B` message `0x1C 0x0D` over TCP. One listener per `[[mllp]]` table.

pub mod client;
pub mod config;
pub mod frame;
mod internal_events;
pub mod listener;

use crate::component::{Built, ComponentConfig, Env, StartError};
use crate::tls::server::TlsServer;
use config::MllpConfig;
use listener::MllpListener;
use std::sync::Arc;

#[async_trait::async_trait]
impl ComponentConfig for MllpConfig {
    async fn build(&self, env: &Env) -> Result<Built, StartError> {
        if let Some(t) = &self.tenant {
            env.require_tenant(&format!("MLLP listener {}", self.addr), t)?;
        }
        let bind_error = |source| StartError::Bind {
            what: "MLLP listener",
            addr: self.addr,
            source,
        };
        let tls = match &self.tls {
            None => None,
            Some(tls) => Some(Arc::new(
                TlsServer::load(tls.clone(), &[], format!("mllp {}", self.addr)).map_err(
                    |source| StartError::Tls {
                        what: "MLLP listener",
                        addr: self.addr,
                        source,
                    },
                )?,
            )),
        };
        let scheme = if tls.is_some() { "mllp+tls" } else { "mllp" };
        let listener = MllpListener::bind(self.clone(), tls, env.connections.clone())
            .await
            .map_err(bind_error)?;
        let addr = listener.local_addr().map_err(bind_error)?;
        let banner = match &self.tenant {
            Some(t) => format!("listening: {scheme} {addr} tenant={t}"),
            None => format!("listening: {scheme} {addr} routed"),
        };
        Ok(Built {
            component: Box::new(listener),
            banner: vec![banner],
        })
    }

    fn bound_tenants(&self) -> Vec<String> {
        self.tenant.iter().cloned().collect()
    }
}
