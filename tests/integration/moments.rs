//! Promises that hold at the moments of change: reloads that add, remove and reorder workers,
//! restarts, and CA files whose content changes.

use crate::common::tls::{DAY, TestCa, TlsServer};
use crate::common::{FakeServer, Pinger, SEC, ok, status};
use serde_json::Value;
use std::thread;
use std::time::{Duration, Instant};

/// RFC 3339 in UTC to the second, as the pinger writes it.
fn rfc3339(unix: i64) -> String {
    let dt = time::OffsetDateTime::from_unix_timestamp(unix).unwrap();
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        dt.year(),
        u8::from(dt.month()),
        dt.day(),
        dt.hour(),
        dt.minute(),
        dt.second()
    )
}

/// Replaces the configuration file and sends SIGHUP; waits for the reload's log line number `n`.
fn reload(p: &Pinger, text: &str, n: usize) {
    let tmp = p.dir.join("pinger.json.tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, p.dir.join("pinger.json")).unwrap();
    p.signal("HUP");
    wait_log(p, "configuration reloaded:", n);
}

fn wait_log(p: &Pinger, needle: &str, n: usize) {
    let end = Instant::now() + 15 * SEC;
    while p.log().matches(needle).count() < n {
        assert!(Instant::now() < end, "no {n} x {needle:?} in the log:\n{}", p.log());
        thread::sleep(Duration::from_millis(20));
    }
}

/// Polls until `f` holds (rendered bodies may be up to a second behind the state).
fn eventually<T>(what: &str, p: &Pinger, f: impl Fn() -> Option<T>) -> T {
    let end = Instant::now() + 15 * SEC;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < end, "timed out waiting for {what}\nlog:\n{}", p.log());
        thread::sleep(Duration::from_millis(50));
    }
}

/// `(name, url, extra fields)` as a configuration, every worker checked each second.
fn fleet(workers: &[(&str, String, String)]) -> String {
    let list: Vec<String> = workers
        .iter()
        .map(|(name, url, extra)| format!(r#"{{"name": "{name}", "url": "{url}"{extra}}}"#))
        .collect();
    format!(
        r#"{{"self_ping": false, "defaults": {{"interval": "1s", "timeout": "5s", "retries": 0}},
            "workers": [{}]}}"#,
        list.join(", ")
    )
}

/// Worker `name` from /status, if it is there yet (the body may be up to a second behind).
fn find(p: &Pinger, name: &str) -> Option<Value> {
    let s = p.status();
    s["workers"].as_array()?.iter().find(|w| w["name"] == name).cloned()
}

/// The page's row for worker `name` (from its name cell to the next row).
fn page_row(page: &str, name: &str) -> Option<String> {
    let start = page.find(&format!("id=\"w-{name}\""))?;
    let rest = &page[start..];
    let end = rest.find("</tr>").unwrap_or(rest.len());
    Some(rest[..end].to_string())
}

