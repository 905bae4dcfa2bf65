//! The tiny_http loop, hardened from the outside. tiny_http 0.12 has no read timeout, no limit on
//! connections or header size, and its accept thread ends for good on the first accept error (or
//! panics when it runs out of descriptors or threads). So this module:
//! - sets `TCP_NODELAY` on the listening socket, which Linux copies to every accepted one: a
//!   response sent in two writes (head, then a large body) must not wait for the client's
//!   delayed ACK (~40 ms per request on a kept-alive connection);
//! - writes each response itself (`wire.rs`): the head and any body up to 256 KiB in one write;
//! - starts the guard (`guard.rs`), which closes connections that get no complete request in
//!   within `header_timeout` and those past `max_connections`;
//! - refuses request heads over 16 KiB;
//! - rebuilds the server on the same socket when its accept thread has ended, which shows as
//!   that thread's own descriptor of the listening socket being closed;
//! - retires a stopped server off the serving thread (see `retire`).

use super::{App, Reply, guard, route, wire};
use crate::shutdown::Shutdown;
use std::io::Write;
use std::net::TcpListener;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tiny_http::Server;

/// Threads answering requests: one per core, at least two (so a client that reads a large page
/// slowly does not hold the whole status page) and at most four. More handlers than cores was
/// measured to cost a quarter of `/health` throughput (contention on the request queue and on
/// musl's allocator).
fn handlers() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get().clamp(2, 4))
}
/// After the accept loop stopped, or a failed start (no descriptors, no threads), wait this long
/// before the next try.
const REBUILD_PAUSE: Duration = Duration::from_millis(200);
/// How often the serving thread looks for a shutdown and for an accept thread that has ended.
const TICK: Duration = Duration::from_millis(200);

/// Binds the listening socket, with the options its connections inherit.
pub fn bind(addr: &str) -> std::io::Result<TcpListener> {
    let listener = TcpListener::bind(addr)?;
    crate::os::set_nodelay(listener.as_fd())?;
    Ok(listener)
}

/// Writes `reply` in at most two writes (head, then a large body) straight to the connection.
pub fn respond(request: tiny_http::Request, reply: Reply) {
    let tiny_http::HTTPVersion(major, minor) = *request.http_version();
    let head_only = *request.method() == tiny_http::Method::Head;
    let head = DATE.with(|d| wire::head(&reply, (major, minor), head_only, d.borrow_mut().now()));
    let body = reply.body.as_ref();
    let large = wire::sends_body(&reply, head_only) && body.len() > wire::SMALL;
    // Dropping the writer tells tiny_http the response is complete, so the connection's next
    // request can be read. A client that went away is not our problem; nothing to do but move on.
    let mut w = request.into_writer();
    let _ = w
        .write_all(&head)
        .and_then(|()| if large { w.write_all(body) } else { Ok(()) })
        .and_then(|()| w.flush());
}

/// The `Date` header's value, formatted once a second per handler thread.
#[derive(Default)]
struct CachedDate {
    second: u64,
    text: String,
}

impl CachedDate {
    fn now(&mut self) -> &str {
        let now = std::time::SystemTime::now();
        let second = crate::timefmt::unix_secs(now);
        if second != self.second || self.text.is_empty() {
            self.second = second;
            self.text = crate::timefmt::http_date(now);
        }
        &self.text
    }
}

