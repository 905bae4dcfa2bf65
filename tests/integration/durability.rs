//! Persistence, shutdown and the admin "check now" endpoint.

use crate::common::aged::{self, HOUR_MS};
use crate::common::{Action, FakeServer, Pinger, SEC, ok, request, status, temp_dir};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn config(target: &FakeServer, state: &str, save_interval: &str) -> String {
    format!(
        r#"{{"self_ping": false, "state_file": "{state}", "save_interval": "{save_interval}",
            "workers": [{{"name": "t", "url": "{}", "interval": "1s", "retries": 0}}]}}"#,
        target.url("/")
    )
}

#[test]
fn sigterm_during_a_hanging_check_exits_0_within_2s_and_saves() {
    let hang = FakeServer::start(|n, _| if n == 0 { ok() } else { Action::Hang });
    let dir = temp_dir("term");
    let state = dir.join("state.json");
    let mut p = Pinger::start_in(dir.clone(), &config(&hang, state.to_str().unwrap(), "1h"), &[]);
    p.wait_worker("t", 10 * SEC, |w| w["checks"] == 1);
    hang.wait_for(2, 5 * SEC);
    let t0 = Instant::now();
    p.signal("TERM");
    let code = p.wait_exit(2 * SEC);
    assert_eq!(code, Some(0), "exit status after {:?}; log:\n{}", t0.elapsed(), p.log());
    let saved: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&state).expect("state saved at shutdown")).unwrap();
    assert_eq!(saved["workers"]["t"]["checks"], 1);
}

#[test]
fn sigint_exits_0_too() {
    let target = FakeServer::always(ok());
    let mut p = Pinger::start(
        &format!(
            r#"{{"self_ping": false, "workers": [{{"url": "{}"}}]}}"#,
            target.url("/")
        ),
        &[],
    );
    p.signal("INT");
    assert_eq!(p.wait_exit(2 * SEC), Some(0));
}

#[test]
fn history_and_counters_survive_a_restart() {
    let target = FakeServer::always(ok());
    let dir = temp_dir("restart");
    let state = dir.join("state.json");
    let cfg = config(&target, state.to_str().unwrap(), "100ms");
    let mut p = Pinger::start_in(dir.clone(), &cfg, &[]);
    p.wait_worker("t", 10 * SEC, |w| w["checks"].as_u64() >= Some(3));
    p.signal("TERM");
    assert_eq!(p.wait_exit(5 * SEC), Some(0));
    let before: serde_json::Value = serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
    let checks = before["workers"]["t"]["checks"].as_u64().unwrap();
    assert!(checks >= 3);
    drop(p);

    let p = Pinger::start_in(dir, &cfg, &[]);
    let w = p.worker("t");
    // The first check after start-up may already have landed on top of the restored ones.
    let now = w["checks"].as_u64().unwrap();
    assert!(
        now == checks || now == checks + 1,
        "counters continue where they were: {now} after {checks}"
    );
    let history = w["history"].as_array().unwrap();
    assert_eq!(history.len() as u64, now);
    let saved_at: Vec<&serde_json::Value> = before["workers"]["t"]["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| &h["at_ms"])
        .collect();
    assert_eq!(saved_at.len() as u64, checks);
    assert_eq!(w["state"], "up", "the last check is remembered");
    let w = p.wait_worker("t", 10 * SEC, |w| w["checks"].as_u64() > Some(checks));
    assert_eq!(w["successes"].as_u64(), w["checks"].as_u64());
}

#[test]
fn a_corrupt_state_file_is_set_aside_and_the_service_answers() {
    let target = FakeServer::always(ok());
    let dir = temp_dir("corrupt");
    let state = dir.join("state.json");
    std::fs::write(&state, b"{\"version\": 1, \"workers\": tor").unwrap();
    let p = Pinger::start_in(dir.clone(), &config(&target, state.to_str().unwrap(), "100ms"), &[]);
    assert_eq!(p.get("/health").status, 200);
    let names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().any(|n| n.starts_with("state.json.corrupt-")), "{names:?}");
    assert!(p.log().contains("moved it to"), "{}", p.log());
    p.wait_worker("t", 10 * SEC, |w| w["checks"].as_u64() >= Some(1));
}

