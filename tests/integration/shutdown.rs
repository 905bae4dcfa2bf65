//! Shutdown: every thread the service started ends and is joined, in an order that loses
//! nothing (the workers, then the alerts they queued, then the last save, then the server).

use crate::common::{Action, FakeServer, Pinger, SEC, ok, request, status, temp_dir};
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The names of the threads of process `pid` now; `None` once it has exited.
fn threads_of(pid: u32) -> Option<Vec<String>> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    let names: Vec<String> = tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("comm")).ok())
        .map(|c| c.trim_end().to_string())
        .collect();
    // A process that has exited and not yet been reaped has its leader alone, nameless.
    (!names.is_empty()).then_some(names)
}

fn is_worker(name: &str) -> bool {
    name.starts_with("w-") || name.starts_with("p-")
}

fn config(target: &FakeServer, receiver: &FakeServer, hub: &FakeServer, state: &str, reloaded: bool) -> String {
    let worker = |name: &str, path: &str| json!({"name": name, "url": target.url(path), "interval": "1s"});
    let mut workers = vec![
        worker("up", "/up"),
        worker("slow", "/slow"),
        json!({"name": "space", "url": target.url("/flip"), "interval": "1s", "space_id": "you/space"}),
        worker("flip", "/flip"),
        json!({"name": "beat", "push": {"period": "1h", "grace": "1h"}, "token": "${PT}"}),
    ];
    let channel = |name: &str| {
        json!({"name": name, "type": "webhook", "url": receiver.url(&format!("/{name}")), "failure_threshold": 1,
               "timeout": "5s"})
    };
    let channels = if reloaded {
        workers.push(worker("added", "/added"));
        vec![channel("one"), channel("two")]
    } else {
        workers.push(worker("gone", "/gone"));
        vec![channel("one"), channel("old")]
    };
    json!({
        "self_ping": {"url": target.url("/self"), "interval": "1s"},
        "state_file": state, "save_interval": "1h",
        "hf_api_url": hub.url(""), "restart_cooldown": "1h",
        "defaults": {"retries": 0},
        "workers": workers,
        "alerts": channels,
    })
    .to_string()
}

#[test]
fn sigterm_ends_and_joins_every_thread_after_the_queued_alerts_and_the_last_save() {
    let failing = Arc::new(AtomicBool::new(false));
    let f = Arc::clone(&failing);
    let target = FakeServer::start(move |_, seen| match seen.path.as_str() {
        // A check still in flight when SIGTERM arrives.
        "/slow" => Action::Delay(Duration::from_millis(300)),
        "/flip" if f.load(Ordering::SeqCst) => status(503),
        _ => ok(),
    });
    // The alert receiver holds every request until the test lets it answer.
    let answer = Arc::new(AtomicBool::new(false));
    let a = Arc::clone(&answer);
    let receiver = FakeServer::start(move |_, _| {
        while !a.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(5));
        }
        ok()
    });
    let hub = FakeServer::always(ok());
    let dir = temp_dir("threads");
    let state = dir.join("state.json");
    let state_path = state.to_str().unwrap();
    let env = [("PT", "push-token"), ("HF_TOKEN", "hf_token"), ("RUST_LOG", "debug")];
    let mut p = Pinger::start_in(dir.clone(), &config(&target, &receiver, &hub, state_path, false), &env);
    p.wait_worker("gone", 10 * SEC, |w| w["checks"].as_u64() >= Some(1));

    // A reload that removes a worker and a channel and adds one of each: their threads are
    // retired, and must be joined too.
    p.rewrite_config(&config(&target, &receiver, &hub, state_path, true));
    p.signal("HUP");
    let end = Instant::now() + 10 * SEC;
    while !p.log().contains("configuration reloaded: 1 added, 1 removed") {
        assert!(Instant::now() < end, "no reload; log:\n{}", p.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    p.wait_worker("added", 10 * SEC, |w| w["checks"].as_u64() >= Some(1));
    p.wait_worker("self", 10 * SEC, |w| w["checks"].as_u64() >= Some(1));
    let push = request("POST", &p.url("/push/beat"), Some("Bearer push-token"));
    assert_eq!(push.status, 200, "{}", push.body);

    // Two workers go down: each channel queues two alerts; the first is held by the receiver.
    failing.store(true, Ordering::SeqCst);
    for name in ["space", "flip"] {
        // A second failure: the first one's alerts were queued before it (one thread per worker).
        p.wait_worker(name, 10 * SEC, |w| w["consecutive_failures"].as_u64() >= Some(2));
    }
    receiver.wait_for(2, 10 * SEC);
    let pid = p.child.id();
    let before = threads_of(pid).expect("running");
    for kind in [
        "w-up", "w-slow", "w-self", "p-beat", "w-added", "alert-", "restarts", "saver", "reload", "signals",
    ] {
        assert!(
            before.iter().any(|t| t.starts_with(kind)),
            "no {kind} thread in {before:?}"
        );
    }
    assert!(
        !before.iter().any(|t| t == "w-gone"),
        "the removed worker's thread ended: {before:?}"
    );

    let sigterm = Instant::now();
    p.signal("TERM");
    // Watched from outside while it shuts down, not only as the process reports it. The
    // receiver answers once the workers are gone: the alerts wait for them, not the other way.
    let mut samples = Vec::new();
    while let Some(names) = threads_of(pid) {
        if !names.iter().any(|t| is_worker(t)) && names.iter().any(|t| t.starts_with("alert-")) {
            answer.store(true, Ordering::SeqCst);
        }
        samples.push(names);
        if p.child.try_wait().ok().flatten().is_some() {
            break;
        }
    }
    assert!(
        answer.load(Ordering::SeqCst),
        "no moment with the workers gone and the alert senders still there: {samples:?}\nlog:\n{}",
        p.log()
    );
    assert_eq!(p.wait_exit(10 * SEC), Some(0), "log:\n{}", p.log());
    let log = p.log();

    let fewest = samples.iter().map(Vec::len).min().unwrap_or(0);
    assert!(
        fewest < before.len(),
        "the thread count never fell below {}: {samples:?}",
        before.len()
    );
    assert!(
        log.contains("DEBUG [master_pinger::cmd::run] threads left at exit: 1 (master-pinger)\n"),
        "a thread outlived the shutdown or was not joined; log:\n{log}"
    );
    assert!(!log.contains("not joined"), "{log}");

    // The alerts queued before SIGTERM all went out after it.
    let alerts: Vec<_> = receiver.seen().into_iter().filter(|s| s.method == "POST").collect();
    let on = |path: &str| alerts.iter().filter(|s| s.path == path).count();
    assert_eq!((on("/one"), on("/two")), (2, 2), "log:\n{log}");
    assert_eq!(on("/old"), 0, "the removed channel sent nothing");
    assert_eq!(alerts.iter().filter(|s| s.at > sigterm).count(), 2, "{alerts:?}");
    assert_eq!(log.matches(") delivered").count(), 4, "{log}");

    // The last save came after the workers ended: every check they logged is in the file.
    let saved: serde_json::Value = serde_json::from_slice(&std::fs::read(&state).expect("saved")).unwrap();
    for name in ["up", "slow"] {
        let logged = log
            .matches(&format!("INFO  [master_pinger::worker] {name}: up,"))
            .count() as u64;
        assert_eq!(saved["workers"][name]["checks"], json!(logged), "{name}; log:\n{log}");
    }
}
