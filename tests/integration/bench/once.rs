//! `once` for scheduled use, measured: a run over 100 workers with a state file and `--publish`
//! (wall time and peak memory, from `/usr/bin/time -v`), and the published folder's size at 100
//! and 1,000 workers. Ignored by default; run it with
//!
//!     cargo test --release --test integration -- --ignored --exact integration::bench::once::bench_once --nocapture

use crate::common::{BIN, FakeServer, build_static, ok, temp_dir};
use std::path::{Path, PathBuf};
use std::process::Command;

/// `n` workers on `target`, every one checked with no retries.
fn fleet(n: usize, target: &FakeServer) -> String {
    let workers: Vec<String> = (0..n)
        .map(|i| {
            format!(
                r#"{{"name": "worker-{i:04}", "url": "{}", "retries": 0, "timeout": "5s"}}"#,
                target.url(&format!("/w{i}"))
            )
        })
        .collect();
    format!(r#"{{"workers": [{}]}}"#, workers.join(","))
}

/// Bytes of every file under `dir`.
fn size_of(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => size_of(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}

/// One `once` run under `/usr/bin/time -v`: (wall seconds, peak RSS in KiB).
fn timed_run(bin: &Path, dir: &Path) -> (f64, u64) {
    let out = Command::new("/usr/bin/time")
        .arg("-v")
        .arg(bin)
        .args(["once", "--state-file", "state.json", "--publish", "public"])
        .current_dir(dir)
        .output()
        .expect("/usr/bin/time");
    let err = String::from_utf8_lossy(&out.stderr);
    let field = |name: &str| {
        err.lines()
            .find_map(|l| l.trim().strip_prefix(name))
            .map(|v| v.trim().to_string())
            .unwrap_or_else(|| panic!("no {name} in {err}"))
    };
    let wall = field("Elapsed (wall clock) time (h:mm:ss or m:ss):");
    let secs = wall
        .rsplit(':')
        .enumerate()
        .map(|(i, part)| part.parse::<f64>().unwrap_or(0.0) * 60f64.powi(i as i32))
        .sum();
    (secs, field("Maximum resident set size (kbytes):").parse().unwrap_or(0))
}

#[test]
#[ignore = "benchmark: cargo test --release --test integration -- --ignored --exact integration::bench::once::bench_once --nocapture"]
fn bench_once() {
    let bin = build_static().unwrap_or_else(|| PathBuf::from(BIN));
    let target = FakeServer::always(ok());
    for n in [100, 1000] {
        let dir = temp_dir("bench-once");
        std::fs::write(dir.join("pinger.json"), fleet(n, &target)).unwrap();
        // The first run starts the state; later ones load, check, save and publish.
        let runs: Vec<(f64, u64)> = (0..5).map(|_| timed_run(&bin, &dir)).collect();
        let (first, rest) = (runs[0], &runs[1..]);
        let mut walls: Vec<f64> = rest.iter().map(|r| r.0).collect();
        walls.sort_by(f64::total_cmp);
        let peak = rest.iter().map(|r| r.1).max().unwrap_or(0);
        let state = std::fs::metadata(dir.join("state.json")).map(|m| m.len()).unwrap_or(0);
        eprintln!(
            "once over {n} workers with a state file and --publish: first run {:.2} s; \
             runs 2-5 median {:.2} s, peak RSS {:.1} MiB (first run {:.1} MiB); \
             published folder {:.0} KiB ({} files); state file {:.0} KiB after 5 runs",
            first.0,
            walls[walls.len() / 2],
            peak as f64 / 1024.0,
            first.1 as f64 / 1024.0,
            size_of(&dir.join("public")) as f64 / 1024.0,
            std::fs::read_dir(dir.join("public/badge"))
                .map(|d| d.count() + 2)
                .unwrap_or(0),
            state as f64 / 1024.0,
        );
    }
}
