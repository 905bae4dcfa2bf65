//! `once` as the whole monitor for scheduled use: a state file carried from run to run (history,
//! uptime, alert streaks), alerts on transitions counted across runs, SIGTERM mid-run, paused
//! workers, and `--publish DIR` (the page, `status.json`, badges) in a real browser.

use crate::common::providers::any_webhook;
use crate::common::{Action, FakeServer, Pinger, SEC, command, ok, run, status, temp_dir};
use crate::integration::browser::{chromium, headless};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// A target that answers 200 while `healthy` is set, else 502.
fn switchable() -> (Arc<AtomicBool>, FakeServer) {
    let healthy = Arc::new(AtomicBool::new(true));
    let h = Arc::clone(&healthy);
    let target = FakeServer::start(move |_, _| if h.load(Ordering::SeqCst) { ok() } else { status(502) });
    (healthy, target)
}

fn once_json(dir: &PathBuf, extra: &[&str]) -> (i32, Value, String) {
    let mut args = vec!["once", "--json", "--state-file", "state.json"];
    args.extend_from_slice(extra);
    let (code, out, err) = run(dir, &args, &[]);
    let doc = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}\n{err}"));
    (code, doc, err)
}

/// The key structure of a JSON value: objects by key (sorted), arrays by their first element.
fn shape(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(m.iter().map(|(k, v)| (k.clone(), shape(v))).collect()),
        Value::Array(a) => Value::Array(a.first().map(shape).into_iter().collect()),
        // `null` where the other has a value (`next_check_at`: once schedules nothing).
        _ => Value::String("scalar".into()),
    }
}

#[test]
fn runs_accumulate_history_and_alert_once_per_transition() {
    let (healthy, target) = switchable();
    let hook = any_webhook();
    let d = temp_dir("scheduled");
    std::fs::write(
        d.join("pinger.json"),
        format!(
            r#"{{"workers": [{{"name": "flip", "url": "{}?key=hidden", "retries": 0}}],
                "alerts": {{"webhook_url": "{}", "format": "json", "failure_threshold": 2, "success_threshold": 2}}}}"#,
            target.url("/"),
            hook.url("/hook/secret-path")
        ),
    )
    .unwrap();
    // up, down, down (the threshold: the down alert), down, up, up (the recovery), up.
    let plan = [true, false, false, false, true, true, true];
    let mut alerts_after = Vec::new();
    for (i, &up) in plan.iter().enumerate() {
        healthy.store(up, Ordering::SeqCst);
        let (code, doc, err) = once_json(&d, &[]);
        assert_eq!(code, if up { 0 } else { 1 }, "run {i}: {err}");
        let flip = &doc["workers"][0];
        assert_eq!(flip["name"], "flip");
        assert_eq!(flip["checks"], i + 1, "run {i}: the counters carry on");
        assert_eq!(flip["history"].as_array().map(Vec::len), Some(i + 1), "run {i}");
        let failures = plan[..=i].iter().filter(|u| !**u).count();
        assert_eq!(flip["successes"], i + 1 - failures);
        let want = 100.0 * (i + 1 - failures) as f64 / (i + 1) as f64;
        let got = flip["uptime_percent"]["24h"].as_f64().unwrap();
        assert!((got - want).abs() < 0.01, "run {i}: uptime {got}, expected {want}");
        // The run has ended: its alerts were delivered before it exited.
        alerts_after.push(hook.accepted().len());
    }
    assert_eq!(
        alerts_after,
        [0, 0, 1, 1, 1, 2, 2],
        "down on the second failing run only, up once after two good runs"
    );
    let bodies: Vec<Value> = hook
        .accepted()
        .iter()
        .map(|s| serde_json::from_str(&s.body).unwrap())
        .collect();
    assert_eq!(
        (bodies[0]["worker"].as_str(), bodies[0]["state"].as_str()),
        (Some("flip"), Some("down"))
    );
    assert_eq!(bodies[0]["error"], "status 502");
    assert_eq!(bodies[1]["state"], "up");
    let state = std::fs::read_to_string(d.join("state.json")).unwrap();
    assert!(!state.contains("hidden") && !state.contains("secret-path"), "{state}");
    assert!(
        state.contains("\"streaks\""),
        "the alert streaks are in the state file: {state}"
    );
    drop(target);
}

