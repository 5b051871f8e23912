//! TLS from PEM files named in the configuration: the certificate both HTTP
//! ports present (`[server] tls_cert`, `tls_key`), and the authorities trusted
//! for a gateway beside the public ones (`[sms]`/`[bank] ca_cert`). The files
//! are read when the configuration is validated, so that a bad one stops
//! `serve` before it opens the store, naming its key.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// The server side of TLS for `cert` (the chain, the server's own certificate
/// first) and its private `key`; TLS 1.2 and 1.3 with rustls's safe defaults.
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, String> {
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certificates| certificates.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("{}: {e}", cert.display()))?;
    if chain.is_empty() {
        return Err(format!("{}: no certificate in it", cert.display()));
    }
    let key_der =
        PrivateKeyDer::from_pem_file(key).map_err(|e| format!("{}: {e}", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(chain, key_der)
        .map(Arc::new)
        .map_err(|e| format!("{} and {}: {e}", cert.display(), key.display()))
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

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn fixture(name: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/tls")
            .join(name)
    }

    #[test]
    fn the_test_certificate_and_key_make_a_server() {
        server_config(&fixture("server.pem"), &fixture("server.key")).unwrap();
        assert_eq!(authorities(&fixture("ca.pem")).unwrap().len(), 1);
    }

    #[test]
    fn a_wrong_file_is_named() {
        // A key where the certificate belongs, a certificate where the key does.
        let error = server_config(&fixture("server.key"), &fixture("server.key")).unwrap_err();
        assert!(error.contains("server.key: no certificate"), "{error}");
        let error = server_config(&fixture("server.pem"), &fixture("ca.pem")).unwrap_err();
        assert!(error.contains("ca.pem"), "{error}");
        // The CA's certificate does not go with the server's key.
        let error = server_config(&fixture("ca.pem"), &fixture("server.key")).unwrap_err();
        assert!(error.contains("ca.pem and"), "{error}");
        let error = authorities(&fixture("server.key")).unwrap_err();
        assert!(error.contains("server.key: no certificate"), "{error}");
        let error = authorities(&fixture("missing.pem")).unwrap_err();
        assert!(error.contains("missing.pem"), "{error}");
    }
}
