//! The tiny_http loop, hardened from the outside. tiny_http 0.12 has no read timeout, no limit on
//! connections or header size, and its accept thread ends for good on the first accept error (or
//! dies if it cannot spawn a thread). So this module:
//! - sets SO_RCVTIMEO/SO_SNDTIMEO on the listening socket, which Linux copies to every accepted
//!   socket: a connection silent for `header_timeout` is closed, and its thread freed;
//! - supervises the server: when its accept loop ends (an accept error, or the accept timeout the
//!   same option causes while idle), a new server is built on the same socket;
//! - probes itself now and then, which keeps an idle accept loop from timing out and notices a
//!   server that stopped answering, so it can be rebuilt (at once when a tiny_http thread
//!   panics);
//! - retires a stopped server off the serving thread, still answering its kept-alive
//!   connections for a while;
//! - refuses request heads over 16 KiB, and starts the guard (`guard.rs`) that enforces the head
//!   deadline and the connection cap.

use super::{App, Reply, guard, route};
use crate::shutdown::Shutdown;
use std::io::Cursor;
use std::io::{Read, Write};
use std::mem::ManuallyDrop;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use tiny_http::{Header, Response, Server};

pub const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; \
frame-ancestors 'self' https://huggingface.co; base-uri 'none'; form-action 'none'";

/// Threads answering requests: one per core, at least two (so a client that reads a large page
/// slowly does not hold the whole status page) and at most four. More handlers than cores was
/// measured to cost a quarter of `/health` throughput (contention on the request queue and on
/// musl's allocator).
fn handlers() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get().clamp(2, 4))
}
/// After a failed rebuild (no file descriptors, no threads), wait this long before the next try.
const REBUILD_PAUSE: Duration = Duration::from_millis(200);
/// A local /healthz that takes longer than this counts as not answering.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Binds the listening socket and sets the timeouts its connections inherit.
pub fn bind(addr: &str, header_timeout: Duration) -> std::io::Result<TcpListener> {
    let listener = TcpListener::bind(addr)?;
    // std offers these options on streams only; the calls are plain setsockopt on the fd, and
    // ManuallyDrop keeps the borrowed fd from being closed when the temporary stream goes.
    // SAFETY: the fd is a valid open socket owned by `listener`, which outlives `stream`.
    let stream = ManuallyDrop::new(unsafe { TcpStream::from_raw_fd(listener.as_raw_fd()) });
    stream.set_read_timeout(Some(header_timeout))?;
    stream.set_write_timeout(Some(header_timeout))?;
    Ok(listener)
}

fn header(name: &str, value: &str) -> Option<Header> {
    Header::from_bytes(name.as_bytes(), value.as_bytes()).ok()
}

/// The headers every response carries, parsed once rather than per request.
fn common_headers() -> &'static [Header] {
    static HEADERS: OnceLock<Vec<Header>> = OnceLock::new();
    HEADERS.get_or_init(|| {
        [
            ("X-Content-Type-Options", "nosniff"),
            ("Referrer-Policy", "no-referrer"),
            ("Content-Security-Policy", CSP),
            ("Cache-Control", "no-store"),
        ]
        .iter()
        .filter_map(|(k, v)| header(k, v))
        .collect()
    })
}

pub fn respond(request: tiny_http::Request, reply: Reply) {
    let length = reply.body.as_ref().len();
    // Identity with a Content-Length whatever the size: tiny_http would otherwise chunk bodies
    // over 32 KiB, which costs a write per chunk and hides the length from the client.
    let mut response = Response::new(
        reply.status.into(),
        Vec::new(),
        Cursor::new(reply.body),
        Some(length),
        None,
    )
    .with_chunked_threshold(usize::MAX);
    for h in common_headers()
        .iter()
        .cloned()
        .chain(header("Content-Type", reply.content_type))
        .chain(reply.allow.and_then(|a| header("Allow", a)))
        .chain(reply.etag.and_then(|e| header("ETag", &e)))
        .chain(reply.gzip.then(|| header("Content-Encoding", "gzip")).flatten())
        .chain(reply.vary.then(|| header("Vary", "Accept-Encoding")).flatten())
    {
        response.add_header(h);
    }
    // A client that went away is not our problem; nothing to do but move on.
    let _ = request.respond(response);
}

