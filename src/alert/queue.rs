//! The delivery side of every channel: a bounded queue fed by the workers, drained by a sender
//! thread of the channel's own, and the one function that sends a provider's `Request`. A queue
//! and its thread belong to one channel, so a channel that hangs only delays itself.

use super::Request;
use crate::probe;
use crate::shutdown::{Thread, Waker};
use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

pub const QUEUE_CAP: usize = 100;
const DELIVERY_RETRIES: u32 = 3;
/// How much of a refusal's body is read for its explanation.
const ERROR_BODY_MAX: u64 = 4096;
/// Sender threads only format a message and wait on a socket.
const STACK_SIZE: usize = 256 * 1024;

/// A bounded FIFO shared by producers (workers) and one consumer thread.
pub struct Queue<T> {
    items: Mutex<VecDeque<T>>,
    what: String,
    /// Items pushed and not yet handled to the end (queued or being delivered), and its signal.
    unfinished: Mutex<usize>,
    finished: Condvar,
    /// The consumer's waker: a push wakes it (as a check-now), and so does a stop.
    waker: Arc<Waker>,
    /// The consumer's thread, until whoever stops it takes it to join it.
    thread: Mutex<Option<Thread>>,
}

impl<T> Queue<T> {
    pub fn new(what: impl Into<String>, waker: Arc<Waker>) -> Queue<T> {
        Queue {
            items: Mutex::new(VecDeque::new()),
            what: what.into(),
            unfinished: Mutex::new(0),
            finished: Condvar::new(),
            waker,
            thread: Mutex::new(None),
        }
    }

