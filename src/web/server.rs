//! The tiny_http loop, hardened from the outside. tiny_http 0.12 has no read timeout, no limit on
//! connections or header size, and its accept thread ends for good on the first accept error (or
//! panics when it runs out of descriptors or threads). So this module:
//! - sets `TCP_NODELAY` on the listening socket, which Linux copies to every accepted one: a
//!   response sent in two writes (head, then a large body) must not wait for the client's
//!   delayed ACK (~40 ms per request on a kept-alive connection);
//! - writes each response itself (`send.rs`, `wire.rs`): the head and any body up to 16 KiB in
//!   one write;
//! - starts the guard (`guard.rs`), which closes connections that get no complete request in
//!   within `header_timeout` and those past `max_connections`;
//! - refuses request heads over 16 KiB;
//! - rebuilds the server on the same socket when its accept thread has ended, which shows as
//!   that thread's own descriptor of the listening socket being closed;
//! - retires a stopped server off the serving thread (see `retire`).

use super::send::{READ_BY_TINY_HTTP, respond};
use super::stream::{self, Renders};
use super::{App, Body, Reply, guard, route};
use crate::shutdown::{Shutdown, Thread};
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
/// How often the serving thread looks for an accept thread that has ended. A poll on purpose:
/// tiny_http gives no event when its accept thread dies (only the listening socket's `fstat`
/// tells). A shutdown does not wait for it: it unblocks the wait at once.
const TICK: Duration = Duration::from_millis(200);
/// How long the handlers get to finish the requests in hand when the server stops.
const HANDLERS_END: Duration = Duration::from_millis(500);

