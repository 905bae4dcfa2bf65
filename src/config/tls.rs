//! TLS and proxy settings: a check's `tls` object (`ca_file`, `insecure`; in `defaults`, a worker
//! or `self_ping`), and from the environment `SSL_CERT_FILE` and the proxy variables. The
//! certificate files are read here, once, so a missing or empty file is a configuration error
//! naming the file and the field, and the service never starts without the trust it was told.

use super::ctx::{Ctx, env_var, join};
use crate::proxy::Proxies;
use crate::tls::{self, CaFile, TlsSettings};
use serde_json::Value;
use std::path::{Path, PathBuf};

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
            match tls::read_ca_file(Path::new(&p)) {
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
    tls::read_ca_file(Path::new(&p))
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
