//! Changing the fleet while it runs: SIGHUP and file-watch reloads, an invalid reload, pause and
//! resume through the admin endpoints (and across reloads and restarts), and no leaked threads.

use crate::common::{FakeServer, Pinger, SEC, ok, proc_status, request, temp_dir};
use std::collections::BTreeMap;
use std::thread;
use std::time::{Duration, Instant};

const TOKEN: &str = "Bearer adm1n-s3cret";

/// A config with the named workers, each `(name, interval)` at `/name` on `target`.
fn config(target: &FakeServer, extra: &str, workers: &[(&str, &str)]) -> String {
    let list: Vec<String> = workers
        .iter()
        .map(|(name, interval)| {
            format!(
                r#"{{"name": "{name}", "url": "{}", "interval": "{interval}", "retries": 0}}"#,
                target.url(&format!("/{name}"))
            )
        })
        .collect();
    format!(r#"{{"self_ping": false, {extra} "workers": [{}]}}"#, list.join(", "))
}

impl Pinger {
    fn write_config(&self, text: &str) {
        // Written beside and renamed over, as an editor or a config-management tool does.
        let tmp = self.dir.join("pinger.json.tmp");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, self.dir.join("pinger.json")).unwrap();
    }

    fn count_in_log(&self, needle: &str) -> usize {
        self.log().matches(needle).count()
    }

    /// Waits until the log holds `needle` at least `n` times.
    fn wait_log(&self, needle: &str, n: usize, within: Duration) {
        let end = Instant::now() + within;
        while self.count_in_log(needle) < n {
            assert!(Instant::now() < end, "no {n} x {needle:?} in the log:\n{}", self.log());
            thread::sleep(Duration::from_millis(10));
        }
    }

    fn names(&self) -> Vec<String> {
        let s = self.status();
        s["workers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| w["name"].as_str().unwrap().to_string())
            .collect()
    }

    fn threads(&self) -> usize {
        proc_status(self.child.id(), "Threads:") as usize
    }
}

/// Polls `f` until it holds: `/status`, `/` and `/metrics` may be up to a second behind the state
/// (their bodies are cached).
fn eventually(what: &str, f: impl Fn() -> bool) {
    let end = Instant::now() + 3 * SEC;
    while !f() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(50));
    }
}

fn hits(target: &FakeServer, name: &str) -> usize {
    let path = format!("/{name}");
    target.seen().iter().filter(|s| s.path == path).count()
}

#[test]
fn sighup_adds_removes_and_changes_workers_by_name() {
    let target = FakeServer::always(ok());
    let p = Pinger::start(&config(&target, "", &[("a", "1s"), ("b", "1s"), ("c", "1s")]), &[]);
    for n in ["a", "b", "c"] {
        p.wait_worker(n, 10 * SEC, |w| w["checks"].as_u64() >= Some(2));
    }
    p.write_config(&config(&target, "", &[("d", "1s"), ("a", "1s"), ("b", "2s")]));
    p.signal("HUP");
    p.wait_log(
        "configuration reloaded: 1 added, 1 removed, 1 changed, 1 unchanged",
        1,
        5 * SEC,
    );
    eventually("the new list in /status", || p.names() == ["d", "a", "b"]);
    let removed_at = hits(&target, "c");
    let d = p.wait_worker("d", 10 * SEC, |w| w["checks"].as_u64() >= Some(1));
    assert_eq!(d["state"], "up");
    let b = p.wait_worker("b", 10 * SEC, |w| w["checks"].as_u64() >= Some(3));
    assert_eq!(b["interval_seconds"], 2, "b runs on its new settings");
    assert!(
        b["history"].as_array().unwrap().len() >= 3,
        "b keeps its history (same URL)"
    );
    assert!(p.worker("a")["checks"].as_u64() >= Some(3), "a keeps running");
    thread::sleep(SEC);
    assert!(hits(&target, "c") <= removed_at + 1, "c is no longer pinged");
    eventually("c to leave /metrics", || {
        let metrics = p.get("/metrics").body;
        !metrics.contains("worker=\"c\"") && metrics.contains("pinger_config_reloads_total{result=\"success\"} 1")
    });
    eventually("c to leave the page", || !p.get("/").body.contains(">c<"));
}