/// The SPEC's limit on a request head. tiny_http has already read the head by the time we see
/// it (it has no limit of its own), so this refuses the request rather than the bytes.
const MAX_HEAD: usize = 16 * 1024;

/// The size of the request head as sent, give or take whitespace: request line and header lines.
fn head_len(request: &tiny_http::Request) -> usize {
    let line = request.method().as_str().len() + request.url().len() + 12;
    request.headers().iter().fold(line, |n, h| {
        n + h.field.as_str().as_str().len() + h.value.as_str().len() + 4
    })
}

fn handle(app: &App, request: tiny_http::Request) {
    if head_len(&request) > MAX_HEAD {
        return respond(request, Reply::error(431, "request head over 16 KiB"));
    }
    // Borrowed from the request, not copied: /health is answered tens of thousands of times a
    // second, and every allocation there counts.
    let reply = {
        let (method, url) = (request.method().as_str(), request.url());
        let mut req = super::Request::new(method, url);
        for h in request.headers() {
            let slot = if h.field.equiv("Authorization") {
                &mut req.authorization
            } else if h.field.equiv("If-None-Match") {
                &mut req.if_none_match
            } else if h.field.equiv("Accept-Encoding") {
                &mut req.accept_encoding
            } else {
                continue;
            };
            *slot = Some(h.value.as_str());
        }
        catch_unwind(AssertUnwindSafe(|| route(app, &req))).unwrap_or_else(|_| {
            log::error!(
                "a request handler panicked ({method} {})",
                url.split('?').next().unwrap_or("")
            );
            Reply::error(500, "internal error")
        })
    };
    respond(request, reply);
}

/// The server currently answering, for the watchdog, shutdown and the panic hook to unblock.
static CURRENT: Mutex<Option<Arc<Server>>> = Mutex::new(None);

fn current() -> std::sync::MutexGuard<'static, Option<Arc<Server>>> {
    CURRENT.lock().unwrap_or_else(|e| e.into_inner())
}

/// Stops the current server's handlers so `serve` builds a new one on the same socket.
fn request_rebuild(why: &str) {
    if let Some(s) = current().as_ref() {
        log::warn!("{why}; rebuilding the HTTP server");
        for _ in 0..handlers() {
            s.unblock();
        }
    }
}

/// Called by the panic hook for a panic located in tiny_http's own code. The one such panic
/// seen in practice is its accept thread failing to duplicate a socket when out of file
/// descriptors; after it nothing is ever accepted again. Rebuilding at once instead of waiting
/// for two failed self-probes shortens the outage from ~5 s to the time the descriptors come back.
pub fn tiny_http_panicked() {
    request_rebuild("a tiny_http thread panicked");
}

/// Serves on `listener` until shutdown, rebuilding the tiny_http server whenever it stops, with
/// the connection guard beside it.
pub fn serve(listener: TcpListener, app: Arc<App>, shutdown: Arc<Shutdown>, limits: guard::Limits) {
    // A retired server keeps answering its open connections this long (see `retire`).
    let linger = limits.header_timeout;
    shutdown.on_trigger(Box::new(|| {
        if let Some(s) = current().as_ref() {
            s.unblock();
        }
    }));
    if let Ok(addr) = listener.local_addr() {
        // Often enough that an idle accept loop never reaches its receive timeout.
        start_watchdog(addr, Arc::clone(&shutdown), limits.header_timeout / 2);
        guard::start(addr.port(), limits, shutdown.waker());
    }
    while !shutdown.is_triggered() {
        let server = match listener
            .try_clone()
            .map_err(|e| e.to_string())
            .and_then(|l| Server::from_listener(l, None).map_err(|e| e.to_string()))
        {
            Ok(s) => Arc::new(s),
            Err(e) => {
                log::warn!("HTTP server cannot start ({e}); retrying");
                std::thread::sleep(REBUILD_PAUSE);
                continue;
            }
        };
        *current() = Some(Arc::clone(&server));
        if shutdown.is_triggered() {
            break;
        }
        let error = run_handlers(&server, &app);
        *current() = None;
        // Not dropped here: tiny_http's `Drop` can block (see `retire`). When shutting down, its
        // open connections are not served any more.
        let stopping = shutdown.is_triggered();
        retire(server, Arc::clone(&app), if stopping { Duration::ZERO } else { linger });
        match error {
            _ if stopping => break,
            // The inherited receive timeout also bounds accept(): an idle server simply restarts.
            Some(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                log::debug!("HTTP accept loop idle; restarting it");
            }
            Some(e) => {
                log::warn!("HTTP accept loop stopped ({e}); restarting it");
                std::thread::sleep(REBUILD_PAUSE);
            }
            None => {
                log::warn!("HTTP server stopped answering; restarting it");
                std::thread::sleep(REBUILD_PAUSE);
            }
        }
    }
}

