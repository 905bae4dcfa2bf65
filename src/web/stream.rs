//! Bodies that grow with workers times history (`/status?history=N`) are written to the
//! connection as they are produced, never built whole: one worker at a time is copied out of the
//! state, serialised into a small buffer, gzip-compressed on the fly when the client takes it,
//! and sent in chunks (`Transfer-Encoding: chunked`; HTTP/1.0 clients read to the close). A
//! response holds one worker's share of memory, the chunk buffer and, gzipped, the deflate state
//! (about 300 KB), whatever the fleet or the history asked for.
//!
//! Such renders run on a few threads of their own (`Pool`), at most one per core, so that they
//! bound the work as well as the memory: the HTTP handlers hand them over and go back to
//! answering `/health` and the cached bodies at once. A request that finds every render thread
//! busy waits in a short queue; past it, or after waiting half the request timeout, it gets
//! `503` with `Retry-After`.

use super::cache::GZIP_MIN;
use super::{App, Body, Reply, json};
use crate::shutdown::Thread;
use flate2::Compression;
use flate2::write::GzEncoder;
use std::io::{self, BufWriter, Write};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// Bytes of body per chunk: each chunk leaves in one write, with its size line.
pub const CHUNK: usize = 16 * 1024;
/// The chunk size line, fixed-width (leading zeros are allowed) so it can be filled in last.
const SIZE_LINE: usize = 10;
/// Render threads get the stack the deflate state needs when it is built before being boxed
/// (unoptimised builds); the pages a render touched are handed back after each one.
const STACK: usize = 2 << 20;
/// Below the HTTP handlers' priority (10): a handler answering `/health` preempts a render.
const NICE: i32 = 15;

/// A `Vec` that refuses to grow past `limit`: renders a body to keep only when it is small.
pub struct Capped {
    buf: Vec<u8>,
    limit: usize,
}

impl Capped {
    pub fn new(limit: usize) -> Capped {
        Capped { buf: Vec::new(), limit }
    }

    pub fn into_inner(mut self) -> Vec<u8> {
        self.buf.shrink_to_fit();
        self.buf
    }
}

impl Write for Capped {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        if self.buf.len() + b.len() > self.limit {
            return Err(io::Error::other("the body is over its size limit"));
        }
        self.buf.extend_from_slice(b);
        Ok(b.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The body after `head`, in frames of up to `CHUNK` bytes: chunked transfer coding, or the
/// bytes as they are (HTTP/1.0, where the end is the connection's close). The head leaves with
/// the first frame and the terminating chunk with the last, so a small body is one write.
pub struct Chunked<W: Write> {
    inner: W,
    buf: Vec<u8>,
    /// Where the current frame (its size line, when chunked) starts in `buf`.
    frame: usize,
    chunked: bool,
}

impl<W: Write> Chunked<W> {
    pub fn new(inner: W, head: &[u8], chunked: bool) -> Chunked<W> {
        let mut buf = Vec::with_capacity(head.len() + SIZE_LINE + CHUNK + 7);
        buf.extend_from_slice(head);
        let mut c = Chunked {
            inner,
            frame: buf.len(),
            buf,
            chunked,
        };
        c.open_frame();
        c
    }

    fn open_frame(&mut self) {
        if self.chunked {
            self.buf.extend_from_slice(b"00000000\r\n");
        }
    }

    fn data_len(&self) -> usize {
        self.buf.len() - self.frame - if self.chunked { SIZE_LINE } else { 0 }
    }

    fn send(&mut self, last: bool) -> io::Result<()> {
        let n = self.data_len();
        if self.chunked {
            if n == 0 {
                self.buf.truncate(self.frame);
            } else {
                let size = format!("{n:08x}");
                self.buf[self.frame..self.frame + 8].copy_from_slice(size.as_bytes());
                self.buf.extend_from_slice(b"\r\n");
            }
            if last {
                self.buf.extend_from_slice(b"0\r\n\r\n");
            }
        }
        let sent = self.inner.write_all(&self.buf);
        self.buf.clear();
        self.frame = 0;
        self.open_frame();
        sent
    }

    /// Sends what is left and the end of the body; returns the connection's writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.send(true)?;
        self.inner.flush()?;
        Ok(self.inner)
    }
}

impl<W: Write> Write for Chunked<W> {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        let n = b.len().min(CHUNK - self.data_len());
        self.buf.extend_from_slice(&b[..n]);
        if self.data_len() >= CHUNK {
            self.send(false)?;
        }
        Ok(n)
    }

