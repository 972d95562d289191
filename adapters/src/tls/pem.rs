//! Reading PEM files into rustls' types. The PEM parser's errors can quote the offending
//! line; these are replaced by a fixed reason, so a key never reaches a log.

use super::TlsError;
use rustls::pki_types::pem::{Error as PemError, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::RootCertStore;
use std::path::Path;

/// Every certificate in a PEM file, in order; at least one.
pub fn certificates(
    what: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let read = |e: PemError| read_error(what, path, &e);
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(read)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(read)?;
    if certs.is_empty() {
        return Err(read_error(what, path, &PemError::NoItemsFound));
    }
    Ok(certs)
}

/// The first private key (PKCS#8, PKCS#1 or SEC1) in a PEM file.
pub fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| read_error("private key", path, &e))
}

/// A trust store of every certificate in a PEM file.
pub fn roots(what: &'static str, path: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in certificates(what, path)? {
        roots.add(cert).map_err(|e| TlsError::Invalid {
            what,
            reason: e.to_string(),
        })?;
    }
    Ok(roots)
}

fn read_error(what: &'static str, path: &Path, error: &PemError) -> TlsError {
    let reason = match error {
        PemError::Io(e) => e.to_string(),
        PemError::NoItemsFound => "no PEM item of the expected kind".to_string(),
        PemError::MissingSectionEnd { .. } => "a PEM section has no END line".to_string(),
        PemError::IllegalSectionStart { .. } => "a malformed BEGIN line".to_string(),
        PemError::Base64Decode(_) => "invalid base64 inside a PEM section".to_string(),
        _ => "not a readable PEM file".to_string(),
    };
    TlsError::Read {
        what,
        path: path.to_path_buf(),
        reason,
    }
}