/// Retires a stopped server on its own thread, for two reasons:
/// - tiny_http keeps a kept-alive connection bound to the server that accepted it: its next
///   request lands in that server's queue, and a request nobody pops is never answered (its
///   connection and descriptors stay open for good). So the old queue is still served until it
///   has been quiet for `linger` (the connection read timeout: an idle connection is closed by
///   then), at most four times that;
/// - tiny_http's `Drop` makes a blocking `connect` to the listening address to wake its accept
///   thread. When that thread has died and the backlog is full, nothing accepts and the connect
///   waits out the SYN retries, about two minutes. Here it completes as soon as the next server
///   drains the backlog, and neither the rebuild nor a shutdown waits for it.
fn retire(server: Arc<Server>, app: Arc<App>, linger: Duration) {
    let spawned = std::thread::Builder::new()
        .name("http-retire".into())
        .stack_size(256 * 1024)
        .spawn(move || {
            let started = Instant::now();
            let mut quiet_since = started;
            loop {
                let now = Instant::now();
                let left = (quiet_since + linger)
                    .min(started + 4 * linger)
                    .saturating_duration_since(now);
                if left.is_zero() {
                    break;
                }
                // `Ok(None)`: an unblock left in the queue or the wait ran out; `Err`: the old
                // accept thread's last error. Neither means the queue is empty for good.
                if let Ok(Some(request)) = server.recv_timeout(left) {
                    handle(&app, request);
                    quiet_since = Instant::now();
                }
            }
            drop(server);
        });
    if let Err(e) = spawned {
        // The closure, and the server with it, was dropped by the failed spawn.
        log::warn!("cannot start a thread to retire the old HTTP server ({e}); it was dropped in place");
    }
}

/// Runs `handlers()` loops (this thread plus helpers) until the server's queue says stop.
/// Returns the error that stopped it, or `None` for an unblock (shutdown or watchdog).
fn run_handlers(server: &Arc<Server>, app: &Arc<App>) -> Option<std::io::Error> {
    let mut helpers = Vec::new();
    for i in 1..handlers() {
        let (server, app) = (Arc::clone(server), Arc::clone(app));
        let spawned = std::thread::Builder::new()
            .name(format!("http-{i}"))
            .stack_size(256 * 1024)
            .spawn(move || handler_loop(&server, &app));
        match spawned {
            Ok(h) => helpers.push(h),
            // Out of threads: serve with fewer handlers rather than not at all.
            Err(e) => log::warn!("cannot start HTTP handler thread {i}: {e}"),
        }
    }
    let mut error = handler_loop(server, app);
    for h in helpers {
        if let Ok(Some(e)) = h.join() {
            error.get_or_insert(e);
        }
    }
    error
}

fn handler_loop(server: &Server, app: &App) -> Option<std::io::Error> {
    loop {
        match server.recv() {
            Ok(request) => handle(app, request),
            Err(e) => {
                // unblock() wakes a single waiting thread: pass it on so every handler stops.
                server.unblock();
                // tiny_http reports an unblock as an error of kind Other with no source; an
                // accept failure carries the OS error.
                let from_accept = e.raw_os_error().is_some()
                    || matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut);
                return from_accept.then_some(e);
            }
        }
    }
}

