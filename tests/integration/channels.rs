//! Alert channels: every type against a fake of its service, lists with their own thresholds,
//! `workers` filtering, `"alerts": false`, webhook templates, isolation of a hanging channel,
//! `pinger_alerts_total` and `notify-test`.

use crate::common::providers::{self, FakeApi, header};
use crate::common::{Action, FakeServer, Pinger, SEC, ok, run, status, temp_dir};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

const TG_TOKEN: &str = "123456:AAE-tg-secret";
const NTFY_TOKEN: &str = "tk_ntfysecret";
const GOTIFY_TOKEN: &str = "AgotifySecret1";
const PO_TOKEN: &str = "azGDORePK8gMaC0QOYAMyEEuzJnyUi";
const PO_USER: &str = "uQiRzpo4DXghDmr9QzzfQu27cmVRsG";

fn body(s: &crate::common::Seen) -> Value {
    serde_json::from_str(&s.body).unwrap_or_else(|_| panic!("JSON body: {}", s.body))
}

/// A target whose health the test switches (down at first).
fn switch() -> (Arc<AtomicBool>, FakeServer) {
    let healthy = Arc::new(AtomicBool::new(false));
    let h = Arc::clone(&healthy);
    let target = FakeServer::start(move |_, _| if h.load(Ordering::SeqCst) { ok() } else { status(503) });
    (healthy, target)
}

fn config(workers: Value, alerts: Value) -> String {
    json!({"self_ping": false, "workers": workers, "alerts": alerts}).to_string()
}

/// The four services, each with one channel pointed at its fake.
struct Services {
    telegram: FakeApi,
    ntfy: FakeApi,
    gotify: FakeApi,
    pushover: FakeApi,
}

impl Services {
    fn start() -> Services {
        Services {
            telegram: providers::telegram(TG_TOKEN, -100_200_300),
            ntfy: providers::ntfy("pinger-alerts", Some(NTFY_TOKEN)),
            gotify: providers::gotify(GOTIFY_TOKEN),
            pushover: providers::pushover(PO_TOKEN, PO_USER),
        }
    }

    fn channels(&self, extra: Value) -> Vec<Value> {
        let mut list = vec![
            json!({"type": "telegram", "bot_token": "${TG_TOKEN}", "chat_id": -100_200_300, "api_url": self.telegram.url("")}),
            json!({"type": "ntfy", "url": self.ntfy.url("/pinger-alerts"), "token": NTFY_TOKEN}),
            json!({"type": "gotify", "url": self.gotify.url("/"), "token": GOTIFY_TOKEN}),
            json!({"type": "pushover", "user_key": PO_USER, "app_token": PO_TOKEN, "api_url": self.pushover.url("")}),
        ];
        for c in &mut list {
            for (k, v) in extra.as_object().unwrap() {
                c[k] = v.clone();
            }
        }
        list
    }
}

const SECRETS: &[&str] = &[
    TG_TOKEN,
    NTFY_TOKEN,
    GOTIFY_TOKEN,
    PO_TOKEN,
    PO_USER,
    "pinger-alerts",
    "hook-secret",
];

fn assert_no_secrets(what: &str, text: &str) {
    for s in SECRETS {
        assert!(!text.contains(s), "{what} shows the secret {s:?}:\n{text}");
    }
}

