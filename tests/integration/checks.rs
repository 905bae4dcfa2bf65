//! Checks against misbehaving targets: the schedule, retries and backoff, timeouts, redirects,
//! error texts, body limits, and secrets that must never show.

use crate::common::{Action, FakeServer, Pinger, SEC, ok, status};
use std::time::Duration;

fn single(url: &str, extra: &str) -> String {
    format!(r#"{{"self_ping": false, "workers": [{{"name": "t", "url": "{url}", {extra}}}]}}"#)
}

fn millis(a: std::time::Instant, b: std::time::Instant) -> i64 {
    b.duration_since(a).as_millis() as i64
}

#[test]
fn schedule_holds_at_a_1s_interval_without_drift() {
    // Each check takes 300 ms: with relative sleeps the schedule would drift by that each time,
    // 600 ms by the third check and 1.5 s by the sixth. The bound leaves room for a loaded
    // machine's scheduling jitter, which does not add up from one check to the next.
    let target = FakeServer::always(Action::Delay(Duration::from_millis(300)));
    let _p = Pinger::start(&single(&target.url("/"), r#""interval": "1s", "timeout": "5s""#), &[]);
    let seen = target.wait_for(6, 12 * SEC);
    assert!(seen.len() >= 6, "only {} checks", seen.len());
    for (k, s) in seen.iter().enumerate().take(6) {
        let off = millis(seen[0].at, s.at) - 1000 * k as i64;
        assert!(off.abs() < 500, "check {k} is {off} ms off its deadline");
    }
}

#[test]
fn retries_wait_backoff_doubling_then_succeed() {
    // Fails the first 3 attempts, then recovers.
    let target = FakeServer::start(|n, _| if n < 3 { status(503) } else { ok() });
    let p = Pinger::start(
        &single(
            &target.url("/"),
            r#""interval": "1h", "retries": 3, "backoff": "200ms""#,
        ),
        &[],
    );
    let seen = target.wait_for(4, 10 * SEC);
    assert_eq!(seen.len(), 4);
    let gaps: Vec<i64> = seen.windows(2).map(|w| millis(w[0].at, w[1].at)).collect();
    // A wait is never shorter than asked; the upper bound (half as long again, plus room for a
    // loaded machine) still tells doubling from tripling or a constant wait.
    for (gap, want) in gaps.iter().zip([200, 400, 800]) {
        assert!(
            (want..want * 3 / 2 + 150).contains(gap),
            "gaps {gaps:?}, wanted 200/400/800"
        );
    }
    let w = p.wait_worker("t", 10 * SEC, |w| w["checks"] == 1);
    assert_eq!(w["state"], "up");
    assert_eq!(w["last_check"]["attempts"], 4);
    assert_eq!(w["attempts"], 4);
}

#[test]
fn a_failed_check_records_status_and_reason() {
    let target = FakeServer::always(status(500));
    let p = Pinger::start(
        &single(&target.url("/"), r#""interval": "1h", "retries": 1, "backoff": "0s""#),
        &[],
    );
    let w = p.wait_worker("t", 10 * SEC, |w| w["checks"] == 1);
    assert_eq!(w["state"], "down");
    assert_eq!(w["consecutive_failures"], 1);
    assert_eq!(w["last_check"]["status_code"], 500);
    assert_eq!(w["last_check"]["error"], "status 500");
    assert_eq!(w["last_check"]["attempts"], 2);
    assert_eq!(p.status()["status"], "down");
    let log = p.log();
    assert!(log.contains("t: failed, status 500, status 500"), "{log}");
    assert!(log.contains("WARN") && log.contains("t (http://127.0.0.1"), "{log}");
}

#[test]
fn expected_status_and_body_decide_success() {
    let target = FakeServer::start(|_, s| {
        if s.path == "/teapot" {
            status(418)
        } else {
            Action::Respond {
                status: 200,
                body: b"hello world".to_vec(),
            }
        }
    });
    let cfg = format!(
        r#"{{"self_ping": false, "defaults": {{"interval": "1h", "retries": 0}}, "workers": [
            {{"name": "teapot", "url": "{}", "expect_status": [418]}},
            {{"name": "range", "url": "{}", "expect_status": "300-399"}},
            {{"name": "body", "url": "{}", "expect_body": "world"}},
            {{"name": "nobody", "url": "{}", "expect_body": "ok"}}]}}"#,
        target.url("/teapot"),
        target.url("/"),
        target.url("/"),
        target.url("/")
    );
    let p = Pinger::start(&cfg, &[]);
    let done = |w: &serde_json::Value| w["checks"] == 1;
    assert_eq!(p.wait_worker("teapot", 12 * SEC, done)["state"], "up");
    let r = p.wait_worker("range", 12 * SEC, done);
    assert_eq!(
        (r["state"].as_str(), r["last_check"]["error"].as_str()),
        (Some("down"), Some("status 200"))
    );
    assert_eq!(p.wait_worker("body", 12 * SEC, done)["state"], "up");
    let n = p.wait_worker("nobody", 12 * SEC, done);
    assert_eq!(n["last_check"]["error"], "body did not contain \"ok\"");
}

#[test]
fn timeout_bounds_hanging_and_trickling_targets() {
    let hang = FakeServer::always(Action::Hang);
    let trickle = FakeServer::always(Action::Trickle(Duration::from_millis(200)));
    let slow_head = FakeServer::always(Action::TrickleHead(Duration::from_millis(100)));
    let cfg = format!(
        r#"{{"self_ping": false, "defaults": {{"interval": "1h", "timeout": "1s", "retries": 0}}, "workers": [
            {{"name": "hang", "url": "{}"}}, {{"name": "trickle", "url": "{}"}}, {{"name": "slowhead", "url": "{}"}}]}}"#,
        hang.url("/"),
        trickle.url("/"),
        slow_head.url("/")
    );
    let p = Pinger::start(&cfg, &[]);
    for name in ["hang", "trickle", "slowhead"] {
        let w = p.wait_worker(name, 12 * SEC, |w| w["checks"] == 1);
        let last = &w["last_check"];
        assert_eq!(last["ok"], false, "{name}");
        assert!(
            last["error"].as_str().unwrap().starts_with("timeout after 1s"),
            "{name}: {last}"
        );
        // Bounded by the 1 s timeout (the default would be 120 s); the upper bound leaves room
        // for a loaded machine.
        let ms = last["latency_ms"].as_u64().unwrap();
        assert!((950..3000).contains(&ms), "{name} took {ms} ms");
    }
}