    /// The consumer's thread (once: the caller joins it).
    pub fn take_thread(&self) -> Option<Thread> {
        self.thread.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    /// Adds an item; when full, the oldest is dropped (newer news matters more).
    pub fn push(&self, item: T) {
        let mut q = self.items.lock().unwrap_or_else(|e| e.into_inner());
        if q.len() >= QUEUE_CAP {
            q.pop_front();
            log::warn!("{} queue full ({QUEUE_CAP}): dropped the oldest entry", self.what);
            self.finish_one();
        }
        *self.unfinished.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        q.push_back(item);
        drop(q);
        self.waker.check_now();
    }

    /// Waits for the next item, or `None` once the waker is stopped.
    pub fn pop(&self) -> Option<T> {
        loop {
            if self.waker.is_stopped() {
                return None;
            }
            if let Some(item) = self.items.lock().unwrap_or_else(|e| e.into_inner()).pop_front() {
                return Some(item);
            }
            // A push after the look above has already set the check-now this wait consumes.
            if !self.waker.wait_for_check_now() {
                return None;
            }
        }
    }

    /// Takes every item still queued (the channel is being stopped); they count as handled here.
    pub fn drain(&self) -> Vec<T> {
        let items: Vec<T> = self.items.lock().unwrap_or_else(|e| e.into_inner()).drain(..).collect();
        let mut n = self.unfinished.lock().unwrap_or_else(|e| e.into_inner());
        *n = n.saturating_sub(items.len());
        self.finished.notify_all();
        items
    }

    /// Marks one item as handled (delivered, given up on, or dropped).
    fn finish_one(&self) {
        let mut n = self.unfinished.lock().unwrap_or_else(|e| e.into_inner());
        *n = n.saturating_sub(1);
        self.finished.notify_all();
    }

    /// Waits until every item pushed so far has been handled, or until `deadline`; true if all
    /// were.
    pub fn wait_idle(&self, deadline: Instant) -> bool {
        let mut n = self.unfinished.lock().unwrap_or_else(|e| e.into_inner());
        while *n > 0 {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            n = self
                .finished
                .wait_timeout(n, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        true
    }

    pub fn len(&self) -> usize {
        self.items.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Starts the thread `thread` that hands each queued item to `handle` until shutdown; returns
/// the queue to push into. `what` names the queue in log lines.
pub fn start<T: Send + 'static>(
    thread: &str,
    what: impl Into<String>,
    waker: Arc<Waker>,
    mut handle: impl FnMut(T, &Waker) + Send + 'static,
) -> std::io::Result<Arc<Queue<T>>> {
    let queue = Arc::new(Queue::new(what, Arc::clone(&waker)));
    let q = Arc::clone(&queue);
    let consumer = crate::shutdown::spawn(thread.into(), STACK_SIZE, move || {
        while let Some(item) = q.pop() {
            handle(item, &waker);
            q.finish_one();
        }
    })?;
    *queue.thread.lock().unwrap_or_else(|e| e.into_inner()) = Some(consumer);
    Ok(queue)
}

/// Why one request failed; its text never holds the URL (it may be a credential).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The server answered with a status outside 2xx, and the start of its body (which only
    /// a provider that documents its error shape reads, see `alert::describe`).
    Status(u16, Option<String>),
    /// No answer: timeout, refused, DNS, TLS...
    Transport(String),
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Status(code, _) => write!(f, "status {code}"),
            Failure::Transport(why) => f.write_str(why),
        }
    }
}

/// Sends `req` once, bounded by `timeout` from start to end.
pub fn send(agent: &ureq::Agent, req: &Request, timeout: Duration) -> Result<(), Failure> {
    let mut builder = ureq::http::Request::builder().method(req.method).uri(req.url.as_str());
    for (k, v) in &req.headers {
        builder = builder.header(k.as_str(), v.as_str());
    }
    let request = builder
        .body(req.body.as_str())
        .map_err(|_| Failure::Transport("invalid request URL or header".into()))?;
    let request = agent.configure_request(request).timeout_global(Some(timeout)).build();
    match agent.run(request) {
        Ok(resp) if resp.status().is_success() => Ok(()),
        Ok(mut resp) => {
            // Services explain a refusal in a small JSON body; read no more than that.
            let body = resp
                .body_mut()
                .with_config()
                .limit(ERROR_BODY_MAX)
                .read_to_string()
                .ok();
            Err(Failure::Status(resp.status().as_u16(), body))
        }
        Err(e) => Err(Failure::Transport(probe::describe(&e, timeout))),
    }
}

/// How a channel sends: its agent, the per-request timeout and the backoff between retries.
pub struct Delivery {
    pub agent: ureq::Agent,
    pub timeout: Duration,
    pub backoff: Duration,
}

impl Delivery {
    /// Sends `req` with up to 3 retries after the first try; gives up with a log line. `why`
    /// words a failure for the log. True when it was delivered.
    pub fn deliver(&self, req: &Request, waker: &Waker, what: &str, why: impl Fn(&Failure) -> String) -> bool {
        let tries = DELIVERY_RETRIES + 1;
        for attempt in 1..=tries {
            let error = match send(&self.agent, req, self.timeout) {
                Ok(()) => {
                    log::info!("{what} delivered");
                    return true;
                }
                Err(e) => why(&e),
            };
            if attempt == tries {
                log::error!("{what}: failed after {tries} attempts ({error}); dropped");
                return false;
            }
            log::warn!("{what}: attempt {attempt} of {tries} failed ({error}); retrying");
            if !waker.sleep(probe::backoff_delay(self.backoff, attempt)) {
                return false;
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpListener;

    #[test]
    fn full_queue_drops_the_oldest() {
        let w = Arc::new(Waker::default());
        let q = Queue::new("test", Arc::clone(&w));
        for i in 0..QUEUE_CAP + 5 {
            q.push(i);
        }
        assert_eq!(q.pop(), Some(5));
        w.stop();
        assert_eq!(q.pop(), None);
    }

    #[test]
    fn the_sender_thread_handles_items_in_order_until_stopped() {
        let waker = Arc::new(Waker::default());
        let (tx, rx) = std::sync::mpsc::channel();
        let q = start("test-sender", "test", Arc::clone(&waker), move |n: u32, _: &Waker| {
            let _ = tx.send(n);
        })
        .unwrap();
        q.push(1);
        q.push(2);
        let got: Vec<u32> = (0..2)
            .filter_map(|_| rx.recv_timeout(Duration::from_secs(5)).ok())
            .collect();
        assert_eq!(got, [1, 2]);
        waker.stop();
        // The thread ends, dropping its end of the channel.
        assert!(matches!(
            rx.recv_timeout(Duration::from_secs(5)),
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected)
        ));
    }

    /// Answers one request with `status` and returns what it received.
    fn one_shot(status: u16) -> (String, std::thread::JoinHandle<String>) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/hook", l.local_addr().unwrap());
        let h = std::thread::spawn(move || {
            let (s, _) = l.accept().unwrap();
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut head = String::new();
            while !head.ends_with("\r\n\r\n") {
                if r.read_line(&mut head).unwrap_or(0) == 0 {
                    break;
                }
            }
            let len: usize = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse().unwrap())
                })
                .unwrap_or(0);
            let mut body = vec![0; len];
            r.read_exact(&mut body).unwrap();
            let mut s = s;
            let _ = write!(
                s,
                "HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
            head + &String::from_utf8_lossy(&body)
        });
        (url, h)
    }

