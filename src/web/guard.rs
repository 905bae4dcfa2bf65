//! The two limits tiny_http has no hook for, enforced from beside it: a request head must be
//! complete within `header_timeout`, and at most `max_connections` connections stay open.
//!
//! tiny_http owns its sockets, but they are this process's descriptors. A few times a second the
//! guard lists `/proc/self/fd`, duplicates each socket accepted on our port (the duplicate pins
//! that socket, so a descriptor closed and reused meanwhile is never mistaken for it) and reads
//! the kernel's `TCP_INFO` for it:
//! - a connection that received data after our last response and has had no response for longer
//!   than `header_timeout` is sending a head too slowly (the socket's receive timeout, set in
//!   `server::bind`, only catches silence between two reads, not a byte every few seconds);
//! - past the cap, the newest connections are closed.
//!
//! "Closed" is `shutdown(SHUT_RDWR)` on the duplicate: tiny_http's blocked read returns, and it
//! closes its descriptor and ends the connection's thread as for any client that went away.

use crate::shutdown::Waker;
use std::collections::HashMap;
use std::net::{Shutdown, TcpStream};
use std::os::fd::{AsFd, AsRawFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

const TCP_ESTABLISHED: u8 = 1;
/// How often counts of closed connections are logged at most, so an attack is one line per
/// period rather than one per connection.
const LOG_EVERY: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub header_timeout: Duration,
    pub max_connections: usize,
}

/// One connection accepted on our port, as the kernel sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Seen {
    pub inode: u64,
    /// Milliseconds since data was last sent / received on it (from its start when none was).
    pub since_sent_ms: u32,
    pub since_recv_ms: u32,
}

