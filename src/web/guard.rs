//! The two limits tiny_http has no hook for, enforced from beside it: a connection must get a
//! complete request to us within `header_timeout` of its start or of our last response to it, and
//! at most `max_connections` connections stay open.
//!
//! tiny_http owns its sockets, but they are this process's descriptors. A few times a second the
//! guard lists `/proc/self/fd`, duplicates each socket accepted on our port (the duplicate pins
//! that socket, so a descriptor closed and reused meanwhile is never mistaken for it) and reads
//! the kernel's `TCP_INFO` for it. One rule covers every way a client can hold a connection
//! without completing requests: nothing has been sent on it for longer than `header_timeout`
//! (a silent or idle connection, a head trickled a byte at a time, a client that stopped reading
//! our response). Past the cap, the newest connections are closed as well.
//!
//! "Closed" is `shutdown(SHUT_RDWR)` on the duplicate: tiny_http's blocked read or write returns,
//! and it closes its descriptor and ends the connection's thread as for any client that went away.
//!
//! A connection can also be silent through no fault of its client: tiny_http hands each accepted
//! connection to a pool thread that serves it until it closes, and starts a new thread only when
//! it counts no idle one. In a burst of new connections (wrk opening 50 right after start-up) it
//! counts threads that earlier connections of the burst have already claimed, so later ones wait
//! in its queue, their first request unread, for as long as the pool's connections stay open. Such
//! a connection has a complete request head waiting in its socket and nothing of ours unsent: the
//! guard never closes it, and un-sticks it by connecting to the port and closing at once. That
//! new connection finds no idle thread, so tiny_http starts one, which ends with it and then takes
//! the waiting connection from the queue.

use crate::os::Inode;
use crate::shutdown::{Thread, Waker};
use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpStream};
use std::os::fd::{AsFd, RawFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// `TCP_ESTABLISHED` in the kernel's `tcp_states.h`.
const TCP_ESTABLISHED: u8 = 1;
/// How often counts of closed connections are logged at most, so an attack is one line per
/// period rather than one per connection.
const LOG_EVERY: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub header_timeout: Duration,
    pub max_connections: usize,
}

/// A connection silent this long is looked at for a request waiting unread.
const WAITING_AFTER_MS: u32 = 100;
/// At most this many connections opened per scan to un-stick waiting ones.
const NUDGES_PER_SCAN: usize = 16;
/// Request heads over this are refused anyway (see `server.rs`); a peek reads no more.
const HEAD_MAX: usize = 16 * 1024;

/// One connection accepted on our port, as the kernel sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Seen {
    pub inode: Inode,
    /// Milliseconds since data was last sent on it (from its start when none was).
    pub since_sent_ms: u32,
    /// A complete request head waits unread on it and nothing of ours is unsent: the client has
    /// done its part and the connection waits for a tiny_http thread.
    pub waiting: bool,
}

/// What to close: indexes into `conns`. `first_seen` maps an inode to the scan that first saw
/// it (larger is newer).
pub fn decide(conns: &[Seen], first_seen: &HashMap<Inode, u64>, limits: Limits) -> (Vec<usize>, Vec<usize>) {
    let limit_ms = limits.header_timeout.as_millis().min(u128::from(u32::MAX)) as u32;
    let (slow, mut rest): (Vec<usize>, Vec<usize>) =
        (0..conns.len()).partition(|&i| conns[i].since_sent_ms > limit_ms && !conns[i].waiting);
    let mut over = Vec::new();
    if rest.len() > limits.max_connections {
        // Newest first: by the scan that first saw it, then by inode (allocated increasingly).
        rest.sort_by_key(|&i| {
            let c = &conns[i];
            std::cmp::Reverse((first_seen.get(&c.inode).copied().unwrap_or(u64::MAX), c.inode))
        });
        over = rest[..rest.len() - limits.max_connections].to_vec();
    }
    (slow, over)
}

