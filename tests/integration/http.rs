//! The HTTP endpoints: /health, /healthz, /status, errors, HEAD and the security headers.

use crate::common::{FakeServer, Pinger, ok, request, request_with, status as respond_status};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

fn pinger() -> (FakeServer, Pinger) {
    let target = FakeServer::always(ok());
    let cfg = format!(
        r#"{{"self_ping": false, "history": 10, "workers": [{{"name": "fast", "url": "{}", "interval": "1s", "timeout": "1s"}}]}}"#,
        target.url("/")
    );
    let p = Pinger::start(&cfg, &[]);
    (target, p)
}

#[test]
fn health_and_healthz() {
    let (_t, p) = pinger();
    let r = p.get("/health");
    assert_eq!((r.status, r.body.as_str()), (200, r#"{"status":"alive"}"#));
    assert!(r.header("content-type").unwrap().starts_with("application/json"));
    let r = p.get("/healthz");
    assert_eq!((r.status, r.body.as_str()), (200, "ok"));
    assert!(r.header("content-type").unwrap().starts_with("text/plain"));
}

#[test]
fn every_response_carries_the_security_headers() {
    let (_t, p) = pinger();
    for path in ["/", "/health", "/status", "/metrics", "/nope"] {
        let r = p.get(path);
        assert_eq!(r.header("x-content-type-options"), Some("nosniff"), "{path}");
        assert_eq!(r.header("referrer-policy"), Some("no-referrer"), "{path}");
        let csp = r.header("content-security-policy").unwrap_or("");
        assert!(
            csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'self' https://huggingface.co"),
            "{path}: {csp}"
        );
    }
}

#[test]
fn unknown_paths_404_and_wrong_methods_405_as_json() {
    let (_t, p) = pinger();
    let r = p.get("/nope");
    assert_eq!(r.status, 404);
    assert!(serde_json::from_str::<serde_json::Value>(&r.body).unwrap()["error"].is_string());
    let r = request("POST", &p.url("/health"), None);
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("GET, HEAD"));
    assert!(serde_json::from_str::<serde_json::Value>(&r.body).unwrap()["error"].is_string());
    let r = request("DELETE", &p.url("/status"), None);
    assert_eq!(r.status, 405);
}

#[test]
fn head_works_wherever_get_does() {
    let (_t, p) = pinger();
    for path in ["/", "/health", "/healthz", "/status", "/metrics"] {
        let r = request("HEAD", &p.url(path), None);
        assert_eq!(r.status, 200, "{path}");
        assert!(r.body.is_empty(), "{path}");
    }
}

/// Sends `GET path` on a kept-alive connection and reads the response: (status, body length).
/// The body may come with a `Content-Length` or in chunks.
fn get_kept_alive(conn: &mut BufReader<TcpStream>, path: &str) -> (u16, usize) {
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n");
    conn.get_mut().write_all(request.as_bytes()).unwrap();
    let mut line = String::new();
    conn.read_line(&mut line).unwrap();
    let status = line.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let (mut length, mut chunked) = (0, false);
    loop {
        line.clear();
        conn.read_line(&mut line).unwrap();
        if line == "\r\n" || line.is_empty() {
            break;
        }
        let lower = line.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            length = v.trim().parse().unwrap();
        }
        chunked |= lower.starts_with("transfer-encoding:") && lower.contains("chunked");
    }
    if !chunked {
        let mut body = vec![0; length];
        conn.read_exact(&mut body).unwrap();
        return (status, length);
    }
    let mut total = 0;
    loop {
        line.clear();
        conn.read_line(&mut line).unwrap();
        let n = usize::from_str_radix(line.trim_end(), 16).unwrap();
        let mut chunk = vec![0; n + 2];
        conn.read_exact(&mut chunk).unwrap();
        total += n;
        if n == 0 {
            return (status, total);
        }
    }
}

