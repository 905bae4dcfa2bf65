//! HTTPS for real, on loopback: a private CA, trusted through `tls.ca_file` or `SSL_CERT_FILE` or
//! not at all, `tls.insecure`, expired and wrong-name leaves, a CONNECT proxy, and certificate
//! expiry in /status, /metrics, the page and alerts.

use crate::common::tls::{ConnectProxy, DAY, Leaf, TestCa, TlsServer};
use crate::common::{FakeServer, Pinger, ok, request, run, temp_dir};
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

const SEC: Duration = Duration::from_secs(1);

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

/// A config with one worker `w` on `url` and the extra worker fields `tls`.
fn one_worker(url: &str, extra: &str) -> String {
    format!(
        r#"{{"self_ping": false, "defaults": {{"interval": "1s", "timeout": "5s", "retries": 0}},
            "workers": [{{"name": "w", "url": "{url}"{extra}}}]}}"#
    )
}

fn ca_field(path: &Path) -> String {
    format!(r#", "tls": {{"ca_file": "{}"}}"#, path.display())
}

fn first_check(p: &Pinger) -> Value {
    p.wait_worker("w", 15 * SEC, |w| w["checks"].as_u64() >= Some(1))
}

fn setup(leaf_names: &[&str], secs: i64) -> (TestCa, Leaf, TlsServer, std::path::PathBuf) {
    let ca = TestCa::new("pinger test CA");
    let leaf = ca.leaf(leaf_names, secs);
    let server = TlsServer::start(&leaf);
    let dir = temp_dir("tls");
    (ca, leaf, server, dir)
}

#[test]
fn a_private_ca_through_ca_file_is_trusted_and_expiry_is_shown() {
    let (ca, leaf, server, dir) = setup(&["localhost", "127.0.0.1"], 40 * DAY + 3600);
    let ca_path = ca.write(&dir, "ca.pem");
    let cfg = format!(
        r#"{{"self_ping": false, "defaults": {{"interval": "1s", "timeout": "5s", "retries": 0, "tls": {{"ca_file": "{}"}}}},
            "workers": [{{"name": "w", "url": "{}"}}, {{"name": "ip", "url": "{}"}}]}}"#,
        ca_path.display(),
        server.url("localhost", "/health"),
        server.url("127.0.0.1", "/health"),
    );
    let p = Pinger::start_in(dir, &cfg, &[]);
    let w = p.wait_worker("w", 15 * SEC, |w| !w["tls"].is_null());
    assert_eq!(w["state"], "up", "{w:#}");
    assert_eq!(w["tls"]["days_left"], 40, "{w:#}");
    assert_eq!(w["tls"]["verified"], true);
    assert_eq!(w["tls"]["expires_at"], rfc3339(leaf.not_after));
    let ip = p.wait_worker("ip", 15 * SEC, |w| !w["tls"].is_null());
    assert_eq!(ip["state"], "up", "an IP address in the certificate works too: {ip:#}");

    let metrics = p.get("/metrics").body;
    let line = format!(
        "pinger_tls_cert_expiry_timestamp_seconds{{worker=\"w\"}} {}\n",
        leaf.not_after
    );
    assert!(metrics.contains(&line), "{metrics}");
    let page = p.get("/").body;
    assert!(
        page.contains("TLS certificate: 40 days left"),
        "the page shows the days left"
    );
}

#[test]
fn without_the_ca_the_check_fails_with_unknown_issuer() {
    let (_ca, _leaf, server, dir) = setup(&["localhost"], 40 * DAY);
    let p = Pinger::start_in(dir, &one_worker(&server.url("localhost", "/"), ""), &[]);
    let w = first_check(&p);
    assert_eq!(w["state"], "down");
    assert_eq!(
        w["last_check"]["error"],
        "tls: certificate not trusted (unknown issuer)"
    );
    assert_eq!(w["tls"], Value::Null, "nothing read from a failed handshake");
}