#[test]
fn an_old_state_file_without_streaks_resumes_from_the_failures() {
    // Two failing runs without alert channels, then a run with them: the failures counted
    // before still count (format 2 files of 0.2 have no streaks).
    let (healthy, target) = switchable();
    healthy.store(false, Ordering::SeqCst);
    let hook = any_webhook();
    let d = temp_dir("scheduled-old");
    let cfg = |alerts: bool| {
        let alerts = if alerts {
            format!(
                r#", "alerts": {{"webhook_url": "{}", "format": "json", "failure_threshold": 3}}"#,
                hook.url("/h")
            )
        } else {
            String::new()
        };
        format!(
            r#"{{"workers": [{{"name": "t", "url": "{}", "retries": 0}}]{alerts}}}"#,
            target.url("/")
        )
    };
    std::fs::write(d.join("pinger.json"), cfg(false)).unwrap();
    once_json(&d, &[]);
    once_json(&d, &[]);
    assert!(
        !std::fs::read_to_string(d.join("state.json"))
            .unwrap()
            .contains("streaks")
    );
    std::fs::write(d.join("pinger.json"), cfg(true)).unwrap();
    let (_, doc, _) = once_json(&d, &[]);
    assert_eq!(doc["workers"][0]["consecutive_failures"], 3);
    assert_eq!(hook.accepted().len(), 1, "the third failure reaches the threshold");
    once_json(&d, &[]);
    assert_eq!(hook.accepted().len(), 1, "and is not announced again");
}

#[test]
fn without_a_state_file_alerts_are_off_and_say_so() {
    let down = FakeServer::always(status(503));
    let hook = any_webhook();
    let d = temp_dir("scheduled-nostate");
    std::fs::write(
        d.join("pinger.json"),
        format!(
            r#"{{"workers": [{{"url": "{}", "retries": 0}}], "alerts": {{"webhook_url": "{}", "failure_threshold": 1}}}}"#,
            down.url("/"),
            hook.url("/h")
        ),
    )
    .unwrap();
    let (code, _, err) = run(&d, &["once"], &[]);
    assert_eq!(code, 1);
    assert!(err.contains("alerts are off"), "{err}");
    assert_eq!(hook.server.count(), 0);
}

#[test]
fn paused_workers_are_reported_not_checked() {
    let up = FakeServer::always(ok());
    let asleep = FakeServer::always(status(503));
    let d = temp_dir("scheduled-paused");
    std::fs::write(
        d.join("pinger.json"),
        format!(
            r#"{{"workers": [{{"name": "api", "url": "{}"}}, {{"name": "asleep", "url": "{}", "paused": true}}]}}"#,
            up.url("/"),
            asleep.url("/")
        ),
    )
    .unwrap();
    let (code, out, err) = run(&d, &["once", "--state-file", "s.json"], &[]);
    assert_eq!(code, 0, "a paused worker is not down: {out}{err}");
    assert_eq!(asleep.count(), 0, "never checked");
    let line = out.lines().find(|l| l.starts_with("asleep")).expect(&out);
    assert!(line.contains("paused"), "{out}");
    assert!(err.contains("1 of 1 worker(s) up, 1 paused"), "{err}");
    let (_, doc, _) = once_json(&d, &["--state-file", "s.json"]);
    assert_eq!(doc["workers"][1]["state"], "paused");
    assert_eq!(doc["workers"][1]["checks"], 0);
}

