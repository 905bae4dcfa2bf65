//! The benchmark's "30 days old" rows: 1,000 workers loaded from the state file 0.1 would have
//! written after 30 days (100 checks of history and 720 hourly buckets each), measured steady
//! and across a save every second, then restarted on the file this build wrote. Run alone with
//!
//!     cargo test --release --test integration -- --ignored --exact integration::bench::aged::bench_30_days_old --nocapture

use super::{Table, min_checks, percentile, wait_checks};
use crate::common::aged;
use crate::common::{BIN, FakeServer, Pinger, SEC, build_static, lateness_ms, ok, proc_status, temp_dir};
use crate::integration::flood;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const N: usize = 1000;

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn config(target: &FakeServer, state: Option<&Path>) -> String {
    let workers: Vec<String> = (0..N)
        .map(|i| {
            format!(
                r#"{{"name": "w{i}", "url": "{}", "interval": "10s", "retries": 0, "timeout": "2s"}}"#,
                target.url(&format!("/w{i}"))
            )
        })
        .collect();
    let state = state.map_or(String::new(), |s| {
        format!(r#""state_file": "{}", "save_interval": "1s","#, s.display())
    });
    format!(
        r#"{{"self_ping": false, "history": 100, {state} "workers": [{}]}}"#,
        workers.join(",")
    )
}

fn start(bin: &Path, dir: &Path, config: &str) -> Pinger {
    start_logging(bin, dir, config, "info")
}

fn start_logging(bin: &Path, dir: &Path, config: &str, log: &str) -> Pinger {
    std::fs::write(dir.join("pinger.json"), config).unwrap();
    let mut c = Command::new(bin);
    c.env_clear()
        .current_dir(dir)
        .env("RUST_LOG", log)
        .args(["--listen", "127.0.0.1:0"]);
    Pinger::spawn(c, dir.to_path_buf())
}

/// Resident KiB of the worker threads' stacks (read-write mappings of their 256 KiB size), how
/// many there are, and the resident KiB of everything else.
fn stacks_and_rest(pid: u32) -> (u64, usize, u64) {
    let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps")).unwrap_or_default();
    let (mut stacks, mut count, mut rest) = (0, 0, 0);
    let (mut writable, mut size) = (false, 0);
    for line in smaps.lines() {
        let mut words = line.split_whitespace();
        let first = words.next().unwrap_or("");
        let value: u64 = words.next().and_then(|v| v.parse().ok()).unwrap_or(0);
        if first.contains('-') && !first.ends_with(':') {
            writable = line.split_whitespace().nth(1).is_some_and(|p| p.starts_with("rw"));
        } else if first == "Size:" {
            size = value;
        } else if first == "Rss:" {
            if writable && (256..=288).contains(&size) {
                stacks += value;
                count += 1;
            } else {
                rest += value;
            }
        }
    }
    (stacks, count, rest)
}

/// VmRSS every 250 ms for `d`: (median, max) in KiB.
fn sample_rss(pid: u32, d: Duration) -> (u64, u64) {
    let mut v = Vec::new();
    let end = std::time::Instant::now() + d;
    while std::time::Instant::now() < end {
        std::thread::sleep(Duration::from_millis(250));
        v.push(proc_status(pid, "VmRSS:") as f64);
    }
    v.sort_by(f64::total_cmp);
    (percentile(&v, 0.5) as u64, v.last().copied().unwrap_or(0.0) as u64)
}

/// Resets the peak (VmHWM) to the current RSS, so that the next reading is the peak since.
fn reset_peak(pid: u32) {
    let _ = std::fs::write(format!("/proc/{pid}/clear_refs"), "5");
}

pub fn rows(bin: &Path, target: &FakeServer, t: &mut Table) {
    let fresh = {
        let dir = temp_dir("bench-fresh");
        let p = start(bin, &dir, &config(target, None));
        wait_checks(&p, 2, 60 * SEC);
        let pid = p.child.id();
        let (median, _) = sample_rss(pid, 5 * SEC);
        let (stacks, count, rest) = stacks_and_rest(pid);
        t.row(
            "fresh, 1,000 workers x 10 s, history 100, no state file",
            format!(
                "VmRSS {:.1} MiB: thread stacks {:.1} MiB ({count} stacks, {:.1} KiB each), the rest {:.1} MiB",
                mib(median),
                mib(stacks),
                stacks as f64 / count.max(1) as f64,
                mib(rest)
            ),
        );
        median
    };

    let dir = temp_dir("bench-aged");
    let state = dir.join("state.json");
    let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
    let targets: Vec<(String, String)> = (0..N)
        .map(|i| (format!("w{i}"), target.url(&format!("/w{i}"))))
        .collect();
    let old = aged::state_file_0_1(&targets, now_ms);
    std::fs::write(&state, &old).unwrap();
    t.row(
        "state file 0.1 wrote, 1,000 workers 30 days old",
        format!("{:.1} MB ({} bytes per worker)", old.len() as f64 / 1e6, old.len() / N),
    );
    let cfg = config(target, Some(&state));
    for run in ["loaded from 0.1's file (migrated)", "restarted on its own file"] {
        let p = start(bin, &dir, &cfg);
        // Every worker checked at least once more, and several saves done.
        wait_checks(&p, min_checks(&p) + 1, 60 * SEC);
        std::thread::sleep(5 * SEC);
        let pid = p.child.id();
        let start_peak = proc_status(pid, "VmHWM:");
        reset_peak(pid);
        let (median, max) = sample_rss(pid, 10 * SEC);
        let save_peak = proc_status(pid, "VmHWM:");
        let (stacks, count, rest) = stacks_and_rest(pid);
        t.row(
            format!("30 days old, {run}: memory with a save every second"),
            format!(
                "VmRSS median {:.1} MiB, max {:.1} MiB over 10 s; peak across the saves {:.1} MiB \
                 (VmHWM after a reset); peak at start-up, loading included, {:.1} MiB",
                mib(median),
                mib(max),
                mib(save_peak),
                mib(start_peak)
            ),
        );
        t.row(
            format!("30 days old, {run}: where the memory goes"),
            format!(
                "thread stacks {:.1} MiB ({count}), the rest {:.1} MiB; {:.2} KiB per worker more \
                 than the fresh process",
                mib(stacks),
                mib(rest),
                (median as f64 - fresh as f64) / N as f64
            ),
        );
        let size = std::fs::metadata(&state).map(|m| m.len()).unwrap_or(0);
        t.row(
            format!("30 days old, {run}: state file"),
            format!("{:.2} MB ({} bytes per worker)", size as f64 / 1e6, size / N as u64),
        );
    }
}

/// Every endpoint and query form a reader may use.
const VARIANTS: [&str; 9] = [
    "/",
    "/metrics",
    "/status",
    "/status?history=0",
    "/status?history=100",
    "/status?state=up&history=50",
    "/status?worker=w7",
    "/status?worker=w7&history=100",
    "/badge/w7.svg",
];

/// Lateness of the checks logged in `log`: max and p99.
fn lateness(log: &str) -> String {
    let mut v = lateness_ms(log);
    v.sort_by(f64::total_cmp);
    format!(
        "max {:.1} ms, p99 {:.1} ms ({} checks)",
        v.last().copied().unwrap_or(f64::NAN),
        percentile(&v, 0.99),
        v.len()
    )
}

/// The flood rows: 1,000 workers 30 days old (migrated from 0.1's file), every variant read
/// plain and gzipped, then 10 s of 8 connections asking cache-busting `/status` queries.
pub fn flood_rows(bin: &Path, target: &FakeServer, t: &mut Table) {
    let dir = temp_dir("bench-flood");
    let state = dir.join("state.json");
    let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
    let targets: Vec<(String, String)> = (0..N)
        .map(|i| (format!("w{i}"), target.url(&format!("/w{i}"))))
        .collect();
    std::fs::write(&state, aged::state_file_0_1(&targets, now_ms)).unwrap();
    // Debug level: each check logs how late it started.
    let p = start_logging(bin, &dir, &config(target, Some(&state)), "debug");
    wait_checks(&p, min_checks(&p) + 1, 60 * SEC);
    std::thread::sleep(5 * SEC);
    let pid = p.child.id();
    let (before, _) = sample_rss(pid, 5 * SEC);
    reset_peak(pid);
    for path in VARIANTS {
        for gzip in [false, true] {
            let headers: &[(&str, &str)] = if gzip { &[("Accept-Encoding", "gzip")] } else { &[] };
            let (code, _, _) = crate::common::request_with("GET", &p.url(path), headers);
            assert_eq!(code, 200, "{path}");
        }
    }
    let read_peak = proc_status(pid, "VmHWM:");
    let (after_reads, _) = sample_rss(pid, 5 * SEC);
    t.row(
        "30 days old, 1,000 workers: every variant read once, plain and gzipped",
        format!(
            "VmRSS median {:.1} MiB before, {:.1} MiB after; peak while read {:.1} MiB",
            mib(before),
            mib(after_reads),
            mib(read_peak)
        ),
    );
    reset_peak(pid);
    let log_before = p.log().len();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let counts = std::sync::Arc::new(flood::Counts::default());
    let clients = flood::flood(p.port, N, stop.clone(), counts.clone());
    let (during, during_max) = sample_rss(pid, 10 * SEC);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for c in clients {
        let _ = c.join();
    }
    let flood_peak = proc_status(pid, "VmHWM:");
    let log = p.log();
    let late = lateness(log.get(log_before..).unwrap_or(""));
    std::thread::sleep(2 * SEC);
    let (steady, _) = sample_rss(pid, 10 * SEC);
    let load = |c: &std::sync::atomic::AtomicUsize| c.load(std::sync::atomic::Ordering::Relaxed);
    t.row(
        "30 days old, 1,000 workers: 10 s flood of cache-busting /status?history=N[&worker=wK], 8 connections",
        format!(
            "{} answered, {} busy (503), {} other; VmRSS median {:.1} MiB, max sampled {:.1} MiB during; peak {:.1} MiB (VmHWM); steady {:.1} MiB from 2 s after; checks during the flood: {late}",
            load(&counts.ok),
            load(&counts.busy),
            load(&counts.other),
            mib(during),
            mib(during_max),
            mib(flood_peak),
            mib(steady)
        ),
    );
}

#[test]
#[ignore = "benchmark: cargo test --release --test integration -- --ignored --exact integration::bench::aged::bench_30_days_old --nocapture"]
fn bench_30_days_old() {
    let bin = build_static().unwrap_or_else(|| PathBuf::from(BIN));
    let target = FakeServer::always(ok());
    let mut t = Table(Vec::new());
    rows(&bin, &target, &mut t);
    flood_rows(&bin, &target, &mut t);
    super::print(&t);
}

/// The flood rows alone (about a minute):
///
///     cargo test --release --test integration -- --ignored --exact integration::bench::aged::bench_flood --nocapture
#[test]
#[ignore = "benchmark: cargo test --release --test integration -- --ignored --exact integration::bench::aged::bench_flood --nocapture"]
fn bench_flood() {
    let bin = build_static().unwrap_or_else(|| PathBuf::from(BIN));
    let target = FakeServer::always(ok());
    let mut t = Table(Vec::new());
    flood_rows(&bin, &target, &mut t);
    super::print(&t);
}