    /// Answers `n` requests with 500, each on its own connection; returns the URL and the times
    /// the requests arrived.
    fn failing(n: usize) -> (String, std::thread::JoinHandle<Vec<Instant>>) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/hook", l.local_addr().unwrap());
        let h = std::thread::spawn(move || {
            let mut at = Vec::new();
            for _ in 0..n {
                let (s, _) = l.accept().unwrap();
                let mut r = BufReader::new(s.try_clone().unwrap());
                let mut line = String::new();
                while r.read_line(&mut line).unwrap_or(0) > 2 {
                    line.clear();
                }
                at.push(Instant::now());
                let mut s = s;
                let _ = write!(s, "HTTP/1.1 500 X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            }
            at
        });
        (url, h)
    }

    #[test]
    fn retries_wait_the_backoff_then_double_it() {
        let backoff = Duration::from_millis(300);
        let tries = DELIVERY_RETRIES as usize + 1;
        let (url, seen) = failing(tries);
        let d = Delivery {
            agent: probe::agent(),
            timeout: Duration::from_secs(5),
            backoff,
        };
        let req = Request {
            method: "GET",
            url,
            headers: Vec::new(),
            body: String::new(),
        };
        assert!(!d.deliver(&req, &Waker::default(), "test", |f| f.to_string()));
        let at = seen.join().unwrap();
        let gaps: Vec<Duration> = at.windows(2).map(|w| w[1] - w[0]).collect();
        // The waits are backoff, 2 x backoff, 4 x backoff: a sleep never ends early, and the
        // sends between them are local, so the whole is under 10 x backoff unless the machine
        // stalled for most of a second (a wait doubled once more would make it 14 x).
        for (i, gap) in gaps.iter().enumerate() {
            assert!(*gap >= backoff * (1 << i), "wait {} was {gap:?}", i + 1);
        }
        let total: Duration = gaps.iter().sum();
        assert!(total < backoff * 10, "waits {gaps:?} for a backoff of {backoff:?}");
    }

    #[test]
    fn send_puts_the_request_on_the_wire() {
        let (url, seen) = one_shot(204);
        let req = Request {
            method: "POST",
            url,
            headers: vec![("X-Test".into(), "yes".into())],
            body: "{\"a\":1}".into(),
        };
        assert_eq!(send(&probe::agent(), &req, Duration::from_secs(5)), Ok(()));
        let seen = seen.join().unwrap();
        assert!(seen.starts_with("POST /hook HTTP/1.1\r\n"), "{seen}");
        assert!(seen.to_ascii_lowercase().contains("x-test: yes"), "{seen}");
        assert!(seen.ends_with("\r\n\r\n{\"a\":1}"), "{seen}");
    }

    #[test]
    fn send_reports_a_status_or_a_transport_failure_without_the_url() {
        let (url, seen) = one_shot(401);
        let req = |url: String| Request {
            method: "POST",
            url,
            headers: vec![],
            body: String::new(),
        };
        assert_eq!(
            send(&probe::agent(), &req(url), Duration::from_secs(5)),
            Err(Failure::Status(401, Some(String::new())))
        );
        seen.join().unwrap();
        let closed = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/secret-path", closed.local_addr().unwrap());
        drop(closed);
        match send(&probe::agent(), &req(url), Duration::from_secs(5)) {
            Err(Failure::Transport(why)) => assert!(!why.contains("secret-path"), "{why}"),
            other => panic!("expected a transport failure, got {other:?}"),
        }
    }
}