#[test]
fn insecure_skips_verification_and_says_so() {
    let (_ca, leaf, server, dir) = setup(&["localhost"], 20 * DAY + 3600);
    let cfg = one_worker(&server.url("localhost", "/"), r#", "tls": {"insecure": true}"#);
    std::fs::write(dir.join("pinger.json"), &cfg).unwrap();
    let (code, _, err) = run(&dir, &["check"], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("warning:") && err.contains("tls.insecure"),
        "check warns: {err}"
    );
    let p = Pinger::start_in(dir, &cfg, &[]);
    let w = p.wait_worker("w", 15 * SEC, |w| !w["tls"].is_null());
    assert_eq!(w["state"], "up");
    assert_eq!(w["tls"]["verified"], false);
    assert_eq!(w["tls"]["expires_at"], rfc3339(leaf.not_after));
    assert!(p.log().contains("tls.insecure"), "start-up warns: {}", p.log());
    assert!(p.get("/").body.contains(">unverified</span>"));
}

/// The first check of a leaf for `names` expiring in `secs`, on `localhost`, with the CA trusted.
fn checked_with_ca(names: &[&str], secs: i64) -> Value {
    let (ca, _leaf, server, dir) = setup(names, secs);
    let ca_path = ca.write(&dir, "ca.pem");
    let cfg = one_worker(&server.url("localhost", "/"), &ca_field(&ca_path));
    first_check(&Pinger::start_in(dir, &cfg, &[]))
}

#[test]
fn an_expired_leaf_is_named_as_such() {
    let w = checked_with_ca(&["localhost"], -2 * DAY);
    assert_eq!(w["last_check"]["error"], "tls: certificate expired", "{w:#}");
}

#[test]
fn a_leaf_for_another_name_is_named_as_such() {
    let w = checked_with_ca(&["other.example"], 30 * DAY);
    assert_eq!(
        w["last_check"]["error"], "tls: certificate not valid for localhost",
        "{w:#}"
    );
}

#[test]
fn ssl_cert_file_is_trusted_for_checks() {
    let (ca, _leaf, server, dir) = setup(&["localhost"], 30 * DAY);
    let ca_path = ca.write(&dir, "extra.pem");
    let cfg = one_worker(&server.url("localhost", "/"), "");
    let p = Pinger::start_in(dir, &cfg, &[("SSL_CERT_FILE", ca_path.to_str().unwrap())]);
    let w = first_check(&p);
    assert_eq!(w["state"], "up", "{w:#}");
}

#[test]
fn a_bad_ca_file_is_a_configuration_error_naming_file_and_field() {
    let dir = temp_dir("tls-bad");
    std::fs::write(dir.join("empty.pem"), "no certificates here\n").unwrap();
    let cfg = r#"{"self_ping": false, "workers": [
        {"url": "https://a.example/", "tls": {"ca_file": "missing.pem"}},
        {"url": "https://b.example/", "tls": {"ca_file": "empty.pem"}}]}"#;
    std::fs::write(dir.join("pinger.json"), cfg).unwrap();
    let (code, _, err) = run(&dir, &["check"], &[]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("workers[0].tls.ca_file") && err.contains("\"missing.pem\""),
        "{err}"
    );
    assert!(
        err.contains("workers[1].tls.ca_file") && err.contains("holds no certificate"),
        "{err}"
    );
    let (code, _, err) = run(&dir, &["check"], &[("SSL_CERT_FILE", "empty.pem")]);
    assert_eq!(code, 2);
    assert!(
        err.contains("SSL_CERT_FILE") && err.contains("holds no certificate"),
        "{err}"
    );
}

#[test]
fn checks_go_through_a_connect_proxy_with_hidden_credentials() {
    let (ca, _leaf, server, dir) = setup(&["localhost"], 30 * DAY);
    let ca_path = ca.write(&dir, "ca.pem");
    let proxy = ConnectProxy::start();
    let with_creds = format!("http://pinger:s3cret-pass@127.0.0.1:{}", proxy.port);
    let cfg = one_worker(&server.url("localhost", "/"), &ca_field(&ca_path));
    std::fs::write(dir.join("pinger.json"), &cfg).unwrap();
    let (code, out, err) = run(&dir, &["check"], &[("HTTPS_PROXY", &with_creds)]);
    assert_eq!(code, 0, "{err}");
    assert!(!out.contains("s3cret") && !err.contains("s3cret"), "{out}{err}");
    let p = Pinger::start_in(dir, &cfg, &[("HTTPS_PROXY", &with_creds), ("NO_PROXY", "example.org")]);
    let w = p.wait_worker("w", 15 * SEC, |w| w["successes"].as_u64() >= Some(2));
    assert_eq!(w["state"], "up", "{w:#}");
    let tunnels = proxy.tunnels();
    assert!(tunnels.len() >= 2, "one tunnel per check: {tunnels:?}");
    assert_eq!(tunnels[0].target, format!("localhost:{}", server.port));
    assert!(
        tunnels[0].head.contains("Proxy-Authorization: Basic"),
        "{}",
        tunnels[0].head
    );
    assert!(!p.log().contains("s3cret"), "{}", p.log());
    drop(p);

    // NO_PROXY sends it direct.
    let before = proxy.tunnels().len();
    let dir = temp_dir("tls-noproxy");
    let p = Pinger::start_in(dir, &cfg, &[("HTTPS_PROXY", &with_creds), ("NO_PROXY", "localhost")]);
    let w = p.wait_worker("w", 15 * SEC, |w| w["successes"].as_u64() >= Some(2));
    assert_eq!(w["state"], "up");
    assert_eq!(proxy.tunnels().len(), before, "NO_PROXY: no tunnel");
    assert!(!p.log().contains("s3cret"), "{}", p.log());
}
const ADMIN: (&str, &str) = ("PINGER_ADMIN_TOKEN", "tls-test-token");

