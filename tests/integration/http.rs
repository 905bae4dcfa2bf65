//! The HTTP endpoints: /health, /healthz, /status, errors, HEAD and the security headers.

use crate::common::{FakeServer, Pinger, ok, request};
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
fn get_kept_alive(conn: &mut BufReader<TcpStream>, path: &str) -> (u16, usize) {
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n");
    conn.get_mut().write_all(request.as_bytes()).unwrap();
    let mut line = String::new();
    conn.read_line(&mut line).unwrap();
    let status = line.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let mut length = 0;
    loop {
        line.clear();
        conn.read_line(&mut line).unwrap();
        if line == "\r\n" || line.is_empty() {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = v.trim().parse().unwrap();
        }
    }
    let mut body = vec![0; length];
    conn.read_exact(&mut body).unwrap();
    (status, length)
}

#[test]
fn requests_on_one_kept_alive_connection_are_not_held_back_by_delayed_acks() {
    let (_t, p) = pinger();
    let stream = TcpStream::connect(("127.0.0.1", p.port)).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut conn = BufReader::new(stream);
    assert_eq!(get_kept_alive(&mut conn, "/status").0, 200);
    // tiny_http writes a response's head and body in two sends. With Nagle's algorithm on, the
    // body waits for the ACK of the head, which the client delays (~40 ms on Linux).
    let started = Instant::now();
    for _ in 0..50 {
        let (status, length) = get_kept_alive(&mut conn, "/status");
        assert!(status == 200 && length > 0, "{status} {length}");
    }
    let average = started.elapsed() / 50;
    eprintln!("/status on one kept-alive connection: {average:?} on average");
    assert!(
        average < Duration::from_millis(20),
        "a /status request on a kept-alive connection took {average:?} on average"
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
