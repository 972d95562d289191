//! The server side: a handshake on each accepted socket, with the certificate files read
//! again when they change, and the mutual-TLS allow-list checked after the handshake.

use super::config::{TlsConfig, TlsVersion};
use super::internal_events::{TlsReloadFailed, TlsReloaded};
use super::{pem, TlsError};
use rustls::server::WebPkiClientVerifier;
use rustls::ServerConfig;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

/// How often, at most, the files are looked at for changes (on a handshake).
const RELOAD_CHECK: Duration = Duration::from_secs(1);

/// What a file looked like when last read: modification time and length.
type Stamp = Option<(SystemTime, u64)>;

/// TLS on one listener.
pub struct TlsServer {
    config: TlsConfig,
    alpn: Vec<Vec<u8>>,
    /// Where it is used, for its logs (e.g. "mllp 0.0.0.0:2575").
    listener: String,
    loaded: Mutex<Loaded>,
}

struct Loaded {
    server: Arc<ServerConfig>,
    stamps: Vec<Stamp>,
    checked: Instant,
}

/// Why a client's connection was closed before any application byte.
#[derive(Debug)]
pub enum Refusal {
    /// The handshake took longer than `handshake_timeout_ms`.
    Timeout,
    /// The handshake failed: not TLS, no or an untrusted client certificate, no common
    /// protocol version or cipher suite. Holds rustls' reason (never application data).
    Handshake(std::io::Error),
    /// The client's certificate is trusted but none of its names is in `allowed_clients`.
    NotAllowed,
}

impl Refusal {
    /// The stable code logged for it.
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::Timeout => "TLS_HANDSHAKE_TIMEOUT",
            Refusal::Handshake(_) => "TLS_HANDSHAKE_FAILED",
            Refusal::NotAllowed => "TLS_CLIENT_NOT_ALLOWED",
        }
    }

    /// Logs it.
    pub fn emit(&self, peer: SocketAddr) {
        let code = self.code();
        match self {
            Refusal::Handshake(e) => {
                tracing::info!(%peer, code, reason = %e, "TLS connection refused")
            }
            _ => tracing::info!(%peer, code, "TLS connection refused"),
        }
    }
}

impl TlsServer {
    /// Reads the files and builds the server settings; `alpn` lists the application
    /// protocols offered (none for MLLP; h2 and http/1.1 for HTTP).
    pub fn load(config: TlsConfig, alpn: &[&[u8]], listener: String) -> Result<Self, TlsError> {
        if !config.allowed_clients.is_empty() && config.client_ca_file.is_none() {
            return Err(TlsError::AllowListWithoutCa);
        }
        let alpn: Vec<Vec<u8>> = alpn.iter().map(|p| p.to_vec()).collect();
        let stamps = stamps(&config);
        let server = Arc::new(build(&config, &alpn)?);
        Ok(TlsServer {
            config,
            alpn,
            listener,
            loaded: Mutex::new(Loaded {
                server,
                stamps,
                checked: Instant::now(),
            }),
        })
    }

    /// Runs the handshake on `stream` within the handshake timeout, then checks the
    /// allow-list. Returns the stream and the client's name (its certificate's first
    /// common name or alternative name) under mutual TLS.
    pub async fn accept<S>(&self, stream: S) -> Result<(TlsStream<S>, Option<String>), Refusal>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let acceptor = TlsAcceptor::from(self.current());
        let tls =
            match tokio::time::timeout(self.config.handshake_timeout(), acceptor.accept(stream))
                .await
            {
                Err(_) => return Err(Refusal::Timeout),
                Ok(Err(e)) => return Err(Refusal::Handshake(e)),
                Ok(Ok(tls)) => tls,
            };
        let names = match tls.get_ref().1.peer_certificates() {
            Some([leaf, ..]) => client_names(leaf.as_ref()),
            _ => Vec::new(),
        };
        let allowed = &self.config.allowed_clients;
        if !allowed.is_empty() && !names.iter().any(|n| allowed.contains(n)) {
            return Err(Refusal::NotAllowed);
        }
        Ok((tls, names.into_iter().next()))
    }

    /// The settings in force: read again when a file changed since the last look (at most
    /// once every [`RELOAD_CHECK`]). Files that no longer load leave the last good
    /// settings in force, and are tried again when they change again.
    fn current(&self) -> Arc<ServerConfig> {
        let mut loaded = self.loaded.lock().unwrap_or_else(|p| p.into_inner());
        if loaded.checked.elapsed() >= RELOAD_CHECK {
            loaded.checked = Instant::now();
            let now = stamps(&self.config);
            if now != loaded.stamps {
                loaded.stamps = now;
                match build(&self.config, &self.alpn) {
                    Ok(server) => {
                        loaded.server = Arc::new(server);
                        TlsReloaded {
                            listener: &self.listener,
                        }
                        .emit();
                    }
                    Err(error) => TlsReloadFailed {
                        listener: &self.listener,
                        error: &error,
                    }
                    .emit(),
                }
            }
        }
        loaded.server.clone()
    }
}

fn stamps(config: &TlsConfig) -> Vec<Stamp> {
    config
        .files()
        .into_iter()
        .map(|f| {
            let meta = std::fs::metadata(f).ok()?;
            Some((meta.modified().ok()?, meta.len()))
        })
        .collect()
}

/// The rustls settings for `config`.
fn build(config: &TlsConfig, alpn: &[Vec<u8>]) -> Result<ServerConfig, TlsError> {
    let invalid = |what| {
        move |e: rustls::Error| TlsError::Invalid {
            what,
            reason: e.to_string(),
        }
    };
    let certs = pem::certificates("certificate", &config.cert_file)?;
    let key = pem::private_key(&config.key_file)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let versions: &[&rustls::SupportedProtocolVersion] = match config.min_version {
        TlsVersion::Tls12 => &[&rustls::version::TLS13, &rustls::version::TLS12],
        TlsVersion::Tls13 => &[&rustls::version::TLS13],
    };
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .map_err(invalid("protocol versions"))?;
    let builder = match &config.client_ca_file {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let roots = Arc::new(pem::roots("client CA", ca)?);
            let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider)
                .build()
                .map_err(|e| TlsError::Invalid {
                    what: "client CA",
                    reason: e.to_string(),
                })?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut server = builder
        .with_single_cert(certs, key)
        .map_err(invalid("certificate and key"))?;
    server.alpn_protocols = alpn.to_vec();
    Ok(server)
}

/// A certificate's names: the subject's common names, then its DNS, URI and e-mail
/// alternative names. A certificate that does not parse has none.
pub fn client_names(der: &[u8]) -> Vec<String> {
    use x509_parser::extensions::GeneralName;
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) else {
        return Vec::new();
    };
    let mut names: Vec<String> = cert
        .subject()
        .iter_common_name()
        .filter_map(|cn| cn.as_str().ok().map(str::to_string))
        .collect();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                GeneralName::DNSName(n) | GeneralName::URI(n) | GeneralName::RFC822Name(n) => {
                    names.push(n.to_string())
                }
                _ => {}
            }
        }
    }
    names
}