#[test]
fn a_changed_file_reloads_and_an_invalid_one_changes_nothing() {
    let target = FakeServer::always(ok());
    let watch = r#""watch_config": "50ms","#;
    let p = Pinger::start(&config(&target, watch, &[("a", "1h")]), &[]);
    p.wait_worker("a", 5 * SEC, |w| w["checks"] == 1);

    p.write_config(r#"{"self_ping": false, "workers": [{"name": "a", "url": "ftp://x", "retries": 99}]}"#);
    p.wait_log("configuration reload failed: 2 problems found", 1, 5 * SEC);
    let log = p.log();
    assert!(log.contains("workers[0].retries"), "every error is logged:\n{log}");
    eventually("config_error in /status", || p.status().get("config_error").is_some());
    let s = p.status();
    let err = s["config_error"].as_str().unwrap();
    assert!(
        err.contains("workers[0].url") && err.contains("workers[0].retries"),
        "{err}"
    );
    assert_eq!(p.names(), ["a"], "the previous configuration still runs");
    eventually("the banner", || {
        p.get("/")
            .body
            .contains("The configuration could not be reloaded; the previous configuration is still running.")
    });
    eventually("the failure counted", || {
        p.get("/metrics")
            .body
            .contains("pinger_config_reloads_total{result=\"failure\"} 1")
    });

    p.write_config(&config(&target, watch, &[("a", "1h"), ("b", "1h")]));
    p.wait_log(
        "configuration reloaded: 1 added, 0 removed, 0 changed, 1 unchanged",
        1,
        5 * SEC,
    );
    eventually("b in /status", || p.names() == ["a", "b"]);
    p.wait_worker("b", 7 * SEC, |w| w["checks"] == 1);
    eventually("a valid file to clear the error", || {
        p.status().get("config_error").is_none()
    });
    eventually("the banner to go", || {
        !p.get("/").body.contains("previous configuration is still running")
    });
    eventually("the success counted", || {
        p.get("/metrics")
            .body
            .contains("pinger_config_reloads_total{result=\"success\"} 1")
    });
    assert_eq!(p.worker("a")["checks"], 1, "a kept its schedule (1h)");
}

#[test]
fn watch_config_false_ignores_the_file_but_sighup_still_reloads() {
    let target = FakeServer::always(ok());
    let off = r#""watch_config": false,"#;
    let p = Pinger::start(&config(&target, off, &[("a", "1h")]), &[]);
    p.wait_worker("a", 5 * SEC, |w| w["checks"] == 1);
    let moved = format!(r#"{off} "state_file": "{}","#, p.dir.join("s.json").display());
    p.write_config(&config(&target, &moved, &[("b", "1h")]));
    thread::sleep(Duration::from_millis(6500));
    assert_eq!(p.names(), ["a"], "not watched");
    p.signal("HUP");
    p.wait_log("configuration reloaded: 1 added, 1 removed", 1, 5 * SEC);
    eventually("b alone", || p.names() == ["b"]);
    assert!(
        p.log().contains("state_file changed: this needs a restart"),
        "{}",
        p.log()
    );
}

#[test]
fn pause_and_resume_through_the_admin_endpoints() {
    let target = FakeServer::always(ok());
    let p = Pinger::start(
        &config(&target, "", &[("c", "1h"), ("a", "1s"), ("b", "1s")]),
        &[("PINGER_ADMIN_TOKEN", "adm1n-s3cret")],
    );
    p.wait_worker("a", 5 * SEC, |w| w["checks"].as_u64() >= Some(1));
    let pause = p.url("/api/workers/a/pause");
    assert_eq!(request("POST", &pause, None).status, 401);
    assert_eq!(request("POST", &pause, Some("Bearer wrong")).status, 401);
    assert_eq!(
        request("POST", &p.url("/api/workers/zzz/pause"), Some(TOKEN)).status,
        404
    );
    let r = request("POST", &pause, Some(TOKEN));
    assert_eq!(r.status, 200, "{}", r.body);
    let doc: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(
        (doc["name"].as_str(), doc["state"].as_str()),
        (Some("a"), Some("paused"))
    );
    assert_eq!(doc["paused"], true);

    thread::sleep(Duration::from_millis(200));
    let (paused_hits, b_hits) = (hits(&target, "a"), hits(&target, "b"));
    thread::sleep(Duration::from_millis(2100));
    assert_eq!(hits(&target, "a"), paused_hits, "a paused worker is not pinged");
    assert!(hits(&target, "b") >= b_hits + 2, "the other worker goes on");
    let w = p.worker("a");
    assert_eq!(
        (w["state"].as_str(), w["next_check_at"].is_null()),
        (Some("paused"), true)
    );
    let metrics = p.get("/metrics").body;
    assert!(metrics.contains("pinger_paused{worker=\"a\"} 1\n"), "{metrics}");
    assert!(metrics.contains("pinger_paused{worker=\"b\"} 0\n"), "{metrics}");
    assert!(!metrics.contains("pinger_up{worker=\"a\"}"), "{metrics}");
    assert!(p.get("/").body.contains("paused"));
    assert_eq!(p.status()["status"], "ok");
    let only: serde_json::Value = serde_json::from_str(&p.get("/status?state=paused").body).unwrap();
    let names: Vec<&str> = only["workers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a"]);

    let r = request("POST", &p.url("/api/workers/a/resume"), Some(TOKEN));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_ne!(
        serde_json::from_str::<serde_json::Value>(&r.body).unwrap()["state"],
        "paused"
    );
    target.wait_for(target.count() + 1, 5 * SEC);
    let end = Instant::now() + 5 * SEC;
    while hits(&target, "a") == paused_hits && Instant::now() < end {
        thread::sleep(Duration::from_millis(5));
    }
    assert!(hits(&target, "a") > paused_hits, "a resumed worker is checked again");
    // "Within a second": `c` is checked every hour, so a check after its resume is the resume's
    // own, not one its schedule brought.
    p.wait_worker("c", 10 * SEC, |w| w["checks"] == 1);
    assert_eq!(request("POST", &p.url("/api/workers/c/pause"), Some(TOKEN)).status, 200);
    assert_eq!(
        request("POST", &p.url("/api/workers/c/resume"), Some(TOKEN)).status,
        200
    );
    p.wait_worker("c", 10 * SEC, |w| w["checks"] == 2);
    assert_eq!(hits(&target, "c"), 2);
}

#[test]
fn a_pause_survives_reloads_and_restarts_and_the_config_can_start_paused() {
    let target = FakeServer::always(ok());
    let dir = temp_dir("pause-restart");
    let state = dir.join("state.json");
    let extra = format!(r#""state_file": "{}", "save_interval": "100ms","#, state.display());
    let env = [("PINGER_ADMIN_TOKEN", "adm1n-s3cret")];
    let mut p = Pinger::start_in(dir.clone(), &config(&target, &extra, &[("a", "1s")]), &env);
    p.wait_worker("a", 5 * SEC, |w| w["checks"].as_u64() >= Some(1));
    assert_eq!(request("POST", &p.url("/api/workers/a/pause"), Some(TOKEN)).status, 200);
    p.write_config(&config(&target, &extra, &[("a", "2s"), ("b", "1s")]));
    p.signal("HUP");
    p.wait_log(
        "configuration reloaded: 1 added, 0 removed, 1 changed, 0 unchanged",
        1,
        5 * SEC,
    );
    p.wait_worker("a", 10 * SEC, |w| w["state"] == "paused" && w["interval_seconds"] == 2);
    thread::sleep(Duration::from_millis(2500));
    assert_eq!(p.worker("a")["state"], "paused", "a reload keeps the pause");
    p.signal("TERM");
    assert_eq!(p.wait_exit(2 * SEC), Some(0));
    drop(p);

    let cfg = config(&target, &extra, &[("a", "1s"), ("b", "1s")])
        .replace(r#""name": "b","#, r#""name": "b", "paused": true,"#);
    let p = Pinger::start_in(dir, &cfg, &env);
    let before = hits(&target, "a") + hits(&target, "b");
    thread::sleep(Duration::from_millis(2100));
    assert_eq!(hits(&target, "a") + hits(&target, "b"), before, "both paused");
    assert_eq!(p.worker("a")["state"], "paused", "the pause survived the restart");
    assert_eq!(p.worker("b")["state"], "paused", "\"paused\": true in the config");
    assert_eq!(
        request("POST", &p.url("/api/workers/b/resume"), Some(TOKEN)).status,
        200
    );
    p.wait_worker("b", 10 * SEC, |w| w["state"] == "up");
}

/// Workers `b`, `a`, `c` every hour (so a check after the first one comes only from a resume),
/// `paused` as given, saving to `state.json` in the test's folder.
fn paused_config(target: &FakeServer, state: &std::path::Path, paused: [bool; 3], c_interval: &str) -> String {
    let w = |name: &str, paused: bool, interval: &str| {
        format!(
            r#"{{"name": "{name}", "url": "{}", "interval": "{interval}", "paused": {paused}}}"#,
            target.url(&format!("/{name}"))
        )
    };
    format!(
        r#"{{"self_ping": false, "state_file": "{}", "save_interval": "100ms", "workers": [{}, {}, {}]}}"#,
        state.display(),
        w("b", paused[0], "1h"),
        w("a", paused[1], "1h"),
        w("c", paused[2], c_interval)
    )
}

#[test]
fn the_configured_pause_applies_when_it_changes_and_an_api_pause_until_then() {
    let target = FakeServer::always(ok());
    let dir = temp_dir("pause-config");
    let state = dir.join("state.json");
    let env = [("PINGER_ADMIN_TOKEN", "adm1n-s3cret")];
    let state_of = |p: &Pinger, name: &str| p.worker(name)["state"].as_str().unwrap_or("").to_string();
    // b, a (configured paused), c.
    let mut p = Pinger::start_in(
        dir.clone(),
        &paused_config(&target, &state, [false, true, false], "1h"),
        &env,
    );
    p.wait_worker("b", 10 * SEC, |w| w["checks"] == 1);
    assert_eq!(state_of(&p, "a"), "paused");
    assert_eq!(request("POST", &p.url("/api/workers/c/pause"), Some(TOKEN)).status, 200);

    // a: true -> false, b: false -> true, c: paused through the API, another interval.
    p.write_config(&paused_config(&target, &state, [true, false, false], "2h"));
    p.signal("HUP");
    p.wait_log("configuration reloaded: 0 added, 0 removed, 3 changed", 1, 5 * SEC);
    // Every hour: this check is the resume's, at once.
    p.wait_worker("a", 5 * SEC, |w| w["checks"] == 1);
    assert_eq!(hits(&target, "a"), 1);
    assert_eq!(state_of(&p, "b"), "paused", "false -> true pauses");
    assert_eq!(
        state_of(&p, "c"),
        "paused",
        "a reload that changes something else keeps the pause"
    );
    p.signal("TERM");
    assert_eq!(p.wait_exit(5 * SEC), Some(0), "{}", p.log());
    drop(p);

    // b: true -> false while the pinger was down; c as configured when it was paused.
    let b_hits = hits(&target, "b");
    let p = Pinger::start_in(dir, &paused_config(&target, &state, [false, false, false], "2h"), &env);
    assert_eq!(state_of(&p, "c"), "paused", "the API pause survived the restart");
    p.wait_worker("b", 10 * SEC, |w| w["checks"] == 2);
    assert!(hits(&target, "b") > b_hits, "true -> false across a restart resumes");
    assert_ne!(state_of(&p, "a"), "paused");
    assert_eq!(
        request("POST", &p.url("/api/workers/c/resume"), Some(TOKEN)).status,
        200
    );
    p.wait_worker("c", 5 * SEC, |w| w["checks"] == 1);
}

/// The issue's test: 50 reloads with random adds, removes and changes while checks run.
#[test]
fn fifty_random_reloads_leave_exactly_the_configured_workers_running() {
    let target = FakeServer::always(ok());
    let names: Vec<String> = (0..24).map(|i| format!("w{i}")).collect();
    let intervals = ["1s", "2s", "3s"];
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut rand = move |n: u64| {
        // xorshift: the same sequence every run, so a failure can be replayed.
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    let mut fleet: BTreeMap<&str, &str> = names.iter().take(12).map(|n| (n.as_str(), "1s")).collect();
    let render = |f: &BTreeMap<&str, &str>| {
        let list: Vec<(&str, &str)> = f.iter().map(|(k, v)| (*k, *v)).collect();
        config(&target, r#""watch_config": false,"#, &list)
    };
    let p = Pinger::start(&render(&fleet), &[]);
    for n in fleet.keys() {
        target.wait_for(1, 5 * SEC);
        let end = Instant::now() + 5 * SEC;
        while hits(&target, n) == 0 && Instant::now() < end {
            thread::sleep(Duration::from_millis(10));
        }
    }
    let fixed = p.threads() - fleet.len();

    for i in 1..=50 {
        for n in &names {
            match rand(6) {
                0 => {
                    fleet.remove(n.as_str());
                }
                1 => {
                    fleet.insert(n.as_str(), intervals[rand(3) as usize]);
                }
                2 if fleet.contains_key(n.as_str()) => {
                    fleet.insert(n.as_str(), intervals[rand(3) as usize]);
                }
                _ => {}
            }
        }
        p.write_config(&render(&fleet));
        p.signal("HUP");
        p.wait_log("configuration reloaded:", i, 5 * SEC);
        thread::sleep(Duration::from_millis(rand(40)));
    }

    // Every thread of a removed worker ends, and only those.
    let end = Instant::now() + 3 * SEC;
    while p.threads() != fleet.len() + fixed && Instant::now() < end {
        thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        p.threads(),
        fleet.len() + fixed,
        "{} workers + {fixed} fixed threads",
        fleet.len()
    );
    // Removed workers fall silent; every configured one is pinged (within its 3 s at most).
    thread::sleep(Duration::from_millis(300));
    let removed: Vec<&String> = names.iter().filter(|n| !fleet.contains_key(n.as_str())).collect();
    let before: Vec<usize> = removed.iter().map(|n| hits(&target, n)).collect();
    let configured: Vec<usize> = fleet.keys().map(|n| hits(&target, n)).collect();
    let end = Instant::now() + 4 * SEC;
    while fleet.keys().zip(&configured).any(|(n, b)| hits(&target, n) <= *b) && Instant::now() < end {
        thread::sleep(Duration::from_millis(50));
    }
    for (n, b) in fleet.keys().zip(configured) {
        assert!(hits(&target, n) > b, "configured worker {n} was not pinged");
    }
    for (n, b) in removed.iter().zip(before) {
        assert_eq!(hits(&target, n), b, "removed worker {n} was pinged");
    }
    let want: Vec<String> = fleet.keys().map(|k| k.to_string()).collect();
    eventually("the configured workers in /status", || p.names() == want);
    assert!(!p.log().contains("panic"), "{}", p.log());
}

#[test]
fn pinger_workers_as_a_plain_list_of_urls() {
    let target = FakeServer::always(ok());
    let list = format!("{},{}\n{}", target.url("/a"), target.url("/b"), target.url("/c"));
    let env = [("PINGER_WORKERS", list.as_str())];
    let p = Pinger::start(r#"{"self_ping": false, "defaults": {"interval": "1h"}}"#, &env);
    assert_eq!(p.names(), ["127.0.0.1", "127.0.0.1-2", "127.0.0.1-3"]);
    for (name, path) in [("127.0.0.1", "/a"), ("127.0.0.1-3", "/c")] {
        let w = p.wait_worker(name, 12 * SEC, |w| w["checks"] == 1);
        assert_eq!(w["interval_seconds"], 3600, "each worker takes the defaults");
        assert!(w["url"].as_str().unwrap().ends_with(path));
    }
    let dir = temp_dir("plain-bad");
    let (code, _, err) = crate::common::run(&dir, &["check"], &[("PINGER_WORKERS", "a.hf.space b.hf.space")]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("PINGER_WORKERS: item 1 is neither JSON nor a URL"),
        "{err}"
    );
    assert!(err.contains(r#"[{"url": "https://a.hf.space/health"}]"#), "{err}");
    assert!(
        err.contains("https://a.hf.space/health, https://b.hf.space/health"),
        "{err}"
    );
}

#[test]
fn a_reload_moves_alerts_to_the_new_channel_at_once() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let down = Arc::new(AtomicBool::new(true));
    let d2 = Arc::clone(&down);
    let target = FakeServer::start(move |_, _| {
        if d2.load(Ordering::SeqCst) {
            crate::common::status(502)
        } else {
            ok()
        }
    });
    let (old_hook, new_hook) = (FakeServer::always(ok()), FakeServer::always(ok()));
    let cfg = |hook: &FakeServer| {
        format!(
            r#"{{"self_ping": false, "alerts": {{"webhook_url": "{}", "format": "json", "failure_threshold": 1}},
                "workers": [{{"name": "t", "url": "{}", "interval": "1s", "retries": 0}}]}}"#,
            hook.url("/hook"),
            target.url("/")
        )
    };
    let p = Pinger::start(&cfg(&old_hook), &[]);
    let first = old_hook.wait_for(1, 5 * SEC);
    assert!(first[0].body.contains(r#""state":"down""#), "{}", first[0].body);
    p.write_config(&cfg(&new_hook));
    p.signal("HUP");
    p.wait_log(
        "configuration reloaded: 0 added, 0 removed, 0 changed, 1 unchanged",
        1,
        5 * SEC,
    );
    down.store(false, Ordering::SeqCst);
    let moved = new_hook.wait_for(1, 5 * SEC);
    assert_eq!(moved.len(), 1, "the recovery goes to the new channel");
    assert!(moved[0].body.contains(r#""state":"up""#), "{}", moved[0].body);
    thread::sleep(Duration::from_millis(500));
    assert_eq!(
        old_hook.count(),
        1,
        "nothing more to the old channel, and no second down"
    );
    assert_eq!(new_hook.count(), 1);
}

#[test]
fn check_shows_paused_workers_and_how_the_file_is_watched() {
    let dir = temp_dir("check-reload");
    let cfg = r#"{"workers": [{"name": "a", "url": "http://127.0.0.1:9/", "paused": true},
                              {"name": "b", "url": "http://127.0.0.1:9/"}]}"#;
    std::fs::write(dir.join("pinger.json"), cfg).unwrap();
    let (code, out, err) = crate::common::run(&dir, &["check"], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("starts paused (\"paused\": true): not checked until POST /api/workers/a/resume"),
        "{out}"
    );
    assert_eq!(out.matches("starts paused").count(), 1, "{out}");
    assert!(
        out.contains("reload: on SIGHUP, and when the file changes (looked at every 5s)"),
        "{out}"
    );
    std::fs::write(
        dir.join("pinger.json"),
        cfg.replace("{\"workers\"", "{\"watch_config\": false, \"workers\""),
    )
    .unwrap();
    let (_, out, _) = crate::common::run(&dir, &["check"], &[]);
    assert!(out.contains("reload: on SIGHUP\n"), "{out}");
}