#[test]
fn sigterm_mid_run_saves_the_checks_that_finished() {
    let fast = FakeServer::always(ok());
    let hang = FakeServer::always(Action::Hang);
    let d = temp_dir("scheduled-term");
    std::fs::write(
        d.join("pinger.json"),
        format!(
            r#"{{"workers": [{{"name": "fast", "url": "{}"}}, {{"name": "stuck", "url": "{}", "timeout": "10m"}}]}}"#,
            fast.url("/"),
            hang.url("/")
        ),
    )
    .unwrap();
    let child = command(&d, &[])
        .args(["once", "--state-file", "state.json", "--publish", "public"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    fast.wait_for(1, 10 * SEC);
    hang.wait_for(1, 10 * SEC);
    // The fast check's result reaches the main thread a moment after its request.
    std::thread::sleep(SEC / 2);
    let sent = Instant::now();
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let out = child.wait_with_output().unwrap();
    let took = sent.elapsed();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(took < 5 * SEC, "exits promptly, took {took:?}");
    assert_eq!(
        out.status.code(),
        Some(1),
        "an interrupted run is not a clean one: {err}"
    );
    assert!(err.contains("interrupted: 1 of 2 check(s) finished"), "{err}");
    let state: Value = serde_json::from_slice(&std::fs::read(d.join("state.json")).expect("saved")).unwrap();
    assert_eq!(state["workers"]["fast"]["checks"], 1, "{state}");
    assert_eq!(state["workers"]["stuck"]["checks"], 0, "{state}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("not checked: the run was interrupted"), "{stdout}");
}

fn read(dir: &Path, file: &str) -> String {
    std::fs::read_to_string(dir.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"))
}

/// A published fleet: `api` up, `db` down, `asleep` paused, `api`'s URL carrying a secret.
fn publish_fleet(d: &Path, up: &FakeServer, down: &FakeServer) {
    std::fs::write(
        d.join("pinger.json"),
        format!(
            r#"{{"workers": [{{"name": "api", "url": "{}?token=s3cret", "headers": {{"Authorization": "Bearer hdr-secret"}}}},
                            {{"name": "db", "url": "{}", "retries": 0}},
                            {{"name": "asleep", "url": "{}", "paused": true}}]}}"#,
            up.url("/"),
            down.url("/"),
            up.url("/asleep")
        ),
    )
    .unwrap();
}

#[test]
fn publish_writes_the_page_status_json_and_badges_with_relative_links() {
    let up = FakeServer::always(ok());
    let down = FakeServer::always(status(503));
    let d = temp_dir("scheduled-publish");
    publish_fleet(&d, &up, &down);
    for _ in 0..2 {
        let (code, out, err) = run(&d, &["once", "--state-file", "s.json", "--publish", "public"], &[]);
        assert_eq!(code, 1, "db is down: {out}{err}");
    }
    let public = d.join("public");
    let mut names: Vec<String> = std::fs::read_dir(&d)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["pinger.json", "public", "s.json"],
        "no temporary folder is left"
    );
    let page = read(&public, "index.html");
    for name in ["api", "db", "asleep"] {
        assert!(page.contains(&format!("id=\"w-{name}\"")), "{name} has a row");
        let svg = read(&public, &format!("badge/{name}.svg"));
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""), "{svg}");
    }
    assert!(read(&public, "badge/db.svg").contains("db: down"));
    assert!(read(&public, "badge/asleep.svg").contains("asleep: paused"));
    assert!(
        page.contains("href=\"status.json\"") && !page.contains("href=\"/"),
        "relative links only"
    );
    assert!(page.contains("id=\"last-run\""), "the page says when the run was");
    assert!(
        !page.contains("/metrics") && !page.contains("/api/"),
        "no control that needs a server"
    );

    let status: Value = serde_json::from_str(&read(&public, "status.json")).unwrap();
    assert_eq!(status["workers"][0]["checks"], 2, "two runs' checks");
    assert_eq!(status["workers"][1]["state"], "down");
    let everything = format!(
        "{page}{}{}",
        read(&public, "status.json"),
        read(&public, "badge/api.svg")
    );
    assert!(
        !everything.contains("s3cret") && !everything.contains("hdr-secret"),
        "secrets are redacted"
    );

    // The same shape as the service's /status for the same configuration.
    let cfg = read(&d, "pinger.json").replacen('{', r#"{"self_ping": false, "#, 1);
    let p = Pinger::start(&cfg, &[]);
    p.wait_worker("api", 10 * SEC, |w| w["checks"].as_u64() >= Some(1));
    let served = p.status();
    assert_eq!(shape(&status), shape(&served), "status.json has /status's shape");
}