/// Asks `/healthz` over a real connection; true when it answered `ok` in time.
fn probe(addr: SocketAddr, timeout: Duration) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, timeout) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(timeout));
    let _ = s.set_write_timeout(Some(timeout));
    if s.write_all(b"GET /healthz HTTP/1.0\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut buf = Vec::new();
    let _ = s.take(4096).read_to_end(&mut buf);
    buf.starts_with(b"HTTP/1.") && buf.ends_with(b"ok")
}

fn start_watchdog(addr: SocketAddr, shutdown: Arc<Shutdown>, every: Duration) {
    let target = match addr {
        SocketAddr::V4(a) if a.ip().is_unspecified() => SocketAddr::from(([127, 0, 0, 1], a.port())),
        SocketAddr::V6(a) if a.ip().is_unspecified() => SocketAddr::from(([0, 0, 0, 0, 0, 0, 0, 1], a.port())),
        a => a,
    };
    let waker = shutdown.waker();
    let started = std::thread::Builder::new()
        .name("http-watchdog".into())
        .stack_size(128 * 1024)
        .spawn(move || {
            let mut failed_once = false;
            while waker.sleep(every) {
                if probe(target, PROBE_TIMEOUT) {
                    failed_once = false;
                } else if failed_once {
                    // Two failed probes in a row: the accept thread is gone (or wedged).
                    request_rebuild("HTTP self-probe failed twice");
                    failed_once = false;
                } else {
                    failed_once = true;
                }
            }
        });
    if let Err(e) = started {
        log::warn!("cannot start the HTTP watchdog: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shutdown::Waker;
    use crate::state::{State, TargetInfo};
    use std::io::BufRead;
    use std::time::SystemTime;

    fn app() -> Arc<App> {
        let info = TargetInfo::test("api");
        Arc::new(App {
            state: Arc::new(State::new(vec![info], 10, SystemTime::now())),
            wakers: vec![Arc::new(Waker::default())],
            alert_counts: Default::default(),
            admin_token: None,
            cache: crate::web::cache::Cache::default(),
        })
    }

    /// Sends one keep-alive request and reads its response (status line and body `ok`).
    fn healthz(reader: &mut std::io::BufReader<TcpStream>) -> String {
        reader
            .get_mut()
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let (mut status, mut line, mut length) = (String::new(), String::new(), 0);
        reader.read_line(&mut status).unwrap();
        while reader.read_line(&mut line).unwrap() > 0 && line != "\r\n" {
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = v.trim().parse().unwrap();
            }
            line.clear();
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        format!("{} {}", status.trim(), String::from_utf8_lossy(&body))
    }

    #[test]
    fn a_kept_alive_connection_is_still_answered_after_a_rebuild() {
        let listener = bind("127.0.0.1:0", Duration::from_secs(5)).unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = Arc::new(Shutdown::default());
        let serving = {
            let shutdown = Arc::clone(&shutdown);
            std::thread::spawn(move || {
                let limits = guard::Limits {
                    header_timeout: Duration::from_secs(5),
                    max_connections: 100,
                };
                serve(listener, app(), shutdown, limits)
            })
        };
        let stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        let mut kept = std::io::BufReader::new(stream);
        assert_eq!(healthz(&mut kept), "HTTP/1.1 200 OK ok");
        let first = Arc::as_ptr(current().as_ref().expect("a server is running"));
        request_rebuild("test");
        let deadline = Instant::now() + Duration::from_secs(3);
        while current().as_ref().is_none_or(|s| std::ptr::eq(Arc::as_ptr(s), first)) {
            assert!(Instant::now() < deadline, "no new server was built");
            std::thread::sleep(Duration::from_millis(10));
        }
        // This connection belongs to the retired server: without the retiring thread serving its
        // queue, the request would wait for ever.
        assert_eq!(healthz(&mut kept), "HTTP/1.1 200 OK ok");
        let mut fresh = std::io::BufReader::new(TcpStream::connect(addr).unwrap());
        fresh.get_mut().set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        assert_eq!(healthz(&mut fresh), "HTTP/1.1 200 OK ok");
        shutdown.trigger();
        serving.join().unwrap();
    }
}