thread_local! {
    static DATE: std::cell::RefCell<CachedDate> = std::cell::RefCell::default();
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

fn handle(app: &App, mut request: tiny_http::Request) {
    if head_len(&request) > MAX_HEAD {
        return respond(request, Reply::error(431, "request head over 16 KiB"));
    }
    if request.url().starts_with(super::push::PREFIX) {
        // The one endpoint that takes a body: read before answering, bounded.
        let message = super::push::read_body(&mut request);
        let authorization = request
            .headers()
            .iter()
            .find(|h| h.field.equiv("Authorization"))
            .map(|h| h.value.as_str());
        let reply = catch_unwind(AssertUnwindSafe(|| {
            super::push::answer(app, request.method().as_str(), request.url(), authorization, message)
        }))
        .unwrap_or_else(|_| Reply::error(500, "internal error"));
        return respond(request, reply);
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

/// A tiny_http server, and how to tell that its accept thread is still there.
struct Running {
    server: Arc<Server>,
    /// The accept thread's own descriptor of the listening socket. It is closed when that thread
    /// ends, however it ends: after an accept error, or unwinding from a panic (tiny_http's
    /// `try_clone().unwrap()` when out of descriptors, or a thread it cannot spawn).
    accept_fd: RawFd,
    listening: crate::os::Inode,
}

impl Running {
    fn start(listener: &TcpListener) -> Result<Running, String> {
        let listening = crate::os::socket_inode(listener.as_raw_fd()).ok_or("the listening socket is gone")?;
        let copy = listener.try_clone().map_err(|e| e.to_string())?;
        let accept_fd = copy.as_raw_fd();
        // tiny_http starts its accept thread with `thread::spawn`, which panics when the process
        // is out of threads; that must not take the serving thread with it.
        let server = catch_unwind(AssertUnwindSafe(|| Server::from_listener(copy, None)))
            .map_err(|_| "no thread for its accept loop".to_string())?
            .map_err(|e| e.to_string())?;
        Ok(Running {
            server: Arc::new(server),
            accept_fd,
            listening,
        })
    }

    /// False once the accept thread has ended. The number is only reused for the listening
    /// socket by a `try_clone` (after this server is retired) or, for a moment, by the guard's
    /// duplicate; the latter can delay noticing by a tick.
    fn accepting(&self) -> bool {
        crate::os::socket_inode(self.accept_fd) == Some(self.listening)
    }
}

/// Serves on `listener` until shutdown, rebuilding the tiny_http server whenever its accept
/// thread ends, with the connection guard beside it.
pub fn serve(listener: TcpListener, app: Arc<App>, shutdown: Arc<Shutdown>, limits: guard::Limits) {
    match listener.local_addr() {
        Ok(addr) => guard::start(addr.port(), limits, shutdown.waker()),
        Err(e) => log::warn!("no connection guard: cannot read the listening address ({e})"),
    }
    while !shutdown.is_triggered() {
        let running = match Running::start(&listener) {
            Ok(r) => r,
            Err(e) => {
                log::warn!("HTTP server cannot start ({e}); retrying");
                std::thread::sleep(REBUILD_PAUSE);
                continue;
            }
        };
        run_handlers(&running, &app, &shutdown);
        if shutdown.is_triggered() {
            // Its open connections are not served any more.
            retire(running.server, app, Duration::ZERO);
            return;
        }
        retire(running.server, Arc::clone(&app), limits.header_timeout);
        log::warn!("HTTP accept loop stopped; restarting it");
        std::thread::sleep(REBUILD_PAUSE);
    }
}

/// Retires a stopped server on its own thread, for two reasons:
/// - tiny_http keeps a kept-alive connection bound to the server that accepted it: its next
///   request lands in that server's queue, and a request nobody pops is never answered. So the
///   old queue is still served until it has been quiet for `linger` (by then the guard has
///   closed every idle connection), at most four times that;
/// - tiny_http's `Drop` makes a blocking `connect` to the listening address to wake its accept
///   thread. When that thread has died and the backlog is full, nothing accepts and the connect
///   waits out the SYN retries, about two minutes. Here it completes as soon as the next server
///   drains the backlog, and neither the rebuild nor a shutdown waits for it.
fn retire(server: Arc<Server>, app: Arc<App>, linger: Duration) {
    let spawned = std::thread::Builder::new()
        .name("http-retire".into())
        .stack_size(256 * 1024)
        .spawn(move || {
            let give_up = Instant::now() + 4 * linger;
            let mut quiet_until = Instant::now() + linger;
            loop {
                let left = quiet_until.min(give_up).saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                // `Ok(None)` is also a leftover unblock, and `Err` the accept thread's last error:
                // neither means the queue is empty for good.
                if let Ok(Some(request)) = server.recv_timeout(left) {
                    handle(&app, request);
                    quiet_until = Instant::now() + linger;
                }
            }
            drop(server);
        });
    if let Err(e) = spawned {
        // The closure, and the server with it, was dropped by the failed spawn.
        log::warn!("cannot start a thread to retire the old HTTP server ({e}); it was dropped in place");
    }
}

/// Answers requests on this thread and `handlers() - 1` helpers until shutdown or until the
/// accept thread has ended.
fn run_handlers(running: &Running, app: &Arc<App>, shutdown: &Shutdown) {
    let mut helpers = Vec::new();
    for i in 1..handlers() {
        let (server, app) = (Arc::clone(&running.server), Arc::clone(app));
        // `recv` fails on an unblock (below) or on the accept thread's last error.
        let spawned = std::thread::Builder::new()
            .name(format!("http-{i}"))
            .stack_size(256 * 1024)
            .spawn(move || {
                while let Ok(request) = server.recv() {
                    handle(&app, request);
                }
            });
        match spawned {
            Ok(h) => helpers.push(h),
            // Out of threads: serve with fewer handlers rather than not at all.
            Err(e) => log::warn!("cannot start HTTP handler thread {i}: {e}"),
        }
    }
    // One `fstat` per request or tick: far less than the request costs.
    while !shutdown.is_triggered() && running.accepting() {
        match running.server.recv_timeout(TICK) {
            Ok(Some(request)) => handle(app, request),
            Ok(None) => {}
            Err(_) => break,
        }
    }
    for _ in &helpers {
        running.server.unblock();
    }
    for h in helpers {
        let _ = h.join();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{State, TargetInfo};
    use std::io::{BufRead, Read, Write};
    use std::net::TcpStream;
    use std::time::SystemTime;

    fn app() -> Arc<App> {
        let info = TargetInfo::test("api");
        Arc::new(App {
            state: Arc::new(State::new(vec![info], 10, SystemTime::now())),
            fleet: Arc::new(crate::web::NoFleet),
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

    /// How many descriptors of this process refer to the socket `inode`.
    fn descriptors_of(inode: crate::os::Inode) -> usize {
        std::fs::read_dir("/proc/self/fd")
            .unwrap()
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse().ok())
            .filter(|&fd| crate::os::socket_inode(fd) == Some(inode))
            .count()
    }

    #[test]
    fn a_kept_alive_connection_is_still_answered_after_a_rebuild() {
        let listener = bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        // A second descriptor of the listening socket, to break and mend it from here.
        let control = listener.try_clone().unwrap();
        let inode = crate::os::socket_inode(control.as_raw_fd()).unwrap();
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
        // Ours, serve's, and the accept thread's.
        assert_eq!(descriptors_of(inode), 3);
        // A real accept failure: shutting a listening socket down makes a blocked accept()
        // fail (EINVAL), and tiny_http's accept thread ends, closing its descriptor.
        // SAFETY: plain calls on a descriptor `control` owns.
        assert_eq!(unsafe { libc::shutdown(control.as_raw_fd(), libc::SHUT_RD) }, 0);
        let deadline = Instant::now() + Duration::from_secs(3);
        while descriptors_of(inode) != 2 {
            assert!(Instant::now() < deadline, "the accept thread did not end");
            std::thread::sleep(Duration::from_millis(2));
        }
        // Listening again; a rebuild tried before this fails the same way and is tried again.
        // SAFETY: as above.
        assert_eq!(unsafe { libc::listen(control.as_raw_fd(), 128) }, 0);
        // The shutdown gave up the port, which was picked by the kernel: listening picks another.
        let addr = control.local_addr().unwrap();
        // This connection belongs to the retired server: without the retiring thread serving its
        // queue, the request would wait until the guard closed it.
        assert_eq!(healthz(&mut kept), "HTTP/1.1 200 OK ok");
        let mut fresh = std::io::BufReader::new(TcpStream::connect(addr).unwrap());
        fresh.get_mut().set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        assert_eq!(healthz(&mut fresh), "HTTP/1.1 200 OK ok", "a new server accepts");
        shutdown.trigger();
        serving.join().unwrap();
    }
}