    /// Frames leave when full and at `finish`: flushing a part-frame would only add writes.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Where the body goes once it is known to be large: the chunks, compressed or not.
enum Sink<W: Write> {
    Plain(Chunked<W>),
    Gzip(GzEncoder<Chunked<W>>),
}

/// The response to a streamed `reply`: the body's first `GZIP_MIN` bytes are held back, so that a
/// small one (a worker or two) is sent as any other small body, in one write with its
/// `Content-Length` and uncompressed; a larger one starts the chunks (gzipped when `reply.gzip`)
/// with the head in their first write.
pub struct Response<W: Write> {
    conn: Option<W>,
    reply: Reply,
    http: (u8, u8),
    small: Vec<u8>,
    sink: Option<Sink<W>>,
}

impl<W: Write> Response<W> {
    pub fn new(conn: W, reply: Reply, http: (u8, u8)) -> Response<W> {
        Response {
            conn: Some(conn),
            reply,
            http,
            small: Vec::with_capacity(GZIP_MIN + 1),
            sink: None,
        }
    }

    fn start(&mut self) -> io::Result<&mut Sink<W>> {
        if self.sink.is_none() {
            let conn = self
                .conn
                .take()
                .ok_or_else(|| io::Error::other("the response was sent already"))?;
            let head = super::send::head(&self.reply, self.http, false);
            let chunks = Chunked::new(conn, &head, self.http >= (1, 1));
            let mut sink = if self.reply.gzip {
                // Level 1: on the fly, the CPU per request matters more than the last few percent.
                Sink::Gzip(GzEncoder::new(chunks, Compression::fast()))
            } else {
                Sink::Plain(chunks)
            };
            match &mut sink {
                Sink::Plain(w) => w.write_all(&self.small)?,
                Sink::Gzip(w) => w.write_all(&self.small)?,
            }
            self.small = Vec::new();
            self.sink = Some(sink);
        }
        self.sink.as_mut().ok_or_else(|| io::Error::other("no sink"))
    }

    /// Ends the body; returns the connection's writer.
    pub fn finish(mut self) -> io::Result<W> {
        match self.sink.take() {
            Some(Sink::Plain(w)) => w.finish(),
            Some(Sink::Gzip(w)) => w.finish()?.finish(),
            None => {
                let mut conn = self
                    .conn
                    .take()
                    .ok_or_else(|| io::Error::other("the response was sent already"))?;
                let reply = Reply {
                    etag: self.reply.etag.as_ref().map(|t| t.replace(".gz\"", "\"")),
                    gzip: false,
                    vary: false,
                    body: Body::Owned(std::mem::take(&mut self.small)),
                    ..self.reply.clone()
                };
                // `head` holds a body this small.
                conn.write_all(&super::send::head(&reply, self.http, false))?;
                conn.flush()?;
                Ok(conn)
            }
        }
    }
}

impl<W: Write> Write for Response<W> {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        if self.sink.is_none() && self.small.len() + b.len() <= GZIP_MIN {
            self.small.extend_from_slice(b);
            return Ok(b.len());
        }
        match self.start()? {
            Sink::Plain(w) => w.write(b),
            Sink::Gzip(w) => w.write(b),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Writes the `/status` document of a streamed `reply` to `conn`. serde writes a field at a time:
/// a buffer in front feeds the deflater and the chunks in larger pieces.
pub fn write_body<W: Write>(app: &App, reply: Reply, http: (u8, u8), conn: W, now: SystemTime) -> io::Result<W> {
    let Body::Stream(q) = reply.body.clone() else {
        return Err(io::Error::other("not a streamed body"));
    };
    let mut out = BufWriter::with_capacity(8 * 1024, Response::new(conn, reply, http));
    json::write_status(&mut out, &*app.state, q.history, &q.filter(), now)?;
    out.into_inner().map_err(|e| e.into_error())?.finish()
}

/// How many large renders run at once and how many wait.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub threads: usize,
    pub queue: usize,
    /// A request that waited this long is answered 503 rather than rendered late.
    pub max_wait: Duration,
}

impl Limits {
    /// One render per core (at most four) and eight times as many waiting, for at most half of
    /// `request_timeout` (after which the guard would close the connection anyway). A waiting
    /// request costs a few hundred bytes; one refused at once comes back at once, so a short
    /// queue only turns a few clients' waits into a storm of retries.
    pub fn for_this_machine(request_timeout: Duration) -> Limits {
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get().clamp(1, 4));
        Limits {
            threads,
            queue: 8 * threads,
            max_wait: request_timeout / 2,
        }
    }
}

/// A few threads running jobs from a bounded queue.
pub struct Pool<J> {
    /// Taken by `stop`: the threads end when the queue is empty and has no sender.
    tx: Mutex<Option<SyncSender<(Instant, J)>>>,
    threads: Mutex<Vec<Thread>>,
}

impl<J: Send + 'static> Pool<J> {
    /// Starts `limits.threads` threads calling `run(job, late)`; `late` is true for a job that
    /// waited longer than `limits.max_wait`. The threads end at `stop`, or when the pool is
    /// dropped.
    pub fn start(name: &str, limits: Limits, run: impl Fn(J, bool) + Send + Sync + 'static) -> Pool<J> {
        let (tx, rx) = std::sync::mpsc::sync_channel(limits.queue);
        let rx: Arc<Mutex<Receiver<(Instant, J)>>> = Arc::new(Mutex::new(rx));
        let run = Arc::new(run);
        let mut threads = Vec::new();
        for i in 0..limits.threads {
            let (rx, run) = (Arc::clone(&rx), Arc::clone(&run));
            let spawned = crate::shutdown::spawn(format!("{name}-{i}"), STACK, move || {
                crate::os::nice_current_thread(NICE);
                let stack = crate::os::current_stack();
                loop {
                    // A poisoned lock means another render thread panicked while waiting:
                    // the receiver itself is intact.
                    let next = rx.lock().unwrap_or_else(|e| e.into_inner()).recv();
                    let Ok((queued, job)) = next else { return };
                    let late = queued.elapsed() > limits.max_wait;
                    // A panic in one render must not take the thread (and its share of
                    // the pool) with it; the connection is dropped with the job.
                    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(job, late)));
                    if let Some(s) = &stack {
                        crate::os::release_stack_below_here(s);
                    }
                }
            });
            match spawned {
                Ok(t) => threads.push(t),
                Err(e) => log::warn!("cannot start render thread {i}: {e}"),
            }
        }
        Pool {
            tx: Mutex::new(Some(tx)),
            threads: Mutex::new(threads),
        }
    }

    /// Queues `job`, or gives it back when the queue is full (or no thread could start, or the
    /// pool is stopped).
    pub fn submit(&self, job: J) -> Result<(), J> {
        let tx = self.tx.lock().unwrap_or_else(|e| e.into_inner());
        let Some(tx) = tx.as_ref() else { return Err(job) };
        tx.try_send((Instant::now(), job)).map_err(|e| match e {
            TrySendError::Full((_, j)) | TrySendError::Disconnected((_, j)) => j,
        })
    }

    /// Takes no more jobs; the threads end once the queued ones are done, and are joined by
    /// `deadline`.
    pub fn stop(&self, deadline: Instant) {
        self.tx.lock().unwrap_or_else(|e| e.into_inner()).take();
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|e| e.into_inner()));
        crate::shutdown::join_all(threads, deadline);
    }
}