#[test]
fn every_service_gets_the_request_its_api_documents() {
    let (healthy, target) = switch();
    let s = Services::start();
    let hook = providers::any_webhook();
    let mut channels = s.channels(json!({"failure_threshold": 2}));
    channels.push(
        json!({"type": "webhook", "url": hook.url("/hook-secret"), "failure_threshold": 2,
        "headers": {"Authorization": "Bearer hook-secret"},
        "body": "{\"text\": \"{{message}}\", \"who\": \"{{worker}}\", \"state\": \"{{state}}\"}"}),
    );
    let cfg = config(
        json!([{"name": "rag", "url": target.url("/health?key=hidden"), "interval": "1s", "retries": 0}]),
        Value::Array(channels),
    );
    let p = Pinger::start(&cfg, &[("TG_TOKEN", TG_TOKEN)]);
    let apis = [&s.telegram, &s.ntfy, &s.gotify, &s.pushover, &hook];
    for api in apis {
        assert_eq!(api.wait_accepted(1, 10 * SEC).len(), 1, "down alert:\n{}", p.log());
    }
    assert!(target.count() >= 2, "not before the second failure");
    healthy.store(true, Ordering::SeqCst);
    for api in apis {
        assert_eq!(api.wait_accepted(2, 10 * SEC).len(), 2, "up alert:\n{}", p.log());
    }
    for api in apis {
        assert_eq!(api.server.count(), 2, "every request accepted at the first try");
    }

    let tg: Vec<Value> = s.telegram.accepted().iter().map(body).collect();
    assert_eq!(tg[0]["disable_web_page_preview"], true);
    let text = tg[0]["text"].as_str().unwrap();
    assert!(text.starts_with("🔴 rag is DOWN: status 503 ("), "{text}");
    assert!(text.contains("/health?key=REDACTED, since "), "{text}");
    assert!(
        tg[1]["text"].as_str().unwrap().starts_with("🟢 rag is back UP after "),
        "{}",
        tg[1]
    );

    let ntfy = s.ntfy.accepted();
    assert_eq!(header(&ntfy[0], "title").as_deref(), Some("rag is DOWN"));
    assert_eq!(header(&ntfy[0], "priority").as_deref(), Some("high"));
    assert_eq!(header(&ntfy[0], "tags").as_deref(), Some("red_circle"));
    assert!(ntfy[0].body.starts_with("status 503\n"), "{}", ntfy[0].body);
    assert_eq!(header(&ntfy[1], "title").as_deref(), Some("rag is back UP"));
    assert_eq!(header(&ntfy[1], "priority").as_deref(), Some("default"));
    assert!(ntfy[1].body.starts_with("was down for "), "{}", ntfy[1].body);

    let g: Vec<Value> = s.gotify.accepted().iter().map(body).collect();
    assert_eq!(
        (g[0]["title"].as_str(), g[0]["priority"].as_i64()),
        (Some("🔴 rag is DOWN"), Some(8))
    );
    assert_eq!(
        (g[1]["title"].as_str(), g[1]["priority"].as_i64()),
        (Some("🟢 rag is back UP"), Some(4))
    );

    let po: Vec<Value> = s.pushover.accepted().iter().map(body).collect();
    assert_eq!(
        (po[0]["title"].as_str(), po[0]["priority"].as_i64()),
        (Some("🔴 rag is DOWN"), Some(1))
    );
    assert!(po[0]["message"].as_str().unwrap().contains("down since "), "{}", po[0]);
    assert_eq!(po[1]["priority"], 0);

    let h = hook.accepted();
    assert_eq!(h[0].path, "/hook-secret");
    assert_eq!(header(&h[0], "authorization").as_deref(), Some("Bearer hook-secret"));
    assert_eq!(header(&h[0], "content-type").as_deref(), Some("application/json"));
    let hb: Vec<Value> = h.iter().map(body).collect();
    assert_eq!(
        (hb[0]["who"].as_str(), hb[0]["state"].as_str()),
        (Some("rag"), Some("down"))
    );
    assert_eq!(hb[1]["state"], "up");
    assert!(hb[0]["text"].as_str().unwrap().starts_with("🔴 rag is DOWN"));

    assert_no_secrets("the log", &p.log());
    assert_no_secrets("/status", &p.get("/status").body);
    assert_no_secrets("the page", &p.get("/").body);
    let metrics = p.get("/metrics").body;
    assert_no_secrets("/metrics", &metrics);
    for name in ["telegram", "ntfy", "gotify", "pushover", "webhook"] {
        assert!(
            metrics.contains(&format!("pinger_alerts_total{{channel=\"{name}\",result=\"sent\"}} 2")),
            "{name}:\n{metrics}"
        );
    }
}

