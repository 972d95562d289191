//! A listener's `tls` table (`[[mllp]]` → `tls = { ... }`, `[http.tls]`).

use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

/// TLS on one listener. Without `client_ca_file` any client may connect (server TLS);
/// with it, a client must present a certificate signed by that CA (mutual TLS), and with
/// `allowed_clients` also one whose subject common name or a subject alternative name
/// (DNS, URI or e-mail) is on the list.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// The server's certificate chain (PEM, leaf first). Read again when it changes.
    pub cert_file: PathBuf,
    /// The certificate's private key (PEM: PKCS#8, PKCS#1 or SEC1). Read again when it
    /// changes.
    pub key_file: PathBuf,
    /// CA certificates (PEM) that sign the clients' certificates: mutual TLS.
    #[serde(default)]
    pub client_ca_file: Option<PathBuf>,
    /// Client names let in (common name or subject alternative name); empty: any client
    /// with a certificate from `client_ca_file`.
    #[serde(default)]
    pub allowed_clients: Vec<String>,
    /// The oldest protocol version accepted: "1.2" (default) or "1.3".
    #[serde(default)]
    pub min_version: TlsVersion,
    /// Milliseconds a client may take for the handshake (then the connection is closed).
    #[serde(default = "default_handshake_ms")]
    pub handshake_timeout_ms: u64,
}

/// A TLS protocol version.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum TlsVersion {
    /// TLS 1.2 (and 1.3).
    #[default]
    #[serde(rename = "1.2")]
    Tls12,
    /// TLS 1.3 only.
    #[serde(rename = "1.3")]
    Tls13,
}

fn default_handshake_ms() -> u64 {
    10_000
}

impl TlsConfig {
    /// How long a handshake may take.
    pub fn handshake_timeout(&self) -> Duration {
        Duration::from_millis(self.handshake_timeout_ms.max(1))
    }

    /// The files the settings read, watched for changes.
    pub(crate) fn files(&self) -> Vec<&PathBuf> {
        let mut files = vec![&self.cert_file, &self.key_file];
        files.extend(&self.client_ca_file);
        files
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tls_table_needs_its_files_and_knows_its_keys() {
        let c: TlsConfig = toml::from_str("cert_file = \"c.pem\"\nkey_file = \"k.pem\"\n").unwrap();
        assert_eq!(c.min_version, TlsVersion::Tls12);
        assert!(c.client_ca_file.is_none() && c.allowed_clients.is_empty());
        let c: TlsConfig =
            toml::from_str("cert_file = \"c\"\nkey_file = \"k\"\nmin_version = \"1.3\"\n").unwrap();
        assert_eq!(c.min_version, TlsVersion::Tls13);
        assert!(toml::from_str::<TlsConfig>("cert_file = \"c\"\n").is_err());
        assert!(toml::from_str::<TlsConfig>(
            "cert_file = \"c\"\nkey_file = \"k\"\nmin_version = \"1.1\"\n"
        )
        .is_err());
        assert!(
            toml::from_str::<TlsConfig>("cert_file = \"c\"\nkey_file = \"k\"\nca = \"x\"\n")
                .is_err()
        );
    }
}
