//! TLS for every outbound request (checks, alerts, restarts): which certificates are trusted (the
//! bundled webpki roots, plus `SSL_CERT_FILE`, plus a worker's `tls.ca_file`), skipping
//! verification for a worker with `tls.insecure`, short error texts, and the leaf certificate's
//! expiry. ureq's own rustls connector can do none of the per-worker parts and does not expose the
//! peer certificate, so the rustls client configs are built here and used by `connector`.

pub mod connector;
pub mod errors;
pub mod expiry;

use crate::config::{CaFile, TlsSettings};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{Resumption, WebPkiServerVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::sync::{Arc, Mutex, Weak};

/// The two client configs of one trust setting. `fresh` never resumes a session, so its handshake
/// always carries the server's current certificate (a resumed session reports the one cached
/// when the session began, which would hide a renewal).
#[derive(Debug)]
pub struct ClientConfigs {
    pub resume: Arc<ClientConfig>,
    pub fresh: Arc<ClientConfig>,
}

/// Builds and shares client configs: one per distinct trust setting among the targets, so a
/// thousand workers with the same settings share one root store and one session cache.
pub struct Trust {
    provider: Arc<CryptoProvider>,
    /// `SSL_CERT_FILE`'s certificates, trusted everywhere (a reload reads the file again).
    extra: Mutex<Certs>,
    /// Held weakly: a config no agent uses any more (a reload replaced it) is let go.
    built: Mutex<Vec<(TrustKey, Weak<ClientConfigs>)>>,
}

type Certs = Arc<Vec<CertificateDer<'static>>>;

/// What makes two targets' trust the same: the certificates trusted (not the files' paths, whose
/// content a reload may find changed) and `insecure`.
#[derive(PartialEq)]
struct TrustKey {
    extra: Certs,
    ca: Option<Certs>,
    insecure: bool,
}

impl Trust {
    pub fn new(ssl_cert_file: Option<&CaFile>) -> Trust {
        Trust {
            provider: Arc::new(rustls::crypto::ring::default_provider()),
            extra: Mutex::new(certs_of(ssl_cert_file)),
            built: Mutex::new(Vec::new()),
        }
    }

    /// Trusts `SSL_CERT_FILE`'s certificates as read by a reload; true when they changed (every
    /// agent built before then trusts the old ones).
    pub fn set_ssl_cert_file(&self, file: Option<&CaFile>) -> bool {
        let new = certs_of(file);
        let mut extra = self.extra.lock().unwrap_or_else(|e| e.into_inner());
        let changed = *extra != new;
        *extra = new;
        changed
    }

    fn extra(&self) -> Certs {
        Arc::clone(&self.extra.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// The configs for `s`, built on first use.
    pub fn configs(&self, s: &TlsSettings) -> Arc<ClientConfigs> {
        let key = TrustKey {
            extra: self.extra(),
            ca: s.ca_file.as_ref().map(|f| Arc::clone(&f.certs)),
            insecure: s.insecure,
        };
        let mut built = self.built.lock().unwrap_or_else(|e| e.into_inner());
        built.retain(|(_, c)| c.strong_count() > 0);
        if let Some(c) = built.iter().find(|(k, _)| *k == key).and_then(|(_, c)| c.upgrade()) {
            return c;
        }
        let c = Arc::new(self.build(s, &key.extra));
        built.push((key, Arc::downgrade(&c)));
        c
    }

    /// The certificate verifier for `s`: every trusted root, or none at all for `insecure`.
    pub fn verifier(&self, s: &TlsSettings) -> Arc<dyn ServerCertVerifier> {
        self.verifier_with(s, &self.extra())
    }

    fn verifier_with(&self, s: &TlsSettings, extra: &[CertificateDer<'static>]) -> Arc<dyn ServerCertVerifier> {
        if s.insecure {
            return Arc::new(Unverified {
                algorithms: self.provider.signature_verification_algorithms,
            });
        }
        let mut roots = RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        let ca = s.ca_file.iter().flat_map(|f| f.certs.iter());
        // Both files were checked when the configuration was loaded.
        roots.add_parsable_certificates(extra.iter().chain(ca).cloned());
        match WebPkiServerVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&self.provider)).build() {
            Ok(v) => v,
            // The builder fails only on an empty root store; the bundled roots are never empty.
            Err(e) => unreachable!("certificate verifier: {e}"),
        }
    }

    fn build(&self, s: &TlsSettings, extra: &[CertificateDer<'static>]) -> ClientConfigs {
        let config = match ClientConfig::builder_with_provider(Arc::clone(&self.provider))
            .with_safe_default_protocol_versions()
        {
            Ok(b) => b
                .dangerous()
                .with_custom_certificate_verifier(self.verifier_with(s, extra))
                .with_no_client_auth(),
            // ring supports both default TLS versions.
            Err(e) => unreachable!("TLS versions: {e}"),
        };
        let mut fresh = config.clone();
        fresh.resumption = Resumption::disabled();
        ClientConfigs {
            resume: Arc::new(config),
            fresh: Arc::new(fresh),
        }
    }
}

fn certs_of(file: Option<&CaFile>) -> Certs {
    file.map(|f| Arc::clone(&f.certs)).unwrap_or_default()
}

/// `tls.insecure`: any certificate is accepted, but the handshake signatures are still checked,
/// so the connection is at least encrypted to whoever holds the presented certificate's key.
#[derive(Debug)]
struct Unverified {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for Unverified {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
pub(crate) mod testcerts;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tls::{parse_pem_certs, read_ca_file};
    use std::path::{Path, PathBuf};
    use testcerts::{Ca, leaf_days};

    #[test]
    fn pem_files_need_at_least_one_certificate() {
        let ca = Ca::new();
        assert_eq!(parse_pem_certs(ca.pem().as_bytes()).unwrap().len(), 1);
        let two = format!("{}\n{}", ca.pem(), Ca::new().pem());
        assert_eq!(parse_pem_certs(two.as_bytes()).unwrap().len(), 2);
        let none = parse_pem_certs(b"just text\n").unwrap_err();
        assert!(none.contains("holds no certificate"), "{none}");
        let bad =
            parse_pem_certs(b"-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n").unwrap_err();
        assert!(bad.contains("not valid PEM"), "{bad}");
        let junk = parse_pem_certs(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n").unwrap_err();
        assert!(junk.contains("certificate 1 is not a valid X.509"), "{junk}");
    }

    #[test]
    fn missing_ca_file_names_the_file() {
        let e = read_ca_file(Path::new("/nonexistent/ca.pem")).unwrap_err();
        assert!(e.starts_with("cannot read \"/nonexistent/ca.pem\""), "{e}");
    }

    #[test]
    fn configs_are_shared_per_setting() {
        let t = Trust::new(None);
        let a = t.configs(&TlsSettings::default());
        let b = t.configs(&TlsSettings::default());
        assert!(Arc::ptr_eq(&a, &b));
        let c = t.configs(&TlsSettings {
            insecure: true,
            ..TlsSettings::default()
        });
        assert!(!Arc::ptr_eq(&a, &c));
    }

    #[test]
    fn a_ca_file_whose_content_changed_gets_new_configs() {
        let t = Trust::new(None);
        let file = |ca: &Ca| TlsSettings {
            ca_file: Some(CaFile {
                path: PathBuf::from("ca.pem"),
                certs: Arc::new(vec![ca.der()]),
            }),
            insecure: false,
        };
        let (old, new) = (Ca::new(), Ca::new());
        let before = t.configs(&file(&old));
        assert!(
            Arc::ptr_eq(&before, &t.configs(&file(&old))),
            "the same content: shared"
        );
        let after = t.configs(&file(&new));
        assert!(!Arc::ptr_eq(&before, &after), "same path, new content: new configs");

        let plain = t.configs(&TlsSettings::default());
        let ssl = CaFile {
            path: PathBuf::from("ssl.pem"),
            certs: Arc::new(vec![new.der()]),
        };
        assert!(t.set_ssl_cert_file(Some(&ssl)), "SSL_CERT_FILE's content changed");
        assert!(!t.set_ssl_cert_file(Some(&ssl.clone())), "the same content again");
        assert!(!Arc::ptr_eq(&plain, &t.configs(&TlsSettings::default())));
        let leaf = leaf_days(&new, &["localhost"], 30);
        let name = ServerName::try_from("localhost").unwrap();
        let verified =
            t.verifier(&TlsSettings::default())
                .verify_server_cert(&leaf.der, &[], &name, &[], UnixTime::now());
        assert!(verified.is_ok(), "SSL_CERT_FILE as read again is trusted");
        drop((before, after, plain));
        let _kept = t.configs(&TlsSettings::default());
        assert_eq!(t.built.lock().unwrap().len(), 1, "configs no agent uses are let go");
    }

    #[test]
    fn ca_file_and_ssl_cert_file_are_trusted() {
        let ca = Ca::new();
        let leaf = leaf_days(&ca, &["localhost"], 30);
        let file = CaFile {
            path: PathBuf::from("ca.pem"),
            certs: Arc::new(vec![ca.der()]),
        };
        let name = ServerName::try_from("localhost").unwrap();
        let verify = |t: &Trust, s: &TlsSettings| {
            t.verifier(s)
                .verify_server_cert(&leaf.der, &[], &name, &[], UnixTime::now())
        };
        assert!(verify(&Trust::new(None), &TlsSettings::default()).is_err());
        let with_ca = TlsSettings {
            ca_file: Some(file.clone()),
            insecure: false,
        };
        assert!(verify(&Trust::new(None), &with_ca).is_ok());
        assert!(verify(&Trust::new(Some(&file)), &TlsSettings::default()).is_ok());
        let insecure = TlsSettings {
            insecure: true,
            ..TlsSettings::default()
        };
        assert!(verify(&Trust::new(None), &insecure).is_ok());
    }
}