/// The render threads of a server: each job is a request and the reply whose body to stream.
pub type Renders = Pool<(tiny_http::Request, Reply)>;

/// The render threads of the server listening on `port`.
pub fn start(app: Arc<App>, limits: Limits, port: u16) -> Renders {
    Pool::start("render", limits, move |(request, reply), late| {
        answer(&app, request, reply, late, port)
    })
}

/// Writes `reply` (a `Body::Stream`) to `request`'s connection; 503 when it waited too long.
fn answer(app: &App, request: tiny_http::Request, reply: Reply, late: bool, port: u16) {
    if !matches!(reply.body, Body::Stream(_)) {
        return super::send::respond(request, reply);
    }
    if late {
        return super::send::respond(request, Reply::busy());
    }
    let mut reply = reply;
    reply.close |= super::send::body_left_unread(&request);
    let tiny_http::HTTPVersion(major, minor) = *request.http_version();
    // Without chunks, the close ends the body; tiny_http closes after an HTTP/1.0 request
    // unless the client asked for keep-alive.
    let kept_alive = (major, minor) < (1, 1)
        && request
            .headers()
            .iter()
            .any(|h| h.field.equiv("Connection") && h.value.as_str().to_ascii_lowercase().contains("keep-alive"));
    let peer = request.remote_addr().copied();
    // A client that went away is not our problem: the rest of the body has nowhere to go.
    // Dropping the writer tells tiny_http the response is complete.
    let _ = write_body(app, reply, (major, minor), request.into_writer(), SystemTime::now());
    if let Some(peer) = peer.filter(|_| kept_alive) {
        super::guard::close_connection(port, peer);
    }
}

#[cfg(test)]
pub mod tests {
    use super::*;
    use std::io::BufRead;
    use std::sync::mpsc::channel;