#[test]
fn requests_on_one_kept_alive_connection_are_not_held_back_by_delayed_acks() {
    let (_t, p) = pinger();
    // Sent in two writes, head and then body, with Nagle's algorithm on, the body would wait for
    // the ACK of the head, which the client delays (~40 ms on Linux) once a connection has
    // carried a few exchanges; a new connection ACKs at once. The head and a body this size
    // leave in one write (wire.rs), and TCP_NODELAY covers bodies sent apart.
    // Held back, EVERY request on the kept-alive connection waits ~40 ms more than the same
    // request on a new connection; the medians ignore the few a loaded machine delays for other
    // reasons, and the baseline is this machine's own figure, measured now.
    let median = |mut times: Vec<Duration>| {
        times.sort();
        times[times.len() / 2]
    };
    let timed = |conn: &mut BufReader<TcpStream>| {
        let started = Instant::now();
        let (status, length) = get_kept_alive(conn, "/status");
        assert!(status == 200 && length > 0, "{status} {length}");
        started.elapsed()
    };
    let connect = || {
        let stream = TcpStream::connect(("127.0.0.1", p.port)).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        BufReader::new(stream)
    };
    let fresh = median((0..25).map(|_| timed(&mut connect())).collect());
    let mut conn = connect();
    assert_eq!(get_kept_alive(&mut conn, "/status").0, 200);
    let kept = median((0..50).map(|_| timed(&mut conn)).collect());
    eprintln!("/status median: {kept:?} on one kept-alive connection, {fresh:?} on new connections");
    let bound = (3 * fresh).max(Duration::from_millis(10));
    assert!(
        kept < bound,
        "a /status request on a kept-alive connection took {kept:?} (median of 50), {fresh:?} on a new connection"
    );
}

#[test]
fn status_history_parameter_and_timestamps() {
    let (_t, p) = pinger();
    p.wait_worker("fast", Duration::from_secs(10), |w| w["checks"].as_u64() >= Some(4));
    let hist = |q: &str| {
        let v: serde_json::Value = serde_json::from_str(&p.get(&format!("/status{q}")).body).unwrap();
        v["workers"][0]["history"].as_array().unwrap().len()
    };
    assert!(hist("") >= 4);
    assert_eq!(hist("?history=0"), 0);
    assert_eq!(hist("?history=2"), 2);
    assert!(hist("?history=5000") <= 10, "capped at the configured history");
    assert_eq!(p.get("/status?history=lots").status, 400);
    let s = p.status();
    assert_eq!(s["status"], "ok");
    let started = s["started_at"].as_str().unwrap();
    assert!(
        started.len() == 20 && started.ends_with('Z') && &started[10..11] == "T",
        "{started}"
    );
    let w = &s["workers"][0];
    let h = w["history"].as_array().unwrap();
    assert!(
        h.windows(2).all(|p| p[0]["at"].as_str() <= p[1]["at"].as_str()),
        "oldest first"
    );
    assert_eq!(w["uptime_percent"]["24h"], 100.0);
    assert!(w["next_check_at"].as_str().unwrap().ends_with('Z'));
}

#[test]
fn page_renders() {
    let (_t, p) = pinger();
    let r = p.get("/");
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").unwrap().starts_with("text/html"));
    assert!(r.body.contains("fast"));
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// Three workers checked once an hour, so the state stays put between requests, and an admin
/// token to make it change on demand.
fn quiet_pinger() -> (FakeServer, Pinger) {
    let target = FakeServer::always(ok());
    let cfg = format!(
        r#"{{"self_ping": false, "defaults": {{"interval": "1h", "timeout": "1s"}},
            "workers": [{{"name": "slow", "url": "{0}"}}, {{"name": "slow-2", "url": "{0}"}}, {{"name": "slow-3", "url": "{0}"}}]}}"#,
        target.url("/")
    );
    let p = Pinger::start(&cfg, &[("PINGER_ADMIN_TOKEN", "t0ken")]);
    for name in ["slow", "slow-2", "slow-3"] {
        p.wait_worker(name, Duration::from_secs(10), |w| w["checks"] == 1);
    }
    // Past the one-second floor after the last change, so what is served now stays put.
    std::thread::sleep(Duration::from_millis(1100));
    (target, p)
}

/// A body as it would read at another moment: `/status` is written when asked (streamed, not
/// cached), so its `uptime_seconds` moves on while nothing else changed.
fn without_time(path: &str, body: &[u8]) -> Vec<u8> {
    if !path.starts_with("/status") {
        return body.to_vec();
    }
    let mut v: serde_json::Value = serde_json::from_slice(body).unwrap();
    v["uptime_seconds"] = serde_json::Value::Null;
    v.to_string().into_bytes()
}