/// Binds the listening socket, with the options its connections inherit.
pub fn bind(addr: &str) -> std::io::Result<TcpListener> {
    let listener = TcpListener::bind(addr)?;
    crate::os::set_nodelay(listener.as_fd())?;
    Ok(listener)
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

/// A heartbeat report: the one endpoint that takes a body, read (bounded) only once the report
/// is authenticated. Copied out of the request first, so the body can be read from it.
fn push(app: &App, mut request: tiny_http::Request) {
    let method = request.method().as_str().to_owned();
    let url = request.url().to_owned();
    let authorization = request
        .headers()
        .iter()
        .find(|h| h.field.equiv("Authorization"))
        .map(|h| h.value.as_str().to_owned());
    let mut read = false;
    let mut reply = catch_unwind(AssertUnwindSafe(|| {
        super::push::answer(app, &method, &url, authorization.as_deref(), || {
            read = true;
            super::push::read_body(&mut request)
        })
    }))
    .unwrap_or_else(|_| Reply::error(500, "internal error"));
    // Refused before its body was read: whatever it declared is still in the socket.
    reply.close |= !read && request.body_length().unwrap_or(0) > READ_BY_TINY_HTTP;
    respond(request, reply)
}

fn handle(app: &App, renders: &Renders, request: tiny_http::Request) {
    if head_len(&request) > MAX_HEAD {
        return respond(request, Reply::error(431, "request head over 16 KiB"));
    }
    if request.url().starts_with(super::push::PREFIX) {
        return push(app, request);
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
    // A streamed body is written by a render thread; HEAD has none, so it is answered here.
    if matches!(reply.body, Body::Stream(_)) && *request.method() != tiny_http::Method::Head {
        if let Err((request, _)) = renders.submit((request, reply)) {
            respond(request, Reply::busy());
        }
        return;
    }
    respond(request, reply);
}

/// Whether a request is answered on its connection's own thread rather than handed to the
/// handlers: the paths whose answer is constant, from the cache, or queued for a render thread.
/// The hand-off to a handler thread and back is two context switches a request, and costlier with
/// a thousand worker threads on the run queues: a kept-alive `/health` took 27.7k instructions
/// and 4.4 context switches with it, 18.3k and 1.0 answered here (static musl build, callgrind
/// and `perf stat`, with tiny_http reading a head a line at a time; 2026-12-04). The rest
/// (reports with bodies, badges that copy the state, admin calls) stay on the few handler
/// threads, which bound how many run at once.
fn answered_inline(request: &tiny_http::Request) -> bool {
    let url = request.url();
    let path = url.split_once('?').map_or(url, |(p, _)| p);
    matches!(path, "/health" | "/healthz" | "/" | "/metrics" | "/status")
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
    fn start(listener: &TcpListener, inline: &tiny_http::Inline) -> Result<Running, String> {
        let listening = crate::os::socket_inode(listener.as_raw_fd()).ok_or("the listening socket is gone")?;
        let copy = listener.try_clone().map_err(|e| e.to_string())?;
        let accept_fd = copy.as_raw_fd();
        // tiny_http starts its accept thread with `thread::spawn`, which panics when the process
        // is out of threads; that must not take the serving thread with it.
        let server = catch_unwind(AssertUnwindSafe(|| {
            Server::from_listener_inline(copy, None, Some(Arc::clone(inline)))
        }))
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
/// thread ends, with the connection guard beside it. What is left of the server is ended last,
/// by `Stopped::finish`.
pub fn serve(listener: TcpListener, app: Arc<App>, shutdown: Arc<Shutdown>, limits: guard::Limits) -> Stopped {
    let renders = stream::Limits::for_this_machine(limits.header_timeout);
    serve_with(listener, app, shutdown, limits, renders)
}

/// `serve` with the large renders' limits given.
pub fn serve_with(
    listener: TcpListener,
    app: Arc<App>,
    shutdown: Arc<Shutdown>,
    limits: guard::Limits,
    render_limits: stream::Limits,
) -> Stopped {
    let port = listener.local_addr().map_or(0, |a| a.port());
    let renders = Arc::new(stream::start(Arc::clone(&app), render_limits, port));
    let guard = match listener.local_addr() {
        Ok(addr) => guard::start(addr, limits, shutdown.waker()),
        Err(e) => {
            log::warn!("no connection guard: cannot read the listening address ({e})");
            None
        }
    };
    let mut stopped = Stopped {
        server: None,
        renders,
        threads: guard.into_iter().collect(),
        port,
    };
    let inline: tiny_http::Inline = {
        let (app, renders, shutdown) = (Arc::clone(&app), Arc::clone(&stopped.renders), Arc::clone(&shutdown));
        // After a shutdown nothing is answered, as when the handlers have stopped.
        Arc::new(move |request| {
            if shutdown.is_triggered() || !answered_inline(&request) {
                return Some(request);
            }
            handle(&app, &renders, request);
            None
        })
    };
    while !shutdown.is_triggered() {
        let running = match Running::start(&listener, &inline) {
            Ok(r) => r,
            Err(e) => {
                log::warn!("HTTP server cannot start ({e}); retrying");
                std::thread::sleep(REBUILD_PAUSE);
                continue;
            }
        };
        // A stop ends the wait for the next request at once, on this thread and every helper
        // (an unblock wakes one of them).
        let server = Arc::downgrade(&running.server);
        shutdown.on_trigger(move || {
            if let Some(s) = server.upgrade() {
                (0..handlers()).for_each(|_| s.unblock());
            }
        });
        run_handlers(&running, &app, &stopped.renders, &shutdown);
        if shutdown.is_triggered() {
            stopped.server = Some(running.server);
            break;
        }
        let (ended, left) = std::mem::take(&mut stopped.threads)
            .into_iter()
            .partition(|t| t.is_finished());
        crate::shutdown::join_all(ended, Instant::now());
        stopped.threads = left;
        let renders = Arc::clone(&stopped.renders);
        let linger = limits.header_timeout;
        stopped
            .threads
            .extend(retire(running.server, Arc::clone(&app), renders, linger, &shutdown));
        log::warn!("HTTP accept loop stopped; restarting it");
        std::thread::sleep(REBUILD_PAUSE);
    }
    stopped
}

/// What is left of the server after a shutdown stopped answering: tiny_http's server, the
/// render threads, the guard and any retiring servers' threads.
pub struct Stopped {
    server: Option<Arc<Server>>,
    renders: Arc<Renders>,
    threads: Vec<Thread>,
    port: u16,
}

impl Stopped {
    /// Ends every thread the server started, joined by `deadline`. The connections are closed
    /// first: tiny_http's thread for each waits on it for the client's next request.
    pub fn finish(self, deadline: Instant) {
        guard::close_all(self.port);
        self.renders.stop(deadline);
        let mut threads = self.threads;
        if let Some(server) = self.server {
            // tiny_http's `join` ends its accept thread and its connections' threads (see
            // .patched/tiny_http/PATCHED.md). A request still queued holds its connection's
            // thread, so the queue is emptied first. On a thread of its own: stopping connects
            // to the listening socket, which can block (see `retire`).
            let dropped = crate::shutdown::spawn("http-stop".into(), 256 * 1024, move || {
                while let Ok(Some(request)) = server.try_recv() {
                    drop(request);
                }
                // Only the last holder can join it; the others are gone by now.
                if let Ok(server) = Arc::try_unwrap(server) {
                    server.join();
                }
            });
            match dropped {
                Ok(t) => threads.push(t),
                Err(e) => log::warn!("cannot start a thread to stop the HTTP server ({e})"),
            }
        }
        crate::shutdown::join_all(threads, deadline);
    }
}

/// Retires a stopped server on its own thread, for two reasons:
/// - tiny_http keeps a kept-alive connection bound to the server that accepted it: its next
///   request lands in that server's queue, and a request nobody pops is never answered. So the
///   old queue is still served until it has been quiet for `linger` (by then the guard has
///   closed every idle connection), at most four times that, or until shutdown;
/// - tiny_http's `Drop` makes a blocking `connect` to the listening address to wake its accept
///   thread. When that thread has died and the backlog is full, nothing accepts and the connect
///   waits out the SYN retries, about two minutes. Here it completes as soon as the next server
///   drains the backlog, and neither the rebuild nor a shutdown waits for it.
fn retire(
    server: Arc<Server>,
    app: Arc<App>,
    renders: Arc<Renders>,
    linger: Duration,
    shutdown: &Shutdown,
) -> Option<Thread> {
    let wake = Arc::downgrade(&server);
    shutdown.on_trigger(move || wake.upgrade().iter().for_each(|s| s.unblock()));
    let stopping = shutdown.waker();
    let spawned = crate::shutdown::spawn("http-retire".into(), 256 * 1024, move || {
        let give_up = Instant::now() + 4 * linger;
        let mut quiet_until = Instant::now() + linger;
        while !stopping.is_stopped() {
            let left = quiet_until.min(give_up).saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            // `Ok(None)` is also a leftover unblock, and `Err` the accept thread's last error:
            // neither means the queue is empty for good.
            if let Ok(Some(request)) = server.recv_timeout(left) {
                handle(&app, &renders, request);
                quiet_until = Instant::now() + linger;
            }
        }
        drop(server);
    });
    // The closure, and the server with it, was dropped by a failed spawn.
    spawned
        .map_err(|e| log::warn!("cannot start a thread to retire the old HTTP server ({e}); it was dropped in place"))
        .ok()
}

/// Answers requests on this thread and `handlers() - 1` helpers until shutdown or until the
/// accept thread has ended.
fn run_handlers(running: &Running, app: &Arc<App>, renders: &Arc<Renders>, shutdown: &Shutdown) {
    let mut helpers = Vec::new();
    for i in 1..handlers() {
        let (server, app, renders) = (Arc::clone(&running.server), Arc::clone(app), Arc::clone(renders));
        // `recv` fails on an unblock (below) or on the accept thread's last error.
        let spawned = crate::shutdown::spawn(format!("http-{i}"), 256 * 1024, move || {
            while let Ok(request) = server.recv() {
                handle(&app, &renders, request);
            }
        });
        match spawned {
            Ok(h) => helpers.push(h),
            // Out of threads: serve with fewer handlers rather than not at all.
            Err(e) => log::warn!("cannot start HTTP handler thread {i}: {e}"),
        }
    }
    // Whether the accept thread is still there is an `fstat`: asked once a tick, not once a
    // request (a kept-alive connection keeps bringing requests after the accept thread ended,
    // so the tick is counted by the clock, not by a quiet queue).
    let mut checked = Instant::now();
    while !shutdown.is_triggered() {
        if checked.elapsed() >= TICK {
            if !running.accepting() {
                break;
            }
            checked = Instant::now();
        }
        match running.server.recv_timeout(TICK) {
            Ok(Some(request)) => handle(app, renders, request),
            Ok(None) => {}
            Err(_) => break,
        }
    }
    for _ in &helpers {
        running.server.unblock();
    }
    // A handler still writing to a client that does not read is left to finish on its own.
    crate::shutdown::join_all(helpers, Instant::now() + HANDLERS_END);
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

    /// Serves `app` with the given render limits until the returned guard is dropped.
    struct Serving {
        addr: std::net::SocketAddr,
        shutdown: Arc<Shutdown>,
        thread: Option<std::thread::JoinHandle<Stopped>>,
    }

    impl Drop for Serving {
        fn drop(&mut self) {
            self.shutdown.trigger();
            if let Some(Ok(stopped)) = self.thread.take().map(|t| t.join()) {
                stopped.finish(Instant::now() + Duration::from_secs(5));
            }
        }
    }

    fn serving(app: Arc<App>, renders: stream::Limits) -> Serving {
        let listener = bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = Arc::new(Shutdown::default());
        let thread = {
            let shutdown = Arc::clone(&shutdown);
            // Long enough for a debug build's renders on a loaded machine.
            let limits = guard::Limits {
                header_timeout: Duration::from_secs(30),
                max_connections: 100,
            };
            std::thread::spawn(move || serve_with(listener, app, shutdown, limits, renders))
        };
        Serving {
            addr,
            shutdown,
            thread: Some(thread),
        }
    }

    /// Sends `request` as it is and reads the response to the close: (head, body as sent).
    fn raw(addr: std::net::SocketAddr, request: &str) -> (String, Vec<u8>) {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        s.write_all(request.as_bytes()).unwrap();
        let mut all = Vec::new();
        let _ = s.read_to_end(&mut all);
        let end = all.windows(4).position(|w| w == b"\r\n\r\n").expect("a whole head") + 4;
        (String::from_utf8_lossy(&all[..end]).into_owned(), all[end..].to_vec())
    }

    fn fleet(n: usize) -> Arc<App> {
        let infos = (0..n).map(|i| TargetInfo::test(&format!("w{i}"))).collect();
        let state = State::new(infos, 100, SystemTime::now());
        for id in 0..n {
            for k in 0..100u64 {
                state.record_check(
                    id,
                    crate::state::CheckRecord {
                        at_ms: crate::timefmt::unix_millis(SystemTime::now()) - 1000 * (100 - k),
                        ok: k % 7 != 0,
                        status: Some(if k % 7 != 0 { 200 } else { 503 }),
                        latency_ms: k,
                        duration_ms: k,
                        attempts: 1,
                        error: (k % 7 == 0).then(|| "status 503".into()),
                    },
                );
            }
        }
        Arc::new(App {
            state: Arc::new(state),
            fleet: Arc::new(crate::web::NoFleet),
            admin_token: None,
            cache: crate::web::cache::Cache::default(),
        })
    }

    fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
        head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }

    fn without_time(body: &[u8]) -> serde_json::Value {
        let mut v: serde_json::Value = serde_json::from_slice(body).unwrap();
        v["uptime_seconds"] = serde_json::Value::Null;
        v
    }

    #[test]
    fn status_is_streamed_chunked_and_gzipped_on_the_fly() {
        let s = serving(fleet(40), stream::Limits::for_this_machine(Duration::from_secs(60)));
        let get = |extra: &str| {
            raw(
                s.addr,
                &format!("GET /status?history=100 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{extra}\r\n"),
            )
        };
        let (head, wire) = get("");
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
        assert_eq!(header(&head, "transfer-encoding"), Some("chunked"));
        assert_eq!(header(&head, "content-length"), None);
        assert_eq!(header(&head, "vary"), Some("Accept-Encoding"));
        assert_eq!(header(&head, "x-content-type-options"), Some("nosniff"));
        assert!(header(&head, "content-security-policy").is_some());
        let plain = stream::tests::dechunk(&wire);
        assert!(plain.len() > 200_000, "{} bytes: more than one chunk", plain.len());
        let doc = without_time(&plain);
        assert_eq!(doc["workers"].as_array().unwrap().len(), 40);
        assert_eq!(doc["workers"][39]["history"].as_array().unwrap().len(), 100);
        let (zhead, zwire) = get("Accept-Encoding: gzip\r\n");
        assert_eq!(header(&zhead, "content-encoding"), Some("gzip"));
        assert_eq!(header(&zhead, "transfer-encoding"), Some("chunked"));
        assert_ne!(header(&zhead, "etag"), header(&head, "etag"));
        let mut unzipped = Vec::new();
        flate2::read::GzDecoder::new(&stream::tests::dechunk(&zwire)[..])
            .read_to_end(&mut unzipped)
            .unwrap();
        assert_eq!(without_time(&unzipped), doc, "the same document, gzipped");
        // HEAD: the same head, no body and no render.
        let (hhead, hbody) = raw(s.addr, "HEAD /status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        assert_eq!(header(&hhead, "transfer-encoding"), Some("chunked"));
        assert!(hbody.is_empty());
        // HTTP/1.0 has no chunks: the body as it is, ended by the close.
        let (old, body) = raw(s.addr, "GET /status?history=3 HTTP/1.0\r\n\r\n");
        assert!(
            old.starts_with("HTTP/1.0 200 OK\r\n") && header(&old, "transfer-encoding").is_none(),
            "{old}"
        );
        assert_eq!(header(&old, "connection"), Some("close"));
        assert_eq!(
            without_time(&body)["workers"][0]["history"].as_array().unwrap().len(),
            3
        );
        // Even when it asked to keep the connection: the body ends with the close, at once
        // rather than when the connection times out.
        // Compared with the same request without keep-alive, timed the same way: the guard would
        // close the connection only 30 s (its timeout here) after the last byte, and this client
        // gives up after 20.
        let t = Instant::now();
        raw(s.addr, "GET /status?history=100 HTTP/1.0\r\n\r\n");
        let closing = t.elapsed();
        let t = Instant::now();
        let (old, body) = raw(
            s.addr,
            "GET /status?history=100 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
        );
        assert!(old.starts_with("HTTP/1.0 200 OK\r\n"), "{old}");
        assert_eq!(without_time(&body), doc);
        let kept = t.elapsed();
        assert!(
            kept < closing + Duration::from_secs(3),
            "closed after {kept:?} ({closing:?} without keep-alive)"
        );
        // 304 from the tag alone.
        let tag = header(&head, "etag").unwrap();
        let (nm, body) = raw(
            s.addr,
            &format!(
                "GET /status?history=100 HTTP/1.1\r\nHost: x\r\nConnection: close\r\nIf-None-Match: {tag}\r\n\r\n"
            ),
        );
        assert!(nm.starts_with("HTTP/1.1 304"), "{nm}");
        assert!(body.is_empty());
    }

    #[test]
    fn a_kept_alive_connection_reads_streams_one_after_another() {
        let s = serving(fleet(3), stream::Limits::for_this_machine(Duration::from_secs(60)));
        let conn = TcpStream::connect(s.addr).unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut r = std::io::BufReader::new(conn);
        for n in [5, 1, 100] {
            let req = format!("GET /status?history={n} HTTP/1.1\r\nHost: x\r\n\r\n");
            r.get_mut().write_all(req.as_bytes()).unwrap();
            let mut line = String::new();
            r.read_line(&mut line).unwrap();
            assert!(line.starts_with("HTTP/1.1 200"), "{line}");
            while r.read_line(&mut line).unwrap() > 0 && !line.ends_with("\r\n\r\n") {}
            let mut body = Vec::new();
            loop {
                let mut size = String::new();
                r.read_line(&mut size).unwrap();
                let n = usize::from_str_radix(size.trim_end(), 16).unwrap();
                let mut chunk = vec![0; n + 2];
                r.read_exact(&mut chunk).unwrap();
                if n == 0 {
                    break;
                }
                body.extend_from_slice(&chunk[..n]);
            }
            let v = without_time(&body);
            assert_eq!(v["workers"][2]["history"].as_array().unwrap().len(), n);
        }
    }

    #[test]
    fn without_a_free_render_thread_a_stream_gets_503_and_retry_after() {
        let none = stream::Limits {
            threads: 0,
            queue: 0,
            max_wait: Duration::from_secs(1),
        };
        let s = serving(fleet(2), none);
        let (head, body) = raw(s.addr, "GET /status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        assert!(head.starts_with("HTTP/1.1 503 Service Unavailable\r\n"), "{head}");
        assert_eq!(header(&head, "retry-after"), Some("1"));
        assert_eq!(header(&head, "x-content-type-options"), Some("nosniff"));
        assert!(String::from_utf8_lossy(&body).contains("\"error\""));
        // Cached and small bodies do not need one.
        let (head, _) = raw(
            s.addr,
            "GET /status?history=0 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        );
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        let (head, _) = raw(s.addr, "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
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