#[test]
fn every_https_worker_shows_its_own_certificate_across_reloads() {
    let ca = TestCa::new("moments CA");
    let long = ca.leaf(&["localhost"], 40 * DAY + 3600);
    let short = ca.leaf(&["localhost"], 10 * DAY + 3600);
    let (b_srv, c_srv) = (TlsServer::start(&long), TlsServer::start(&short));
    let plain = FakeServer::always(ok());
    let p = Pinger::start("{\"self_ping\": false, \"workers\": []}", &[]);
    let ca_path = ca.write(&p.dir, "ca.pem");
    let tls = format!(r#", "tls": {{"ca_file": "{}"}}"#, ca_path.display());
    let a = ("a", plain.url("/a"), String::new());
    let b = ("b", b_srv.url("localhost", "/b"), tls.clone());
    let c = ("c", c_srv.url("localhost", "/c"), tls.clone());
    let d = ("d", plain.url("/d"), String::new());
    let expect = |name: &str| match name {
        "b" => Some((40, long.not_after)),
        "c" => Some((10, short.not_after)),
        _ => None,
    };
    let steps: Vec<Vec<&(&str, String, String)>> = vec![
        vec![&a, &b],
        vec![&b, &c],
        vec![&c, &d, &b],
        vec![&d, &c],
        vec![&b, &a, &c],
    ];
    for (i, step) in steps.iter().enumerate() {
        let list: Vec<(&str, String, String)> = step.iter().map(|w| (**w).clone()).collect();
        reload(&p, &fleet(&list), i + 1);
        for (name, _, _) in &list {
            let w = eventually(&format!("{name}'s certificate after reload {}", i + 1), &p, || {
                let w = find(&p, name)?;
                (w["checks"].as_u64() >= Some(1) && (expect(name).is_none() || !w["tls"].is_null())).then_some(w)
            });
            match expect(name) {
                Some((days, not_after)) => {
                    assert_eq!(w["state"], "up", "{w:#}");
                    assert_eq!(w["tls"]["days_left"], days, "{name} after reload {}: {w:#}", i + 1);
                    assert_eq!(w["tls"]["expires_at"], rfc3339(not_after), "{name}: {w:#}");
                }
                None => assert_eq!(w["tls"], Value::Null, "{name} is http: {w:#}"),
            }
        }
        eventually("the metrics and the page", &p, || {
            let metrics = p.get("/metrics").body;
            let page = p.get("/").body;
            let all_right = list.iter().all(|(name, _, _)| {
                let line = format!("pinger_tls_cert_expiry_timestamp_seconds{{worker=\"{name}\"}}");
                let shown = metrics.lines().find(|l| l.starts_with(&line));
                let row = page_row(&page, name).unwrap_or_default();
                match expect(name) {
                    Some((days, not_after)) => {
                        shown == Some(&format!("{line} {not_after}"))
                            && row.contains(&format!("TLS certificate: {days} days left"))
                            && row.contains(&format!("expires {}", rfc3339(not_after)))
                    }
                    None => shown.is_none() && !row.contains("TLS certificate"),
                }
            });
            all_right.then_some(())
        });
    }
}

/// One https worker `w` on `url` trusting `ca_file`; `extra` is more top-level settings.
fn trusting(url: &str, ca_file: Option<&std::path::Path>, extra: &str) -> String {
    let tls = ca_file.map_or(String::new(), |p| {
        format!(r#", "tls": {{"ca_file": "{}"}}"#, p.display())
    });
    format!(
        r#"{{"self_ping": false, {extra} "defaults": {{"interval": "1s", "timeout": "5s", "retries": 0}},
            "workers": [{{"name": "w", "url": "{url}"{tls}}}]}}"#
    )
}

const UNTRUSTED: &str = "tls: certificate not trusted (unknown issuer)";

/// Waits until `w`'s newest check (after `after` checks) is up or failed as `up` says.
fn wait_state(p: &Pinger, up: bool, after: u64) -> u64 {
    let w = p.wait_worker("w", 15 * SEC, |w| {
        w["checks"].as_u64() > Some(after) && (w["last_check"]["ok"] == up)
    });
    if !up {
        assert_eq!(w["last_check"]["error"], UNTRUSTED, "{w:#}");
    }
    w["checks"].as_u64().unwrap()
}