#[test]
fn each_channel_counts_its_own_streak() {
    let target = FakeServer::always(status(503));
    let (fast, slow) = (providers::any_webhook(), providers::any_webhook());
    let cfg = config(
        json!([{"name": "t", "url": target.url("/"), "interval": "1s", "retries": 0}]),
        json!([
            {"name": "slow", "type": "json", "webhook_url": slow.url("/"), "failure_threshold": 3},
            {"name": "fast", "type": "json", "webhook_url": fast.url("/"), "failure_threshold": 1},
        ]),
    );
    let p = Pinger::start(&cfg, &[]);
    let got = fast.wait_accepted(1, 10 * SEC);
    assert_eq!(got.len(), 1, "{}", p.log());
    assert!(target.count() < 3, "the fast channel spoke after the first failure");
    assert_eq!(slow.server.count(), 0, "the slow channel waits for its third failure");
    assert_eq!(body(&got[0])["state"], "down");
    let got = slow.wait_accepted(1, 10 * SEC);
    assert_eq!(got.len(), 1);
    assert!(target.count() >= 3);
    std::thread::sleep(SEC + SEC / 2);
    assert_eq!(
        (fast.server.count(), slow.server.count()),
        (1, 1),
        "one down alert each"
    );
}

#[test]
fn channels_speak_only_for_their_workers_and_never_for_a_silenced_one() {
    let target = FakeServer::always(status(500));
    let (only_a, all) = (providers::any_webhook(), providers::any_webhook());
    let cfg = config(
        json!([
            {"name": "a", "url": target.url("/a"), "interval": "1h", "retries": 0},
            {"name": "b", "url": target.url("/b"), "interval": "1h", "retries": 0},
            {"name": "quiet", "url": target.url("/q"), "interval": "1h", "retries": 0, "alerts": false},
        ]),
        json!([
            {"name": "only-a", "webhook_url": only_a.url("/"), "failure_threshold": 1, "workers": ["a"]},
            {"name": "all", "webhook_url": all.url("/"), "failure_threshold": 1},
        ]),
    );
    let p = Pinger::start(&cfg, &[]);
    for w in ["a", "b", "quiet"] {
        p.wait_worker(w, 10 * SEC, |w| w["checks"] == 1);
    }
    all.wait_accepted(2, 10 * SEC);
    std::thread::sleep(SEC / 2);
    let workers = |api: &FakeApi| {
        let mut w: Vec<String> = api
            .accepted()
            .iter()
            .map(|s| body(s)["worker"].as_str().unwrap().to_string())
            .collect();
        w.sort();
        w
    };
    assert_eq!(workers(&only_a), ["a"]);
    assert_eq!(workers(&all), ["a", "b"]);
}

#[test]
fn a_worker_a_channel_names_must_exist() {
    let d = temp_dir("channels");
    let cfg = config(
        json!([{"name": "a", "url": "https://a.example/"}]),
        json!([{"type": "json", "webhook_url": "https://h.example/x", "workers": ["a", "nope"]},
               {"type": "telegram", "chat_id": 1},
               {"type": "carrier-pigeon"}]),
    );
    std::fs::write(d.join("pinger.json"), cfg).unwrap();
    let (code, _, err) = run(&d, &["check"], &[]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("alerts[0].workers[1]"), "{err}");
    assert!(err.contains("no worker is named \"nope\""), "{err}");
    assert!(err.contains("alerts[1].bot_token"), "{err}");
    assert!(err.contains("required for type telegram"), "{err}");
    assert!(err.contains("alerts[2].type"), "{err}");
    assert!(err.contains("pinger.json"), "the source is named: {err}");
}

