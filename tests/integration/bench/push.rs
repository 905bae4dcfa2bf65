//! The hidden cost of heartbeat workers: 1,000 of them beside 1,000 pulled ones, each heartbeat
//! reporting once a second for a minute. Ignored by default; run it with
//!
//!     cargo test --release --test integration -- --ignored --exact integration::bench::push::bench_push --nocapture
//!
//! It measures the static musl binary (built like the Docker image's), on 127.0.0.1 only, with a
//! bounded load (60,000 reports over 8 kept-alive connections), and prints: the answers' latency,
//! memory (resident now and at its peak), the server's CPU, the pulled checks' lateness meanwhile,
//! and how late the 1,000 heartbeat workers are found down when the reports stop (all at once).

use super::{cpu_seconds, lateness, memory, percentile, start};
use crate::common::{FakeServer, Pinger, build_static, ok};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

const N: usize = 1000;
const SECONDS: u64 = 60;
const CONNECTIONS: usize = 8;
const TOKEN: &str = "bench-push-token";

fn config(target: &FakeServer) -> String {
    let pulled = (0..N).map(|i| {
        format!(
            r#"{{"name": "w{i}", "url": "{}", "interval": "10s", "retries": 0, "timeout": "2s"}}"#,
            target.url(&format!("/w{i}"))
        )
    });
    let push =
        (0..N).map(|i| format!(r#"{{"name": "p{i}", "push": {{"period": "1s", "grace": "2s"}}, "token": "{TOKEN}"}}"#));
    let all: Vec<String> = pulled.chain(push).collect();
    format!(r#"{{"self_ping": false, "workers": [{}]}}"#, all.join(","))
}

/// One report on a kept-alive connection: its status and how long the answer took.
fn report(conn: &mut BufReader<TcpStream>, name: &str) -> (u16, Duration) {
    let t = Instant::now();
    let req = format!("GET /push/{name} HTTP/1.1\r\nHost: b\r\nAuthorization: Bearer {TOKEN}\r\n\r\n");
    conn.get_mut().write_all(req.as_bytes()).unwrap();
    let (mut line, mut length) = (String::new(), 0);
    conn.read_line(&mut line).unwrap();
    let status = line.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    loop {
        line.clear();
        if conn.read_line(&mut line).unwrap() == 0 || line == "\r\n" {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = v.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0; length];
    conn.read_exact(&mut body).unwrap();
    (status, t.elapsed())
}

/// Every heartbeat worker reports once a second for `SECONDS`: each connection takes its share
/// of the names and paces itself to the second.
fn report_for_a_minute(p: &Pinger) -> (Vec<f64>, usize) {
    let threads: Vec<_> = (0..CONNECTIONS)
        .map(|c| {
            let port = p.port;
            std::thread::spawn(move || {
                let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
                stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                let mut conn = BufReader::new(stream);
                let (mut times, mut refused) = (Vec::new(), 0);
                let start = Instant::now();
                for second in 0..SECONDS {
                    for i in (c..N).step_by(CONNECTIONS) {
                        let (status, took) = report(&mut conn, &format!("p{i}"));
                        refused += usize::from(status != 200);
                        times.push(took.as_secs_f64() * 1000.0);
                    }
                    let next = start + Duration::from_secs(second + 1);
                    std::thread::sleep(next.saturating_duration_since(Instant::now()));
                }
                (times, refused)
            })
        })
        .collect();
    let mut all = Vec::new();
    let mut refused = 0;
    for t in threads {
        let (times, r) = t.join().unwrap();
        all.extend(times);
        refused += r;
    }
    all.sort_by(f64::total_cmp);
    (all, refused)
}

fn push_states(p: &Pinger) -> (usize, usize, u64) {
    let v: serde_json::Value = serde_json::from_str(&p.get("/status?history=0").body).unwrap_or_default();
    let push: Vec<&serde_json::Value> = v["workers"]
        .as_array()
        .map(|ws| ws.iter().filter(|w| w["kind"] == "push").collect())
        .unwrap_or_default();
    let up = push.iter().filter(|w| w["state"] == "up").count();
    let down = push.iter().filter(|w| w["state"] == "down").count();
    let reports = push
        .iter()
        .map(|w| w["push"]["reports"]["success"].as_u64().unwrap_or(0))
        .sum();
    (up, down, reports)
}

/// How late each missed deadline was recorded ("deadline passed (X ms late)").
fn miss_lateness(log: &str) -> Vec<f64> {
    let mut v: Vec<f64> = log
        .lines()
        .filter_map(|l| {
            l.split("deadline passed (")
                .nth(1)?
                .split(" ms late")
                .next()?
                .parse()
                .ok()
        })
        .collect();
    v.sort_by(f64::total_cmp);
    v
}

#[test]
#[ignore = "benchmark: run explicitly (see the module doc)"]
fn bench_push() {
    let Some(bin) = build_static() else { return };
    let target = FakeServer::always(ok());
    let p = start(&bin, &config(&target), "debug");
    let pid = p.child.id();
    eprintln!(
        "heartbeat benchmark: {N} push workers + {N} pulled (every 10s), {SECONDS} s of one report a second each"
    );
    std::thread::sleep(Duration::from_secs(2));
    let log_before = p.log().len();
    let cpu0 = cpu_seconds(pid);
    let t0 = Instant::now();
    let (times, refused) = report_for_a_minute(&p);
    let elapsed = t0.elapsed().as_secs_f64();
    let cpu = cpu_seconds(pid) - cpu0;
    let log = p.log();
    let (up, down, reports) = push_states(&p);
    eprintln!(
        "  reports: {} sent in {elapsed:.1} s, {refused} not answered 200; answer p50 {:.2} ms, p99 {:.2} ms, max {:.1} ms",
        times.len(),
        percentile(&times, 0.5),
        percentile(&times, 0.99),
        times.last().copied().unwrap_or(f64::NAN)
    );
    eprintln!("  push workers after the minute: {up} up, {down} down; {reports} successes recorded");
    eprintln!(
        "  server CPU during the minute: {cpu:.1} s ({:.0}% of one core)",
        cpu / elapsed * 100.0
    );
    eprintln!("  memory after the minute: {}", memory(pid));
    eprintln!(
        "  pulled checks during the minute: {}",
        lateness(log.get(log_before..).unwrap_or(""))
    );
    // The reports stop: every heartbeat worker misses its deadline within the same second.
    let log_before = p.log().len();
    std::thread::sleep(Duration::from_secs(6));
    let misses = miss_lateness(p.log().get(log_before..).unwrap_or(""));
    eprintln!(
        "  the reports stopped: {} deadlines missed, recorded p50 {:.2} ms, p99 {:.2} ms, max {:.1} ms after the deadline",
        misses.len(),
        percentile(&misses, 0.5),
        percentile(&misses, 0.99),
        misses.last().copied().unwrap_or(f64::NAN)
    );
    eprintln!("  memory at the end: {}", memory(pid));
    assert_eq!(refused, 0, "every report within the rate limit is answered 200");
    assert!(misses.len() >= N, "every heartbeat worker went down");
}