#[test]
fn a_ca_file_whose_content_changed_is_trusted_after_a_reload() {
    let (wrong, right) = (TestCa::new("wrong CA"), TestCa::new("right CA"));
    let server = TlsServer::start(&right.leaf(&["localhost"], 30 * DAY));
    let url = server.url("localhost", "/");
    let dir = crate::common::temp_dir("ca-reload");
    let ca = wrong.write(&dir, "ca.pem");
    let cfg = trusting(&url, Some(&ca), r#""watch_config": "100ms","#);
    let p = Pinger::start_in(dir.clone(), &cfg, &[]);
    let n = wait_state(&p, false, 0);

    // SIGHUP with the same configuration text: only the CA file changed.
    right.write(&dir, "ca.pem");
    p.signal("HUP");
    let n = wait_state(&p, true, n);

    // The file watch: the configuration file is touched (a new size), the CA changed back.
    wrong.write(&dir, "ca.pem");
    std::fs::write(dir.join("pinger.json"), format!("{cfg}\n")).unwrap();
    wait_log(&p, "the configuration file changed, reloading it", 1);
    let n = wait_state(&p, false, n);
    right.write(&dir, "ca.pem");
    std::fs::write(dir.join("pinger.json"), format!("{cfg}\n\n")).unwrap();
    wait_log(&p, "the configuration file changed, reloading it", 2);
    wait_state(&p, true, n);
}

#[test]
fn ssl_cert_file_is_read_again_on_reload() {
    let (wrong, right) = (TestCa::new("wrong CA"), TestCa::new("right CA"));
    let server = TlsServer::start(&right.leaf(&["localhost"], 30 * DAY));
    let dir = crate::common::temp_dir("ssl-reload");
    let ssl = wrong.write(&dir, "ssl.pem");
    let cfg = trusting(&server.url("localhost", "/"), None, "");
    let p = Pinger::start_in(dir.clone(), &cfg, &[("SSL_CERT_FILE", ssl.to_str().unwrap())]);
    let n = wait_state(&p, false, 0);
    right.write(&dir, "ssl.pem");
    p.signal("HUP");
    wait_log(&p, "configuration reloaded:", 1);
    wait_state(&p, true, n);
}

#[test]
fn once_skips_paused_workers_and_lists_them_as_paused() {
    let up = FakeServer::always(ok());
    let paused = FakeServer::always(ok());
    let dir = crate::common::temp_dir("once-paused");
    let cfg = format!(
        r#"{{"workers": [{{"name": "a", "url": "{}"}}, {{"name": "p", "url": "{}", "paused": true}}]}}"#,
        up.url("/"),
        paused.url("/")
    );
    std::fs::write(dir.join("pinger.json"), cfg).unwrap();
    let (code, out, err) = crate::common::run(&dir, &["once"], &[]);
    assert_eq!(code, 0, "a paused worker is not down: {out}{err}");
    let line = out.lines().find(|l| l.starts_with("p ")).unwrap_or_default();
    assert_eq!(line.split_whitespace().collect::<Vec<_>>(), ["p", "paused"], "{out}");
    assert!(err.contains("1 of 1 worker(s) up, 1 paused"), "{err}");
    let (code, out, _) = crate::common::run(&dir, &["once", "--json"], &[]);
    assert_eq!(code, 0);
    let doc: Value = serde_json::from_str(&out).unwrap();
    let p = doc["workers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["name"] == "p")
        .unwrap();
    assert_eq!(
        (&p["state"], &p["checks"]),
        (&Value::from("paused"), &Value::from(0)),
        "{doc:#}"
    );
    assert_eq!(paused.count(), 0, "a paused worker is never requested");
    assert_eq!(up.count(), 2);
}

#[test]
fn a_stuck_space_is_restarted_again_a_cooldown_later() {
    let target = FakeServer::always(status(503));
    let hf = FakeServer::always(ok());
    let cfg = format!(
        r#"{{"self_ping": false, "hf_api_url": "{}", "restart_cooldown": "3s",
            "workers": [{{"name": "space", "url": "{}", "interval": "1s", "retries": 0, "space_id": "you/stuck"}}],
            "alerts": {{"failure_threshold": 1}}}}"#,
        hf.url(""),
        target.url("/")
    );
    let p = Pinger::start(&cfg, &[("HF_TOKEN", "hf_x")]);
    let reqs = hf.wait_for(2, 30 * SEC);
    assert_eq!(reqs.len(), 2, "a second restart a cooldown later\n{}", p.log());
    let gap = reqs[1].at - reqs[0].at;
    assert!(
        gap >= 2900 * Duration::from_millis(1),
        "not before the cooldown: {gap:?}"
    );
    p.wait_worker("space", 10 * SEC, |w| w["restarts"] == 2);
}

