//! Heartbeat (push) workers: reports on `/push/NAME...` from a real client (curl) and from
//! ureq, the same 404 for a wrong token and an unknown name, the rate limit, a late heartbeat
//! going down with an alert, the message of a POST, and push workers across a reload, a restart
//! and a pause.

use crate::common::{FakeServer, Pinger, SEC, have, ok, request, request_with, skip, temp_dir};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

const TOKEN: &str = "pu5h-t0ken-value";
const ENV: &[(&str, &str)] = &[("PT", TOKEN), ("RUST_LOG", "debug")];

/// A push worker's config entry.
fn push(name: &str, period: &str, grace: &str) -> String {
    format!(r#"{{"name": "{name}", "push": {{"period": "{period}", "grace": "{grace}"}}, "token": "${{PT}}"}}"#)
}

fn curl(args: &[&str]) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-s", "-o", "-", "-w", "\n%{http_code}", "--max-time", "10"])
        .args(args)
        .output()
        .expect("run curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", ""));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

fn report(p: &Pinger, path: &str) -> u16 {
    request("GET", &p.url(&format!("{path}?token={TOKEN}")), None).status
}

fn eventually(what: &str, within: Duration, f: impl Fn() -> bool) {
    let end = Instant::now() + within;
    while !f() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(20));
    }
}

fn history_errors(w: &serde_json::Value) -> Vec<String> {
    w["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["error"].as_str().unwrap_or("ok").to_string())
        .collect()
}

#[test]
fn reports_from_curl_record_success_failure_start_and_exit_codes() {
    if !have("curl", "--version") {
        return skip("curl is not installed");
    }
    let cfg = format!(r#"{{"self_ping": false, "workers": [{}]}}"#, push("job", "1h", "1h"));
    let p = Pinger::start(&cfg, ENV);
    let w = p.worker("job");
    assert_eq!(
        (w["kind"].as_str(), w["state"].as_str()),
        (Some("push"), Some("pending"))
    );
    assert!(w["url"].is_null());
    assert_eq!(w["push"]["endpoint"], "/push/job");

    let base = p.url("/push/job");
    let bearer = format!("Authorization: Bearer {TOKEN}");
    assert_eq!(
        curl(&["-H", &bearer, &format!("{base}/start")]),
        (200, "OK\n".to_string())
    );
    thread::sleep(Duration::from_millis(300));
    assert_eq!(
        curl(&["-X", "POST", "-H", &bearer, "--data-binary", "done", &base]).0,
        200
    );
    let w = p.wait_worker("job", 5 * SEC, |w| w["checks"] == 1);
    assert_eq!(w["state"], "up");
    let took = w["last_check"]["latency_ms"].as_u64().unwrap();
    assert!(
        (300..10_000).contains(&took),
        "the run's duration from start to success: {took} ms"
    );

    assert_eq!(
        curl(&["-I", &format!("{base}/fail?token={TOKEN}")]).0,
        200,
        "HEAD works"
    );
    let w = p.wait_worker("job", 5 * SEC, |w| w["checks"] == 2);
    assert_eq!(
        (w["state"].as_str(), w["last_check"]["error"].as_str()),
        (Some("down"), Some("reported failure"))
    );
    assert_eq!(w["last_check"]["latency_ms"], 0, "no start before it: no duration");

    assert_eq!(curl(&["-d", "", "-H", &bearer, &format!("{base}/0")]).0, 200);
    let w = p.wait_worker("job", 5 * SEC, |w| w["checks"] == 3);
    assert_eq!(w["state"], "up", "exit status 0 is a success");
    assert_eq!(curl(&[&format!("{base}/137?token={TOKEN}")]).0, 200);
    let w = p.wait_worker("job", 5 * SEC, |w| w["checks"] == 4);
    assert_eq!(w["last_check"]["error"], "exit status 137");
    assert_eq!(
        w["push"]["reports"],
        serde_json::json!({"success": 2, "failure": 2, "start": 1})
    );
    assert!(w["push"]["last_report_at"].is_string());
    assert_eq!(w["successes"], 2);

    assert_eq!(curl(&["-X", "PUT", "-H", &bearer, &base]).0, 405);
    assert_eq!(curl(&[&format!("{base}/nope?token={TOKEN}")]).0, 404);
    let metrics = p.get("/metrics").body;
    for line in [
        "pinger_push_reports_total{worker=\"job\",result=\"success\"} 2",
        "pinger_push_reports_total{worker=\"job\",result=\"failure\"} 2",
        "pinger_push_reports_total{worker=\"job\",result=\"start\"} 1",
        "pinger_last_push_timestamp_seconds{worker=\"job\"} ",
    ] {
        assert!(metrics.contains(line), "no {line:?} in\n{metrics}");
    }
}

#[test]
fn a_late_heartbeat_goes_down_and_alerts_then_a_report_brings_it_back() {
    let hook = FakeServer::always(ok());
    let cfg = format!(
        r#"{{"self_ping": false, "workers": [{}],
            "alerts": {{"webhook_url": "{}", "format": "json", "failure_threshold": 1}}}}"#,
        push("backup", "1500ms", "500ms"),
        hook.url("/hook")
    );
    let p = Pinger::start(&cfg, ENV);
    assert_eq!(
        p.worker("backup")["state"],
        "pending",
        "never reported: pending for period + grace"
    );
    let w = p.wait_worker("backup", 10 * SEC, |w| w["state"] == "down");
    assert_eq!(w["last_check"]["error"], "no report for 2s");
    let seen = hook.wait_for(1, 10 * SEC);
    let down: serde_json::Value = serde_json::from_str(&seen[0].body).unwrap();
    assert_eq!(
        (down["worker"].as_str(), down["state"].as_str()),
        (Some("backup"), Some("down"))
    );
    assert_eq!(down["error"], "no report for 2s");
    assert_eq!(down["url"], "/push/backup");

    // Each missed period is one more failed check, then a report ends the outage.
    p.wait_worker("backup", 10 * SEC, |w| w["checks"].as_u64() >= Some(2));
    assert_eq!(report(&p, "/push/backup"), 200);
    let w = p.wait_worker("backup", 5 * SEC, |w| w["state"] == "up");
    assert_eq!(w["consecutive_failures"], 0);
    let seen = hook.wait_for(2, 10 * SEC);
    let up: serde_json::Value = serde_json::from_str(&seen[1].body).unwrap();
    assert_eq!(up["state"], "up");
    assert_eq!(seen.len(), 2, "one down, one up: {seen:?}");
    let uptime = w["uptime_percent"]["24h"].as_f64().unwrap();
    assert!(uptime > 0.0 && uptime < 100.0, "misses count against uptime: {uptime}");
}