#[test]
fn a_pause_or_resume_made_in_the_service_holds_in_once_until_the_configuration_changes() {
    let target = FakeServer::always(ok());
    let d = temp_dir("scheduled-api-pause");
    let hits = |path: &str| target.seen().iter().filter(|s| s.path == path).count();
    let config = |w: bool, v: bool| {
        format!(
            r#"{{"self_ping": false, "state_file": "s.json", "workers": [
                {{"name": "w", "url": "{}", "interval": "1h", "paused": {w}}},
                {{"name": "v", "url": "{}", "interval": "1h", "paused": {v}}}]}}"#,
            target.url("/w"),
            target.url("/v")
        )
    };
    let token = "Bearer adm1n-s3cret";
    let mut p = Pinger::start_in(
        d.clone(),
        &config(false, true),
        &[("PINGER_ADMIN_TOKEN", "adm1n-s3cret")],
    );
    p.wait_worker("w", 10 * SEC, |w| w["checks"] == 1);
    assert_eq!(
        crate::common::request("POST", &p.url("/api/workers/w/pause"), Some(token)).status,
        200
    );
    assert_eq!(
        crate::common::request("POST", &p.url("/api/workers/v/resume"), Some(token)).status,
        200
    );
    p.wait_worker("v", 5 * SEC, |w| w["checks"] == 1);
    p.signal("TERM");
    assert_eq!(p.wait_exit(5 * SEC), Some(0), "{}", p.log());
    drop(p);

    let once = |w: bool, v: bool| {
        std::fs::write(d.join("pinger.json"), config(w, v)).unwrap();
        let (hits_w, hits_v) = (hits("/w"), hits("/v"));
        let (code, out, err) = run(&d, &["once", "--state-file", "s.json"], &[]);
        assert_eq!(code, 0, "{out}{err}");
        (hits("/w") - hits_w, hits("/v") - hits_v)
    };
    assert_eq!(
        once(false, true),
        (0, 1),
        "the configuration as it was: the API's pause and resume hold"
    );
    assert_eq!(once(false, true), (0, 1), "and go on holding");
    assert_eq!(once(true, false), (0, 1), "a changed configuration wins");
    assert_eq!(
        once(false, true),
        (1, 0),
        "changed back: the configuration still decides"
    );
}

#[test]
fn a_run_that_changes_nothing_publishes_the_same_files() {
    let up = FakeServer::always(ok());
    let d = temp_dir("scheduled-same");
    let config = |paused: bool| {
        let cfg = format!(
            r#"{{"workers": [{{"name": "w", "url": "{}", "paused": {paused}}}]}}"#,
            up.url("/")
        );
        std::fs::write(d.join("pinger.json"), cfg).unwrap();
    };
    let publish = || {
        let (code, out, err) = run(&d, &["once", "--state-file", "s.json", "--publish", "site"], &[]);
        assert_eq!(code, 0, "{out}{err}");
        (
            read(&d.join("site"), "index.html"),
            read(&d.join("site"), "status.json"),
        )
    };
    config(false);
    publish();
    config(true);
    let paused = publish();
    assert!(paused.0.contains("All 1 worker paused"));
    std::thread::sleep(SEC + SEC / 10);
    assert_eq!(publish(), paused, "nothing was checked, so nothing changed");
    assert_eq!(up.count(), 1);
}

/// Serves `root` over HTTP on 127.0.0.1 with Python's plain static server; killed on drop.
struct StaticServer(std::process::Child, u16);

impl StaticServer {
    fn start(root: &Path) -> Option<StaticServer> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .ok()?
            .local_addr()
            .ok()?
            .port();
        let child = std::process::Command::new("python3")
            .args(["-m", "http.server", "--bind", "127.0.0.1", &port.to_string()])
            .current_dir(root)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let end = Instant::now() + 10 * SEC;
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > end {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(StaticServer(child, port))
    }
}