/// The requests a json channel at `hook` received for `state`.
fn alerts(hook: &FakeServer, state: &str) -> usize {
    let needle = format!(r#""state":"{state}""#);
    hook.seen().iter().filter(|s| s.body.contains(&needle)).count()
}

#[test]
fn a_restart_mid_outage_resumes_each_channel_with_its_failure_threshold() {
    let down = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let d2 = std::sync::Arc::clone(&down);
    let target = FakeServer::start(move |_, _| {
        if d2.load(std::sync::atomic::Ordering::SeqCst) {
            status(503)
        } else {
            ok()
        }
    });
    let hook = FakeServer::always(ok());
    let dir = crate::common::temp_dir("streak-restart");
    // Down after 2 failures, up after 6 successes: a streak resumed with the success threshold
    // would not be down at 2..5 failures, and would announce the same outage twice.
    let cfg = format!(
        r#"{{"self_ping": false, "state_file": "{}",
            "workers": [{{"name": "w", "url": "{}", "interval": "1s", "retries": 0}}],
            "alerts": {{"type": "json", "webhook_url": "{}", "failure_threshold": 2, "success_threshold": 6}}}}"#,
        dir.join("state.json").display(),
        target.url("/"),
        hook.url("/hook")
    );
    let mut p = Pinger::start_in(dir.clone(), &cfg, &[]);
    eventually("the down alert", &p, || (alerts(&hook, "down") == 1).then_some(()));
    p.signal("TERM");
    assert_eq!(p.wait_exit(10 * SEC), Some(0));
    let failures = p.worker_from_file("w")["consecutive_failures"].as_u64().unwrap();
    assert!(
        (2..6).contains(&failures),
        "restarted mid-outage at {failures} failures"
    );
    drop(p);
    let p = Pinger::start_in(dir, &cfg, &[]);
    p.wait_worker("w", 20 * SEC, |w| {
        w["consecutive_failures"].as_u64() >= Some(failures + 3)
    });
    assert_eq!(alerts(&hook, "down"), 1, "the outage was announced once\n{}", p.log());
    down.store(false, std::sync::atomic::Ordering::SeqCst);
    eventually("the up alert", &p, || (alerts(&hook, "up") == 1).then_some(()));
    assert_eq!(alerts(&hook, "down"), 1);
}

#[test]
fn a_reload_that_reorders_and_removes_workers_keeps_each_ones_history_across_a_restart() {
    // Each worker's URL answers with a status of its own, so a history that moved to another
    // worker shows.
    let target = FakeServer::start(|_, seen| match seen.path.as_str() {
        "/a" => status(200),
        "/b" => status(201),
        "/c" => status(202),
        _ => status(203),
    });
    let dir = crate::common::temp_dir("reorder");
    let cfg = |names: &[&str]| {
        format!(
            r#"{{"self_ping": false, "state_file": "{}", "save_interval": "200ms", "workers": [{}]}}"#,
            dir.join("state.json").display(),
            crate::common::named_workers(&target, names)
        )
    };
    let code = |n: &str| 200 + u64::from(n.as_bytes()[0] - b'a');
    let mut p = Pinger::start_in(dir.clone(), &cfg(&["a", "b", "c", "d"]), &[]);
    for n in ["a", "b", "c", "d"] {
        p.wait_worker(n, 15 * SEC, |w| w["checks"].as_u64() >= Some(2));
    }
    reload(&p, &cfg(&["d", "b", "a"]), 1);
    reload(&p, &cfg(&["a", "d"]), 2);
    for n in ["a", "d"] {
        p.wait_worker(n, 15 * SEC, |w| w["checks"].as_u64() >= Some(4));
    }
    p.signal("TERM");
    assert_eq!(p.wait_exit(10 * SEC), Some(0));
    let before: Vec<Value> = ["a", "d"].iter().map(|n| p.worker_from_file(n)).collect();
    drop(p);
    let p = Pinger::start_in(dir.clone(), &cfg(&["a", "d"]), &[]);
    for (n, saved) in ["a", "d"].iter().zip(&before) {
        let w = p.worker(n);
        let checks = w["checks"].as_u64().unwrap();
        assert!(
            checks >= saved["checks"].as_u64().unwrap(),
            "{n} kept its history: {w:#}\n{}",
            p.log()
        );
        assert_eq!(w["url"], target.url(&format!("/{n}")), "{w:#}");
        let history = w["history"].as_array().unwrap();
        assert!(history.len() as u64 >= 4, "{n}: {w:#}");
        for h in history {
            assert_eq!(h["status_code"], code(n), "{n}'s history is its own URL's: {w:#}");
        }
    }
    assert!(!p.log().contains("has a new URL"), "{}", p.log());
}

impl Pinger {
    /// A worker's record in the state file.
    fn worker_from_file(&self, name: &str) -> Value {
        let text = std::fs::read_to_string(self.dir.join("state.json")).unwrap();
        let doc: Value = serde_json::from_str(&text).unwrap();
        doc["workers"][name].clone()
    }
}