#[test]
fn template_values_are_json_escaped() {
    let target = FakeServer::always(ok());
    let hook = providers::any_webhook();
    let cfg = config(
        json!([{"name": "t", "url": target.url("/"), "interval": "1h", "retries": 0,
                "expect_body": "say \"hi\" \\ now"}]),
        json!({"type": "webhook", "url": hook.url("/"), "failure_threshold": 1,
               "body": "{\"error\": \"{{error}}\", \"msg\": \"{{message}}\", \"at\": \"{{at}}\", \"url\": \"{{url}}\"}"}),
    );
    let _p = Pinger::start(&cfg, &[]);
    let got = hook.wait_accepted(1, 10 * SEC);
    assert_eq!(got.len(), 1);
    let v: Value = serde_json::from_str(&got[0].body).expect("the quotes and backslashes did not break the JSON");
    let error = v["error"].as_str().unwrap();
    assert_eq!(error, r#"body did not contain "say \"hi\" \\ now""#);
    assert!(v["msg"].as_str().unwrap().contains(error));
    assert!(v["at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(v["url"], target.url("/"));
}

#[test]
fn a_hanging_channel_never_delays_another() {
    let target = FakeServer::always(status(503));
    let hang = FakeServer::always(Action::Hang);
    let quick = providers::any_webhook();
    let cfg = config(
        json!([{"name": "t", "url": target.url("/"), "interval": "1h", "retries": 0}]),
        json!([
            {"name": "hangs", "webhook_url": hang.url("/"), "failure_threshold": 1, "timeout": "60s"},
            {"name": "hangs-too", "type": "gotify", "url": hang.url("/"), "token": "x", "failure_threshold": 1, "timeout": "60s"},
            {"name": "quick", "webhook_url": quick.url("/"), "failure_threshold": 1},
        ]),
    );
    let p = Pinger::start(&cfg, &[]);
    let got = quick.wait_accepted(1, 10 * SEC);
    assert_eq!(got.len(), 1, "{}", p.log());
    let transition = target.seen()[0].at;
    let delay = got[0].at.duration_since(transition);
    eprintln!("the quick channel heard the alert {delay:?} after the transition, beside two hanging channels");
    // Held up by a hanging channel it would wait for the 60 s timeout; the bound is generous
    // for a loaded machine.
    assert!(
        delay < 3 * SEC,
        "the quick channel heard {delay:?} after the transition"
    );
    assert_eq!(hang.wait_for(2, 5 * SEC).len(), 2, "both hanging channels were tried");
}

#[test]
fn a_refused_delivery_is_retried_logged_without_secrets_and_counted() {
    let target = FakeServer::always(status(503));
    let tg = providers::telegram(TG_TOKEN, 42);
    let cfg = config(
        json!([{"name": "t", "url": target.url("/"), "interval": "1h", "retries": 0}]),
        json!([{"name": "tg", "type": "telegram", "bot_token": TG_TOKEN, "chat_id": 7, "api_url": tg.url(""),
                "failure_threshold": 1, "retry_backoff": "10ms"}]),
    );
    let p = Pinger::start(&cfg, &[]);
    assert_eq!(tg.server.wait_for(4, 10 * SEC).len(), 4, "1 try + 3 retries");
    let end = std::time::Instant::now() + 10 * SEC;
    while !p.log().contains("dropped") && std::time::Instant::now() < end {
        std::thread::sleep(Duration::from_millis(20));
    }
    let log = p.log();
    assert!(log.contains("/botREDACTED/sendMessage"), "{log}");
    assert!(log.contains("status 400: Bad Request: chat not found"), "{log}");
    assert_no_secrets("the log", &log);
    // Counted just after the log line, and /metrics may serve a body up to a second old.
    let end = std::time::Instant::now() + 10 * SEC;
    let metrics = loop {
        let metrics = p.get("/metrics").body;
        if metrics.contains("pinger_alerts_total{channel=\"tg\",result=\"failed\"} 1")
            || std::time::Instant::now() > end
        {
            break metrics;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        metrics.contains("pinger_alerts_total{channel=\"tg\",result=\"failed\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("pinger_alerts_total{channel=\"tg\",result=\"sent\"} 0"),
        "{metrics}"
    );
}

fn notify_test(cfg: &str, env: &[(&str, &str)]) -> (i32, String, String) {
    let d = temp_dir("notify");
    std::fs::write(d.join("alerts.json"), cfg).unwrap();
    run(&d, &["notify-test", "--config", "alerts.json"], env)
}

#[test]
fn notify_test_sends_one_message_per_channel_and_exits_0() {
    let s = Services::start();
    let hook = providers::any_webhook();
    let mut channels = s.channels(json!({}));
    channels.push(json!({"name": "hook", "type": "discord", "webhook_url": hook.url("/hook-secret")}));
    let (code, out, err) = notify_test(&config(json!([]), Value::Array(channels)), &[("TG_TOKEN", TG_TOKEN)]);
    assert_eq!(code, 0, "{out}{err}");
    for (i, name) in ["telegram", "ntfy", "gotify", "pushover", "hook"].iter().enumerate() {
        assert_eq!(out.lines().nth(i), Some(format!("{name}: ok").as_str()), "{out}");
    }
    for api in [&s.telegram, &s.ntfy, &s.gotify, &s.pushover, &hook] {
        assert_eq!(api.accepted().len(), 1);
    }
    let text = body(&s.telegram.accepted()[0])["text"].as_str().unwrap().to_string();
    assert!(text.contains("master-pinger test message from "), "{text}");
    assert!(
        body(&hook.accepted()[0])["content"]
            .as_str()
            .unwrap()
            .contains("master-pinger test message from ")
    );
    assert_no_secrets("notify-test", &format!("{out}{err}"));
}

#[test]
fn notify_test_says_why_a_channel_failed_and_exits_1() {
    let s = Services::start();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let refused = format!("http://127.0.0.1:{}/hook-secret", closed.local_addr().unwrap().port());
    drop(closed);
    let hang = FakeServer::always(Action::Hang);
    let cfg = config(
        json!([]),
        json!([
            {"name": "good", "type": "gotify", "url": s.gotify.url(""), "token": GOTIFY_TOKEN},
            {"name": "wrong-chat", "type": "telegram", "bot_token": TG_TOKEN, "chat_id": 1, "api_url": s.telegram.url("")},
            {"name": "wrong-key", "type": "pushover", "user_key": "u-wrong", "app_token": PO_TOKEN, "api_url": s.pushover.url("")},
            {"name": "no-token", "type": "ntfy", "url": s.ntfy.url("/pinger-alerts")},
            {"name": "refused", "webhook_url": refused},
            {"name": "slow", "type": "webhook", "url": hang.url("/"), "timeout": "300ms"},
        ]),
    );
    let (code, out, err) = notify_test(&cfg, &[]);
    assert_eq!(code, 1, "{out}{err}");
    let line = |name: &str| {
        out.lines()
            .find(|l| l.starts_with(&format!("{name}: ")))
            .unwrap_or_else(|| panic!("no line for {name}: {out}"))
            .to_string()
    };
    assert_eq!(line("good"), "good: ok");
    assert_eq!(
        line("wrong-chat"),
        "wrong-chat: failed: status 400: Bad Request: chat not found"
    );
    assert_eq!(
        line("wrong-key"),
        "wrong-key: failed: status 400: user identifier is not a valid user, group, or subscribed user key"
    );
    assert_eq!(
        line("no-token"),
        "no-token: failed: status 401: unauthorized (ntfy code 40101)"
    );
    assert_eq!(line("refused"), "refused: failed: connection refused");
    assert!(line("slow").starts_with("slow: failed: timeout"), "{out}");
    assert_no_secrets("notify-test", &format!("{out}{err}"));
}

#[test]
fn notify_test_exits_2_on_a_bad_configuration_or_no_channel() {
    let (code, _, err) = notify_test(
        &config(json!([]), json!([{"type": "gotify", "url": "https://g.example"}])),
        &[],
    );
    assert_eq!(code, 2);
    assert!(
        err.contains("alerts[0].token") && err.contains("required for type gotify"),
        "{err}"
    );
    let (code, _, err) = notify_test(&config(json!([]), json!({"failure_threshold": 2})), &[]);
    assert_eq!(code, 2);
    assert!(err.contains("no alert channel is configured"), "{err}");
}

#[test]
fn check_lists_the_channels_without_their_secrets() {
    let d = temp_dir("channels");
    let cfg = config(
        json!([{"name": "a", "url": "https://a.example/"}]),
        json!([{"name": "tg", "type": "telegram", "bot_token": TG_TOKEN, "chat_id": 5},
               {"webhook_url": "https://discord.com/api/webhooks/1/hook-secret"}]),
    );
    std::fs::write(d.join("pinger.json"), cfg).unwrap();
    let (code, out, err) = run(&d, &["check"], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("alerts: 2 channel(s): tg (telegram), discord (discord)"),
        "{out}"
    );
    assert_no_secrets("check", &format!("{out}{err}"));
}
