//! The status page in a real browser: headless Chromium renders it, and the DOM it built must
//! show every worker with its state in words and its heartbeat cells.

use crate::common::{Action, FakeServer, Pinger, SEC, ok, request, status, temp_dir};
use std::path::PathBuf;
use std::process::Command;

pub fn chromium() -> Option<PathBuf> {
    let found = ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .map(|name| Command::new("sh").args(["-c", &format!("command -v {name}")]).output())
        .filter_map(Result::ok)
        .find(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    if found.is_none() {
        // CI installs Chromium, so there a missing browser is a failure, never a silent pass.
        assert!(std::env::var("CI").is_err(), "CI=true but Chromium is not installed");
        eprintln!("skipping the browser test: install Debian's chromium to run it");
    }
    found
}

pub fn headless(browser: &PathBuf, extra: &[&str], url: &str) -> std::process::Output {
    let profile = temp_dir("chromium-profile");
    Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            "--no-first-run",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(url)
        .output()
        .expect("run chromium")
}

#[test]
fn the_page_in_headless_chromium_shows_a_mixed_fleet() {
    let Some(browser) = chromium() else { return };
    let up = FakeServer::always(ok());
    let down = FakeServer::always(status(503));
    let pending = FakeServer::always(Action::Hang);
    let flappy = FakeServer::start(|n, _| if n % 2 == 0 { ok() } else { status(500) });
    let hostile = FakeServer::always(Action::Respond {
        status: 200,
        body: b"welcome".to_vec(),
    });
    let cfg = format!(
        r#"{{"self_ping": false, "defaults": {{"interval": "1s", "timeout": "1s", "retries": 0}}, "workers": [
            {{"name": "api", "url": "{}"}},
            {{"name": "db", "url": "{}", "space_id": "you/db"}},
            {{"name": "cold", "url": "{}", "interval": "1h", "timeout": "10m"}},
            {{"name": "flappy", "url": "{}"}},
            {{"name": "hostile", "url": "{}?q=%3Cb%3E", "expect_body": "<b id=pwned>x</b><script>document.title='pwned'</script>"}}]}}"#,
        up.url("/"),
        down.url("/"),
        pending.url("/"),
        flappy.url("/"),
        hostile.url("/")
    );
    let p = Pinger::start(&cfg, &[]);
    p.wait_worker("flappy", 12 * SEC, |w| w["checks"].as_u64() >= Some(4));
    p.wait_worker("api", 12 * SEC, |w| w["checks"].as_u64() >= Some(3));

    let out = headless(&browser, &["--dump-dom"], &p.url("/"));
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && dom.contains("</html>"),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        dom.contains("3 of 5 workers down")
            || dom.contains("2 of 5 workers down")
            || dom.contains("4 of 5 workers down"),
        "headline in:\n{dom}"
    );
    for (name, state) in [("api", "up"), ("db", "down"), ("cold", "pending")] {
        let row_start = dom
            .find(&format!("id=\"w-{name}\""))
            .unwrap_or_else(|| panic!("no row for {name}"));
        let row = &dom[row_start..row_start + dom[row_start..].find("</tr>").unwrap()];
        assert!(
            row.contains(&format!(">{state}</span>")),
            "{name} should read {state}: {row}"
        );
    }
    let flappy_row = &dom[dom.find("id=\"w-flappy\"").unwrap()..];
    let flappy_row = &flappy_row[..flappy_row.find("</tr>").unwrap()];
    assert!(
        flappy_row.contains("class=\"hb up\"") && flappy_row.contains("class=\"hb down\""),
        "{flappy_row}"
    );
    let cells = dom.matches("class=\"hb ").count();
    assert!(cells >= 8, "heartbeat cells (api 3+, flappy 4+, db 1+): {cells}");
    assert!(dom.contains("<svg class=\"spark\""), "latency sparkline");
    // The expected text comes back in the hostile worker's error, which the page shows: as
    // text, it makes no element and runs no script.
    let hostile_row = &dom[dom.find("id=\"w-hostile\"").unwrap()..];
    assert!(
        hostile_row.contains(
            "body did not contain \"&lt;b id=pwned&gt;x&lt;/b&gt;&lt;script&gt;document.title='pwned'&lt;/script&gt;\""
        ),
        "the error is shown, escaped: {hostile_row}"
    );
    assert!(!dom.contains("id=\"pwned\""), "hostile text made an element");
    assert!(!dom.contains("<title>pwned"), "hostile text ran a script");
    assert!(dom.contains("Restarts"));
    assert!(!dom.contains("class=\"cells"), "five workers: a row each, no grid");

    let shot = temp_dir("shot").join("page.png");
    let out = headless(
        &browser,
        &[&format!("--screenshot={}", shot.display()), "--window-size=1280,900"],
        &p.url("/"),
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let png = std::fs::read(&shot).expect("screenshot written");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "a real picture: {} bytes",
        png.len()
    );
    if let Ok(keep) = std::env::var("MP_SCREENSHOT") {
        let _ = std::fs::copy(&shot, keep);
    }
}

#[test]
fn a_thousand_workers_in_headless_chromium_are_rows_for_the_down_and_a_grid() {
    let Some(browser) = chromium() else { return };
    let up = FakeServer::always(ok());
    let down = FakeServer::always(status(503));
    let workers: Vec<String> = (0..1000)
        .map(|i| {
            let target = if i % 10 == 0 { &down } else { &up };
            format!(r#"{{"name": "w{i:04}", "url": "{}"}}"#, target.url("/"))
        })
        .collect();
    // Checked once (their first checks spread over 10 s), then not for an hour.
    let cfg = format!(
        r#"{{"self_ping": false, "defaults": {{"interval": "1h", "timeout": "2s", "retries": 0}}, "workers": [{}]}}"#,
        workers.join(",")
    );
    let p = Pinger::start(&cfg, &[]);
    let checked = || {
        let v: serde_json::Value = serde_json::from_str(&p.get("/status?history=0").body).unwrap_or_default();
        v["workers"]
            .as_array()
            .is_some_and(|ws| ws.iter().all(|w| w["checks"].as_u64() >= Some(1)))
    };
    let end = std::time::Instant::now() + 30 * SEC;
    while !checked() {
        assert!(std::time::Instant::now() < end, "1,000 workers not checked within 30 s");
        std::thread::sleep(SEC / 2);
    }
    // The cached page may predate the last check by up to a second.
    std::thread::sleep(SEC + SEC / 10);
    let page = request("GET", &p.url("/"), None).body;
    assert!(page.len() < 300_000, "the page is {} bytes", page.len());

    let out = headless(&browser, &["--dump-dom"], &p.url("/"));
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(dom.contains("100 of 1000 workers down"), "headline");
    assert_eq!(
        dom.matches("<tr class=\"down\"").count(),
        20,
        "the first 20 down workers get rows"
    );
    assert!(dom.contains("<h3 id=\"g-down\">80 more down</h3>"));
    assert!(dom.contains("<h3 id=\"g-up\">900 up</h3>"));
    assert!(dom.contains("<ul class=\"cells up\""));
    assert_eq!(
        dom.matches("<li title=").count(),
        980,
        "every other worker is a grid cell"
    );
    assert!(dom.contains("<li title=\"up · checked "), "details in the tooltip");
}