impl Drop for StaticServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn the_published_folder_renders_in_chromium_from_file_and_a_static_server() {
    let Some(browser) = chromium() else { return };
    let up = FakeServer::always(ok());
    let down = FakeServer::always(status(503));
    let d = temp_dir("scheduled-browser");
    publish_fleet(&d, &up, &down);
    let (code, out, err) = run(&d, &["once", "--state-file", "s.json", "--publish", "public"], &[]);
    assert_eq!(code, 1, "{out}{err}");
    let public = d.join("public").canonicalize().unwrap();
    let server = StaticServer::start(&public).expect("python3 -m http.server");
    for url in [
        format!("file://{}/index.html", public.display()),
        format!("http://127.0.0.1:{}/", server.1),
    ] {
        let out = headless(&browser, &["--dump-dom"], &url);
        let dom = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && dom.contains("</html>"),
            "{url}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(dom.contains("1 of 3 workers down"), "{url}: headline in\n{dom}");
        for (name, state) in [("api", "up"), ("db", "down"), ("asleep", "paused")] {
            let start = dom
                .find(&format!("id=\"w-{name}\""))
                .unwrap_or_else(|| panic!("{url}: no row for {name}"));
            let row = &dom[start..start + dom[start..].find("</tr>").unwrap()];
            assert!(
                row.contains(&format!(">{state}</span>")),
                "{url}: {name} should read {state}"
            );
        }
        assert!(dom.contains("href=\"status.json\""));
    }
    // Its links resolve on the static server.
    for path in ["status.json", "badge/api.svg"] {
        let r = crate::common::request("GET", &format!("http://127.0.0.1:{}/{path}", server.1), None);
        assert_eq!(r.status, 200, "{path}");
    }
}

/// One worker `api` (paused or not) against `url`, written to `d`.
fn one_worker(d: &Path, url: &str, paused: bool) {
    let cfg = format!(r#"{{"workers": [{{"name": "api", "url": "{url}", "paused": {paused}}}]}}"#);
    std::fs::write(d.join("pinger.json"), cfg).unwrap();
}

#[test]
fn publish_to_a_static_space_commits_once_per_run_with_changes() {
    use crate::common::hub::{FakeHub, READ_TOKEN, WRITE_TOKEN};
    let hub = FakeHub::with_repo("spaces/me/status");
    let up = FakeServer::always(ok());
    let d = temp_dir("scheduled-space");
    let endpoint = hub.endpoint();
    let once = |token: &str| {
        let env = [("HF_TOKEN", token), ("HF_ENDPOINT", endpoint.as_str())];
        let args = ["once", "--state-file", "s.json", "--publish", "hf://spaces/me/status"];
        let (code, out, err) = run(&d.to_path_buf(), &args, &env);
        assert!(
            !out.contains(token) && !err.contains(token),
            "the token is a secret: {out}{err}"
        );
        (code, err)
    };
    let commits = || hub.repo("spaces/me/status").commits;
    one_worker(&d, &up.url("/"), false);
    for run in 1..=2 {
        let (code, err) = once(WRITE_TOKEN);
        assert_eq!(code, 0, "{err}");
        assert_eq!(commits().len(), run, "one commit per run with changes: {err}");
    }
    let c = &commits()[1];
    assert!(c.summary.starts_with("master-pinger: status as of "), "{c:?}");
    let mut paths = c.paths.clone();
    paths.sort();
    assert_eq!(paths, ["badge/api.svg", "index.html", "status.json"]);
    let files = hub.repo("spaces/me/status").files;
    let status: Value = serde_json::from_slice(&files["status.json"]).unwrap();
    assert_eq!(status["workers"][0]["checks"], 2);
    assert!(String::from_utf8_lossy(&files["index.html"]).contains("href=\"status.json\""));

    // Paused: the page changes once, then the runs change nothing and commit nothing.
    one_worker(&d, &up.url("/"), true);
    once(WRITE_TOKEN);
    assert_eq!(commits().len(), 3);
    let (code, err) = once(WRITE_TOKEN);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("nothing changed"), "{err}");
    assert_eq!(commits().len(), 3, "no commit without changes");

    // A token that cannot write: the run says so and fails; the Space is untouched.
    one_worker(&d, &up.url("/"), false);
    let (code, err) = once(READ_TOKEN);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("cannot publish to hf://spaces/me/status"), "{err}");
    assert_eq!(commits().len(), 3);
    assert_eq!(
        hub.problems(),
        Vec::<String>::new(),
        "every request had the Hub's shape"
    );
}