#[test]
fn wrong_tokens_and_unknown_names_get_the_same_404_and_the_token_stays_secret() {
    let cfg = format!(r#"{{"self_ping": false, "workers": [{}]}}"#, push("job", "1h", "1h"));
    // The same configuration on shard 2 of 2 or 1 of 2: one of them does not run "job".
    let p = Pinger::start(&cfg, ENV);
    let other = ["1/2", "2/2"]
        .into_iter()
        .map(|s| {
            let env: Vec<(&str, &str)> = ENV.iter().copied().chain([("PINGER_SHARD", s)]).collect();
            Pinger::start(&cfg, &env)
        })
        .find(|p| p.status()["workers"].as_array().unwrap().is_empty())
        .expect("one shard runs no worker");

    let answer = |url: String, headers: &[(&str, &str)]| {
        let (status, mut headers, body) = request_with("POST", &url, headers);
        headers.retain(|(k, _)| k != "date");
        (status, headers, body)
    };
    let wrong_bearer = answer(p.url("/push/job"), &[("Authorization", "Bearer wrong-token-value")]);
    assert_eq!(wrong_bearer.0, 404);
    for (what, got) in [
        ("a wrong ?token=", answer(p.url("/push/job/fail?token=wrong"), &[])),
        ("no token", answer(p.url("/push/job"), &[])),
        (
            "an unknown name",
            answer(p.url(&format!("/push/nobody?token={TOKEN}")), &[]),
        ),
        (
            "another shard's worker",
            answer(other.url(&format!("/push/job?token={TOKEN}")), &[]),
        ),
        ("an unknown path", answer(p.url("/nothing-here"), &[])),
    ] {
        assert_eq!(got, wrong_bearer, "{what} gets the same answer as a wrong token");
    }
    assert_eq!(p.worker("job")["push"]["reports"]["success"], 0, "nothing was recorded");

    // The right token, in the query: logged requests and every page keep it out.
    assert_eq!(report(&p, "/push/job"), 200);
    p.wait_worker("job", 5 * SEC, |w| w["checks"] == 1);
    thread::sleep(Duration::from_millis(1100));
    for page in ["/status?history=100", "/", "/metrics", "/status?worker=job"] {
        assert!(!p.get(page).body.contains(TOKEN), "{page} shows the token");
    }
    assert!(!p.log().contains(TOKEN), "the log shows the token:\n{}", p.log());
    let checked = crate::common::run(&p.dir, &["check"], ENV);
    assert_eq!(checked.0, 0, "{checked:?}");
    assert!(
        checked.1.contains("push /push/job") && !checked.1.contains(TOKEN),
        "{}",
        checked.1
    );
}

#[test]
fn reports_past_the_rate_limit_get_429_with_retry_after() {
    let cfg = format!(
        r#"{{"self_ping": false, "workers": [{}, {}]}}"#,
        push("a", "1h", "1h"),
        push("b", "1h", "1h")
    );
    let p = Pinger::start(&cfg, ENV);
    let statuses: Vec<u16> = (0..15).map(|_| report(&p, "/push/a/start")).collect();
    let accepted = statuses.iter().filter(|s| **s == 200).count();
    assert!(
        (10..=11).contains(&accepted),
        "a burst of 10 (one more refilled at most): {statuses:?}"
    );
    let limited = request("GET", &p.url(&format!("/push/a?token={TOKEN}")), None);
    assert_eq!(limited.status, 429);
    let wait: u64 = limited.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=2).contains(&wait), "{wait}");
    assert_eq!(report(&p, "/push/b"), 200, "the limit is per worker");
    thread::sleep(Duration::from_millis(1100));
    assert_eq!(report(&p, "/push/a"), 200, "a token is back after a second");
    let w = p.wait_worker("a", 5 * SEC, |w| w["checks"] == 1);
    assert_eq!(w["push"]["reports"]["start"].as_u64(), Some(accepted as u64));
}

