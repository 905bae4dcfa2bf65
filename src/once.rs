//! `once`: every configured worker checked one time, in parallel, for places where no service can
//! run (a cron job, a GitHub Actions schedule, a Kubernetes CronJob). The checks are the service's
//! own (retries, backoff, timeouts); the result is printed as one line per worker or as the
//! `/status` document, and becomes the exit status.

use crate::config::{Config, Target};
use crate::net::Net;
use crate::probe::{self, Outcome};
use crate::shutdown::Waker;
use crate::state::State;
use crate::{EXIT_FAILURE, EXIT_OK, web, worker};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

/// At most this many checks run at the same time; a fleet of thousands then costs this many
/// threads, not thousands, and takes a few timeouts longer.
pub const MAX_PARALLEL: usize = 32;

/// Runs `once` for a loaded configuration: prints the result, returns the exit status.
pub fn run(cfg: &Config, json: bool) -> u8 {
    let started = SystemTime::now();
    let net = Net::from_settings(&cfg.settings);
    let outcomes = check_all(&cfg.workers, |t| {
        // Never stopped: `once` has no shutdown to wait for; Ctrl-C ends the process as usual.
        let waker = Waker::default();
        let agent = net.check_agent(&t.url, &t.tls).agent;
        probe::check(&agent, t, &waker)
    });
    let now = SystemTime::now();
    if json {
        println!("{}", status_document(cfg, &outcomes, started, now));
    } else {
        print!("{}", lines(&cfg.workers, &outcomes));
    }
    let checked: Vec<&Outcome> = outcomes.iter().flatten().collect();
    let up = checked.iter().filter(|o| o.ok).count();
    let paused = outcomes.len() - checked.len();
    if cfg.workers.is_empty() {
        eprintln!("no workers configured: nothing to check");
    } else if paused > 0 {
        eprintln!("{up} of {} worker(s) up, {paused} paused", checked.len());
    } else {
        eprintln!("{up} of {} worker(s) up", checked.len());
    }
    if up == checked.len() { EXIT_OK } else { EXIT_FAILURE }
}

/// Checks every target not configured `paused` once with `check`, at most `MAX_PARALLEL` at a
/// time; outcomes in the targets' order, `None` for a paused one. The whole of a check, its
/// agent's setup included, runs guarded: a panic is a failed outcome, never the end of `once`.
pub fn check_all(targets: &[Target], check: impl Fn(&Target) -> Outcome + Sync) -> Vec<Option<Outcome>> {
    let unpaused: Vec<&Target> = targets.iter().filter(|t| !t.paused).collect();
    let mut done = bounded_map(&unpaused, MAX_PARALLEL, |t| worker::guarded(|| check(t))).into_iter();
    targets
        .iter()
        .map(|t| {
            if t.paused {
                return None;
            }
            let outcome = done.next().flatten().unwrap_or_else(|| Outcome {
                ok: false,
                status: None,
                latency: Duration::ZERO,
                duration: Duration::ZERO,
                attempts: 0,
                error: Some("internal error: the check did not run".to_string()),
            });
            Some(outcome)
        })
        .collect()
}

/// `f` over `items` on at most `threads` threads, each taking the next item when it is free.
/// An item whose `f` panicked, or that no thread could run, maps to `None`.
pub fn bounded_map<T: Sync, R: Send>(items: &[T], threads: usize, f: impl Fn(&T) -> R + Sync) -> Vec<Option<R>> {
    let f = |item: &T| catch_unwind(AssertUnwindSafe(|| f(item))).ok();
    let next = AtomicUsize::new(0);
    let threads = threads.clamp(1, items.len().max(1));
    let mut done: Vec<(usize, Option<R>)> = std::thread::scope(|s| {
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
        let mut all: Vec<(usize, Option<R>)> = Vec::with_capacity(items.len());
        if started.is_empty() {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(item) = items.get(i) else { break };
                all.push((i, f(item)));
            }
        }
        for h in started {
            // Each item's panic is caught above; a join error cannot carry a result, so its
            // items are missing and come out as `None` below.
            if let Ok(mine) = h.join() {
                all.extend(mine);
            }
        }
        all
    });
    let mut out: Vec<Option<R>> = std::iter::repeat_with(|| None).take(items.len()).collect();
    for (i, r) in done.drain(..) {
        if let Some(slot) = out.get_mut(i) {
            *slot = r;
        }
    }
    out
}

