//! Promises that hold at the moments of change: reloads that add, remove and reorder workers,
//! restarts, and CA files whose content changes.

use crate::common::tls::{DAY, TestCa, TlsServer};
use crate::common::{FakeServer, Pinger, SEC, ok};
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