#[test]
fn a_post_body_is_the_message_cut_at_10_kb_and_escaped_on_the_page() {
    let cfg = format!(r#"{{"self_ping": false, "workers": [{}]}}"#, push("job", "1h", "1h"));
    let p = Pinger::start(&cfg, ENV);
    let mut body = String::from("<script>alert(1)</script> backup failed: disk full\n");
    while body.len() < 12 * 1024 {
        body.push_str("0123456789abcdef");
    }
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .proxy(None)
        .build()
        .new_agent();
    let url = p.url("/push/job/fail");
    let resp = agent
        .post(&url)
        .header("Authorization", &format!("Bearer {TOKEN}"))
        .send(body.as_bytes())
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    // The connection carries the next request: the rest of the body was read.
    let again = agent
        .post(&p.url(&format!("/push/job/start?token={TOKEN}")))
        .send("x")
        .unwrap();
    assert_eq!(again.status().as_u16(), 200);
    let w = p.wait_worker("job", 5 * SEC, |w| w["push"]["reports"]["start"] == 1);
    let message = w["push"]["message"].as_str().unwrap();
    assert_eq!(message, "x", "the last report's message");
    assert_eq!(history_errors(&w), ["reported failure"]);
    // The 10 KB message: sent again alone, then read back whole from /status.
    agent
        .post(&p.url(&format!("/push/job/fail?token={TOKEN}")))
        .send(body.as_bytes())
        .unwrap();
    let w = p.wait_worker("job", 5 * SEC, |w| w["checks"] == 2);
    let message = w["push"]["message"].as_str().unwrap();
    assert_eq!(message.len(), 10 * 1024);
    assert!(body.starts_with(message));
    eventually("the page with the message", 3 * SEC, || {
        p.get("/").body.contains("disk full")
    });
    let page = p.get("/").body;
    assert!(
        page.contains("&lt;script&gt;alert(1)&lt;/script&gt; backup failed"),
        "escaped"
    );
    assert!(!page.contains("<script>alert(1)"));
}

#[test]
fn a_heartbeat_outage_that_outlasts_a_maintenance_window_alerts_when_it_ends() {
    use crate::integration::maintenance::window;
    use std::time::SystemTime;
    let hook = FakeServer::always(ok());
    // A threshold no test reaches: every down alert here comes from a window's end. Never
    // reported, `backup` misses a deadline 1 s after start-up and every 500 ms after that.
    let cfg = |windows: &str| {
        format!(
            r#"{{"self_ping": false, "workers": [{}],
                "alerts": {{"webhook_url": "{}", "format": "json", "failure_threshold": 1000}}}}"#,
            push("backup", "500ms", "500ms").replace(r#""token""#, &format!(r#""maintenance": [{windows}], "token""#)),
            hook.url("/hook")
        )
    };
    // On from before start-up until 5 s from now.
    let end = SystemTime::now() + 5 * SEC;
    let mut p = Pinger::start(&cfg(&window(SystemTime::now() - SEC, 6 * SEC)), ENV);
    let w = p.wait_worker("backup", 10 * SEC, |w| w["checks"].as_u64() >= Some(1));
    let mut alerts = 0;
    if SystemTime::now() < end {
        assert_eq!(w["state"], "maintenance", "{w:#}");
        assert_eq!(hook.count(), 0, "no alert inside the window");
        let seen = hook.wait_for(1, 20 * SEC);
        assert_eq!(seen.len(), 1, "the window ended with the heartbeat still late");
        // The window's start is written to the millisecond.
        assert!(
            SystemTime::now() + Duration::from_millis(5) >= end,
            "no alert before the window ends"
        );
        let down: serde_json::Value = serde_json::from_str(&seen[0].body).unwrap();
        assert_eq!(
            (down["worker"].as_str(), down["state"].as_str(), down["error"].as_str()),
            (Some("backup"), Some("down"), Some("no report for 1s"))
        );
        alerts = 2;
    } else {
        eprintln!("the machine was too slow to see the window; the reload below still runs");
    }
    // A report ends the outage (and announces it, when it was announced). A window added by a
    // reload holds the next outage; removing it ends the window, and the outage alerts at once.
    assert_eq!(report(&p, "/push/backup"), 200);
    p.wait_worker("backup", 5 * SEC, |w| w["last_check"]["ok"] == true);
    assert_eq!(hook.wait_for(alerts, 10 * SEC).len(), alerts);
    let long = window(SystemTime::now() - SEC, 3600 * SEC);
    reload(&p, &cfg(&long), "configuration reloaded: 0 added, 0 removed, 1 changed");
    p.wait_worker("backup", 10 * SEC, |w| {
        w["state"] == "maintenance" && w["last_check"]["ok"] == false
    });
    assert_eq!(hook.count(), alerts, "no alert inside the window");
    p.rewrite_config(&cfg(""));
    p.signal("HUP");
    let seen = hook.wait_for(alerts + 1, 15 * SEC);
    assert_eq!(seen.len(), alerts + 1, "the outage alerts when the window is removed");
    let down: serde_json::Value = serde_json::from_str(&seen[alerts].body).unwrap();
    assert_eq!(
        (down["worker"].as_str(), down["state"].as_str()),
        (Some("backup"), Some("down"))
    );
    p.signal("TERM");
    assert_eq!(p.wait_exit(5 * SEC), Some(0));
}