#[test]
fn network_errors_are_short_and_specific() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_port = closed.local_addr().unwrap().port();
    drop(closed);
    let looping = FakeServer::start(|n, _| Action::Redirect(format!("/loop{n}")));
    let closer = FakeServer::always(Action::Close);
    let cfg = format!(
        r#"{{"self_ping": false, "defaults": {{"interval": "1h", "timeout": "5s", "retries": 0}}, "workers": [
            {{"name": "refused", "url": "http://127.0.0.1:{closed_port}/"}},
            {{"name": "nxdomain", "url": "http://no-such-host.invalid/"}},
            {{"name": "loop", "url": "{}"}},
            {{"name": "closer", "url": "{}"}}]}}"#,
        looping.url("/"),
        closer.url("/")
    );
    let p = Pinger::start(&cfg, &[]);
    let err = |name: &str| {
        let w = p.wait_worker(name, 12 * SEC, |w| w["checks"] == 1);
        w["last_check"]["error"].as_str().unwrap_or("").to_string()
    };
    assert_eq!(err("refused"), "connection refused");
    assert!(err("nxdomain").starts_with("dns: "), "{}", err("nxdomain"));
    assert!(err("loop").starts_with("too many redirects"), "{}", err("loop"));
    assert_eq!(looping.count(), 6, "the first request and 5 redirects");
    assert!(err("closer").contains("closed"), "{}", err("closer"));
}

#[test]
fn redirects_are_followed_to_the_final_status() {
    let target = FakeServer::start(|_, s| {
        if s.path == "/" {
            Action::Redirect("/final".into())
        } else {
            ok()
        }
    });
    let p = Pinger::start(&single(&target.url("/"), r#""interval": "1h""#), &[]);
    let w = p.wait_worker("t", 10 * SEC, |w| w["checks"] == 1);
    assert_eq!(
        (w["state"].as_str(), w["last_check"]["status_code"].as_u64()),
        (Some("up"), Some(200))
    );
}

#[test]
fn a_5mb_body_is_read_no_further_than_1mib() {
    let mut body = vec![b'x'; 5 << 20];
    body[100..104].copy_from_slice(b"BEEF");
    body[(2 << 20)..(2 << 20) + 4].copy_from_slice(b"LATE");
    let target = FakeServer::always(Action::Respond { status: 200, body });
    let cfg = format!(
        r#"{{"self_ping": false, "defaults": {{"interval": "1h", "retries": 0}}, "workers": [
            {{"name": "early", "url": "{0}", "expect_body": "BEEF"}}, {{"name": "late", "url": "{0}", "expect_body": "LATE"}}]}}"#,
        target.url("/")
    );
    let p = Pinger::start(&cfg, &[]);
    assert_eq!(p.wait_worker("early", 12 * SEC, |w| w["checks"] == 1)["state"], "up");
    let late = p.wait_worker("late", 12 * SEC, |w| w["checks"] == 1);
    assert_eq!(late["last_check"]["error"], "body did not contain \"LATE\"");
}

