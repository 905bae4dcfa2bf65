//! HTTPS on loopback for the TLS tests: a private CA that signs leaf certificates, a small rustls
//! server whose certificate can be swapped while it runs (a renewal), and an HTTP CONNECT proxy
//! that counts its tunnels.

use super::{accept_loop, read_head, read_request};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use std::io::{BufReader, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;
use time::OffsetDateTime;

pub const DAY: i64 = 86_400;

/// A private certificate authority.
pub struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    pub pem: String,
}

/// A leaf certificate with its key, ready to serve.
#[derive(Clone)]
pub struct Leaf {
    pub chain: Vec<CertificateDer<'static>>,
    key_der: Vec<u8>,
    /// notAfter, Unix seconds.
    pub not_after: i64,
}

impl TestCa {
    pub fn new(name: &str) -> TestCa {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let key = KeyPair::generate().unwrap();
        let pem = params.self_signed(&key).unwrap().pem();
        TestCa {
            issuer: Issuer::new(params, key),
            pem,
        }
    }

    /// Writes the CA certificate as PEM into `dir`; returns the path.
    pub fn write(&self, dir: &Path, file: &str) -> PathBuf {
        let path = dir.join(file);
        std::fs::write(&path, &self.pem).unwrap();
        path
    }

    /// A leaf for `names` that expires `secs` from now (negative: already expired).
    pub fn leaf(&self, names: &[&str], secs: i64) -> Leaf {
        let mut params = CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
        let now = OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::days(30) + time::Duration::seconds(secs.min(0));
        params.not_after = now + time::Duration::seconds(secs);
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Leaf {
            chain: vec![cert.der().clone()],
            key_der: key.serialize_der(),
            not_after: params.not_after.unix_timestamp(),
        }
    }
}

fn server_config(leaf: &Leaf) -> Arc<rustls::ServerConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf.key_der.clone()));
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(leaf.chain.clone(), key)
        .unwrap();
    Arc::new(config)
}

/// An HTTPS server on 127.0.0.1 answering every request `200 ok` (keep-alive, HTTP/1.1).
pub struct TlsServer {
    pub port: u16,
    config: Arc<Mutex<Arc<rustls::ServerConfig>>>,
    /// Completed handshakes.
    pub handshakes: Arc<AtomicUsize>,
    /// Requests answered.
    pub requests: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl TlsServer {
    pub fn start(leaf: &Leaf) -> TlsServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let config = Arc::new(Mutex::new(server_config(leaf)));
        let handshakes = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (c, h, r) = (Arc::clone(&config), Arc::clone(&handshakes), Arc::clone(&requests));
        accept_loop(listener, Arc::clone(&stop), move |stream| {
            let config = Arc::clone(&c.lock().unwrap());
            serve_tls(stream, config, &h, &r)
        });
        TlsServer {
            port,
            config,
            handshakes,
            requests,
            stop,
        }
    }

    /// Serves `leaf` from the next connection on (a renewed certificate).
    pub fn set_leaf(&self, leaf: &Leaf) {
        *self.config.lock().unwrap() = server_config(leaf);
    }

    pub fn url(&self, host: &str, path: &str) -> String {
        format!("https://{host}:{}{path}", self.port)
    }

    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn serve_tls(stream: TcpStream, config: Arc<rustls::ServerConfig>, handshakes: &AtomicUsize, requests: &AtomicUsize) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let Ok(conn) = rustls::ServerConnection::new(config) else {
        return;
    };
    let mut tls = rustls::StreamOwned::new(conn, stream);
    if tls.conn.complete_io(&mut tls.sock).is_err() {
        return;
    }
    handshakes.fetch_add(1, Ordering::SeqCst);
    let mut reader = BufReader::new(tls);
    while let Some((head, _)) = read_request(&mut reader) {
        requests.fetch_add(1, Ordering::SeqCst);
        let body: &[u8] = if head.starts_with("HEAD ") { b"" } else { b"ok" };
        let tls = reader.get_mut();
        let sent = tls
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n")
            .and_then(|_| tls.write_all(body))
            .and_then(|_| tls.flush());
        if sent.is_err() {
            return;
        }
    }
}

/// What the CONNECT proxy saw in one tunnel request.
#[derive(Debug, Clone)]
pub struct Tunnel {
    pub target: String,
    pub head: String,
}

/// An HTTP proxy that only does CONNECT, and records each tunnel it opened.
pub struct ConnectProxy {
    pub port: u16,
    pub tunnels: Arc<Mutex<Vec<Tunnel>>>,
    stop: Arc<AtomicBool>,
}

impl ConnectProxy {
    pub fn start() -> ConnectProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let tunnels = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let t = Arc::clone(&tunnels);
        accept_loop(listener, Arc::clone(&stop), move |stream| tunnel(stream, &t));
        ConnectProxy { port, tunnels, stop }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn tunnels(&self) -> Vec<Tunnel> {
        self.tunnels.lock().unwrap().clone()
    }
}

impl Drop for ConnectProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn tunnel(client: TcpStream, tunnels: &Mutex<Vec<Tunnel>>) {
    let _ = client.set_read_timeout(Some(Duration::from_secs(10)));
    let mut reader = BufReader::new(client.try_clone().unwrap());
    let Some(head) = read_head(&mut reader) else { return };
    let mut client = client;
    let target = head.split_whitespace().nth(1).unwrap_or("").to_string();
    if !head.starts_with("CONNECT ") {
        let _ = client.write_all(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n");
        return;
    }
    tunnels.lock().unwrap().push(Tunnel {
        target: target.clone(),
        head: head.clone(),
    });
    let Ok(upstream) = TcpStream::connect(&target) else {
        let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n");
        return;
    };
    let _ = client.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n");
    // Bytes the client sent right after its head are still in the reader's buffer.
    let buffered = reader.buffer().to_vec();
    let (mut up_w, mut up_r) = (upstream.try_clone().unwrap(), upstream);
    let _ = up_w.write_all(&buffered);
    let mut client_r = reader.into_inner();
    let mut client_w = client;
    let _ = client_r.set_read_timeout(None);
    let to_upstream = thread::spawn(move || {
        let _ = std::io::copy(&mut client_r, &mut up_w);
        let _ = up_w.shutdown(Shutdown::Write);
    });
    let _ = std::io::copy(&mut up_r, &mut client_w);
    let _ = client_w.shutdown(Shutdown::Both);
    let _ = to_upstream.join();
}
