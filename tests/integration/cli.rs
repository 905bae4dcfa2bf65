//! Command line and configuration: help, version, `check`, and bad configurations (exit 2).

use crate::common::{run, temp_dir};

fn with_config(config: &str) -> std::path::PathBuf {
    let d = temp_dir("cli");
    std::fs::write(d.join("pinger.json"), config).unwrap();
    d
}

#[test]
fn help_and_version() {
    let d = temp_dir("cli");
    let (code, out, _) = run(&d, &["--help"], &[]);
    assert_eq!(code, 0);
    assert!(out.contains("master-pinger check [--config PATH]"));
    assert!(out.contains("master-pinger once [--config PATH] [--json]"), "{out}");
    let (code, out, _) = run(&d, &["--version"], &[]);
    // build.rs passes the target triple; the qemu and container tests check other targets'.
    let target = env!("MASTER_PINGER_TARGET");
    assert!(
        target.starts_with(std::env::consts::ARCH) && target.contains("-linux-"),
        "{target}"
    );
    assert_eq!(
        (code, out.trim()),
        (
            0,
            format!("master-pinger {} ({target})", env!("CARGO_PKG_VERSION")).as_str()
        )
    );
}

#[test]
fn bad_usage_exits_2() {
    let d = temp_dir("cli");
    let (code, _, err) = run(&d, &["--frobnicate"], &[]);
    assert_eq!(code, 2);
    assert!(err.contains("unknown option \"--frobnicate\""), "{err}");
}

#[test]
fn check_prints_the_schedule() {
    let d = with_config(
        r#"{"defaults": {"interval": "5m", "backoff": "5s"},
            "workers": [{"url": "https://your-space.hf.space/health", "interval_minutes": 2},
                        {"name": "rag", "url": "https://another.hf.space/health", "method": "HEAD", "expect_status": [200, 204]}]}"#,
    );
    let (code, out, err) = run(&d, &["check"], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("your-space  GET https://your-space.hf.space/health"),
        "{out}"
    );
    assert!(out.contains("every 2m"), "{out}");
    assert!(out.contains("rag  HEAD https://another.hf.space/health"), "{out}");
    assert!(out.contains("3 retries (waits 5s, 10s, 20s)"), "{out}");
    assert!(out.contains("expect status 200,204"), "{out}");
    assert!(err.contains("self-ping is off"), "{err}");
}

#[test]
fn check_warns_about_hf_ports_sleep_windows_and_loopback_self_ping() {
    let d = with_config(
        r#"{"self_ping": {"url": "http://127.0.0.1:7860/health"},
            "workers": [{"url": "http://x.example.com:5000/"},
                        {"url": "https://app.onrender.com/", "interval": "20m"},
                        {"url": "https://s.hf.space/", "interval": "3d"}]}"#,
    );
    let (code, _, err) = run(&d, &["check"], &[("SPACE_HOST", "me.hf.space")]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("port 5000 is blocked on Hugging Face Spaces"), "{err}");
    assert!(err.contains("interval 20m is longer than Render"), "{err}");
    assert!(err.contains("interval 3d is longer than Hugging Face Spaces"), "{err}");
    assert!(err.contains("loopback"), "{err}");
}

#[test]
fn every_problem_is_reported_with_source_and_field() {
    let d = with_config(
        r#"{"workers": [{"url": "https://a.hf.space/"},
                        {"url": "https://b.hf.space/", "intervl": "5m"},
                        {"url": "ftp://c/", "interval": "soon", "retries": 11, "timeout": "50ms"}],
            "history": 5, "bogus": 1}"#,
    );
    let (code, out, err) = run(&d, &["--config", "pinger.json"], &[]);
    assert_eq!(code, 2, "{out}{err}");
    for expected in [
        "pinger.json: workers[1].intervl: unknown field \"intervl\"",
        "pinger.json: workers[2].url: expected an http or https URL",
        "pinger.json: workers[2].interval: expected a duration",
        "pinger.json: workers[2].retries: expected a whole number from 0 to 10, got 11",
        "pinger.json: workers[2].timeout: expected a duration from 100ms to 10m, got 50ms",
        "pinger.json: history: expected a whole number from 10 to 10000, got 5",
        "pinger.json: bogus: unknown field",
        "7 configuration problems found; not started",
    ] {
        assert!(err.contains(expected), "missing {expected:?} in:\n{err}");
    }
    assert!(!err.contains("listening"), "never starts");
}

#[test]
fn environment_sources_are_named() {
    let d = temp_dir("cli");
    let (code, _, err) = run(
        &d,
        &["check"],
        &[
            (
                "PINGER_WORKERS",
                r#"[{"url": "http://ok/"}, {"url": "http://x/", "interval": "0s"}]"#,
            ),
            ("PORT", "http"),
        ],
    );
    assert_eq!(code, 2);
    assert!(
        err.contains("PINGER_WORKERS: workers[1].interval: expected a duration from 1s"),
        "{err}"
    );
    let (code, _, err) = run(&d, &[], &[("PORT", "nope")]);
    assert_eq!(code, 2);
    assert!(err.contains("PORT: expected a port number"), "{err}");
    let (code, _, err) = run(&d, &["check"], &[("PINGER_WORKERS", "[{")]);
    assert_eq!(code, 2);
    assert!(err.contains("PINGER_WORKERS: invalid JSON"), "{err}");
}

