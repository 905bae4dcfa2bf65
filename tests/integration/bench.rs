//! The benchmark: prints the README's performance tables. Ignored by default; run it with
//!
//!     cargo test --release --test integration -- --ignored --exact integration::bench::bench --nocapture
//!
//! (one benchmark at a time: the "30 days old" rows are `integration::bench::aged::bench_30_days_old`).
//! It builds the static musl binary (the one the Docker image ships) and measures that; only
//! 127.0.0.1 is used, every load is bounded, and the whole run takes about five minutes.
//! `wrk` (apt) is needed for the requests-per-second rows; without it they are left out.

use crate::common::{BIN, FakeServer, Pinger, SEC, build_static, lateness_ms, ok, proc_status, temp_dir};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod aged;
mod once;
mod push;

struct Table(Vec<(String, String)>);

impl Table {
    fn row(&mut self, what: impl Into<String>, figure: impl Into<String>) {
        let (what, figure) = (what.into(), figure.into());
        eprintln!("  {what}: {figure}");
        self.0.push((what, figure));
    }
}

/// utime + stime of a process, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let (user, system) = cpu_split(pid);
    user + system
}

/// User and system CPU seconds of `pid` so far.
fn cpu_split(pid: u32) -> (f64, f64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(") ").map(|(_, r)| r).unwrap_or("");
    let f: Vec<u64> = after.split_whitespace().map(|x| x.parse().unwrap_or(0)).collect();
    // Fields 14 and 15 of stat (utime, stime) are 11 and 12 after the command name; 100 Hz ticks.
    let tick = |i: usize| f.get(i).copied().unwrap_or(0) as f64 / 100.0;
    (tick(11), tick(12))
}

fn memory(pid: u32) -> String {
    format!(
        "VmRSS {:.1} MiB, VmHWM {:.1} MiB",
        proc_status(pid, "VmRSS:") as f64 / 1024.0,
        proc_status(pid, "VmHWM:") as f64 / 1024.0
    )
}

fn config(n: usize, target: &FakeServer, interval: &str) -> String {
    let workers: Vec<String> = (0..n)
        .map(|i| {
            format!(
                r#"{{"name": "w{i}", "url": "{}", "interval": "{interval}", "retries": 0, "timeout": "2s"}}"#,
                target.url(&format!("/w{i}"))
            )
        })
        .collect();
    format!(r#"{{"self_ping": false, "workers": [{}]}}"#, workers.join(","))
}

fn start(bin: &PathBuf, config: &str, log: &str) -> Pinger {
    let dir = temp_dir("bench");
    std::fs::write(dir.join("pinger.json"), config).unwrap();
    let mut c = Command::new(bin);
    c.env_clear()
        .current_dir(&dir)
        .env("RUST_LOG", log)
        .args(["--listen", "127.0.0.1:0"]);
    Pinger::spawn(c, dir)
}

fn min_checks(p: &Pinger) -> u64 {
    let v: serde_json::Value = serde_json::from_str(&p.get("/status?history=0").body).unwrap_or_default();
    v["workers"]
        .as_array()
        .map(|ws| ws.iter().map(|w| w["checks"].as_u64().unwrap_or(0)).min().unwrap_or(0))
        .unwrap_or(0)
}

fn wait_checks(p: &Pinger, n: u64, within: Duration) {
    let end = Instant::now() + within;
    while min_checks(p) < n && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Lateness figures from the workers' debug lines ("started X ms after its deadline").
fn lateness(log: &str) -> String {
    let mut v = lateness_ms(log);
    v.sort_by(f64::total_cmp);
    let met = v.iter().filter(|x| **x <= 100.0).count() as f64 / v.len().max(1) as f64 * 100.0;
    format!(
        "p50 {:.2} ms, p99 {:.2} ms, max {:.1} ms; {met:.2}% within 100 ms ({} checks)",
        percentile(&v, 0.5),
        percentile(&v, 0.99),
        v.last().copied().unwrap_or(f64::NAN),
        v.len()
    )
}

/// One wrk run: its summary and its requests per second.
fn wrk_run(url: &str, headers: &[&str]) -> Option<(String, f64)> {
    let mut c = Command::new("wrk");
    c.args(["-t2", "-c50", "-d10s", "--latency"]);
    for h in headers {
        c.args(["-H", h]);
    }
    let out = c.arg(url).stderr(Stdio::null()).output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let rps = text
        .lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))?
        .trim()
        .to_string();
    let p99 = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("99%"))?
        .trim()
        .to_string();
    let errors = text
        .lines()
        .find(|l| l.contains("Non-2xx") || l.contains("Socket errors"))
        .map(|l| format!("; {}", l.trim()))
        .unwrap_or_default();
    let per_sec = rps.parse().unwrap_or(0.0);
    Some((format!("{rps} req/s, p99 {p99}{errors}"), per_sec))
}