/// One line per worker: name, up/down, status, latency, attempts and the error, in columns; a
/// paused worker's line says `paused`.
pub fn lines(targets: &[Target], outcomes: &[Option<Outcome>]) -> String {
    use std::fmt::Write;
    let width = targets.iter().map(|t| t.name.chars().count()).max().unwrap_or(0);
    let mut out = String::new();
    for (t, o) in targets.iter().zip(outcomes) {
        let Some(o) = o else {
            let _ = writeln!(out, "{:<width$}  paused", t.name);
            continue;
        };
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
pub fn status_document(cfg: &Config, outcomes: &[Option<Outcome>], started: SystemTime, now: SystemTime) -> String {
    let infos = cfg.workers.iter().map(crate::target_info).collect();
    let state = State::new(infos, cfg.settings.history, started);
    for (slot, o) in outcomes.iter().enumerate() {
        match o {
            Some(o) => state.record_check(slot, worker::record_of(o, now)),
            None => state.set_paused(slot, true),
        }
    }
    web::json::render(&state.snapshot(web::DEFAULT_STATUS_HISTORY, now))
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(out, (0..12).map(|n| Some(n * 2)).collect::<Vec<_>>());
        let most = most.load(Ordering::SeqCst);
        assert!(most <= 3, "at most 3 at a time, saw {most}");
        assert!(most >= 2, "the items ran in parallel, saw {most}");
        assert!(bounded_map(&[] as &[u8], 4, |_| 1).is_empty());
    }

    #[test]
    fn a_panic_is_a_failed_check_and_never_ends_once() {
        let cfg = crate::config::build(
            Some((
                "t.json",
                r#"{"self_ping": false, "defaults": {"retries": 0, "timeout": "1s"},
                    "workers": [{"name": "a", "url": "http://127.0.0.1:9/a"},
                    {"name": "b", "url": "http://127.0.0.1:9/b", "paused": true},
                    {"name": "c", "url": "http://127.0.0.1:9/c"}]}"#,
            )),
            &crate::config::Flags::default(),
            &crate::config::Env::new(),
        )
        .unwrap();
        // Stands for a check path (or an agent's setup) that panics on some input.
        let outcomes = check_all(&cfg.workers, |t| {
            assert!(t.name != "a", "agent cannot be built");
            probe::check(
                &crate::net::Net::new(None, Default::default()).agent_for(&t.url),
                t,
                &Waker::default(),
            )
        });
        let a = outcomes[0].as_ref().unwrap();
        assert_eq!(
            (a.ok, a.error.as_deref()),
            (false, Some("internal error: the check panicked"))
        );
        assert!(outcomes[1].is_none(), "paused: not checked");
        assert!(
            outcomes[2].as_ref().is_some_and(|c| !c.ok && c.attempts >= 1),
            "checked"
        );
        let text = lines(&cfg.workers, &outcomes);
        assert!(
            text.lines()
                .nth(1)
                .is_some_and(|l| l.split_whitespace().eq(["b", "paused"])),
            "{text}"
        );
        let doc: serde_json::Value =
            serde_json::from_str(&status_document(&cfg, &outcomes, SystemTime::now(), SystemTime::now())).unwrap();
        assert_eq!(doc["workers"][1]["state"], "paused", "{doc:#}");
        assert_eq!(
            doc["workers"][0]["last_check"]["error"],
            "internal error: the check panicked"
        );
    }

    #[test]
    fn bounded_map_reports_an_item_whose_function_panicked() {
        let items: Vec<u32> = (0..8).collect();
        let out = bounded_map(&items, 3, |&n| {
            assert!(n % 3 != 1, "boom");
            n
        });
        let want: Vec<Option<u32>> = items.iter().map(|&n| (n % 3 != 1).then_some(n)).collect();
        assert_eq!(out, want);
    }
}