#[test]
fn a_certificate_warning_is_sent_once_per_threshold_across_restarts_and_reloads() {
    let ca = TestCa::new("warned CA");
    let server = TlsServer::start(&ca.leaf(&["localhost"], 5 * DAY + 12 * 3600));
    let hook = FakeServer::always(ok());
    let dir = crate::common::temp_dir("cert-warned");
    let ca_path = ca.write(&dir, "ca.pem");
    let cfg = |interval: &str| {
        format!(
            r#"{{"self_ping": false, "cert_check_interval": "10ms", "state_file": "{}",
                "defaults": {{"interval": "{interval}", "timeout": "5s", "retries": 0}},
                "alerts": {{"webhook_url": "{}", "type": "json"}},
                "workers": [{{"name": "rag", "url": "{}", "tls": {{"ca_file": "{}"}}}}]}}"#,
            dir.join("state.json").display(),
            hook.url("/hook"),
            server.url("localhost", "/"),
            ca_path.display()
        )
    };
    let warnings = || alerts(&hook, "cert_expiring");
    let mut p = Pinger::start_in(dir.clone(), &cfg("1s"), &[]);
    eventually("the warning", &p, || (warnings() == 1).then_some(()));
    p.wait_worker("rag", 15 * SEC, |w| w["checks"].as_u64() >= Some(3));
    p.signal("TERM");
    assert_eq!(p.wait_exit(10 * SEC), Some(0));
    drop(p);

    let p = Pinger::start_in(dir.clone(), &cfg("1s"), &[]);
    p.wait_worker("rag", 15 * SEC, |w| {
        w["checks"].as_u64() >= Some(6) && !w["tls"].is_null()
    });
    // A reload that changes the worker gives it a new schedule, not a new memory.
    reload(&p, &cfg("2s"), 1);
    p.wait_worker("rag", 15 * SEC, |w| w["checks"].as_u64() >= Some(8));
    thread::sleep(Duration::from_millis(300));
    assert_eq!(warnings(), 1, "the same threshold is not warned again\n{}", p.log());

    // A renewal that is still short starts over: one more warning.
    server.set_leaf(&ca.leaf(&["localhost"], 6 * DAY + 12 * 3600));
    eventually("the renewal's warning", &p, || (warnings() == 2).then_some(()));
}

/// The names of the process's threads that start with `prefix`.
fn threads_named(p: &Pinger, prefix: &str) -> Vec<String> {
    let dir = format!("/proc/{}/task", p.child.id());
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| std::fs::read_to_string(e.ok()?.path().join("comm")).ok())
                .map(|n| n.trim().to_string())
                .filter(|n| n.starts_with(prefix))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[test]