#[test]
fn cached_bodies_with_etag_and_304_until_a_check_changes_them() {
    let (_t, p) = quiet_pinger();
    for path in ["/", "/status", "/status?history=0"] {
        let (code, h1, b1) = request_with("GET", &p.url(path), &[]);
        let (_, h2, b2) = request_with("GET", &p.url(path), &[]);
        assert_eq!(code, 200, "{path}");
        let tag = header(&h1, "etag")
            .unwrap_or_else(|| panic!("{path}: no ETag"))
            .to_string();
        assert_eq!(
            header(&h1, "cache-control"),
            Some("no-cache"),
            "{path}: stored, checked before use"
        );
        assert_eq!(
            (header(&h2, "etag"), without_time(path, &b2)),
            (Some(tag.as_str()), without_time(path, &b1)),
            "{path}: nothing changed"
        );
        let (code, h, body) = request_with("GET", &p.url(path), &[("If-None-Match", &tag)]);
        assert_eq!((code, body.len()), (304, 0), "{path}");
        assert_eq!(header(&h, "etag"), Some(tag.as_str()));
        assert_eq!(header(&h, "x-content-type-options"), Some("nosniff"), "{path}");
        let (code, _, _) = request_with("GET", &p.url(path), &[("If-None-Match", "\"stale\"")]);
        assert_eq!(code, 200);
        let (code, _, body) = request_with("HEAD", &p.url(path), &[("If-None-Match", &tag)]);
        assert_eq!((code, body.len()), (304, 0), "HEAD {path}");
    }
    // A query never asked before has no cached body yet, so it shows the state as it is now.
    let fresh_key = std::cell::Cell::new(1);
    let check_now = |checks: u64| {
        let r = request("POST", &p.url("/api/workers/slow/check"), Some("Bearer t0ken"));
        assert_eq!(r.status, 202);
        let end = Instant::now() + Duration::from_secs(10);
        loop {
            let key = fresh_key.replace(fresh_key.get() + 1);
            let r = p.get(&format!("/status?worker=slow&history={key}"));
            let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
            if v["workers"][0]["checks"] == checks {
                break;
            }
            assert!(Instant::now() < end, "check {checks} was not recorded: {v}");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    // The cached variant: a streamed one is always current.
    let status = || {
        let (_, h, body) = request_with("GET", &p.url("/status?history=0"), &[]);
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        (header(&h, "etag").map(String::from), v["workers"][0]["checks"].clone())
    };
    // "At most once a second" (a unit test in web::cache checks it with time given; this checks
    // it end to end): a body rendered at t0 or later is served, unchanged, until a second after
    // it, whatever changes meanwhile. Each round changes the state between two requests. The
    // second answer is either the first body again (same ETag, the old count) or a new render;
    // a new one must come at least a second after the first request was sent, which took place
    // before the first render. A loaded machine only makes the two further apart, so it can turn
    // a round into a new render, never make a correct one fail; a round that does fit in a second
    // shows a service rendering per change.
    let mut checks = 1;
    let (mut held, mut last) = (0, None);
    for _ in 0..3 {
        // A second after the last render of /status, with the state changed since.
        std::thread::sleep(Duration::from_millis(1100));
        checks += 1;
        check_now(checks);
        let t0 = Instant::now();
        let (tag, shows) = status();
        assert_eq!(shows, checks, "a changed state is rendered again after a second");
        checks += 1;
        check_now(checks);
        let (again, shows_then) = status();
        if again == tag {
            assert_eq!(shows_then, checks - 1, "one ETag, one body");
            held += 1;
        } else {
            assert!(
                t0.elapsed() >= Duration::from_millis(1000),
                "rendered again {:?} after the last render, under a second",
                t0.elapsed()
            );
            assert_eq!(shows_then, checks, "a new render shows the state as it is");
        }
        last = again;
    }
    eprintln!("{held} of 3 rounds served the cached body");
    checks += 1;
    check_now(checks);
    std::thread::sleep(Duration::from_millis(1100));
    let (tag_later, shows) = status();
    assert_ne!(tag_later, last, "a check makes a new body");
    assert_eq!(shows, checks);
}

#[test]
fn gzip_for_clients_that_take_it() {
    let (_t, p) = quiet_pinger();
    for path in ["/", "/status", "/metrics"] {
        let (_, plain_h, plain) = request_with("GET", &p.url(path), &[]);
        assert!(plain.len() > 1024, "{path}: {} bytes", plain.len());
        assert_eq!(header(&plain_h, "content-encoding"), None);
        assert_eq!(header(&plain_h, "vary"), Some("Accept-Encoding"), "{path}");
        let (code, h, zipped) = request_with("GET", &p.url(path), &[("Accept-Encoding", "gzip, deflate")]);
        assert_eq!(code, 200);
        assert_eq!(header(&h, "content-encoding"), Some("gzip"), "{path}");
        assert_eq!(header(&h, "vary"), Some("Accept-Encoding"));
        if path == "/status" {
            // Streamed, compressed on the fly.
            assert_eq!(header(&h, "transfer-encoding"), Some("chunked"), "{path}");
        } else {
            assert_eq!(header(&h, "content-length"), Some(zipped.len().to_string().as_str()));
        }
        assert!(
            zipped.len() < plain.len() / 2,
            "{path}: {} of {} bytes",
            zipped.len(),
            plain.len()
        );
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(&zipped[..])
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(
            without_time(path, &back),
            without_time(path, &plain),
            "{path}: the same body, compressed"
        );
    }
    let (_, h, body) = request_with("GET", &p.url("/health"), &[("Accept-Encoding", "gzip")]);
    assert_eq!(
        (header(&h, "content-encoding"), body.as_slice()),
        (None, &br#"{"status":"alive"}"#[..])
    );
    assert_eq!(header(&h, "cache-control"), Some("no-store"));
    // Under 1 KiB: sent as it is.
    let (_, h, body) = request_with(
        "GET",
        &p.url("/status?worker=slow&history=0"),
        &[("Accept-Encoding", "gzip")],
    );
    assert!(body.len() < 1024 && body.starts_with(b"{"), "{} bytes", body.len());
    assert_eq!((header(&h, "content-encoding"), header(&h, "vary")), (None, None));
}

#[test]
fn status_filters_by_worker_and_state() {
    let up = FakeServer::always(ok());
    let down = FakeServer::always(respond_status(503));
    let cfg = format!(
        r#"{{"self_ping": false, "history": 10, "defaults": {{"interval": "1h", "timeout": "1s", "retries": 0}},
            "workers": [{{"name": "a", "url": "{0}"}}, {{"name": "b", "url": "{1}"}}, {{"name": "c", "url": "{0}"}}]}}"#,
        up.url("/"),
        down.url("/")
    );
    let p = Pinger::start(&cfg, &[]);
    for name in ["a", "b", "c"] {
        p.wait_worker(name, Duration::from_secs(10), |w| w["checks"] == 1);
    }
    // The cache may still hold a body from before the last check for up to a second.
    std::thread::sleep(Duration::from_millis(1100));
    let names = |q: &str| {
        let r = p.get(&format!("/status{q}"));
        assert_eq!(r.status, 200, "{q}: {}", r.body);
        let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(v["status"], "degraded", "{q}: the whole fleet's status");
        let ws = v["workers"].as_array().unwrap().clone();
        let history: Vec<usize> = ws.iter().map(|w| w["history"].as_array().unwrap().len()).collect();
        (
            ws.iter()
                .map(|w| w["name"].as_str().unwrap().to_string())
                .collect::<Vec<_>>(),
            history,
        )
    };
    assert_eq!(names("?worker=b").0, ["b"]);
    assert_eq!(names("?state=up").0, ["a", "c"]);
    assert_eq!(names("?state=down"), (vec!["b".to_string()], vec![1]));
    assert_eq!(names("?state=down&history=0"), (vec!["b".to_string()], vec![0]));
    assert_eq!(names("?worker=a&state=up&history=0").0, ["a"]);
    assert!(names("?worker=a&state=down").0.is_empty());
    assert!(names("?state=pending").0.is_empty());
    assert!(names("?state=paused").0.is_empty());
    let r = p.get("/status?worker=nobody");
    assert_eq!(r.status, 404);
    assert!(
        serde_json::from_str::<serde_json::Value>(&r.body).unwrap()["error"]
            .as_str()
            .unwrap()
            .contains("nobody")
    );
    let r = p.get("/status?state=asleep");
    assert_eq!(r.status, 400);
    assert!(r.body.contains("down, up, pending, paused"), "{}", r.body);
}