#[test]
fn publish_to_a_bucket_puts_every_file_under_the_prefix() {
    use crate::common::s3::{BUCKET, Moto};
    let Some(moto) = Moto::start() else { return };
    let up = FakeServer::always(ok());
    let d = temp_dir("scheduled-bucket");
    let env: Vec<(&str, String)> = moto.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let to = format!("s3://{BUCKET}/site");
    let once = || {
        let (code, out, err) = run(
            &d.to_path_buf(),
            &["once", "--state-file", "s.json", "--publish", &to],
            &env,
        );
        assert!(!err.contains(&moto.secret_access_key), "{err}");
        assert_eq!(code, 0, "{out}{err}");
        err
    };
    one_worker(&d, &up.url("/"), false);
    once();
    let client = crate::integration::remote::s3_client(&moto, &moto.secret_access_key);
    let get = |key: &str| client.get(BUCKET, key).unwrap().map(|o| o.body);
    let status: Value = serde_json::from_slice(&get("site/status.json").expect("status.json")).unwrap();
    assert_eq!(status["workers"][0]["name"], "api");
    assert!(get("site/index.html").is_some_and(|b| b.starts_with(b"<!doctype html>")));
    assert!(get("site/badge/api.svg").is_some_and(|b| b.starts_with(b"<svg")));
    one_worker(&d, &up.url("/"), true);
    once();
    assert!(once().contains("nothing changed"));
}

#[test]
fn heartbeat_workers_are_listed_not_checked() {
    let up = FakeServer::always(ok());
    let d = temp_dir("scheduled-push");
    std::fs::write(
        d.join("pinger.json"),
        format!(
            r#"{{"workers": [{{"name": "api", "url": "{}"}},
                {{"name": "nightly-backup", "push": {{"period": "1d", "grace": "1h"}}, "token": "${{PT}}"}}]}}"#,
            up.url("/")
        ),
    )
    .unwrap();
    let (code, out, err) = run(
        &d,
        &["once", "--state-file", "s.json", "--publish", "public"],
        &[("PT", "push-secret-1")],
    );
    assert_eq!(code, 0, "{out}{err}");
    let line = out.lines().find(|l| l.starts_with("nightly-backup")).expect(&out);
    assert!(line.contains("push") && line.contains("not checked"), "{out}");
    assert!(err.contains("1 of 1 worker(s) up, 1 push (not checked)"), "{err}");
    assert!(!format!("{out}{err}").contains("push-secret-1"));
    assert_eq!(up.count(), 1);
}

#[test]
fn a_remote_state_carries_history_across_runs_without_a_file() {
    use crate::common::hub::{FakeHub, WRITE_TOKEN};
    let hub = FakeHub::with_repo("datasets/me/state");
    let up = FakeServer::always(ok());
    let hook = any_webhook();
    let d = temp_dir("scheduled-remote");
    std::fs::write(
        d.join("pinger.json"),
        format!(
            r#"{{"workers": [{{"name": "api", "url": "{}", "retries": 0}}],
                "alerts": {{"webhook_url": "{}", "format": "json", "failure_threshold": 2}}}}"#,
            up.url("/"),
            hook.url("/h")
        ),
    )
    .unwrap();
    let endpoint = hub.endpoint();
    let env = [
        ("HF_TOKEN", WRITE_TOKEN),
        ("HF_ENDPOINT", endpoint.as_str()),
        ("PINGER_STATE_URL", "hf://datasets/me/state/pinger-state.json"),
    ];
    for n in 1..=3 {
        let (code, out, err) = run(&d, &["once", "--json"], &env);
        assert_eq!(code, 0, "{out}{err}");
        assert!(!err.contains("alerts are off"), "a remote state is a state: {err}");
        let doc: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(
            doc["workers"][0]["checks"], n,
            "run {n}: the history comes from the dataset"
        );
    }
    let repo = hub.repo("datasets/me/state");
    assert_eq!(repo.commits.len(), 3, "one write a run");
    let saved: Value = serde_json::from_slice(&repo.files["pinger-state.json"]).unwrap();
    assert_eq!(saved["workers"]["api"]["checks"], 3);
    assert!(!d.join("pinger-state.json").exists(), "no local file");
    assert_eq!(hub.problems(), Vec::<String>::new());
}