#[test]
fn an_unwritable_state_file_is_a_warning_and_a_status_field() {
    let target = FakeServer::always(ok());
    let p = Pinger::start(&config(&target, "/nonexistent-folder/deep/state.json", "100ms"), &[]);
    let s = p.status();
    let err = s["persistence_error"].as_str().expect("persistence_error in /status");
    assert!(err.contains("/nonexistent-folder/deep/state.json"), "{err}");
    assert!(p.log().contains("WARN"), "{}", p.log());
    p.wait_worker("t", 10 * SEC, |w| w["checks"].as_u64() >= Some(2));
    assert_eq!(p.get("/health").status, 200);
}

#[test]
fn workers_no_longer_configured_are_dropped_and_changed_urls_start_fresh() {
    let target = FakeServer::always(ok());
    let dir = temp_dir("drop");
    let state = dir.join("state.json");
    let two = format!(
        r#"{{"self_ping": false, "state_file": "{}", "workers": [{{"name": "a", "url": "{}", "interval": "1s"}}, {{"name": "b", "url": "{}", "interval": "1s"}}]}}"#,
        state.display(),
        target.url("/a"),
        target.url("/b")
    );
    let mut p = Pinger::start_in(dir.clone(), &two, &[]);
    p.wait_worker("b", 10 * SEC, |w| w["checks"].as_u64() >= Some(1));
    p.wait_worker("a", 10 * SEC, |w| w["checks"].as_u64() >= Some(3));
    p.signal("TERM");
    assert_eq!(p.wait_exit(5 * SEC), Some(0));
    drop(p);
    let changed = format!(
        r#"{{"self_ping": false, "state_file": "{}", "workers": [{{"name": "a", "url": "{}", "interval": "1h"}}]}}"#,
        state.display(),
        target.url("/a-moved")
    );
    let mut p = Pinger::start_in(dir, &changed, &[]);
    // At most the one check the new run made itself (it starts at once).
    assert!(p.worker("a")["checks"].as_u64() <= Some(1), "a new URL starts fresh");
    p.signal("TERM");
    assert_eq!(p.wait_exit(5 * SEC), Some(0));
    let saved: serde_json::Value = serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
    assert!(
        saved["workers"].get("b").is_none(),
        "b is no longer configured: {saved}"
    );
}

#[test]
fn kill_9_at_random_moments_never_leaves_a_torn_file() {
    let target = FakeServer::always(ok());
    let dir = temp_dir("kill9");
    let state = dir.join("state.json");
    let cfg = format!(
        r#"{{"self_ping": false, "state_file": "{}", "save_interval": "10ms", "history": 10000,
            "workers": [{{"name": "a", "url": "{}", "interval": "1s"}}, {{"name": "b", "url": "{}", "interval": "1s"}}]}}"#,
        state.display(),
        target.url("/a"),
        target.url("/b")
    );
    // Pseudo-random kill moments from a fixed seed: reproducible, but not aligned with saves.
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    for round in 0..8 {
        let mut p = Pinger::start_in(dir.clone(), &cfg, &[]);
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        std::thread::sleep(Duration::from_millis(100 + seed % 400));
        p.signal("KILL");
        p.wait_exit(5 * SEC);
        if state.exists() {
            let bytes = std::fs::read(&state).unwrap();
            let parsed: Result<serde_json::Value, _> = serde_json::from_slice(&bytes);
            assert!(parsed.is_ok(), "round {round}: torn state file ({} bytes)", bytes.len());
        }
        let names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(!names.iter().any(|n| n.contains("corrupt")), "round {round}: {names:?}");
    }
    assert!(state.exists(), "at least one save happened");
}

