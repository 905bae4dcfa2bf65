//! TLS and proxy settings: a check's `tls` object (`ca_file`, `insecure`; in `defaults`, a worker
//! or `self_ping`), and from the environment `SSL_CERT_FILE` and the proxy variables. The
//! certificate files are read here, once, so a missing or empty file is a configuration error
//! naming the file and the field, and the service never starts without the trust it was told.

use super::ctx::{Ctx, env_var, join};
use super::proxy::Proxies;
use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::Arc;

const FIELDS: &[&str] = &["ca_file", "insecure"];

/// The `tls` object at `field`, layered over `base` (a worker's `insecure` alone keeps the
/// `ca_file` of `defaults`).
pub fn parse(ctx: &mut Ctx, v: &Value, field: &str, base: &TlsSettings) -> TlsSettings {
    let mut out = base.clone();
    let Some(obj) = ctx.object(v, field, FIELDS) else {
        return out;
    };
    if let Some(v) = obj.get("ca_file") {
        let path = join(field, "ca_file");
        if let Some((p, secrets)) = ctx.string(v, &path) {
            // The file is read here, once; afterwards its path is only shown (by `check`, in
            // errors and `Debug`), so a part that came from `${VAR}` is kept redacted.
            let shown = secrets
                .iter()
                .filter(|s| !s.is_empty())
                .fold(p.clone(), |t, s| t.replace(s.as_str(), "REDACTED"));
            match read_ca_file(Path::new(&p)) {
                Ok(f) => {
                    out.ca_file = Some(CaFile {
                        path: PathBuf::from(shown),
                        ..f
                    })
                }
                Err(m) => ctx.err(&path, m.replace(&p, &shown)),
            }
        }
    }
    if let Some(b) = obj.get("insecure").and_then(|v| ctx.bool(v, &join(field, "insecure"))) {
        out.insecure = b;
    }
    out
}

/// `SSL_CERT_FILE`, when set: trusted for every request.
pub fn ssl_cert_file(ctx: &mut Ctx) -> Option<CaFile> {
    let p = env_var(ctx.env, "SSL_CERT_FILE")?.clone();
    read_ca_file(Path::new(&p))
        .map_err(|m| ctx.err_in("SSL_CERT_FILE", m))
        .ok()
}

/// `HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY`, `NO_PROXY` (and lowercase).
pub fn proxies(ctx: &mut Ctx) -> Proxies {
    Proxies::from_env(ctx.env).unwrap_or_else(|errors| {
        for (var, message) in errors {
            ctx.err_in(&var, message);
        }
        Proxies::default()
    })
}

/// A PEM file of extra trusted certificates, read once when the configuration is loaded.
#[derive(Clone, PartialEq)]
pub struct CaFile {
    pub path: PathBuf,
    pub certs: Arc<Vec<CertificateDer<'static>>>,
}

/// The path and the number of certificates, not their bytes.
impl std::fmt::Debug for CaFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CaFile({:?}, {} certificate(s))", self.path, self.certs.len())
    }
}

/// A target's TLS settings (`tls` in `defaults`, a worker or `self_ping`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TlsSettings {
    pub ca_file: Option<CaFile>,
    /// Skip certificate verification (the handshake's signatures are still checked).
    pub insecure: bool,
}

/// Reads a PEM file of certificates. The error names the file and says what was wrong.
pub fn read_ca_file(path: &Path) -> Result<CaFile, String> {
    let shown = path.display();
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {shown:?}: {e}"))?;
    let certs = parse_pem_certs(&bytes).map_err(|m| format!("{shown:?} {m}"))?;
    Ok(CaFile {
        path: path.to_path_buf(),
        certs: Arc::new(certs),
    })
}

/// The certificates in a PEM text; an error when there are none or one cannot be used as a root.
pub fn parse_pem_certs(bytes: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let mut certs = Vec::new();
    for (i, item) in CertificateDer::pem_slice_iter(bytes).enumerate() {
        match item {
            Ok(c) => certs.push(c),
            Err(_) => return Err(format!("is not valid PEM (block {} cannot be read)", i + 1)),
        }
    }
    if certs.is_empty() {
        return Err("holds no certificate (expected PEM blocks \"-----BEGIN CERTIFICATE-----\")".to_string());
    }
    for (i, c) in certs.iter().enumerate() {
        if webpki_anchor(c).is_none() {
            return Err(format!("certificate {} is not a valid X.509 certificate", i + 1));
        }
    }
    Ok(certs)
}

fn webpki_anchor(c: &CertificateDer<'_>) -> Option<()> {
    let mut store = RootCertStore::empty();
    store.add(c.clone()).ok()
}