    /// Decodes a chunked body; panics on any framing error.
    pub fn dechunk(mut wire: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            let mut line = String::new();
            wire.read_line(&mut line).unwrap();
            let n = usize::from_str_radix(line.trim_end(), 16).unwrap();
            if n == 0 {
                assert_eq!(wire, b"\r\n", "the last chunk ends the body");
                return out;
            }
            out.extend_from_slice(&wire[..n]);
            assert_eq!(&wire[n..n + 2], b"\r\n");
            wire = &wire[n + 2..];
        }
    }

    /// Records each write, to count them.
    #[derive(Default)]
    struct Writes(Vec<Vec<u8>>);

    impl Write for Writes {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0.push(b.to_vec());
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn chunked_frames_round_trip_in_one_write_each() {
        let body: Vec<u8> = (0..3 * CHUNK + 100).map(|i| (i % 251) as u8).collect();
        let mut c = Chunked::new(Writes::default(), b"HEAD\r\n\r\n", true);
        for piece in body.chunks(1000) {
            c.write_all(piece).unwrap();
        }
        let writes = c.finish().unwrap().0;
        assert_eq!(writes.len(), 4, "three full chunks, then the rest with the end");
        assert!(
            writes[0].starts_with(b"HEAD\r\n\r\n00004000\r\n"),
            "the head leaves with the first"
        );
        let wire = writes.concat();
        assert_eq!(dechunk(&wire[b"HEAD\r\n\r\n".len()..]), body);
        let small = Chunked::new(Writes::default(), b"H\r\n\r\n", true);
        let mut small = small;
        small.write_all(b"{}").unwrap();
        assert_eq!(
            small.finish().unwrap().0,
            [b"H\r\n\r\n00000002\r\n{}\r\n0\r\n\r\n".to_vec()]
        );
        let empty = Chunked::new(Writes::default(), b"H\r\n\r\n", true).finish().unwrap().0;
        assert_eq!(empty.concat(), b"H\r\n\r\n0\r\n\r\n");
        let mut plain = Chunked::new(Writes::default(), b"H\r\n\r\n", false);
        plain.write_all(&body).unwrap();
        assert_eq!(plain.finish().unwrap().0.concat()[5..], body[..], "HTTP/1.0: as it is");
    }

    #[test]
    fn capped_refuses_past_its_limit() {
        let mut c = Capped::new(10);
        c.write_all(b"0123456789").unwrap();
        assert!(c.write_all(b"x").is_err());
        assert_eq!(c.into_inner(), b"0123456789");
    }

    #[test]
    fn the_pool_runs_a_few_queues_a_few_and_refuses_the_rest() {
        let limits = Limits {
            threads: 1,
            queue: 1,
            max_wait: Duration::from_secs(60),
        };
        let (started_tx, started) = channel();
        let (release, gate) = channel::<()>();
        let gate = Mutex::new(gate);
        let (done_tx, done) = channel();
        let pool = Pool::start("test", limits, move |n: u32, late| {
            started_tx.send(n).unwrap();
            gate.lock().unwrap().recv().unwrap();
            done_tx.send((n, late)).unwrap();
        });
        pool.submit(1).unwrap();
        assert_eq!(started.recv().unwrap(), 1, "running");
        pool.submit(2).unwrap();
        assert_eq!(pool.submit(3), Err(3), "one running and one waiting: full");
        release.send(()).unwrap();
        assert_eq!(done.recv().unwrap(), (1, false));
        assert_eq!(started.recv().unwrap(), 2, "the waiting one runs next");
        pool.submit(4).unwrap();
        release.send(()).unwrap();
        release.send(()).unwrap();
        assert_eq!(done.recv().unwrap(), (2, false));
        assert_eq!(done.recv().unwrap(), (4, false));
    }

    #[test]
    fn a_job_that_waited_too_long_is_late() {
        let limits = Limits {
            threads: 1,
            queue: 4,
            max_wait: Duration::from_millis(50),
        };
        let (release, gate) = channel::<()>();
        let gate = Mutex::new(gate);
        let (done_tx, done) = channel();
        let pool = Pool::start("test", limits, move |n: u32, late| {
            if n == 1 {
                gate.lock().unwrap().recv().unwrap();
            }
            done_tx.send((n, late)).unwrap();
        });
        pool.submit(1).unwrap();
        pool.submit(2).unwrap();
        std::thread::sleep(Duration::from_millis(200));
        release.send(()).unwrap();
        // Whether the first one was late depends on how soon a loaded machine ran the thread.
        assert_eq!(done.recv().unwrap().0, 1);
        assert_eq!(done.recv().unwrap(), (2, true), "waited 200 ms, 50 allowed");
    }

    #[test]
    fn no_threads_refuses_everything() {
        let limits = Limits {
            threads: 0,
            queue: 0,
            max_wait: Duration::from_secs(1),
        };
        let pool = Pool::start("test", limits, |_: u32, _| {});
        assert_eq!(pool.submit(7), Err(7));
    }
}
