//! TLS from PEM files named in the configuration: the certificate both HTTP
//! ports present (`[server] tls_cert`, `tls_key`), and the authorities trusted
//! for a gateway beside the public ones (`[sms]`/`[bank] ca_cert`). The files
//! are read when the configuration is validated, so that a bad one stops
//! `serve` before it opens the store, naming its key, and a SIGHUP that reads
//! a bad one changes nothing.

use std::path::Path;
use std::sync::{Arc, RwLock};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// The server side of TLS for both ports: rustls's configuration, and the
/// certificate it presents, which [`ServerTls::take_certificate`] replaces
/// while serving: handshakes after that get the new one; connections already
/// open keep theirs, and so does a client that resumes a TLS session from
/// before (it is not shown a certificate again).
#[derive(Debug, Clone)]
pub struct ServerTls {
    pub config: Arc<rustls::ServerConfig>,
    presented: Arc<Presented>,
}

#[derive(Debug)]
struct Presented(RwLock<Arc<CertifiedKey>>);

impl ResolvesServerCert for Presented {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.read().unwrap_or_else(|e| e.into_inner()).clone())
    }
}

impl ServerTls {
    /// TLS 1.2 and 1.3 with rustls's safe defaults, presenting `cert` (the
    /// chain, the server's own certificate first) with its private `key`.
    pub fn from_files(cert: &Path, key: &Path) -> Result<ServerTls, String> {
        let chain = CertificateDer::pem_file_iter(cert)
            .and_then(|certificates| certificates.collect::<Result<Vec<_>, _>>())
            .map_err(|e| format!("{}: {e}", cert.display()))?;
        if chain.is_empty() {
            return Err(format!("{}: no certificate in it", cert.display()));
        }
        let key_der =
            PrivateKeyDer::from_pem_file(key).map_err(|e| format!("{}: {e}", key.display()))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let certified = CertifiedKey::from_der(chain, key_der, &provider)
            .map_err(|e| format!("{} and {}: {e}", cert.display(), key.display()))?;
        let presented = Arc::new(Presented(RwLock::new(Arc::new(certified))));
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_no_client_auth()
            .with_cert_resolver(presented.clone());
        Ok(ServerTls {
            config: Arc::new(config),
            presented,
        })
    }

    /// Presents the certificate of `other` (the same files, read again) from now on.
    pub fn take_certificate(&self, other: &ServerTls) {
        let newest = other
            .presented
            .0
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        *self.presented.0.write().unwrap_or_else(|e| e.into_inner()) = newest;
    }
}

/// The certificates of a PEM bundle, to trust as authorities.
pub fn authorities(path: &Path) -> Result<Vec<reqwest::Certificate>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let certificates = reqwest::Certificate::from_pem_bundle(&bytes)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if certificates.is_empty() {
        return Err(format!("{}: no certificate in it", path.display()));
    }
    Ok(certificates)
}

/// A test-only TLS file (`tests/fixtures/tls`).
#[cfg(test)]
pub(crate) fn fixture(name: &str) -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/tls")
        .join(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_test_certificate_and_key_make_a_server() {
        ServerTls::from_files(&fixture("server.pem"), &fixture("server.key")).unwrap();
        assert_eq!(authorities(&fixture("ca.pem")).unwrap().len(), 1);
    }

    #[test]
    fn a_wrong_file_is_named() {
        let refused = |cert: &str, key: &str| {
            ServerTls::from_files(&fixture(cert), &fixture(key)).unwrap_err()
        };
        // A key where the certificate belongs, a certificate where the key does.
        let error = refused("server.key", "server.key");
        assert!(error.contains("server.key: no certificate"), "{error}");
        let error = refused("server.pem", "ca.pem");
        assert!(error.contains("ca.pem"), "{error}");
        // A certificate with another certificate's key.
        let error = refused("server2.pem", "server.key");
        assert!(error.contains("server2.pem and"), "{error}");
        let error = authorities(&fixture("server.key")).unwrap_err();
        assert!(error.contains("server.key: no certificate"), "{error}");
        let error = authorities(&fixture("missing.pem")).unwrap_err();
        assert!(error.contains("missing.pem"), "{error}");
    }
}