fn a_reload_restarts_only_the_alert_channels_it_changed() {
    let flip = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let f2 = std::sync::Arc::clone(&flip);
    // Down and up at every check while flipping: an alert per check on each channel.
    let target = FakeServer::start(move |n, _| {
        if f2.load(std::sync::atomic::Ordering::SeqCst) && n % 2 == 0 {
            status(503)
        } else {
            ok()
        }
    });
    // Slower than the alerts come, so both channels have alerts queued at the reload.
    let keep = FakeServer::always(crate::common::Action::Delay(Duration::from_millis(1500)));
    let gone = FakeServer::always(crate::common::Action::Hang);
    let cfg = |channels: &[(&str, &FakeServer, &str)]| {
        let list: Vec<String> = channels
            .iter()
            .map(|(name, hook, timeout)| {
                format!(
                    r#"{{"name": "{name}", "type": "json", "webhook_url": "{}", "timeout": "{timeout}",
                        "failure_threshold": 1}}"#,
                    hook.url("/")
                )
            })
            .collect();
        format!(
            r#"{{"self_ping": false, "alerts": [{}],
                "workers": [{{"name": "w", "url": "{}", "interval": "1s", "retries": 0}}]}}"#,
            list.join(", "),
            target.url("/")
        )
    };
    let p = Pinger::start(&cfg(&[("keep", &keep, "10s"), ("gone", &gone, "1m")]), &[]);
    p.wait_worker("w", 20 * SEC, |w| w["checks"].as_u64() >= Some(5));
    let before = threads_named(&p, "alert-");
    assert_eq!(before.len(), 2, "{before:?}");
    reload(&p, &cfg(&[("keep", &keep, "10s")]), 1);
    wait_log(&p, "alert channel gone removed by the reload: ", 1);
    let line = p
        .log()
        .lines()
        .find(|l| l.contains("alert channel gone removed"))
        .unwrap()
        .to_string();
    let dropped: usize = line
        .split("reload: ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(dropped >= 2, "{line}");
    assert!(line.ends_with("queued alert(s) dropped"), "{line}");
    flip.store(false, std::sync::atomic::Ordering::SeqCst);
    let w = p.wait_worker("w", 20 * SEC, |w| w["state"] == "up");
    // Every transition while flipping is one alert on keep: none lost to the reload.
    let history = w["history"].as_array().unwrap();
    let mut last = None;
    let transitions = history
        .iter()
        .filter(|h| {
            let ok = h["ok"].as_bool();
            let changed = ok != last && (last.is_some() || ok == Some(false));
            last = ok;
            changed
        })
        .count();
    let end = Instant::now() + 60 * SEC;
    while keep.count() < transitions && Instant::now() < end {
        thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(keep.count(), transitions, "keep delivered every alert\n{}", p.log());
    let after = threads_named(&p, "alert-");
    assert!(
        after.contains(&before[0]) || after.contains(&before[1]),
        "keep's thread runs on: {before:?} -> {after:?}"
    );
    assert!(
        after.iter().all(|n| before.contains(n)),
        "no channel started again: {before:?} -> {after:?}"
    );
}

#[test]
fn check_shows_every_value_from_a_variable_redacted() {
    let ca = TestCa::new("secret CA");
    let dir = crate::common::temp_dir("check-secrets");
    let private = dir.join("pr1vate-folder");
    std::fs::create_dir_all(&private).unwrap();
    ca.write(&private, "ca.pem");
    let cfg = r#"{"self_ping": false, "workers": [{"name": "a", "url": "https://127.0.0.1:9/",
        "method": "${M}", "expect_status": "${S}", "space_id": "${SP}",
        "tls": {"ca_file": "${CA_DIR}/ca.pem"}}]}"#;
    std::fs::write(dir.join("pinger.json"), cfg).unwrap();
    let private_dir = private.to_str().unwrap();
    let env = [
        ("M", "patch"),
        ("S", "218"),
        ("SP", "zz-owner/zz-space"),
        ("CA_DIR", private_dir),
    ];
    let (code, out, err) = crate::common::run(&dir, &["check"], &env);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("  a  REDACTED https://127.0.0.1:9/"), "{out}");
    assert!(out.contains("expect status REDACTED"), "{out}");
    assert!(out.contains("REDACTED/ca.pem (1 certificate(s))"), "{out}");
    for secret in ["PATCH", "patch", "218", "zz-owner", "pr1vate"] {
        assert!(
            !out.contains(secret) && !err.contains(secret),
            "{secret} shown:\n{out}{err}"
        );
    }
    // A CA file that cannot be read is named redacted too.
    let missing = [
        ("M", "patch"),
        ("S", "218"),
        ("SP", "zz-owner/zz-space"),
        ("CA_DIR", "/nonexistent/pr1vate"),
    ];
    let (code, out, err) = crate::common::run(&dir, &["check"], &missing);
    assert_eq!(code, 2, "{out}{err}");
    assert!(
        err.contains("workers[0].tls.ca_file: cannot read \"REDACTED/ca.pem\""),
        "{err}"
    );
    assert!(!err.contains("pr1vate"), "{err}");
}

/// A pids cgroup of the test's own, under this process's cgroup, holding at most `max` tasks;
/// `None` when the machine does not let the test make one.
struct PidsCgroup(std::path::PathBuf);

impl PidsCgroup {
    fn new(max: u64) -> Option<PidsCgroup> {
        let cgroups = std::fs::read_to_string("/proc/self/cgroup").ok()?;
        let mut dirs = Vec::new();
        for line in cgroups.lines() {
            let mut parts = line.splitn(3, ':');
            let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
            let rel = path.trim_start_matches('/');
            if controllers.split(',').any(|c| c == "pids") {
                dirs.push(std::path::Path::new("/sys/fs/cgroup/pids").join(rel));
            } else if controllers.is_empty() {
                dirs.push(std::path::Path::new("/sys/fs/cgroup").join(rel));
            }
        }
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        dirs.into_iter().find_map(|parent| {
            let dir = parent.join(format!("mp-test-{}-{n}", std::process::id()));
            std::fs::create_dir(&dir).ok()?;
            let cg = PidsCgroup(dir);
            std::fs::write(cg.0.join("pids.max"), max.to_string()).ok()?;
            Some(cg)
        })
    }