fn reload(p: &Pinger, text: &str, line: &str) {
    let tmp = p.dir.join("pinger.json.tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, p.dir.join("pinger.json")).unwrap();
    p.signal("HUP");
    eventually(line, 5 * SEC, || p.log().contains(line));
}

fn names(p: &Pinger) -> Vec<String> {
    p.status()["workers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| format!("{}:{}", w["name"].as_str().unwrap(), w["kind"].as_str().unwrap()))
        .collect()
}

#[test]
fn push_workers_across_reloads_a_restart_and_a_pause() {
    let target = FakeServer::always(ok());
    let dir = temp_dir("push-reload");
    let state = dir.join("state.json");
    let pulled = format!(r#"{{"name": "web", "url": "{}", "interval": "1h"}}"#, target.url("/"));
    let cfg = |workers: &[String]| {
        format!(
            r#"{{"self_ping": false, "watch_config": false, "state_file": "{}", "workers": [{}]}}"#,
            state.display(),
            workers.join(", ")
        )
    };
    let env: Vec<(&str, &str)> = ENV.iter().copied().chain([("PINGER_ADMIN_TOKEN", "adm1n")]).collect();
    let p = Pinger::start_in(dir.clone(), &cfg(&[push("a", "1h", "1h"), pulled.clone()]), &env);
    assert_eq!(report(&p, "/push/a"), 200);
    p.wait_worker("a", 5 * SEC, |w| w["checks"] == 1);
    assert_eq!(report(&p, "/push/b"), 404, "not configured yet");

    // b added (its endpoint answers at once), a moved after the pulled worker.
    reload(
        &p,
        &cfg(&[pulled.clone(), push("a", "1h", "2h"), push("b", "1h", "1h")]),
        "1 added, 0 removed, 1 changed, 1 unchanged",
    );
    eventually("the new order", 3 * SEC, || {
        names(&p) == ["web:pull", "a:push", "b:push"]
    });
    assert_eq!(report(&p, "/push/b"), 200);
    let a = p.wait_worker("a", 5 * SEC, |w| w["push"]["grace_seconds"] == 7200.0);
    assert_eq!(a["checks"], 1, "a keeps its history across the change");
    assert_eq!(report(&p, "/push/a"), 200);
    p.wait_worker("a", 5 * SEC, |w| w["checks"] == 2);

    // Paused: reports are answered and ignored until resumed.
    let pause = request("POST", &p.url("/api/workers/a/pause"), Some("Bearer adm1n"));
    assert_eq!(pause.status, 200, "{}", pause.body);
    let r = request("GET", &p.url(&format!("/push/a?token={TOKEN}")), None);
    assert_eq!((r.status, r.body.as_str()), (200, "OK (paused: report ignored)\n"));
    thread::sleep(Duration::from_millis(200));
    assert_eq!(p.worker("a")["checks"], 2, "ignored while paused");
    assert_eq!(
        request("POST", &p.url("/api/workers/a/resume"), Some("Bearer adm1n")).status,
        200
    );
    assert_eq!(report(&p, "/push/a/1"), 200);
    p.wait_worker("a", 5 * SEC, |w| w["checks"] == 3);

    // b removed: its endpoint goes at once. a turned into a pulled worker: a new target.
    reload(
        &p,
        &cfg(&[pulled.clone(), push("a", "1h", "2h")]),
        "0 added, 1 removed, 0 changed, 2 unchanged",
    );
    assert_eq!(report(&p, "/push/b"), 404);
    eventually("b gone", 3 * SEC, || names(&p) == ["web:pull", "a:push"]);
    let last_report = p.worker("a")["push"]["last_report_at"].clone();
    assert!(last_report.is_string());

    // A restart keeps a's last report and history.
    p.signal("TERM");
    let mut p = p;
    assert_eq!(p.wait_exit(5 * SEC), Some(0));
    drop(p);
    let p = Pinger::start_in(dir.clone(), &cfg(&[pulled.clone(), push("a", "1h", "2h")]), &env);
    let a = p.worker("a");
    assert_eq!(
        a["push"]["last_report_at"], last_report,
        "the state file kept the last report"
    );
    assert_eq!((a["checks"].as_u64(), a["state"].as_str()), (Some(3), Some("down")));
    assert_eq!(a["push"]["reports"]["success"], 2);

    let as_pulled = format!(r#"{{"name": "a", "url": "{}", "interval": "1h"}}"#, target.url("/a"));
    reload(
        &p,
        &cfg(&[as_pulled, pulled]),
        "0 added, 0 removed, 1 changed, 1 unchanged",
    );
    eventually("a pulled", 3 * SEC, || names(&p) == ["a:pull", "web:pull"]);
    assert_eq!(report(&p, "/push/a"), 404, "a pulled worker takes no reports");
    assert!(p.worker("a")["push"].is_null());
}
