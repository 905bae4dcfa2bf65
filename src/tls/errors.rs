//! TLS failures as short, specific text (`tls: certificate expired`), never a library's debug
//! output. The connector wraps a handshake failure in `Failure` so `probe::describe` can show it.

use rustls::pki_types::ServerName;
use rustls::{AlertDescription, CertificateError, Error};
use std::fmt;

/// A handshake that failed, already described. Carried inside an `io::Error` through ureq.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure(pub String);

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Failure {}

/// The text for a rustls error; `host` names the server when the error itself does not.
pub fn describe(e: &Error, host: &str) -> String {
    match e {
        Error::InvalidCertificate(c) => certificate(c, host),
        Error::AlertReceived(a) => format!("tls: handshake failed ({})", alert(*a)),
        Error::NoCertificatesPresented => "tls: handshake failed (the server sent no certificate)".to_string(),
        Error::PeerIncompatible(_) => {
            "tls: handshake failed (no TLS version or cipher in common with the server)".to_string()
        }
        Error::InvalidMessage(_) | Error::InappropriateMessage { .. } | Error::InappropriateHandshakeMessage { .. } => {
            "tls: handshake failed (the server did not answer with TLS)".to_string()
        }
        Error::PeerMisbehaved(_) | Error::PeerSentOversizedRecord | Error::DecryptError => {
            "tls: handshake failed (the server broke the TLS protocol)".to_string()
        }
        Error::UnsupportedNameType => format!("tls: handshake failed ({host:?} cannot be used as a TLS server name)"),
        _ => "tls: handshake failed".to_string(),
    }
}

fn certificate(c: &CertificateError, host: &str) -> String {
    use CertificateError as C;
    match c {
        C::Expired | C::ExpiredContext { .. } => "tls: certificate expired".to_string(),
        C::NotValidYet | C::NotValidYetContext { .. } => "tls: certificate not valid yet".to_string(),
        C::UnknownIssuer => "tls: certificate not trusted (unknown issuer)".to_string(),
        C::BadSignature => "tls: certificate not trusted (bad signature)".to_string(),
        C::NotValidForName => format!("tls: certificate not valid for {host}"),
        C::NotValidForNameContext { expected, .. } => format!("tls: certificate not valid for {}", name(expected)),
        C::Revoked => "tls: certificate revoked".to_string(),
        C::InvalidPurpose | C::InvalidPurposeContext { .. } => {
            "tls: certificate not valid for a server (wrong key usage)".to_string()
        }
        C::BadEncoding => "tls: certificate not readable (bad encoding)".to_string(),
        // webpki's error for a leaf that is a CA certificate: what `openssl req -x509` makes,
        // the usual self-signed certificate. Its Display is the variant name.
        C::Other(o) if o.to_string().contains("CaUsedAsEndEntity") => {
            "tls: certificate not trusted (self-signed: a CA certificate used as the server's)".to_string()
        }
        _ => "tls: certificate not trusted".to_string(),
    }
}

fn name(n: &ServerName<'_>) -> String {
    match n {
        ServerName::DnsName(d) => d.as_ref().to_string(),
        ServerName::IpAddress(ip) => std::net::IpAddr::from(*ip).to_string(),
        _ => "this server".to_string(),
    }
}

fn alert(a: AlertDescription) -> &'static str {
    use AlertDescription as A;
    match a {
        A::HandshakeFailure => "the server refused the handshake",
        A::ProtocolVersion => "no TLS version in common with the server",
        A::UnrecognisedName => "the server does not serve this name",
        A::InternalError => "the server had an internal error",
        A::CertificateRequired => "the server requires a client certificate",
        A::AccessDenied => "the server denied access",
        A::InsufficientSecurity => "the server wants stronger security",
        _ => "the server sent a TLS alert",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{CaFile, TlsSettings};
    use crate::tls::Trust;
    use crate::tls::testcerts::{Ca, leaf_days};
    use rustls::pki_types::UnixTime;
    use std::sync::Arc;

    /// Verifies `leaf` for `host` against a store holding `ca`, as a check's handshake would.
    fn verify(ca: &Ca, leaf: &rustls::pki_types::CertificateDer<'static>, host: &str) -> Result<(), String> {
        let s = TlsSettings {
            ca_file: Some(CaFile {
                path: "ca.pem".into(),
                certs: Arc::new(vec![ca.der()]),
            }),
            insecure: false,
        };
        let name = ServerName::try_from(host.to_string()).unwrap();
        Trust::new(None)
            .verifier(&s)
            .verify_server_cert(leaf, &[], &name, &[], UnixTime::now())
            .map(|_| ())
            .map_err(|e| describe(&e, host))
    }

    #[test]
    fn certificate_problems_read_plainly() {
        let ca = Ca::new();
        assert_eq!(
            verify(&ca, &leaf_days(&ca, &["localhost"], 30).der, "localhost"),
            Ok(())
        );
        assert_eq!(
            verify(&ca, &leaf_days(&ca, &["localhost"], -2).der, "localhost"),
            Err("tls: certificate expired".to_string())
        );
        assert_eq!(
            verify(&Ca::new(), &leaf_days(&ca, &["localhost"], 30).der, "localhost"),
            Err("tls: certificate not trusted (unknown issuer)".to_string())
        );
        assert_eq!(
            verify(&ca, &leaf_days(&ca, &["other.example"], 30).der, "localhost"),
            Err("tls: certificate not valid for localhost".to_string())
        );
        assert_eq!(
            verify(&ca, &leaf_days(&ca, &["localhost"], 30).der, "127.0.0.1"),
            Err("tls: certificate not valid for 127.0.0.1".to_string())
        );
        // A self-signed CA certificate served as the site's own (the first try).
        assert_eq!(
            verify(&ca, &ca.der(), "localhost"),
            Err("tls: certificate not trusted (self-signed: a CA certificate used as the server's)".to_string())
        );
    }

    #[test]
    fn handshake_failures_have_a_plain_reason() {
        assert_eq!(
            describe(&Error::AlertReceived(AlertDescription::HandshakeFailure), "h"),
            "tls: handshake failed (the server refused the handshake)"
        );
        assert_eq!(
            describe(&Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType), "h"),
            "tls: handshake failed (the server did not answer with TLS)"
        );
        assert_eq!(
            describe(&Error::NoCertificatesPresented, "h"),
            "tls: handshake failed (the server sent no certificate)"
        );
        assert_eq!(
            describe(
                &Error::InvalidCertificate(CertificateError::NotValidForName),
                "x.hf.space"
            ),
            "tls: certificate not valid for x.hf.space"
        );
        assert_eq!(describe(&Error::General("boom".into()), "h"), "tls: handshake failed");
        for e in [
            Error::AlertReceived(AlertDescription::DecodeError),
            Error::InvalidCertificate(CertificateError::UnhandledCriticalExtension),
        ] {
            let text = describe(&e, "h");
            assert!(
                !text.contains("Error") && !text.contains('{'),
                "debug text leaked: {text}"
            );
        }
    }
}