#[test]
fn the_expected_text_counts_up_to_the_last_byte_of_the_first_mib_and_no_further() {
    const MIB: usize = 1 << 20;
    // Two bodies just over 1 MiB: one ends its expected text on byte 1,048,576, the other
    // straddles the cut with its last two bytes past it.
    let body = |at: usize, text: &[u8]| {
        let mut b = vec![b'x'; MIB + 1024];
        b[at..at + text.len()].copy_from_slice(text);
        b
    };
    let (inside, past) = (body(MIB - 4, b"EDGE"), body(MIB - 2, b"OVER"));
    let target = FakeServer::start(move |_, seen| Action::Respond {
        status: 200,
        body: if seen.path == "/inside" {
            inside.clone()
        } else {
            past.clone()
        },
    });
    let cfg = format!(
        r#"{{"self_ping": false, "defaults": {{"interval": "1h", "retries": 0}}, "workers": [
            {{"name": "inside", "url": "{}", "expect_body": "EDGE"}}, {{"name": "past", "url": "{}", "expect_body": "OVER"}}]}}"#,
        target.url("/inside"),
        target.url("/past")
    );
    let p = Pinger::start(&cfg, &[]);
    let inside = p.wait_worker("inside", 12 * SEC, |w| w["checks"] == 1);
    assert_eq!(inside["state"], "up", "{inside}");
    let past = p.wait_worker("past", 12 * SEC, |w| w["checks"] == 1);
    assert_eq!(past["state"], "down");
    assert_eq!(past["last_check"]["error"], "body did not contain \"OVER\"");
}

#[test]
fn an_overrunning_check_skips_deadlines() {
    // Each check takes 2.5 s at a 1 s interval: the slots in between are skipped, not queued.
    let target = FakeServer::always(Action::Delay(Duration::from_millis(2500)));
    let p = Pinger::start(
        &single(&target.url("/"), r#""interval": "1s", "timeout": "5s", "retries": 0"#),
        &[],
    );
    let w = p.wait_worker("t", 8 * SEC, |w| w["checks"].as_u64() >= Some(2));
    assert!(w["skipped"].as_u64().unwrap() >= 2, "{w}");
    let seen = target.seen();
    let gap = millis(seen[0].at, seen[1].at);
    // Run back-to-back it would start at 2.5 s; the slot after next would be 4 s. Both ends
    // leave room for either request being late on a loaded machine.
    assert!(
        (2700..3900).contains(&gap),
        "the next check waits for the next slot (3 s), got {gap} ms"
    );
}

#[test]
fn secrets_never_show_in_status_page_or_log() {
    let target = FakeServer::always(status(503));
    let url = target.url("/p/${PATH_SECRET}?token=${TOKEN}&plain=visible-value");
    let cfg = format!(
        r#"{{"self_ping": false, "workers": [{{"name": "s", "url": "{url}", "interval": "1h", "retries": 0,
             "headers": {{"Authorization": "Bearer ${{TOKEN}}", "X-Api-Key": "literal-header-secret"}}}}]}}"#
    );
    let env = [
        ("TOKEN", "tok-0123456789"),
        ("PATH_SECRET", "pathsecret42"),
        ("RUST_LOG", "debug"),
    ];
    let p = Pinger::start(&cfg, &env);
    let w = p.wait_worker("s", 10 * SEC, |w| w["checks"] == 1);
    assert_eq!(
        w["url"],
        format!(
            "http://127.0.0.1:{}/p/REDACTED?token=REDACTED&plain=REDACTED",
            target.port
        )
    );
    let seen = target.seen();
    assert_eq!(
        seen[0].path, "/p/pathsecret42?token=tok-0123456789&plain=visible-value",
        "the secrets are expanded, so they exist to leak"
    );
    assert!(
        seen[0].head.contains("Bearer tok-0123456789"),
        "the header reaches the target"
    );
    assert!(seen[0].head.contains("literal-header-secret"));
    let everything = format!(
        "{}{}{}{}",
        p.get("/status").body,
        p.get("/").body,
        p.get("/metrics").body,
        p.log()
    );
    for secret in [
        "tok-0123456789",
        "pathsecret42",
        "literal-header-secret",
        "visible-value",
    ] {
        assert!(!everything.contains(secret), "{secret} leaked");
    }
}

#[test]
fn self_ping_is_shown_as_self() {
    let target = FakeServer::always(ok());
    let cfg = format!(
        r#"{{"self_ping": {{"url": "{}", "interval": "1h"}}, "workers": []}}"#,
        target.url("/health")
    );
    let p = Pinger::start(&cfg, &[]);
    let s = p.wait_worker("self", 12 * SEC, |w| w["checks"] == 1);
    assert_eq!(s["name"], "self");
    assert_eq!(s["state"], "up");
    assert_eq!(s["interval_seconds"], 3600);
    assert_eq!(target.seen()[0].path, "/health");
    assert!(p.status()["workers"].as_array().unwrap().is_empty());
}
