//! MLLP: `0x0B` message `0x1C 0x0D` over TCP. One listener per `[[mllp]]` table.

pub mod client;
pub mod config;
pub mod frame;
mod internal_events;
pub mod listener;

use crate::component::{Built, ComponentConfig, Env, StartError};
use config::MllpConfig;
use listener::MllpListener;

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
        let listener = MllpListener::bind(self.clone()).await.map_err(bind_error)?;
        let addr = listener.local_addr().map_err(bind_error)?;
        let banner = match &self.tenant {
            Some(t) => format!("listening: mllp {addr} tenant={t}"),
            None => format!("listening: mllp {addr} routed"),
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