    /// The pinger started inside this cgroup (a shell moves itself in, then becomes the pinger).
    fn command(&self, dir: &std::path::PathBuf, args: &str) -> std::process::Command {
        let procs = self.0.join("cgroup.procs");
        let mut c = std::process::Command::new("sh");
        c.current_dir(dir)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default());
        c.arg("-c").arg(format!(
            "echo $$ > '{}' && exec '{}' {args}",
            procs.display(),
            crate::common::BIN
        ));
        c
    }
}

impl Drop for PidsCgroup {
    fn drop(&mut self) {
        // The processes in it have ended by now; a cgroup with none left can be removed.
        for _ in 0..50 {
            if std::fs::remove_dir(&self.0).is_ok() {
                return;
            }
            thread::sleep(Duration::from_millis(100));
        }
    }
}

fn http_fleet(target: &FakeServer, n: usize) -> String {
    let list: Vec<String> = (0..n)
        .map(|i| {
            format!(
                r#"{{"name": "w{i}", "url": "{}", "interval": "1s", "retries": 0}}"#,
                target.url("/")
            )
        })
        .collect();
    format!(r#"{{"self_ping": false, "workers": [{}]}}"#, list.join(", "))
}

#[test]
fn a_fleet_past_the_cgroups_pids_max_is_refused_at_start_and_on_reload() {
    let Some(cg) = PidsCgroup::new(80) else {
        crate::common::skip("cannot make a pids cgroup under this process's own");
        return;
    };
    let target = FakeServer::always(ok());
    let dir = crate::common::temp_dir("pids-max");
    std::fs::write(dir.join("pinger.json"), http_fleet(&target, 40)).unwrap();
    let started = Instant::now();
    let out = cg.command(&dir, "--listen 127.0.0.1:0").output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(started.elapsed() < 10 * SEC, "at once");
    let cg_file = cg.0.join("pids.max");
    for what in [
        "needs about 88 threads".to_string(),
        format!("the cgroup's pids.max ({}) is 80", cg_file.display()),
        "TasksMax=".to_string(),
        "--pids-limit".to_string(),
        "--shard".to_string(),
    ] {
        assert!(err.contains(&what), "no {what:?} in:\n{err}");
    }
    assert_eq!(target.count(), 0, "no worker started");

    // Five workers fit; a reload to forty is refused and the five keep running.
    std::fs::write(dir.join("pinger.json"), http_fleet(&target, 5)).unwrap();
    let p = Pinger::spawn(cg.command(&dir, "--listen 127.0.0.1:0"), dir.clone());
    for i in 0..5 {
        p.wait_worker(&format!("w{i}"), 15 * SEC, |w| w["checks"].as_u64() >= Some(1));
    }
    std::fs::write(dir.join("pinger.json"), http_fleet(&target, 40)).unwrap();
    p.signal("HUP");
    wait_log(&p, "configuration reload failed: this fleet needs about 88 threads", 1);
    let before = p.worker("w4")["checks"].as_u64().unwrap();
    p.wait_worker("w4", 15 * SEC, |w| w["checks"].as_u64() >= Some(before + 2));
    let s = p.status();
    assert_eq!(s["workers"].as_array().unwrap().len(), 5, "the running fleet is kept");
    assert!(s["config_error"].as_str().unwrap_or("").contains("pids.max"), "{s:#}");
}

/// What one kept-alive client connection saw: answers, and how it ended early if it did.
#[derive(Debug, Default)]
struct KeptAlive {
    answers: usize,
    error: Option<String>,
}

/// A wrk-like client on one connection: `GET path` again and again until `until`, reading each
/// whole answer, pausing `pause` after each.
fn keep_asking(port: u16, path: &str, until: Instant, pause: Duration) -> KeptAlive {
    use std::io::{BufReader, Read, Write};
    let mut out = KeptAlive::default();
    let stream = match std::net::TcpStream::connect(("127.0.0.1", port)) {
        Ok(s) => s,
        Err(e) => {
            out.error = Some(format!("connect: {e}"));
            return out;
        }
    };
    let _ = stream.set_read_timeout(Some(5 * SEC));
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    while Instant::now() < until {
        if let Err(e) = writer.write_all(request.as_bytes()) {
            out.error = Some(format!("write: {e}"));
            return out;
        }
        let Some(head) = crate::common::read_head(&mut reader) else {
            out.error = Some("closed or timed out before an answer".into());
            return out;
        };
        let len: usize = head
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-length:")
                    .map(|v| v.trim().parse().unwrap_or(0))
            })
            .unwrap_or(0);
        let mut body = vec![0; len];
        if let Err(e) = reader.read_exact(&mut body) {
            out.error = Some(format!("body: {e}"));
            return out;
        }
        out.answers += 1;
        thread::sleep(pause);
    }
    out
}

