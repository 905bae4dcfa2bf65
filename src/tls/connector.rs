//! The TLS step of ureq's connector chain, in place of ureq's own: it uses the client config of
//! the target's trust setting, maps handshake failures to short text, and hands the leaf
//! certificate of the check's own handshake to the worker when it asked for one (so expiry is
//! read without an extra connection).

use super::ClientConfigs;
use super::errors::{self, Failure};
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConnection, StreamOwned};
use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use ureq::http::Uri;
use ureq::unversioned::transport::time::{Duration as UDuration, Instant as UInstant};
use ureq::unversioned::transport::{
    Buffers, ConnectionDetails, Connector, Either, LazyBuffers, NextTimeout, Transport, TransportAdapter,
};

/// Where a worker asks for the next handshake's leaf certificate and finds it afterwards.
#[derive(Debug)]
pub struct PeerCapture {
    host: String,
    port: u16,
    want: AtomicBool,
    leaf: Mutex<Option<CertificateDer<'static>>>,
}

impl PeerCapture {
    /// A capture for an https URL's host and port; `None` for anything else.
    pub fn for_url(url: &str) -> Option<Arc<PeerCapture>> {
        let uri: Uri = url.parse().ok()?;
        if uri.scheme_str() != Some("https") {
            return None;
        }
        Some(Arc::new(PeerCapture {
            host: bare_host(&uri)?.to_ascii_lowercase(),
            port: uri.port_u16().unwrap_or(443),
            want: AtomicBool::new(false),
            leaf: Mutex::new(None),
        }))
    }

    /// The next full handshake with this host keeps its leaf certificate.
    pub fn request(&self) {
        self.want.store(true, Ordering::Relaxed);
    }

    /// The leaf kept since the last `request`, if a handshake completed.
    pub fn take(&self) -> Option<CertificateDer<'static>> {
        self.leaf.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    fn wants(&self, uri: &Uri) -> bool {
        self.want.load(Ordering::Relaxed)
            && bare_host(uri).is_some_and(|h| h.eq_ignore_ascii_case(&self.host))
            && uri.port_u16().unwrap_or(443) == self.port
    }

    fn keep(&self, leaf: CertificateDer<'static>) {
        *self.leaf.lock().unwrap_or_else(|e| e.into_inner()) = Some(leaf);
        self.want.store(false, Ordering::Relaxed);
    }
}

fn bare_host(uri: &Uri) -> Option<&str> {
    Some(uri.host()?.trim_start_matches('[').trim_end_matches(']'))
}

/// Wraps the chained transport (TCP, or a proxy tunnel) in TLS for https URLs.
#[derive(Debug)]
pub struct TlsConnector {
    pub configs: Arc<ClientConfigs>,
    pub capture: Option<Arc<PeerCapture>>,
}

impl<In: Transport> Connector<In> for TlsConnector {
    type Out = Either<In, TlsTransport>;

    fn connect(&self, details: &ConnectionDetails, chained: Option<In>) -> Result<Option<Self::Out>, ureq::Error> {
        let Some(transport) = chained else {
            return Ok(None);
        };
        if !details.needs_tls() || transport.is_tls() {
            return Ok(Some(Either::A(transport)));
        }
        let host = bare_host(details.uri).unwrap_or_default();
        let name = ServerName::try_from(host.to_string())
            .map_err(|_| failure(format!("tls: {host:?} is not a valid server name")))?;
        let capture = self.capture.as_ref().filter(|c| c.wants(details.uri));
        let config = if capture.is_some() {
            &self.configs.fresh
        } else {
            &self.configs.resume
        };
        let mut conn =
            ClientConnection::new(Arc::clone(config), name).map_err(|e| failure(errors::describe(&e, host)))?;
        let mut sock = TransportAdapter::new(transport.boxed(), details.current_time.clone());
        sock.set_timeout(remaining(details));
        if let Err(e) = conn.complete_io(&mut sock) {
            return Err(handshake_error(e, host));
        }
        if let Some(c) = capture {
            if let Some(leaf) = conn.peer_certificates().and_then(|chain| chain.first()) {
                c.keep(leaf.clone().into_owned());
            }
        }
        let buffers = LazyBuffers::new(details.config.input_buffer_size(), details.config.output_buffer_size());
        Ok(Some(Either::B(TlsTransport {
            buffers,
            stream: StreamOwned { conn, sock },
        })))
    }
}

