//! `master-pinger once`: every worker checked one time, in parallel, with retries; one line per
//! worker or the `/status` document; exit 0 all up, 1 any down, 2 bad configuration.

use crate::common::{FakeServer, ok, run, status, temp_dir};
use std::time::Duration;

fn dir_with(config: &str) -> std::path::PathBuf {
    let d = temp_dir("once");
    std::fs::write(d.join("pinger.json"), config).unwrap();
    d
}

/// A port nothing listens on (bound, read back, released).
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

#[test]
fn all_up_exits_0_with_one_line_per_worker() {
    let a = FakeServer::always(ok());
    let b = FakeServer::always(status(204));
    let d = dir_with(&format!(
        r#"{{"workers": [{{"name": "api", "url": "{}"}}, {{"name": "rag-space", "url": "{}"}}]}}"#,
        a.url("/health"),
        b.url("/")
    ));
    let (code, out, err) = run(&d, &["once"], &[]);
    assert_eq!(code, 0, "{out}{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    let cols = |l: &str| l.split_whitespace().map(str::to_string).collect::<Vec<_>>();
    assert_eq!(cols(lines[0])[..3], ["api", "up", "200"], "{out}");
    assert_eq!(cols(lines[1])[..3], ["rag-space", "up", "204"], "{out}");
    assert!(lines[0].contains(" ms  1 attempt"), "{out}");
    assert!(err.contains("2 of 2 worker(s) up"), "{err}");
    assert_eq!((a.count(), b.count()), (1, 1), "each worker is checked exactly once");
}

#[test]
fn any_down_exits_1_after_its_retries_and_names_the_error() {
    let up = FakeServer::always(ok());
    let flaky = FakeServer::start(|n, _| if n == 0 { status(503) } else { ok() });
    let down = FakeServer::always(status(503));
    let refused = closed_port();
    let d = dir_with(&format!(
        r#"{{"defaults": {{"retries": 2, "backoff": "10ms", "timeout": "2s"}},
            "workers": [{{"name": "up", "url": "{}"}}, {{"name": "flaky", "url": "{}"}},
                        {{"name": "down", "url": "{}"}},
                        {{"name": "gone", "url": "http://127.0.0.1:{refused}/", "retries": 0}}]}}"#,
        up.url("/"),
        flaky.url("/"),
        down.url("/")
    ));
    let (code, out, err) = run(&d, &["once"], &[]);
    assert_eq!(code, 1, "{out}{err}");
    let line = |name: &str| {
        out.lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("no line for {name}: {out}"))
            .to_string()
    };
    assert!(line("up").contains(" up "), "{out}");
    assert!(
        line("flaky").contains(" up ") && line("flaky").contains("2 attempts"),
        "{out}"
    );
    let d_line = line("down");
    assert!(d_line.contains(" down  503 "), "{out}");
    assert!(d_line.contains("3 attempts") && d_line.ends_with("status 503"), "{out}");
    let g = line("gone");
    assert!(g.contains(" down  -  ") && g.ends_with("connection refused"), "{out}");
    assert_eq!(down.count(), 3, "retries + 1 attempts");
    assert!(err.contains("2 of 4 worker(s) up"), "{err}");
}

#[test]
fn bad_configuration_exits_2_and_names_the_field() {
    let d = dir_with(r#"{"workers": [{"url": "ftp://x/"}]}"#);
    let (code, out, err) = run(&d, &["once"], &[]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains("pinger.json: workers[0].url"), "{err}");
    assert!(out.is_empty(), "{out}");
    let (code, _, err) = run(&d, &["once", "--listen", "127.0.0.1:0"], &[]);
    assert_eq!(code, 2);
    assert!(err.contains("unknown option \"--listen\" for once"), "{err}");
}

#[test]
fn json_prints_the_status_document() {
    let up = FakeServer::always(ok());
    let down = FakeServer::always(status(500));
    let d = dir_with(&format!(
        r#"{{"workers": [{{"name": "up", "url": "{}?token=s3cret"}},
                        {{"name": "down", "url": "{}", "retries": 0}}]}}"#,
        up.url("/"),
        down.url("/")
    ));
    let (code, out, err) = run(&d, &["once", "--json"], &[]);
    assert_eq!(code, 1, "{out}{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("--json prints JSON");
    assert_eq!(v["status"], "degraded");
    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(v["self_ping"], serde_json::Value::Null);
    let w = &v["workers"];
    assert_eq!(w[0]["name"], "up");
    assert_eq!(w[0]["state"], "up");
    assert_eq!(w[0]["checks"], 1);
    assert_eq!(w[0]["last_check"]["status_code"], 200);
    assert_eq!(w[0]["history"].as_array().map(Vec::len), Some(1));
    assert!(!out.contains("s3cret"), "query values are redacted: {out}");
    assert_eq!(w[1]["state"], "down");
    assert_eq!(w[1]["last_check"]["error"], "status 500");
    assert_eq!(w[1]["last_check"]["attempts"], 1);

    let all_up = dir_with(&format!(r#"{{"workers": [{{"url": "{}"}}]}}"#, up.url("/")));
    let (code, out, _) = run(&all_up, &["once", "--json"], &[]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["status"], "ok");
}

#[test]
fn workers_are_checked_in_parallel() {
    // Each request is answered once all 8 have arrived, and with 503 when they have not within
    // 5 s: one check after another, the first would wait alone and fail. A loaded machine only
    // has to start 8 checks within those 5 s.
    let arrived = std::sync::Arc::new((std::sync::Mutex::new(0usize), std::sync::Condvar::new()));
    let all = std::sync::Arc::clone(&arrived);
    let slow = FakeServer::start(move |_, _| {
        let (n, cv) = &*all;
        let mut n = n.lock().unwrap();
        *n += 1;
        cv.notify_all();
        let (n, _) = cv.wait_timeout_while(n, Duration::from_secs(5), |n| *n < 8).unwrap();
        if *n >= 8 { ok() } else { status(503) }
    });
    let workers: Vec<String> = (0..8)
        .map(|i| {
            format!(
                r#"{{"name": "w{i}", "url": "{}", "retries": 0, "timeout": "20s"}}"#,
                slow.url(&format!("/{i}"))
            )
        })
        .collect();
    let d = dir_with(&format!(r#"{{"workers": [{}]}}"#, workers.join(",")));
    let (code, out, err) = run(&d, &["once"], &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(out.lines().count(), 8);
}

#[test]
fn no_workers_is_all_up() {
    let d = temp_dir("once");
    let (code, out, err) = run(&d, &["once"], &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.is_empty());
    assert!(err.contains("no workers configured"), "{err}");
}