/// Runs `n` more checks of `name` now (admin API), one after the other; returns the last /status.
fn check_now(p: &Pinger, name: &str, n: u64) -> Value {
    let mut w = p.worker(name);
    for _ in 0..n {
        let before = w["checks"].as_u64().unwrap_or(0);
        let r = request(
            "POST",
            &p.url(&format!("/api/workers/{name}/check")),
            Some(&format!("Bearer {}", ADMIN.1)),
        );
        assert_eq!(r.status, 202, "{}", r.body);
        w = p.wait_worker(name, 10 * SEC, |w| w["checks"].as_u64() > Some(before));
    }
    w
}

/// Alerts received by a fake webhook, as JSON.
fn cert_alerts(hook: &FakeServer) -> Vec<Value> {
    hook.seen()
        .iter()
        .filter_map(|s| serde_json::from_str::<Value>(&s.body).ok())
        .filter(|v| v["state"] == "cert_expiring")
        .collect()
}

#[test]
fn an_expiring_certificate_alerts_once_and_a_renewal_starts_over() {
    let (ca, _leaf, server, dir) = setup(&["localhost"], 5 * DAY + 12 * 3600);
    let ca_path = ca.write(&dir, "ca.pem");
    let hook = FakeServer::always(ok());
    let cfg = format!(
        r#"{{"self_ping": false, "cert_check_interval": "10ms",
            "defaults": {{"interval": "1h", "timeout": "5s", "retries": 0}},
            "alerts": {{"webhook_url": "{}", "format": "json"}},
            "workers": [{{"name": "rag", "url": "{}", "tls": {{"ca_file": "{}"}}}}]}}"#,
        hook.url("/hook"),
        server.url("localhost", "/"),
        ca_path.display()
    );
    let p = Pinger::start_in(dir, &cfg, &[ADMIN]);
    // Several checks, each reading the certificate (the read interval is shorter than the checks').
    p.wait_worker("rag", 20 * SEC, |w| w["checks"] == 1);
    check_now(&p, "rag", 5);
    hook.wait_for(1, 10 * SEC);
    std::thread::sleep(Duration::from_millis(300));
    let alerts = cert_alerts(&hook);
    assert_eq!(
        alerts.len(),
        1,
        "one warning for the 14- and 7-day thresholds: {alerts:?}"
    );
    assert_eq!(alerts[0]["worker"], "rag");
    assert_eq!(alerts[0]["days_left"], 5);

    // Renewed, but only to 6 days: a later notAfter starts over, and 6 is under 14 and 7.
    let renewed = ca.leaf(&["localhost"], 6 * DAY + 12 * 3600);
    server.set_leaf(&renewed);
    let w = check_now(&p, "rag", 5);
    assert_eq!(w["tls"]["days_left"], 6, "the renewal was read: {w:#}");
    hook.wait_for(2, 10 * SEC);
    std::thread::sleep(Duration::from_millis(300));
    let alerts = cert_alerts(&hook);
    assert_eq!(alerts.len(), 2, "{alerts:?}");
    assert_eq!(alerts[1]["days_left"], 6);
}

#[test]
fn alerts_share_the_trust_and_the_proxy_of_checks() {
    // The webhook is HTTPS under the private CA, trusted only through SSL_CERT_FILE, and
    // reached through the CONNECT proxy.
    let (ca, _leaf, hook, dir) = setup(&["localhost"], 30 * DAY);
    let ca_path = ca.write(&dir, "extra.pem");
    let proxy = ConnectProxy::start();
    let down = FakeServer::always(crate::common::status(503));
    let cfg = format!(
        r#"{{"self_ping": false, "defaults": {{"interval": "1h", "retries": 0}},
            "alerts": {{"webhook_url": "{}", "format": "json", "failure_threshold": 1}},
            "workers": [{{"name": "w", "url": "{}"}}]}}"#,
        hook.url("localhost", "/hook"),
        down.url("/")
    );
    let p = Pinger::start_in(
        dir,
        &cfg,
        &[
            ("SSL_CERT_FILE", ca_path.to_str().unwrap()),
            ("HTTPS_PROXY", &proxy.url()),
        ],
    );
    let end = std::time::Instant::now() + 10 * SEC;
    while hook.requests() == 0 && std::time::Instant::now() < end {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        hook.requests(),
        1,
        "the down alert was delivered over HTTPS; log:\n{}",
        p.log()
    );
    let tunnels = proxy.tunnels();
    assert_eq!(tunnels.len(), 1, "through the proxy: {tunnels:?}");
    assert_eq!(tunnels[0].target, format!("localhost:{}", hook.port));
    // Logged once the webhook's answer is read, which can come a moment after the request.
    let end = std::time::Instant::now() + 10 * SEC;
    while !p.log().contains("delivered") && std::time::Instant::now() < end {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(down.count() >= 1 && p.log().contains("delivered"), "{}", p.log());
}