/// wrk on `path` of a running pinger, with the server's CPU per request and the lateness of the
/// checks that started while it ran.
fn wrk_with_lateness(p: &Pinger, path: &str, headers: &[&str]) -> Option<String> {
    let log_before = p.log().len();
    let (cpu0, t0) = (cpu_seconds(p.child.id()), Instant::now());
    let (summary, rps) = wrk_run(&p.url(path), headers)?;
    let cpu = cpu_seconds(p.child.id()) - cpu0;
    let requests = rps * t0.elapsed().as_secs_f64().min(10.0);
    let log = p.log();
    Some(format!(
        "{summary}; server CPU {:.1} us/request; checks meanwhile: {}",
        cpu / requests.max(1.0) * 1e6,
        lateness(log.get(log_before..).unwrap_or(""))
    ))
}

/// Median time to fetch `path` and its size.
fn fetch_stats(p: &Pinger, path: &str) -> String {
    let mut times = Vec::new();
    let mut bytes = 0;
    for _ in 0..21 {
        let t = Instant::now();
        let r = p.get(path);
        times.push(t.elapsed().as_secs_f64() * 1000.0);
        bytes = r.body.len();
    }
    times.sort_by(f64::total_cmp);
    format!(
        "{:.1} KiB, {:.1} ms (median of 21 fetches)",
        bytes as f64 / 1024.0,
        percentile(&times, 0.5)
    )
}

fn startup(bin: &PathBuf) -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = temp_dir("bench-start");
    let mut times = Vec::new();
    for _ in 0..10 {
        let t = Instant::now();
        let mut child = Command::new(bin)
            .env_clear()
            .current_dir(&dir)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let answered = loop {
            if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) {
                let _ = s.write_all(b"GET /health HTTP/1.0\r\n\r\n");
                let mut buf = Vec::new();
                let _ = s.read_to_end(&mut buf);
                if buf.ends_with(b"alive\"}") {
                    break t.elapsed();
                }
            }
            std::thread::sleep(Duration::from_micros(200));
        };
        times.push(answered.as_secs_f64() * 1000.0);
        let _ = child.kill();
        let _ = child.wait();
    }
    times.sort_by(f64::total_cmp);
    format!("{:.1} ms (median of 10)", percentile(&times, 0.5))
}

