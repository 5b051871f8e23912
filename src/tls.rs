//! TLS from PEM files named in the configuration: the certificate both HTTP
//! ports present (`[server] tls_cert`, `tls_key`), the authorities of the
//! agencies' client certificates on the public port (`[server]
//! tls_client_ca`) and of the operators' on the admin port
//! (`tls_operator_ca`), and the authorities trusted for a gateway beside the
//! public ones (`[sms]`/`[bank] ca_cert`). The files are read when the
//! configuration is validated, so that a bad one stops `serve` before it opens
//! the store, naming its key, and a SIGHUP that reads a bad one changes
//! nothing.

use std::path::Path;
use std::sync::{Arc, RwLock};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;

/// The server side of TLS for both ports: rustls's configurations, and the
/// certificate they present, which [`ServerTls::take_certificate`] replaces
/// while serving: handshakes after that get the new one; connections already
/// open keep theirs, and so does a client that resumes a TLS session from
/// before (it is not shown a certificate again).
#[derive(Debug, Clone)]
pub struct ServerTls {
    /// Asks no client for a certificate (the gateways' simulators use it).
    pub config: Arc<rustls::ServerConfig>,
    /// The admin port's: as [`ServerTls::public`], for operators, with
    /// [`ServerTls::with_operator_authorities`]; otherwise `config`.
    pub admin: Arc<rustls::ServerConfig>,
    /// The public port's: with [`ServerTls::with_client_authorities`], it asks
    /// every client for a certificate, refuses the handshake of one whose
    /// certificate those authorities did not sign, and lets one that shows
    /// none in (the SMS gateway's callback, agencies that use no
    /// certificate); [`keep_client_certificate`] keeps what it showed.
    /// Otherwise `config`.
    pub public: Arc<rustls::ServerConfig>,
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
        let config = Arc::new(
            rustls::ServerConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|e| e.to_string())?
                .with_no_client_auth()
                .with_cert_resolver(presented.clone()),
        );
        Ok(ServerTls {
            public: config.clone(),
            admin: config.clone(),
            config,
            presented,
        })
    }

    /// The public port asks for client certificates that `authorities` (a
    /// PEM bundle) signed; see [`ServerTls::public`].
    pub fn with_client_authorities(mut self, authorities: &Path) -> Result<ServerTls, String> {
        self.public = self.asking_for_certificates(authorities)?;
        Ok(self)
    }

    /// The admin port asks for client certificates that `authorities` (a
    /// PEM bundle) signed, as [`ServerTls::with_client_authorities`].
    pub fn with_operator_authorities(mut self, authorities: &Path) -> Result<ServerTls, String> {
        self.admin = self.asking_for_certificates(authorities)?;
        Ok(self)
    }

    /// A configuration presenting the same certificate that asks every client
    /// for one `authorities` signed, and lets in one that shows none.
    fn asking_for_certificates(
        &self,
        authorities: &Path,
    ) -> Result<Arc<rustls::ServerConfig>, String> {
        let named = |e: &dyn std::fmt::Display| format!("{}: {e}", authorities.display());
        let mut roots = rustls::RootCertStore::empty();
        for certificate in CertificateDer::pem_file_iter(authorities).map_err(|e| named(&e))? {
            roots
                .add(certificate.map_err(|e| named(&e))?)
                .map_err(|e| named(&e))?;
        }
        if roots.is_empty() {
            return Err(named(&"no certificate in it"));
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier =
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .allow_unauthenticated()
                .build()
                .map_err(|e| named(&e))?;
        Ok(Arc::new(
            rustls::ServerConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|e| e.to_string())?
                .with_client_cert_verifier(verifier)
                .with_cert_resolver(self.presented.clone()),
        ))
    }

    /// Whether the public port asks for client certificates
    /// ([`ServerTls::with_client_authorities`]).
    pub fn asks_client_certificates(&self) -> bool {
        !Arc::ptr_eq(&self.public, &self.config)
    }

    /// Whether the admin port asks for client certificates
    /// ([`ServerTls::with_operator_authorities`]).
    pub fn asks_operator_certificates(&self) -> bool {
        !Arc::ptr_eq(&self.admin, &self.config)
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

/// The certificate a client showed (its own, the first of its chain), which
/// the handshake checked against the port's authorities (`server.tls_client_ca`
/// or `tls_operator_ca`): kept with the connection by
/// [`keep_client_certificate`], read by `request.conn_data::<ClientCertificate>()`.
#[derive(Debug, Clone)]
pub struct ClientCertificate(CertificateDer<'static>);

impl ClientCertificate {
    /// Whether the certificate is for `name`: a DNS name (or an IP address)
    /// in its subjectAltName, as a server certificate is checked.
    pub fn names(&self, name: &ServerName<'_>) -> bool {
        webpki::EndEntityCert::try_from(&self.0)
            .is_ok_and(|certificate| certificate.verify_is_valid_for_subject_name(name).is_ok())
    }
}

/// Both ports' `on_connect`: keeps the client certificate a TLS connection
/// showed with the connection ([`ClientCertificate`]).
pub fn keep_client_certificate(
    connection: &dyn std::any::Any,
    data: &mut actix_web::dev::Extensions,
) {
    type Tls = actix_tls::accept::rustls_0_23::TlsStream<actix_web::rt::net::TcpStream>;
    let Some(stream) = connection.downcast_ref::<Tls>() else {
        return;
    };
    let (_, session) = stream.get_ref();
    if let Some(first) = session.peer_certificates().and_then(<[_]>::first) {
        data.insert(ClientCertificate(first.clone().into_owned()));
    }
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
        let server = || ServerTls::from_files(&fixture("server.pem"), &fixture("server.key"));
        let error = server()
            .unwrap()
            .with_client_authorities(&fixture("server.key"))
            .unwrap_err();
        assert!(error.contains("server.key: no certificate"), "{error}");
        let error = server()
            .unwrap()
            .with_client_authorities(&fixture("missing.pem"))
            .unwrap_err();
        assert!(error.contains("missing.pem"), "{error}");
        let with = server()
            .unwrap()
            .with_client_authorities(&fixture("agencies-ca.pem"))
            .unwrap();
        assert!(with.asks_client_certificates() && !with.asks_operator_certificates());
        let operators = server()
            .unwrap()
            .with_operator_authorities(&fixture("agencies-ca.pem"))
            .unwrap();
        assert!(operators.asks_operator_certificates() && !operators.asks_client_certificates());
        assert!(!server().unwrap().asks_client_certificates());
    }

    #[test]
    fn a_client_certificate_names_the_dns_name_it_was_made_for() {
        let certificate =
            |name: &str| ClientCertificate(CertificateDer::from_pem_file(fixture(name)).unwrap());
        let name = |text: &str| ServerName::try_from(text.to_owned()).unwrap();
        let population = certificate("client-population.pem");
        assert!(population.names(&name("population.agencies.test")));
        assert!(!population.names(&name("income.agencies.test")));
        assert!(!population.names(&name("agencies.test")));
        assert!(certificate("client-income.pem").names(&name("income.agencies.test")));
        // Not a certificate at all.
        assert!(!ClientCertificate(CertificateDer::from(vec![1, 2, 3])).names(&name("a.test")));
    }
}