/// The connection sockets accepted on `port` that are open now, each with a descriptor number
/// that referred to it while it was read. `buf` is room to peek at a waiting request.
fn scan(port: u16, buf: &mut [u8]) -> Vec<(Seen, RawFd)> {
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return Vec::new();
    };
    let mut found = Vec::new();
    // tiny_http holds two descriptors per connection (a read and a write half): count sockets.
    let mut inodes = HashSet::new();
    for entry in dir.flatten() {
        let Some(fd) = entry.file_name().to_str().and_then(|n| n.parse::<RawFd>().ok()) else {
            continue;
        };
        let Some(inode) = crate::os::socket_inode(fd).filter(|i| !inodes.contains(i)) else {
            continue;
        };
        // The duplicate is dropped at once: holding one per connection would double the
        // descriptors in use, and tiny_http's accept thread dies when it runs out.
        let Some(stream) = pin(fd, inode) else {
            continue;
        };
        if stream.local_addr().map(|a| a.port()).ok() != Some(port) {
            continue;
        }
        // Only established connections: our listening sockets have the port too, and one the
        // client already closed is tiny_http's to close.
        if let Some((TCP_ESTABLISHED, since_sent_ms)) = crate::os::tcp_info(stream.as_fd()) {
            inodes.insert(inode);
            let waiting = since_sent_ms > WAITING_AFTER_MS && waiting_for_us(&stream, buf);
            found.push((
                Seen {
                    inode,
                    since_sent_ms,
                    waiting,
                },
                fd,
            ));
        }
    }
    found
}

/// True when a complete request head waits unread on `stream` and nothing we wrote to it is
/// still unsent: the connection waits for us, not we for it.
fn waiting_for_us(stream: &TcpStream, buf: &mut [u8]) -> bool {
    if crate::os::unsent_bytes(stream.as_fd()) != Some(0) {
        return false;
    }
    let n = crate::os::peek(stream.as_fd(), buf).unwrap_or(0);
    buf[..n].windows(4).any(|w| w == b"\r\n\r\n")
}

/// Makes tiny_http start a pool thread, which takes a waiting connection from its queue once
/// this connection (closed at once) has ended. See the module's comment.
fn nudge(addr: SocketAddr) {
    if let Ok(s) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
        let _ = s.shutdown(Shutdown::Both);
    }
}

/// Where the guard itself connects to the listening address (its loopback when it listens on
/// every address).
fn loopback(mut addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => addr.set_ip(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        IpAddr::V6(ip) if ip.is_unspecified() => addr.set_ip(IpAddr::V6(Ipv6Addr::LOCALHOST)),
        _ => {}
    }
    addr
}

/// A duplicate of descriptor `fd` if it still refers to socket `inode`. The descriptor may have
/// been closed and reused since it was listed; the duplicate is checked after it is made, so it
/// is the listed socket, held open for as long as the caller keeps it.
fn pin(fd: RawFd, inode: Inode) -> Option<TcpStream> {
    let dup = crate::os::dup(fd)?;
    (crate::os::socket_inode(std::os::fd::AsRawFd::as_raw_fd(&dup)) == Some(inode)).then(|| TcpStream::from(dup))
}

/// Ends the connection from `peer` to our `port`, if there is one. For a body whose end is the
/// close (HTTP/1.0): tiny_http keeps a connection open for another request when an HTTP/1.0
/// client asked for keep-alive, and that client would wait for the close until the timeout.
pub fn close_connection(port: u16, peer: std::net::SocketAddr) {
    close_matching(port, |p| p == peer, true);
}

/// Ends every connection to our `port` (at shutdown: tiny_http's thread for a kept-alive
/// connection waits on it for the client's next request, and ends when it closes).
pub fn close_all(port: u16) {
    close_matching(port, |_| true, false);
}

/// Ends the connections to our `port` from a peer that `which` picks; only the first when `one`.
fn close_matching(port: u16, which: impl Fn(SocketAddr) -> bool, one: bool) {
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return;
    };
    for entry in dir.flatten() {
        let Some(fd) = entry.file_name().to_str().and_then(|n| n.parse::<RawFd>().ok()) else {
            continue;
        };
        let Some(stream) = crate::os::socket_inode(fd).and_then(|inode| pin(fd, inode)) else {
            continue;
        };
        // The listening socket has no peer.
        let picked = stream.peer_addr().is_ok_and(&which);
        if picked && stream.local_addr().map(|a| a.port()).ok() == Some(port) {
            let _ = stream.shutdown(Shutdown::Both);
            if one {
                return;
            }
        }
    }
}

/// Ends the connection on socket `inode` (listed as `fd`), unless that socket is gone.
fn close(fd: RawFd, inode: Inode) {
    if let Some(stream) = pin(fd, inode) {
        let _ = stream.shutdown(Shutdown::Both);
    }
}