#[test]
#[ignore = "benchmark: cargo test --release --test integration -- --ignored --exact integration::bench::bench --nocapture"]
fn bench() {
    let bin = build_static().unwrap_or_else(|| PathBuf::from(BIN));
    let mut t = Table(Vec::new());
    let size = std::fs::metadata(&bin).map(|m| m.len()).unwrap_or(0);
    t.row(
        "static binary (musl, stripped)",
        format!("{:.2} MiB ({size} bytes)", size as f64 / 1048576.0),
    );
    t.row("start-up to first /health answer", startup(&bin));
    let target = FakeServer::always(ok());
    let has_wrk = Command::new("sh")
        .args(["-c", "command -v wrk"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);

    for (n, interval) in [(10, "5s"), (1000, "5s"), (5000, "10s")] {
        let p = start(&bin, &config(n, &target, interval), "info");
        wait_checks(&p, 2, 60 * SEC);
        let pid = p.child.id();
        t.row(
            format!("memory with {n} workers (every worker checked twice)"),
            format!(
                "{}, {} threads (min checks {})",
                memory(pid),
                proc_status(pid, "Threads:"),
                min_checks(&p)
            ),
        );
    }

    {
        // At the default log level (one line per check), as a user runs it.
        let p = start(&bin, &config(1000, &target, "10s"), "info");
        std::thread::sleep(12 * SEC);
        // Three 20 s windows (two rounds of every worker each), the median reported: on a
        // virtual machine one window's figure varies by a third from run to run, nearly all of
        // it system time (loopback TCP, where the target's side of each connection is counted
        // to whichever process sends).
        let mut windows: Vec<(f64, f64, f64)> = (0..3)
            .map(|_| {
                let ((u0, s0), t0) = (cpu_split(p.child.id()), Instant::now());
                std::thread::sleep(20 * SEC);
                let (u1, s1) = cpu_split(p.child.id());
                let per_minute = 60.0 / t0.elapsed().as_secs_f64();
                (
                    (u1 + s1 - u0 - s0) * per_minute,
                    (u1 - u0) * per_minute,
                    (s1 - s0) * per_minute,
                )
            })
            .collect();
        windows.sort_by(|a, b| a.0.total_cmp(&b.0));
        let (total, user, system) = windows[1];
        t.row(
            "CPU with 1,000 workers at 10 s",
            format!(
                "{total:.2} CPU-seconds per minute ({user:.2} user, {system:.2} system; median of three 20 s windows, {:.2}-{:.2})",
                windows[0].0, windows[2].0
            ),
        );
    }
    {
        let p = start(&bin, &config(1000, &target, "10s"), "debug");
        std::thread::sleep(32 * SEC);
        t.row("schedule lateness, 1,000 workers x 10 s", lateness(&p.log()));
        t.row("/ at 1,000 workers", fetch_stats(&p, "/"));
        t.row(
            "/status at 1,000 workers (20 history entries each)",
            fetch_stats(&p, "/status"),
        );
        t.row(
            "/status?history=0 at 1,000 workers",
            fetch_stats(&p, "/status?history=0"),
        );
        if has_wrk {
            let gzip = ["Accept-Encoding: gzip"];
            for (path, headers, note) in [
                ("/status?history=0", &[][..], ""),
                ("/", &[][..], ""),
                ("/", &gzip[..], " (gzip)"),
                ("/health", &[][..], ""),
            ] {
                if let Some(r) = wrk_with_lateness(&p, path, headers) {
                    t.row(format!("wrk -t2 -c50 -d10s {path}{note}, 1,000 workers at 10 s"), r);
                }
            }
        }
    }
    {
        let p = start(&bin, &config(200, &target, "1s"), "debug");
        std::thread::sleep(25 * SEC);
        t.row("schedule lateness, 200 workers x 1 s", lateness(&p.log()));
    }
    if has_wrk {
        // The same endpoints beside 10 workers, for the server's CPU per request against the
        // 1,000-worker rows above (issue 21: no more at 1,000 than at 10).
        let p = start(&bin, &config(10, &target, "10s"), "debug");
        std::thread::sleep(2 * SEC);
        for path in ["/health", "/status?history=0"] {
            if let Some(r) = wrk_with_lateness(&p, path, &[]) {
                t.row(format!("wrk -t2 -c50 -d10s {path}, 10 workers at 10 s"), r);
            }
        }
    }

    print(&t);
}

/// The table in the README's form, with the date and the machine's cores.
fn print(t: &Table) {
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let date = Command::new("date")
        .arg("-u")
        .arg("+%Y-%m-%d")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    println!("\n| measured {date}, {cores} cores, static musl build | figure |\n|---|---|");
    for (what, figure) in &t.0 {
        println!("| {what} | {figure} |");
    }
}

/// 1,000 workers at 60 s over HTTPS against a local TLS target, beside the same over plain HTTP.
/// Run it alone with `cargo test --release --test integration -- --ignored bench_tls --nocapture`.
#[test]
#[ignore = "benchmark: cargo test --release --test integration -- --ignored bench_tls --nocapture"]
fn bench_tls() {
    use crate::common::tls::{DAY, TestCa, TlsServer};
    let bin = build_static().unwrap_or_else(|| PathBuf::from(BIN));
    let mut t = Table(Vec::new());
    let plain = FakeServer::always(ok());
    let ca = TestCa::new("bench CA");
    let tls = TlsServer::start(&ca.leaf(&["127.0.0.1"], 90 * DAY));
    let dir = temp_dir("bench-tls");
    let ca_path = ca.write(&dir, "ca.pem");
    let https_config = config(1000, &plain, "60s")
        .replace(&format!("http://127.0.0.1:{}", plain.port), &tls.url("127.0.0.1", ""))
        .replace(
            r#"{"self_ping": false,"#,
            &format!(
                r#"{{"self_ping": false, "defaults": {{"tls": {{"ca_file": "{}"}}}},"#,
                ca_path.display()
            ),
        );
    for (what, cfg) in [("http", config(1000, &plain, "60s")), ("https", https_config)] {
        let p = start(&bin, &cfg, "info");
        let pid = p.child.id();
        // First minute: every check is a full handshake (and reads the certificate's expiry).
        let (c0, t0) = (cpu_seconds(pid), Instant::now());
        std::thread::sleep(70 * SEC);
        let first = (cpu_seconds(pid) - c0) / t0.elapsed().as_secs_f64() * 60.0;
        // Second minute: the same checks again, resuming their TLS sessions where the server allows.
        let (c1, t1) = (cpu_seconds(pid), Instant::now());
        std::thread::sleep(60 * SEC);
        let second = (cpu_seconds(pid) - c1) / t1.elapsed().as_secs_f64() * 60.0;
        t.row(
            format!("1,000 {what} workers at 60 s"),
            format!(
                "{first:.2} CPU-s/min in the first minute, {second:.2} in the second; {} (min checks {})",
                memory(pid),
                min_checks(&p)
            ),
        );
    }
    eprintln!(
        "TLS target: {} handshakes, {} requests",
        tls.handshakes.load(std::sync::atomic::Ordering::SeqCst),
        tls.requests()
    );
    for (what, figure) in &t.0 {
        println!("| {what} | {figure} |");
    }
}
