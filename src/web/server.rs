//! The tiny_http loop, hardened from the outside. tiny_http 0.12 has no read timeout, no limit on
//! connections or header size, and its accept thread ends for good on the first accept error (or
//! dies if it cannot spawn a thread). So this module:
//! - sets SO_RCVTIMEO/SO_SNDTIMEO on the listening socket, which Linux copies to every accepted
//!   socket: a connection silent for `header_timeout` is closed, and its thread freed;
//! - supervises the server: when its accept loop ends (an accept error, or the accept timeout the
//!   same option causes while idle), a new server is built on the same socket;
//! - probes itself now and then, which keeps an idle accept loop from timing out and notices a
//!   server that stopped answering, so it can be rebuilt.

use super::{App, Reply, route};
use crate::shutdown::Shutdown;
use std::io::{Read, Write};
use std::mem::ManuallyDrop;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
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
    let mut response = Response::from_data(reply.body).with_status_code(reply.status);
    for h in common_headers()
        .iter()
        .cloned()
        .chain(header("Content-Type", reply.content_type))
    {
        response.add_header(h);
    }
    if let Some(allow) = reply.allow.and_then(|a| header("Allow", a)) {
        response.add_header(allow);
    }
    // A client that went away is not our problem; nothing to do but move on.
    let _ = request.respond(response);
}

fn handle(app: &App, request: tiny_http::Request) {
    // Borrowed from the request, not copied: /health is answered tens of thousands of times a
    // second, and every allocation there counts.
    let reply = {
        let (method, url) = (request.method().as_str(), request.url());
        let auth = request
            .headers()
            .iter()
            .find(|h| h.field.equiv("Authorization"))
            .map(|h| h.value.as_str());
        catch_unwind(AssertUnwindSafe(|| route(app, method, url, auth))).unwrap_or_else(|_| {
            log::error!(
                "a request handler panicked ({method} {})",
                url.split('?').next().unwrap_or("")
            );
            Reply::error(500, "internal error")
        })
    };
    respond(request, reply);
}

/// Serves on `listener` until shutdown, rebuilding the tiny_http server whenever it stops.
pub fn serve(listener: TcpListener, app: Arc<App>, shutdown: Arc<Shutdown>, probe_every: Duration) {
    let current: Arc<Mutex<Option<Arc<Server>>>> = Arc::new(Mutex::new(None));
    {
        let current = Arc::clone(&current);
        shutdown.on_trigger(Box::new(move || {
            if let Some(s) = current.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
                s.unblock();
            }
        }));
    }
    if let Ok(addr) = listener.local_addr() {
        start_watchdog(addr, Arc::clone(&current), Arc::clone(&shutdown), probe_every);
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
        *current.lock().unwrap_or_else(|e| e.into_inner()) = Some(Arc::clone(&server));
        if shutdown.is_triggered() {
            break;
        }
        let error = run_handlers(&server, &app);
        *current.lock().unwrap_or_else(|e| e.into_inner()) = None;
        drop(server);
        match error {
            _ if shutdown.is_triggered() => break,
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

fn start_watchdog(
    addr: SocketAddr,
    current: Arc<Mutex<Option<Arc<Server>>>>,
    shutdown: Arc<Shutdown>,
    every: Duration,
) {
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
            let failing = AtomicBool::new(false);
            while waker.sleep(every) {
                if probe(target, PROBE_TIMEOUT) {
                    failing.store(false, Ordering::Relaxed);
                    continue;
                }
                // Two failed probes in a row: the accept thread is gone (or wedged). Unblock the
                // handlers so `serve` builds a new server on the same socket.
                if failing.swap(true, Ordering::Relaxed) {
                    if let Some(s) = current.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
                        log::warn!("HTTP self-probe failed twice; rebuilding the server");
                        for _ in 0..handlers() {
                            s.unblock();
                        }
                    }
                    failing.store(false, Ordering::Relaxed);
                }
            }
        });
    if let Err(e) = started {
        log::warn!("cannot start the HTTP watchdog: {e}");
    }
}