fn describe(slow: usize, over: usize, limits: Limits) -> String {
    let mut parts = Vec::new();
    if slow > 0 {
        parts.push(format!(
            "{slow} that sent no complete request within {}",
            crate::duration::format(limits.header_timeout)
        ));
    }
    if over > 0 {
        parts.push(format!("{over} over the cap of {} connections", limits.max_connections));
    }
    format!("closed HTTP connections: {}", parts.join("; "))
}

/// Starts the guard thread for connections accepted on `addr`; it stops with `waker`.
pub fn start(addr: SocketAddr, limits: Limits, waker: Arc<Waker>) -> Option<Thread> {
    let (port, own) = (addr.port(), loopback(addr));
    if let Err(e) = std::fs::read_dir("/proc/self/fd") {
        log::warn!(
            "cannot list /proc/self/fd ({e}): HTTP connections have no {} deadline and no cap",
            crate::duration::format(limits.header_timeout)
        );
        return None;
    }
    // A poll on purpose: the kernel announces no event for a connection that sends nothing, so
    // the scan looks at every socket this often (a stop still ends the sleep at once).
    let every = (limits.header_timeout / 8).clamp(Duration::from_millis(50), Duration::from_millis(250));
    let started = crate::shutdown::spawn("http-guard".into(), 128 * 1024, move || {
        let mut first_seen: HashMap<Inode, u64> = HashMap::new();
        let (mut slow_total, mut over_total) = (0usize, 0usize);
        let mut logged = Instant::now();
        let mut round: u64 = 0;
        let mut buf = vec![0u8; HEAD_MAX];
        while waker.sleep(every) {
            round += 1;
            let found = scan(port, &mut buf);
            let seen: Vec<Seen> = found.iter().map(|(s, _)| *s).collect();
            let present: HashSet<Inode> = seen.iter().map(|s| s.inode).collect();
            first_seen.retain(|inode, _| present.contains(inode));
            for s in &seen {
                first_seen.entry(s.inode).or_insert(round);
            }
            let (slow, over) = decide(&seen, &first_seen, limits);
            for &i in slow.iter().chain(&over) {
                close(found[i].1, found[i].0.inode);
            }
            let waiting = seen.iter().filter(|s| s.waiting).count();
            if waiting > 0 {
                log::debug!("{waiting} HTTP connection(s) wait for a server thread; starting more");
                (0..waiting.min(NUDGES_PER_SCAN)).for_each(|_| nudge(own));
            }
            slow_total += slow.len();
            over_total += over.len();
            if (slow_total > 0 || over_total > 0) && logged.elapsed() >= LOG_EVERY {
                log::warn!("{}", describe(slow_total, over_total, limits));
                (slow_total, over_total, logged) = (0, 0, Instant::now());
            }
        }
    });
    started
        .map_err(|e| log::warn!("cannot start the HTTP connection guard: {e}"))
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd};

    fn seen(inode: Inode, since_sent_ms: u32) -> Seen {
        Seen {
            inode,
            since_sent_ms,
            waiting: false,
        }
    }

    const LIMITS: Limits = Limits {
        header_timeout: Duration::from_secs(10),
        max_connections: 2,
    };

    #[test]
    fn a_connection_with_nothing_sent_for_longer_than_the_timeout_is_closed() {
        // Silent or trickling since its start or our last response: 11 s, 9 s, 10 s, 0.5 s.
        let conns = [seen(1, 11_000), seen(2, 9_000), seen(3, 10_000), seen(4, 500)];
        let (slow, over) = decide(
            &conns,
            &HashMap::new(),
            Limits {
                max_connections: 10,
                ..LIMITS
            },
        );
        assert_eq!((slow, over), (vec![0], vec![]));
    }

    #[test]
    fn a_connection_whose_request_waits_for_a_thread_is_never_closed() {
        let waiting = Seen {
            waiting: true,
            ..seen(1, 60_000)
        };
        let (slow, _) = decide(&[waiting, seen(2, 60_000)], &HashMap::new(), LIMITS);
        assert_eq!(slow, vec![1]);
    }

    #[test]
    fn past_the_cap_the_newest_connections_are_closed() {
        let conns = [seen(10, 0), seen(11, 0), seen(12, 0), seen(13, 0)];
        let first_seen = HashMap::from([(10, 1), (11, 5), (12, 1), (13, 3)]);
        let (slow, mut over) = decide(&conns, &first_seen, LIMITS);
        over.sort();
        assert_eq!((slow, over), (vec![], vec![1, 3]), "seen in rounds 5 and 3 go");
        let (_, over) = decide(&conns[..2], &first_seen, LIMITS);
        assert!(over.is_empty(), "at the cap nothing is closed");
    }

    #[test]
    fn slow_connections_count_before_the_cap() {
        let conns = [seen(1, 20_000), seen(2, 0), seen(3, 0)];
        let (slow, over) = decide(&conns, &HashMap::new(), LIMITS);
        assert_eq!((slow, over), (vec![0], vec![]));
    }

    #[test]
    fn the_log_line_names_only_what_happened() {
        assert_eq!(
            describe(0, 7, LIMITS),
            "closed HTTP connections: 7 over the cap of 2 connections"
        );
        assert_eq!(
            describe(2, 1, LIMITS),
            "closed HTTP connections: 2 that sent no complete request within 10s; 1 over the cap of 2 connections"
        );
    }

    #[test]
    fn a_descriptor_reused_by_another_socket_is_not_touched() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let first = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let inode = crate::os::socket_inode(first.as_raw_fd()).unwrap();
        let fd = first.into_raw_fd();
        assert!(pin(fd, inode).is_some());
        let second = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        // Force the reuse: dup2 closes the first socket's descriptor and gives its number to
        // the second socket.
        // SAFETY: `fd` is ours (taken from `first` above); `reused` owns it from here on.
        let reused = unsafe {
            assert_eq!(libc::dup2(second.as_raw_fd(), fd), fd);
            OwnedFd::from_raw_fd(fd)
        };
        assert_eq!(
            crate::os::socket_inode(reused.as_raw_fd()),
            crate::os::socket_inode(second.as_raw_fd()),
            "the number now names the second socket"
        );
        assert!(pin(fd, inode).is_none());
        close(fd, inode);
        second.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
        let still_open = matches!(
            std::io::Read::read(&mut &second, &mut [0u8; 1]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock
        );
        assert!(still_open, "the socket that took the number was left alone");
    }

    #[test]
    fn the_scan_finds_connections_on_the_port_and_reads_their_timings() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut client = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let (served, _) = listener.accept().unwrap();
        std::io::Write::write_all(&mut client, b"GET / HT").unwrap();
        std::thread::sleep(Duration::from_millis(300));
        let _second_descriptor = served.try_clone().unwrap();
        let mut buf = vec![0u8; HEAD_MAX];
        let found = scan(port, &mut buf);
        // The accepted side only (the client's local port is an ephemeral one), and once
        // however many descriptors it has.
        assert_eq!(found.len(), 1, "{:?}", found.iter().map(|f| f.0).collect::<Vec<_>>());
        let s = found[0].0;
        assert!(s.since_sent_ms >= 250, "nothing sent yet: {s:?}");
        assert!(!s.waiting, "half a head is not a request");
        std::io::Write::write_all(&mut client, b"TP/1.1\r\n\r\n").unwrap();
        std::thread::sleep(Duration::from_millis(150));
        assert!(scan(port, &mut buf)[0].0.waiting, "a whole head unread: waiting for us");
        // The scan must date the send, not the connection's start (450 ms or more ago) nor
        // the client's last bytes (150 ms or more): at most the time this took, plus the
        // kernel's tick.
        let sent = Instant::now();
        std::io::Write::write_all(&mut &served, b"HTTP/1.1 200 OK\r\n").unwrap();
        let s = scan(port, &mut buf)[0].0;
        let bound = sent.elapsed().as_millis() + 20;
        assert!(
            u128::from(s.since_sent_ms) <= bound,
            "just sent, {bound} ms at most: {s:?}"
        );
        // Shutting a duplicate down ends the connection for its real owner too.
        close(found[0].1, s.inode);
        let mut rest = Vec::new();
        served.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        std::io::Read::read_to_end(&mut &served, &mut rest).unwrap();
        assert_eq!(
            rest, b"GET / HTTP/1.1\r\n\r\n",
            "the owner reads what was there, then the end"
        );
        client.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut got = Vec::new();
        std::io::Read::read_to_end(&mut client, &mut got).unwrap();
        assert_eq!(got, b"HTTP/1.1 200 OK\r\n", "the client sees the close");
    }
}