#[test]
fn kept_alive_connections_are_never_closed_under_load_right_after_start_up() {
    // header_timeout 1 s: every connection below lives three times as long.
    let p = Pinger::start(r#"{"self_ping": false, "header_timeout": "1s"}"#, &[]);
    let port = p.port;
    let until = Instant::now() + 3 * SEC;
    let start = std::sync::Arc::new(std::sync::Barrier::new(56));
    let clients: Vec<_> = (0..56)
        .map(|i| {
            let start = std::sync::Arc::clone(&start);
            thread::spawn(move || {
                start.wait();
                // Fifty as fast as they can (wrk -c50), six pausing near header_timeout.
                let pause = if i < 50 {
                    Duration::ZERO
                } else {
                    Duration::from_millis(750)
                };
                keep_asking(port, "/health", until, pause)
            })
        })
        .collect();
    let seen: Vec<KeptAlive> = clients.into_iter().map(|c| c.join().unwrap()).collect();
    let failed: Vec<(usize, &KeptAlive)> = seen.iter().enumerate().filter(|(_, k)| k.error.is_some()).collect();
    let answers: usize = seen.iter().map(|k| k.answers).sum();
    assert!(
        failed.is_empty(),
        "{} of 56 connections failed: {failed:?}\n{}",
        failed.len(),
        p.log()
    );
    assert!(
        seen.iter().all(|k| k.answers >= 3),
        "every connection was answered: {seen:?}"
    );
    assert!(!p.log().contains("closed HTTP connections"), "{}", p.log());
    eprintln!("56 kept-alive connections, {answers} answers in 3 s, no connection closed");
}

#[test]
fn twenty_reloads_that_add_and_remove_a_worker_and_a_channel_leave_the_threads_as_they_were() {
    let target = FakeServer::always(ok());
    let hook = FakeServer::always(ok());
    let cfg = |more: bool| {
        let worker = |n: &str| {
            format!(
                r#"{{"name": "{n}", "url": "{}", "interval": "1s"}}"#,
                target.url(&format!("/{n}"))
            )
        };
        let channel = |n: &str| {
            format!(
                r#"{{"name": "{n}", "type": "json", "webhook_url": "{}"}}"#,
                hook.url("/")
            )
        };
        let (workers, channels) = if more {
            (
                format!("{}, {}", worker("a"), worker("b")),
                format!("{}, {}", channel("c1"), channel("c2")),
            )
        } else {
            (worker("a"), channel("c1"))
        };
        format!(r#"{{"self_ping": false, "watch_config": false, "alerts": [{channels}], "workers": [{workers}]}}"#)
    };
    let p = Pinger::start(&cfg(false), &[]);
    p.wait_worker("a", 15 * SEC, |w| w["checks"].as_u64() >= Some(1));
    let threads = || crate::common::proc_status(p.child.id(), "Threads:");
    let before = threads();
    for i in 1..=20 {
        reload(&p, &cfg(i % 2 == 1), i);
    }
    let end = Instant::now() + 5 * SEC;
    while threads() != before && Instant::now() < end {
        thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(threads(), before, "{:?}", threads_named(&p, ""));
    p.wait_worker("a", 15 * SEC, |w| w["checks"].as_u64() >= Some(2));
}