#[test]
fn unset_variables_two_interval_forms_duplicates_and_reserved_names() {
    let d = with_config(
        r#"{"workers": [{"name": "a", "url": "http://h/${NOPE}"},
                        {"name": "a", "url": "http://h/", "interval": "1m", "interval_seconds": 60},
                        {"name": "self", "url": "http://h/"},
                        {"name": "bad name!", "url": "http://h/"}]}"#,
    );
    let (code, _, err) = run(&d, &["check"], &[]);
    assert_eq!(code, 2);
    assert!(
        err.contains("workers[0].url: environment variable NOPE is not set"),
        "{err}"
    );
    assert!(
        err.contains("workers[1]: give only one of interval, interval_seconds"),
        "{err}"
    );
    assert!(
        err.contains("workers[1].name: the name \"a\" is used by another worker"),
        "{err}"
    );
    assert!(err.contains("workers[2].name: \"self\" is reserved"), "{err}");
    assert!(err.contains("workers[3].name: expected 1-64 characters"), "{err}");
}

#[test]
fn invalid_json_names_line_and_column() {
    let d = with_config("{\n  \"workers\": [\n    {\"url\": \"http://a/\",}\n  ]\n}");
    let (code, _, err) = run(&d, &["check"], &[]);
    assert_eq!(code, 2);
    assert!(
        err.contains("pinger.json: invalid JSON") && err.contains("line 3"),
        "{err}"
    );
}

#[test]
fn missing_config_file_is_an_error() {
    let d = temp_dir("cli");
    let (code, _, err) = run(&d, &["check", "--config", "nope.json"], &[]);
    assert_eq!(code, 2);
    assert!(err.contains("nope.json: cannot read the configuration file"), "{err}");
    let (code, _, err) = run(&d, &["check"], &[("PINGER_CONFIG", "also-nope.json")]);
    assert_eq!(code, 2);
    assert!(err.contains("also-nope.json"), "{err}");
}

#[test]
fn no_file_and_no_workers_is_valid() {
    let d = temp_dir("cli");
    let (code, out, err) = run(&d, &["check"], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("workers: 0"));
    assert!(err.contains("no workers configured"), "{err}");
}

#[test]
fn derived_names_are_unique_and_self_url_defaults_from_the_host() {
    let d = temp_dir("cli");
    let workers =
        r#"[{"url": "https://app.hf.space/"}, {"url": "https://app.hf.space/other"}, {"url": "http://127.0.0.1:9/"}]"#;
    let (code, out, err) = run(
        &d,
        &["check"],
        &[("PINGER_WORKERS", workers), ("SPACE_HOST", "me-master.hf.space")],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("  app  GET"), "{out}");
    assert!(out.contains("  app-2  GET"), "{out}");
    assert!(out.contains("  127.0.0.1  GET"), "{out}");
    assert!(out.contains("self  GET https://me-master.hf.space/health"), "{out}");
    assert!(out.contains("every 4m"), "{out}");
    let (_, out, _) = run(&d, &["check"], &[("RENDER_EXTERNAL_URL", "https://me.onrender.com")]);
    assert!(out.contains("self  GET https://me.onrender.com/health"), "{out}");
    let (_, out, _) = run(
        &d,
        &["check"],
        &[
            ("RENDER_EXTERNAL_URL", "https://me.onrender.com"),
            ("PINGER_SELF_URL", "https://x.example/health"),
        ],
    );
    assert!(out.contains("self  GET https://x.example/health"), "{out}");
}

#[test]
fn port_in_use_exits_1() {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port().to_string();
    let d = temp_dir("cli");
    let (code, _, err) = run(&d, &["--listen", &format!("127.0.0.1:{port}")], &[]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("cannot listen on 127.0.0.1:"), "{err}");
}

#[test]
fn check_summarises_advice_shared_by_a_fleet_and_prints_part_seconds_as_decimals() {
    let workers: Vec<String> = (0..1000)
        .map(|i| format!(r#"{{"name": "w{i}", "url": "http://127.0.0.1:9/{i}"}}"#))
        .collect();
    let d = with_config(&format!(
        r#"{{"self_ping": false, "defaults": {{"interval": "10s", "timeout": "2m", "backoff": "1s500ms"}},
            "workers": [{}]}}"#,
        workers.join(",")
    ));
    let (code, out, err) = run(&d, &["check"], &[]);
    assert_eq!(code, 0, "{err}");
    let advice: Vec<&str> = err.lines().filter(|l| l.contains("not shorter")).collect();
    assert_eq!(
        advice,
        [
            "warning: 1000 workers (\"w0\", \"w1\", \"w2\" and 997 more): timeout 2m is not shorter than the interval 10s: \
          a slow check will skip deadlines"
        ],
        "{err}"
    );
    // 1000 workers spread over the first 10s: w250 starts 2.5s in.
    assert!(
        out.contains("  w250  GET http://127.0.0.1:9/250\n    every 10s, first check 2.5s after start;"),
        "{out}"
    );
    assert!(out.contains("3 retries (waits 1.5s, 3s, 6s)"), "{out}");
    // Never "2s500ms": milliseconds appear only in durations under a second.
    let mixed = out
        .split([' ', ',', ';', '('])
        .find(|w| w.ends_with("ms") && w.trim_end_matches("ms").contains(|c: char| c.is_ascii_alphabetic()));
    assert_eq!(mixed, None, "{out}");
}