#[test]
fn admin_check_now_endpoint() {
    let config = |target: &FakeServer| {
        format!(
            r#"{{"self_ping": false, "workers": [{{"name": "t", "url": "{}", "interval": "1h"}}]}}"#,
            target.url("/")
        )
    };
    let unused = FakeServer::always(ok());
    let off = Pinger::start(&config(&unused), &[]);
    assert_eq!(
        request("POST", &off.url("/api/workers/t/check"), Some("Bearer x")).status,
        404,
        "no token configured"
    );
    drop(off);

    // A target of its own, so the first pinger's check cannot be counted here.
    let target = FakeServer::always(ok());
    let cfg = config(&target);

    let p = Pinger::start(&cfg, &[("PINGER_ADMIN_TOKEN", "admin-s3cret")]);
    p.wait_worker("t", 10 * SEC, |w| w["checks"] == 1);
    let url = p.url("/api/workers/t/check");
    assert_eq!(request("POST", &url, None).status, 401);
    assert_eq!(request("POST", &url, Some("Bearer nope")).status, 401);
    assert_eq!(
        request("POST", &p.url("/api/workers/zzz/check"), Some("Bearer admin-s3cret")).status,
        404
    );
    let t0 = Instant::now();
    let r = request("POST", &url, Some("Bearer admin-s3cret"));
    assert_eq!(r.status, 202, "{}", r.body);
    // At once, not at the next slot an hour away; the bound is generous for a loaded machine.
    let seen = target.wait_for(2, 5 * SEC);
    assert_eq!(seen.len(), 2, "the check ran at once");
    assert!(seen[1].at.duration_since(t0) < 5 * SEC);
    p.wait_worker("t", 10 * SEC, |w| w["checks"] == 2);
    let everything = format!("{}{}{}", p.get("/").body, p.get("/status").body, p.log());
    assert!(!everything.contains("admin-s3cret"));
}

fn saved_file(path: &std::path::Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn no_file_set_aside(dir: &std::path::Path) {
    let names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!names.iter().any(|n| n.contains("corrupt")), "{names:?}");
}