/// What to close: indexes into `conns`. `first_seen` maps an inode to the scan that first saw
/// it (larger is newer).
pub fn decide(conns: &[Seen], first_seen: &HashMap<u64, u64>, limits: Limits) -> (Vec<usize>, Vec<usize>) {
    let limit_ms = limits.header_timeout.as_millis().min(u128::from(u32::MAX)) as u32;
    let is_slow: Vec<bool> = conns
        .iter()
        .map(|c| c.since_recv_ms < c.since_sent_ms && c.since_sent_ms > limit_ms)
        .collect();
    let slow: Vec<usize> = (0..conns.len()).filter(|&i| is_slow[i]).collect();
    let mut rest: Vec<usize> = (0..conns.len()).filter(|&i| !is_slow[i]).collect();
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
/// that referred to it while it was read.
fn scan(port: u16) -> Vec<(Seen, i32)> {
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return Vec::new();
    };
    let mut found = Vec::new();
    // tiny_http holds two descriptors per connection (a read and a write half): count sockets.
    let mut inodes = std::collections::HashSet::new();
    for entry in dir.flatten() {
        let Some(fd) = entry.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else {
            continue;
        };
        let Some(inode) = std::fs::read_link(entry.path())
            .ok()
            .and_then(|link| socket_inode(&link))
            .filter(|i| !inodes.contains(i))
        else {
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
        if let Some((TCP_ESTABLISHED, since_sent_ms, since_recv_ms)) = crate::os::tcp_info(stream.as_fd()) {
            inodes.insert(inode);
            let seen = Seen {
                inode,
                since_sent_ms,
                since_recv_ms,
            };
            found.push((seen, fd));
        }
    }
    found
}

/// A duplicate of descriptor `fd` if it still refers to socket `inode`. The descriptor may have
/// been closed and reused since it was listed; the duplicate is checked after it is made, so it
/// is the listed socket, held open for as long as the caller keeps it.
fn pin(fd: i32, inode: u64) -> Option<TcpStream> {
    let dup = crate::os::dup(fd)?;
    let link = std::fs::read_link(format!("/proc/self/fd/{}", dup.as_raw_fd())).ok()?;
    (socket_inode(&link) == Some(inode)).then(|| TcpStream::from(dup))
}

/// Ends the connection on socket `inode` (listed as `fd`), unless that socket is gone.
fn close(fd: i32, inode: u64) {
    if let Some(stream) = pin(fd, inode) {
        let _ = stream.shutdown(Shutdown::Both);
    }
}

fn socket_inode(link: &std::path::Path) -> Option<u64> {
    link.to_str()?.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok()
}

fn describe(slow: usize, over: usize, limits: Limits) -> String {
    let mut parts = Vec::new();
    if slow > 0 {
        parts.push(format!(
            "{slow} that sent no complete request head within {}",
            crate::duration::format(limits.header_timeout)
        ));
    }
    if over > 0 {
        parts.push(format!("{over} over the cap of {} connections", limits.max_connections));
    }
    format!("closed HTTP connections: {}", parts.join("; "))
}

/// Starts the guard thread for connections accepted on `port`; it stops with `waker`.
pub fn start(port: u16, limits: Limits, waker: Arc<Waker>) {
    if let Err(e) = std::fs::read_dir("/proc/self/fd") {
        log::warn!(
            "cannot list /proc/self/fd ({e}): HTTP request heads have no overall deadline and \
             connections no cap; only the {} silence limit applies",
            crate::duration::format(limits.header_timeout)
        );
        return;
    }
    let every = (limits.header_timeout / 8).clamp(Duration::from_millis(50), Duration::from_millis(250));
    let started = std::thread::Builder::new()
        .name("http-guard".into())
        .stack_size(128 * 1024)
        .spawn(move || {
            let mut first_seen: HashMap<u64, u64> = HashMap::new();
            let (mut slow_total, mut over_total) = (0usize, 0usize);
            let mut logged = Instant::now();
            let mut round: u64 = 0;
            while waker.sleep(every) {
                round += 1;
                let found = scan(port);
                let seen: Vec<Seen> = found.iter().map(|(s, _)| *s).collect();
                let present: std::collections::HashSet<u64> = seen.iter().map(|s| s.inode).collect();
                first_seen.retain(|inode, _| present.contains(inode));
                for s in &seen {
                    first_seen.entry(s.inode).or_insert(round);
                }
                let (slow, over) = decide(&seen, &first_seen, limits);
                for &i in slow.iter().chain(&over) {
                    close(found[i].1, found[i].0.inode);
                }
                slow_total += slow.len();
                over_total += over.len();
                if (slow_total > 0 || over_total > 0) && logged.elapsed() >= LOG_EVERY {
                    log::warn!("{}", describe(slow_total, over_total, limits));
                    (slow_total, over_total, logged) = (0, 0, Instant::now());
                }
            }
        });
    if let Err(e) = started {
        log::warn!("cannot start the HTTP connection guard: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(inode: u64, since_sent_ms: u32, since_recv_ms: u32) -> Seen {
        Seen {
            inode,
            since_sent_ms,
            since_recv_ms,
        }
    }

    const LIMITS: Limits = Limits {
        header_timeout: Duration::from_secs(10),
        max_connections: 2,
    };

    #[test]
    fn a_head_trickling_for_longer_than_the_timeout_is_closed() {
        let conns = [
            // Trickling: a byte 1 s ago, no response for 11 s.
            seen(1, 11_000, 1_000),
            // Same, but still within the 10 s.
            seen(2, 9_000, 1_000),
            // Silent since our last response: the receive timeout's business, not ours.
            seen(3, 11_000, 11_000),
            // Answered recently.
            seen(4, 500, 600),
        ];
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
    fn past_the_cap_the_newest_connections_are_closed() {
        let conns = [seen(10, 0, 0), seen(11, 0, 0), seen(12, 0, 0), seen(13, 0, 0)];
        let first_seen = HashMap::from([(10, 1), (11, 5), (12, 1), (13, 3)]);
        let (slow, mut over) = decide(&conns, &first_seen, LIMITS);
        over.sort();
        assert_eq!((slow, over), (vec![], vec![1, 3]), "seen in rounds 5 and 3 go");
        let (_, over) = decide(&conns[..2], &first_seen, LIMITS);
        assert!(over.is_empty(), "at the cap nothing is closed");
    }

    #[test]
    fn slow_connections_count_before_the_cap() {
        let conns = [seen(1, 20_000, 1), seen(2, 0, 0), seen(3, 0, 0)];
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
            "closed HTTP connections: 2 that sent no complete request head within 10s; 1 over the cap of 2 connections"
        );
    }

    #[test]
    fn a_descriptor_reused_by_another_socket_is_not_touched() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let first = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let fd = first.as_raw_fd();
        let link = std::fs::read_link(format!("/proc/self/fd/{fd}")).unwrap();
        let inode = socket_inode(&link).unwrap();
        assert!(pin(fd, inode).is_some());
        drop(first);
        // Most likely reuses the number; either way the old socket is gone.
        let second = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
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
    fn socket_links_are_parsed() {
        assert_eq!(socket_inode(std::path::Path::new("socket:[123456]")), Some(123456));
        assert_eq!(socket_inode(std::path::Path::new("/dev/null")), None);
        assert_eq!(socket_inode(std::path::Path::new("pipe:[5]")), None);
    }

    #[test]
    fn the_scan_finds_connections_on_the_port_and_reads_their_timings() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut client = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let (served, _) = listener.accept().unwrap();
        // Later than the connection's start by more than a clock tick.
        std::thread::sleep(Duration::from_millis(50));
        std::io::Write::write_all(&mut client, b"GET / HT").unwrap();
        std::thread::sleep(Duration::from_millis(300));
        let _second_descriptor = served.try_clone().unwrap();
        let found = scan(port);
        // The accepted side only (the client's local port is an ephemeral one), and once
        // however many descriptors it has.
        assert_eq!(found.len(), 1, "{:?}", found.iter().map(|f| f.0).collect::<Vec<_>>());
        let s = found[0].0;
        assert!(s.since_sent_ms >= 250, "nothing sent yet: {s:?}");
        assert!(
            s.since_recv_ms < s.since_sent_ms,
            "bytes arrived after the start: {s:?}"
        );
        // Shutting a duplicate down ends the connection for its real owner too.
        close(found[0].1, s.inode);
        let mut rest = Vec::new();
        served.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        std::io::Read::read_to_end(&mut &served, &mut rest).unwrap();
        assert_eq!(rest, b"GET / HT", "the owner reads what was there, then the end");
        client.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        assert_eq!(
            std::io::Read::read(&mut client, &mut [0u8; 8]).unwrap(),
            0,
            "the client sees the close"
        );
    }
}