fn failure(text: String) -> ureq::Error {
    ureq::Error::Io(io::Error::other(Failure(text)))
}

/// A timeout stays a timeout (ureq's error inside the io error); a rustls error gets its text;
/// the server closing or resetting the connection mid-handshake says so.
fn handshake_error(e: io::Error, host: &str) -> ureq::Error {
    if let Some(inner) = e.get_ref() {
        if inner.is::<ureq::Error>() {
            return ureq::Error::Io(e);
        }
        if let Some(r) = inner.downcast_ref::<rustls::Error>() {
            return failure(errors::describe(r, host));
        }
    }
    let reason = match e.kind() {
        io::ErrorKind::UnexpectedEof => "the server closed the connection",
        io::ErrorKind::ConnectionReset => "the server reset the connection",
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => return ureq::Error::Io(e),
        _ => "connection error",
    };
    failure(format!("tls: handshake failed ({reason})"))
}

/// The connect phase's timeout, less the time the TCP connect (or proxy tunnel) already took,
/// so the handshake cannot stretch a check past its timeout.
fn remaining(details: &ConnectionDetails) -> NextTimeout {
    let mut t = details.timeout;
    if let (UDuration::Exact(after), UInstant::Exact(start), UInstant::Exact(now)) =
        (t.after, details.now, (details.current_time)())
    {
        t.after = UDuration::Exact(after.saturating_sub(now.saturating_duration_since(start)));
    }
    t
}

/// A TLS stream as a ureq transport.
pub struct TlsTransport {
    buffers: LazyBuffers,
    stream: StreamOwned<ClientConnection, TransportAdapter>,
}

impl Transport for TlsTransport {
    fn buffers(&mut self) -> &mut dyn Buffers {
        &mut self.buffers
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), ureq::Error> {
        self.stream.get_mut().set_timeout(timeout);
        let output = &self.buffers.output()[..amount];
        self.stream.write_all(output)?;
        Ok(())
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        self.stream.get_mut().set_timeout(timeout);
        let input = self.buffers.input_append_buf();
        let amount = self.stream.read(input)?;
        self.buffers.input_appended(amount);
        Ok(amount > 0)
    }

    fn is_open(&mut self) -> bool {
        self.stream.get_mut().get_mut().is_open()
    }

    fn is_tls(&self) -> bool {
        true
    }
}

impl std::fmt::Debug for TlsTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsTransport").finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capture_matches_its_own_host_and_port_only() {
        assert!(PeerCapture::for_url("http://x.example/").is_none());
        let c = PeerCapture::for_url("https://X.example/health").unwrap();
        let at = |u: &str| c.wants(&u.parse::<Uri>().unwrap());
        assert!(!at("https://x.example/"), "not asked for yet");
        c.request();
        assert!(at("https://x.example/other"));
        assert!(at("https://x.example:443/"));
        assert!(!at("https://x.example:8443/"));
        assert!(!at("https://proxy.example/"));
        c.keep(CertificateDer::from(vec![1, 2, 3]));
        assert!(!at("https://x.example/"), "one leaf per request");
        assert_eq!(c.take().map(|d| d.to_vec()), Some(vec![1, 2, 3]));
        assert_eq!(c.take(), None);
        let v6 = PeerCapture::for_url("https://[::1]:8443/").unwrap();
        v6.request();
        assert!(v6.wants(&"https://[::1]:8443/x".parse::<Uri>().unwrap()));
    }
}