#[test]
fn a_state_file_written_by_0_1_is_migrated() {
    // Written by master-pinger 0.1 itself (tests/fixtures/state-v1-from-0.1.config.json).
    let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/state-v1-from-0.1.json");
    let old: serde_json::Value = serde_json::from_slice(&std::fs::read(fixture).unwrap()).unwrap();
    let dir = temp_dir("v1-real");
    let state = dir.join("state.json");
    std::fs::copy(fixture, &state).unwrap();
    let workers = [
        ("self-health", "http://127.0.0.1:47811/health"),
        ("refused", "http://127.0.0.1:9/"),
        ("wrong-status", "http://127.0.0.1:47811/nope"),
    ];
    let list: Vec<String> = workers
        .iter()
        .map(|(n, u)| format!(r#"{{"name": "{n}", "url": "{u}", "interval": "1h", "retries": 0, "timeout": "1s"}}"#))
        .collect();
    let cfg = format!(
        r#"{{"self_ping": false, "state_file": "{}", "save_interval": "1h", "workers": [{}]}}"#,
        state.display(),
        list.join(",")
    );
    let mut p = Pinger::start_in(dir.clone(), &cfg, &[]);
    let status = p.get("/status?history=100");
    let doc: serde_json::Value = serde_json::from_str(&status.body).unwrap();
    for (name, _) in workers {
        let was = &old["workers"][name];
        let w = doc["workers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|w| w["name"] == name)
            .unwrap();
        let (checks, saved) = (w["checks"].as_u64().unwrap(), was["checks"].as_u64().unwrap());
        // The first check of this run may already have landed on top of the restored ones.
        assert!(checks == saved || checks == saved + 1, "{name}: {checks} after {saved}");
        let saved_errors: Vec<&serde_json::Value> =
            was["history"].as_array().unwrap().iter().map(|h| &h["error"]).collect();
        let errors: Vec<&serde_json::Value> = w["history"].as_array().unwrap().iter().map(|h| &h["error"]).collect();
        assert_eq!(errors[..saved_errors.len()], saved_errors[..], "{name}");
    }
    assert!(p.log().contains("format 1, migrated"), "{}", p.log());
    no_file_set_aside(&dir);
    p.signal("TERM");
    assert_eq!(p.wait_exit(5 * SEC), Some(0));
    let new = saved_file(&state);
    assert_eq!(new["version"], 2);
    for (name, _) in workers {
        assert!(new["workers"][name]["checks"].as_u64() >= old["workers"][name]["checks"].as_u64());
    }
}

/// Share of good checks over the format-1 fixture's hourly buckets that `keep` selects.
fn ratio(i: usize, now_hour: u64, keep: impl Fn(u64) -> bool) -> (u64, u64) {
    (now_hour - 719..=now_hour)
        .filter(|h| keep(*h))
        .fold((0, 0), |(ok, total), h| {
            (ok + 360 - aged::failed_in_hour(i, h), total + 360)
        })
}

#[test]
fn a_fleet_30_days_old_keeps_counters_history_and_uptime_through_migration() {
    let target = FakeServer::always(ok());
    let dir = temp_dir("aged");
    let state = dir.join("state.json");
    let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
    let targets: Vec<(String, String)> = (0..3)
        .map(|i| (format!("w{i}"), target.url(&format!("/w{i}"))))
        .collect();
    let text = aged::state_file_0_1(&targets, now_ms);
    std::fs::write(&state, &text).unwrap();
    let list: Vec<String> = targets
        .iter()
        .map(|(n, u)| format!(r#"{{"name": "{n}", "url": "{u}", "interval": "1h"}}"#))
        .collect();
    let cfg = format!(
        r#"{{"self_ping": false, "state_file": "{}", "save_interval": "1h", "history": 100, "workers": [{}]}}"#,
        state.display(),
        list.join(",")
    );
    let mut p = Pinger::start_in(dir.clone(), &cfg, &[]);
    let doc: serde_json::Value = serde_json::from_str(&p.get("/status?history=100").body).unwrap();
    let (now_hour, today) = (now_ms / HOUR_MS, now_ms / HOUR_MS / 24);
    for (i, w) in doc["workers"].as_array().unwrap().iter().enumerate() {
        let checks = w["checks"].as_u64().unwrap();
        // This run's first check (a success) may have landed already.
        let extra = checks - 259_200;
        assert!(extra <= 1, "{checks}");
        assert_eq!(w["skipped"], i as u64);
        assert_eq!(w["restarts"], 1);
        let history = w["history"].as_array().unwrap();
        assert_eq!(history.len(), 100);
        let oks: Vec<bool> = history.iter().map(|h| h["ok"].as_bool().unwrap()).collect();
        let saved: Vec<bool> = (extra..100).map(|k| aged::check_ok(i, k)).collect();
        assert_eq!(oks[..saved.len()], saved[..], "w{i}: the saved checks, oldest first");
        let failed = history.iter().find(|h| h["ok"] == false).unwrap();
        assert_eq!(
            (failed["error"].as_str(), failed["attempts"].as_u64()),
            (Some("status 503"), Some(4))
        );
        let windows = [
            ratio(i, now_hour, |h| h + 24 > now_hour),
            ratio(i, now_hour, |h| h / 24 + 7 > today),
            ratio(i, now_hour, |h| h / 24 + 30 > today),
        ];
        for ((ok, total), key) in windows.into_iter().zip(["24h", "7d", "30d"]) {
            let expected = (ok + extra) as f64 / (total + extra) as f64 * 100.0;
            let got = w["uptime_percent"][key].as_f64().unwrap();
            assert!((got - expected).abs() < 0.0006, "w{i} {key}: {got} against {expected}");
        }
    }
    p.signal("TERM");
    assert_eq!(p.wait_exit(5 * SEC), Some(0));
    no_file_set_aside(&dir);
    let size = std::fs::metadata(&state).unwrap().len();
    assert!(
        size <= 3 * 4096,
        "{size} bytes for 3 targets 30 days old (0.1 wrote {})",
        text.len()
    );
    assert_eq!(
        saved_file(&state)["workers"]["w2"]["history"].as_array().unwrap().len(),
        100
    );
}

#[test]
fn a_save_replaces_the_state_file_and_never_rewrites_the_old_one() {
    use std::os::unix::fs::MetadataExt;
    let target = FakeServer::always(ok());
    let dir = temp_dir("replace");
    let state = dir.join("state.json");
    let p = Pinger::start_in(dir.clone(), &config(&target, state.to_str().unwrap(), "100ms"), &[]);
    p.wait_worker("t", 10 * SEC, |w| w["checks"].as_u64() >= Some(1));
    let wait_for = |what: &str, done: &dyn Fn() -> bool| {
        let end = Instant::now() + 5 * SEC;
        while !done() {
            assert!(Instant::now() < end, "timed out waiting for {what}; log:\n{}", p.log());
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    wait_for("a save", &|| state.exists());
    // A reader (a backup, `cat`) holding the old file: a hard link keeps its inode in reach.
    let old = dir.join("old.json");
    std::fs::hard_link(&state, &old).unwrap();
    let before = std::fs::read(&old).unwrap();
    // Saves come every 100 ms; wait for one that differs (a new check, or a new second in
    // `saved_at`), so that writing in place would show in the old file.
    wait_for("a save with new contents", &|| {
        std::fs::read(&state).is_ok_and(|now| now != before)
    });
    assert_eq!(
        std::fs::read(&old).unwrap(),
        before,
        "the old file was written over, not replaced"
    );
    assert_ne!(
        std::fs::metadata(&state).unwrap().ino(),
        std::fs::metadata(&old).unwrap().ino(),
        "a save makes a new file (written aside, then renamed over the old one)"
    );
}

#[test]
fn a_restart_at_the_failure_threshold_keeps_the_target_down() {
    // Down exactly at the threshold when the pinger stops: after the restart the next failure
    // is not a second "down", and the recovery is announced.
    // The target's mode: 0 fails twice and then hangs, so that the first run stays at exactly
    // 2 consecutive failures for as long as the test needs (a cached /status shows a value up
    // to a second late, and at a 1 s interval a passing value could be missed); 1 fails; 2 is up.
    let mode = Arc::new(AtomicU8::new(0));
    let m = Arc::clone(&mode);
    let target = FakeServer::start(move |n, _| match m.load(Ordering::SeqCst) {
        0 if n >= 2 => Action::Hang,
        2 => ok(),
        _ => status(503),
    });
    let hook = FakeServer::always(Action::Respond {
        status: 204,
        body: vec![],
    });
    let dir = temp_dir("threshold");
    let cfg = format!(
        r#"{{"self_ping": false, "state_file": "{}", "save_interval": "1h",
            "workers": [{{"name": "t", "url": "{}", "interval": "1s", "retries": 0}}],
            "alerts": {{"webhook_url": "{}", "failure_threshold": 2, "success_threshold": 1}}}}"#,
        dir.join("state.json").display(),
        target.url("/"),
        hook.url("/hook")
    );
    let states = |hook: &FakeServer| -> Vec<String> {
        hook.seen()
            .iter()
            .map(|s| serde_json::from_str::<serde_json::Value>(&s.body).unwrap()["state"].to_string())
            .collect()
    };

    let mut p = Pinger::start_in(dir.clone(), &cfg, &[]);
    p.wait_worker("t", 10 * SEC, |w| w["consecutive_failures"] == 2);
    hook.wait_for(1, 10 * SEC);
    target.wait_for(3, 10 * SEC);
    p.signal("TERM");
    assert_eq!(p.wait_exit(5 * SEC), Some(0));
    drop(p);
    let saved: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("state.json")).unwrap()).unwrap();
    assert_eq!(
        saved["workers"]["t"]["consecutive_failures"], 2,
        "stopped exactly at the threshold"
    );
    assert_eq!(states(&hook), ["\"down\""]);

    mode.store(1, Ordering::SeqCst);
    let p = Pinger::start_in(dir, &cfg, &[]);
    p.wait_worker("t", 10 * SEC, |w| w["consecutive_failures"].as_u64() >= Some(3));
    mode.store(2, Ordering::SeqCst);
    p.wait_worker("t", 10 * SEC, |w| w["state"] == "up");
    hook.wait_for(2, 10 * SEC);
    // Time for a wrong second "down" (sent before the "up") to have arrived as well.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(states(&hook), ["\"down\"", "\"up\""], "log:\n{}", p.log());
}
