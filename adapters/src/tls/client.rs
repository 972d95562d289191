//! The client side, for `intake send --tls`: the server is checked against a CA file (or
//! the public web roots), and a client certificate is presented for mutual TLS.

use super::{pem, TlsError};
use rustls::pki_types::ServerName;
use rustls::ClientConfig;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

/// How to connect over TLS.
#[derive(Debug, Clone, Default)]
pub struct TlsClientOptions {
    /// CA certificates (PEM) the server's certificate must chain to; none: the public
    /// web roots.
    pub ca_file: Option<PathBuf>,
    /// A client certificate chain (PEM) for mutual TLS.
    pub cert_file: Option<PathBuf>,
    /// Its private key (PEM).
    pub key_file: Option<PathBuf>,
}

/// A TLS client, ready to connect.
#[derive(Clone)]
pub struct TlsClient {
    connector: TlsConnector,
}

impl TlsClient {
    /// Reads the files.
    pub fn new(options: &TlsClientOptions) -> Result<Self, TlsError> {
        let roots = match &options.ca_file {
            Some(ca) => pem::roots("CA", ca)?,
            None => rustls::RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            },
        };
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Invalid {
                what: "protocol versions",
                reason: e.to_string(),
            })?
            .with_root_certificates(roots);
        let config = match (&options.cert_file, &options.key_file) {
            (None, None) => builder.with_no_client_auth(),
            (Some(cert), Some(key)) => builder
                .with_client_auth_cert(
                    pem::certificates("client certificate", cert)?,
                    pem::private_key(key)?,
                )
                .map_err(|e| TlsError::Invalid {
                    what: "client certificate and key",
                    reason: e.to_string(),
                })?,
            _ => return Err(TlsError::CertWithoutKey),
        };
        Ok(TlsClient {
            connector: TlsConnector::from(Arc::new(config)),
        })
    }

    /// Runs the handshake on `stream`, checking the server's certificate for
    /// `server_name` (a DNS name or an IP address).
    pub async fn connect(
        &self,
        server_name: &str,
        stream: TcpStream,
    ) -> std::io::Result<TlsStream<TcpStream>> {
        let name = ServerName::try_from(server_name.to_string()).map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "the TLS server name is neither a DNS name nor an IP address",
            )
        })?;
        self.connector.connect(name, stream).await
    }
}
