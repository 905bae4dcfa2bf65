//! `once`: every configured worker checked one time, in parallel, for places where no service can
//! run (a cron job, a GitHub Actions schedule, a Kubernetes CronJob). The checks are the service's
//! own (retries, backoff, timeouts); the result is printed as one line per worker or as the
//! `/status` document, and becomes the exit status.

use super::{EXIT_FAILURE, EXIT_OK};
use crate::config::{Config, Target};
use crate::net::Net;
use crate::probe::{self, Outcome};
use crate::shutdown::Waker;
use crate::state::State;
use crate::{web, worker};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::SystemTime;

/// At most this many checks run at the same time; a fleet of thousands then costs this many
/// threads, not thousands, and takes a few timeouts longer.
pub const MAX_PARALLEL: usize = 32;

/// Runs `once` for a loaded configuration: prints the result, returns the exit status.
pub fn run(cfg: &Config, json: bool) -> u8 {
    let started = SystemTime::now();
    let outcomes = check_all(&cfg.workers, &Net::from_settings(&cfg.settings));
    let now = SystemTime::now();
    if json {
        println!("{}", status_document(cfg, &outcomes, started, now));
    } else {
        print!("{}", lines(&cfg.workers, &outcomes));
    }
    let up = outcomes.iter().filter(|o| o.ok).count();
    if cfg.workers.is_empty() {
        eprintln!("no workers configured: nothing to check");
    } else {
        eprintln!("{up} of {} worker(s) up", cfg.workers.len());
    }
    if up == outcomes.len() { EXIT_OK } else { EXIT_FAILURE }
}

/// Checks every target once, at most `MAX_PARALLEL` at a time; outcomes in the targets' order.
/// Each with its own TLS settings and proxy, as the service checks it.
pub fn check_all(targets: &[Target], net: &Net) -> Vec<Outcome> {
    // Never stopped: `once` has no shutdown to wait for; Ctrl-C ends the process as usual.
    let waker = Waker::default();
    bounded_map(targets, MAX_PARALLEL, |t| {
        let agent = net.check_agent(&t.url, &t.tls).agent;
        worker::guarded(|| probe::check(&agent, t, &waker))
    })
}

/// `f` over `items` on at most `threads` threads, each taking the next item when it is free.
pub fn bounded_map<T: Sync, R: Send>(items: &[T], threads: usize, f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let next = AtomicUsize::new(0);
    let threads = threads.clamp(1, items.len().max(1));
    let mut done: Vec<(usize, R)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|i| {
                std::thread::Builder::new()
                    .name(format!("once-{i}"))
                    .stack_size(worker::STACK_SIZE)
                    .spawn_scoped(s, || {
                        let mut mine = Vec::new();
                        loop {
                            let i = next.fetch_add(1, Ordering::Relaxed);
                            let Some(item) = items.get(i) else { break };
                            mine.push((i, f(item)));
                        }
                        mine
                    })
            })
            .collect();
        // A thread that cannot be started leaves its share to the others; only if none starts
        // does this thread do the work itself.
        let started: Vec<_> = handles.into_iter().filter_map(Result::ok).collect();
        let mut all: Vec<(usize, R)> = Vec::with_capacity(items.len());
        if started.is_empty() {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(item) = items.get(i) else { break };
                all.push((i, f(item)));
            }
        }
        for h in started {
            // `f` is `worker::guarded`, which catches a check's panic; a join error cannot
            // carry a result, so its items are simply missing and reported below.
            if let Ok(mine) = h.join() {
                all.extend(mine);
            }
        }
        all
    });
    done.sort_by_key(|(i, _)| *i);
    assert_eq!(done.len(), items.len(), "every item was mapped");
    done.into_iter().map(|(_, r)| r).collect()
}

/// One line per worker: name, up/down, status, latency, attempts and the error, in columns.
pub fn lines(targets: &[Target], outcomes: &[Outcome]) -> String {
    use std::fmt::Write;
    let width = targets.iter().map(|t| t.name.chars().count()).max().unwrap_or(0);
    let mut out = String::new();
    for (t, o) in targets.iter().zip(outcomes) {
        let status = o.status.map_or("-".to_string(), |s| s.to_string());
        let attempts = if o.attempts == 1 {
            "1 attempt".to_string()
        } else {
            format!("{} attempts", o.attempts)
        };
        let _ = write!(
            out,
            "{:<width$}  {:<4}  {status:<3}  {:>5} ms  {attempts}",
            t.name,
            if o.ok { "up" } else { "down" },
            o.latency.as_millis(),
        );
        if let Some(e) = &o.error {
            let _ = write!(out, "  {e}");
        }
        out.push('\n');
    }
    out
}

/// The `/status` document the service would serve after these checks (same renderer).
pub fn status_document(cfg: &Config, outcomes: &[Outcome], started: SystemTime, now: SystemTime) -> String {
    let infos = cfg.workers.iter().map(crate::state::target_info).collect();
    let state = State::new(infos, cfg.settings.history, started);
    for (slot, o) in outcomes.iter().enumerate() {
        state.record_check(slot, worker::record_of(o, now));
    }
    web::json::render(&state.snapshot(web::DEFAULT_STATUS_HISTORY, now))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn bounded_map_keeps_order_and_never_exceeds_the_bound() {
        let running = AtomicUsize::new(0);
        let most = AtomicUsize::new(0);
        let items: Vec<u64> = (0..12).collect();
        let out = bounded_map(&items, 3, |&n| {
            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
            most.fetch_max(now, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(50));
            running.fetch_sub(1, Ordering::SeqCst);
            n * 2
        });
        assert_eq!(out, (0..12).map(|n| n * 2).collect::<Vec<_>>());
        let most = most.load(Ordering::SeqCst);
        assert!(most <= 3, "at most 3 at a time, saw {most}");
        assert!(most >= 2, "the items ran in parallel, saw {most}");
        assert!(bounded_map(&[] as &[u8], 4, |_| 1).is_empty());
    }
}
