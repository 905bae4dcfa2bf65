use super::workers::unique_name;
use super::*;
use std::collections::HashSet;

fn env(pairs: &[(&str, &str)]) -> Env {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn ok(json: &str) -> Config {
    build(Some(("cfg.json", json)), &Flags::default(), &Env::new()).unwrap_or_else(|e| panic!("{e:?}"))
}

/// Every error line for a file, as displayed.
fn errs_env(json: &str, e: &Env) -> Vec<String> {
    match build(Some(("cfg.json", json)), &Flags::default(), e) {
        Ok(_) => panic!("expected errors for {json}"),
        Err(v) => v.iter().map(ToString::to_string).collect(),
    }
}

fn errs(json: &str) -> Vec<String> {
    errs_env(json, &Env::new())
}

fn has(errors: &[String], needle: &str) {
    assert!(
        errors.iter().any(|e| e.contains(needle)),
        "no {needle:?} in {errors:#?}"
    );
}

#[test]
fn defaults_without_a_file() {
    let c = build(None, &Flags::default(), &Env::new()).unwrap();
    assert_eq!(c.settings.listen, "0.0.0.0:7860");
    assert!(c.workers.is_empty() && c.self_ping.is_none());
    assert_eq!(
        (
            c.settings.history,
            c.settings.save_interval,
            c.settings.restart_cooldown
        ),
        (100, Duration::from_secs(60), Duration::from_secs(1800))
    );
    assert_eq!(c.settings.hf_api_url, "https://huggingface.co");
    assert_eq!(
        (c.settings.header_timeout, c.settings.max_connections),
        (Duration::from_secs(10), 1024)
    );
    assert_eq!(c.settings.log_level, log::LevelFilter::Info);
    assert!(c.warnings.iter().any(|w| w.contains("no workers")));
}

#[test]
fn worker_inherits_defaults_and_overrides() {
    let c = ok(
        r#"{"defaults": {"interval": "1m", "timeout": "30s", "retries": 2, "backoff": "1s", "method": "head", "expect_status": "200-299"},
                  "workers": [{"url": "https://a.hf.space/"}, {"url": "https://b.hf.space/", "retries": 0, "interval_seconds": 90}]}"#,
    );
    let (a, b) = (&c.workers[0], &c.workers[1]);
    assert_eq!(
        (a.interval, a.timeout, a.retries, a.backoff),
        (
            Duration::from_secs(60),
            Duration::from_secs(30),
            2,
            Duration::from_secs(1)
        )
    );
    assert_eq!(a.method, "HEAD");
    assert!(a.expect_status.contains(204) && !a.expect_status.contains(301));
    assert_eq!((b.retries, b.interval), (0, Duration::from_secs(90)));
}

#[test]
fn built_in_check_defaults() {
    let c = ok(r#"{"workers": [{"url": "https://a.hf.space/", "interval_minutes": 2}]}"#);
    let w = &c.workers[0];
    assert_eq!(
        (w.interval, w.timeout, w.retries, w.backoff),
        (
            Duration::from_secs(120),
            Duration::from_secs(120),
            3,
            Duration::from_secs(5)
        )
    );
    assert!(w.expect_status.contains(200) && w.expect_status.contains(399) && !w.expect_status.contains(400));
}

#[test]
fn names_are_derived_and_made_unique() {
    let c = ok(
        r#"{"workers": [{"url": "https://app.hf.space/"}, {"name": "app-2", "url": "http://x/"}, {"url": "https://app.hf.space/b"},
                               {"url": "http://[::1]:8080/"}, {"url": "http://self.example/"}]}"#,
    );
    let names: Vec<&str> = c.workers.iter().map(|w| w.name.as_str()).collect();
    assert_eq!(names, ["app", "app-2", "app-3", "--1", "self-2"]);
    assert_eq!(derive_name("https://your-space.hf.space/health"), "your-space");
    assert_eq!(derive_name("http://127.0.0.1:9/"), "127.0.0.1");
    assert_eq!(unique_name(&"a".repeat(64), &HashSet::from(["a".repeat(64)])).len(), 64);
}

#[test]
fn every_field_error_names_its_path() {
    let e = errs(
        r#"{"listen": "nowhere", "history": 10001, "save_interval": "1ms", "restart_cooldown": "8d", "hf_api_url": "x",
                     "header_timeout": "1ms", "max_connections": 0,
                     "defaults": {"backoff": "11m", "method": "FETCH", "expect_status": [99], "headers": {"bad name": "v"}},
                     "alerts": {"format": "teams", "failure_threshold": 0, "send_on_resolved": "yes", "webhook_url": "nope"},
                     "self_ping": {"url": "http://x/", "intervall": "1m"},
                     "workers": {"url": "http://x/"}}"#,
    );
    for needle in [
        "cfg.json: listen: expected an address such as 0.0.0.0:7860",
        "cfg.json: history: expected a whole number from 10 to 10000, got 10001",
        "cfg.json: save_interval: expected a duration from 10ms to 1h, got 1ms",
        "cfg.json: restart_cooldown: expected a duration from 0s to 7d, got 8d",
        "cfg.json: hf_api_url: expected an http:// or https:// URL",
        "cfg.json: header_timeout: expected a duration from 100ms",
        "cfg.json: max_connections: expected a whole number from 1 to 1000000, got 0",
        "cfg.json: defaults.backoff: expected a duration from 0s to 10m, got 11m",
        "cfg.json: defaults.method: expected one of GET, HEAD",
        "cfg.json: defaults.expect_status: expected a status code",
        "cfg.json: defaults.headers.bad name: is not a valid HTTP header name",
        "cfg.json: alerts.format: expected one of \"discord\", \"slack\", \"json\", \"webhook\", \"telegram\", \"ntfy\", \"gotify\", \"pushover\", got \"teams\"",
        "cfg.json: alerts.failure_threshold: expected a whole number from 1 to 1000, got 0",
        "cfg.json: alerts.send_on_resolved: expected true or false, got \"yes\"",
        "cfg.json: alerts.webhook_url: expected an http or https URL with a host (value not shown",
        "cfg.json: self_ping.intervall: unknown field",
        "cfg.json: workers: expected a list of workers, got an object",
    ] {
        has(&e, needle);
    }
    assert_eq!(e.len(), 17, "{e:#?}");
}

#[test]
fn worker_field_errors() {
    let e = errs(
        r#"{"workers": [{"name": ""}, {"url": "http://x:70000/"}, {"url": "http://a b/"}, {"url": "http://x/", "interval": 5},
                                 {"url": "http://x/", "interval_minutes": -1}, {"url": "http://x/", "interval": "500ms"},
                                 {"url": "http://x/", "space_id": "nope"}, {"url": "http://x/", "expect_body": ""}, "str"]}"#,
    );
    has(&e, "workers[0].name: expected 1-64 characters");
    has(&e, "workers[0]: missing field \"url\"");
    has(&e, "workers[1].url: the port \"70000\" is not a number from 1 to 65535");
    has(&e, "workers[2].url: the host \"a b\" is not valid");
    has(&e, "workers[3].interval: expected a string, got a number");
    has(&e, "workers[4].interval_minutes: expected a positive number, got -1");
    has(
        &e,
        "workers[5].interval: expected a duration from 1s to 365d, got 500ms",
    );
    has(&e, "workers[6].space_id: expected \"owner/space\", got \"nope\"");
    has(&e, "workers[7].expect_body: expected a non-empty string");
    has(&e, "workers[8]: expected an object, got a string");
    let e = errs(r#"{"workers": [{"url": "http://x/?q=<b>"}]}"#);
    has(
        &e,
        "workers[0].url: the URL has characters that must be percent-encoded",
    );
}

#[test]
fn env_expansion_and_secrets() {
    let e = env(&[("TOK", "t0k3n"), ("HOST", "h.example")]);
    let c = build(
        Some(("cfg.json", r#"{"workers": [{"url": "https://${HOST}/x?k=${TOK}", "headers": {"Authorization": "Bearer ${TOK}"}, "expect_body": "${TOK}"}]}"#)),
        &Flags::default(),
        &e,
    )
    .unwrap();
    let w = &c.workers[0];
    assert_eq!(w.url, "https://h.example/x?k=t0k3n");
    assert_eq!(w.display_url, "https://REDACTED/x?k=REDACTED");
    assert_eq!(
        w.headers,
        vec![("Authorization".to_string(), "Bearer t0k3n".to_string())]
    );
    assert!(w.expect_body_secret);
    let e2 = errs(r#"{"workers": [{"url": "http://x/${A-B}"}, {"url": "http://x/${OPEN"}]}"#);
    has(
        &e2,
        "workers[0].url: \"${A-B}\" is not a valid environment variable reference",
    );
    has(&e2, "workers[1].url: unterminated \"${\"");
    let e3 = errs_env(
        r#"{"workers": [{"url": "http://x/", "headers": {"X": "${V}"}}]}"#,
        &env(&[("V", "a\r\nInjected: 1")]),
    );
    has(&e3, "workers[0].headers.X: the value contains a line break");
    assert!(
        !e3.iter().any(|l| l.contains("Injected")),
        "secret values are never quoted"
    );
}

#[test]
fn method_expect_status_and_space_id_from_env_stay_secret() {
    let e = env(&[
        ("M", "patch"),
        ("S", "218"),
        ("SP", "zz-owner/zz-space"),
        ("HF_TOKEN", "hf_x"),
    ]);
    let c = build(
        Some((
            "cfg.json",
            r#"{"workers": [{"name": "a", "url": "http://x/", "method": "${M}", "expect_status": ["${S}", 200],
                "space_id": "${SP}"}]}"#,
        )),
        &Flags::default(),
        &e,
    )
    .unwrap();
    let w = &c.workers[0];
    assert_eq!((w.method.as_str(), w.method_secret), ("PATCH", true));
    assert!(w.expect_status.contains(218) && w.expect_status.contains(200) && w.expect_status_secret);
    let shown = format!("{w:?} {c:?}");
    for secret in ["PATCH", "patch", "218", "zz-owner"] {
        assert!(!shown.contains(secret), "{secret} in {shown}");
    }
    let plain = ok(r#"{"workers": [{"url": "http://x/", "method": "HEAD", "expect_status": "200-204"}]}"#);
    let w = &plain.workers[0];
    assert_eq!(
        (w.shown_method(), w.shown_expect_status().as_str()),
        ("HEAD", "200-204")
    );
    let e = errs_env(
        r#"{"workers": [{"url": "http://x/", "method": "${M}", "expect_status": "${S}"}]}"#,
        &env(&[("M", "fetch-s3cr3t"), ("S", "s3cr3t-status")]),
    );
    has(&e, "workers[0].method: expected one of");
    has(&e, "workers[0].expect_status: expected a status code");
    assert!(!e.iter().any(|l| l.contains("s3cr3t")), "{e:#?}");
}

#[test]
fn values_from_env_that_would_be_shown_are_refused_or_scrubbed() {
    let e = env(&[
        ("NM", "zzname"),
        ("HOST", "zzhost.example"),
        ("ADDR", "127.0.0.1:7"),
        ("DIR", "/zzdir"),
    ]);
    let errors = errs_env(r#"{"workers": [{"name": "${NM}", "url": "http://x/"}]}"#, &e);
    has(&errors, "workers[0].name: expected a literal name, not ${VAR}");
    assert!(!errors.iter().any(|l| l.contains("zzname")), "{errors:?}");
    let errors = errs_env(r#"{"alerts": {"name": "${NM}", "webhook_url": "http://h/"}}"#, &e);
    has(&errors, "alerts.name: expected a literal name, not ${VAR}");
    assert!(!errors.iter().any(|l| l.contains("zzname")), "{errors:?}");
    let c = build(
        Some((
            "cfg.json",
            r#"{"listen": "${ADDR}", "state_file": "${DIR}/s.json", "workers": [{"url": "http://${HOST}/"}]}"#,
        )),
        &Flags::default(),
        &e,
    )
    .unwrap();
    assert!(!c.workers[0].name.contains("zzhost"), "{}", c.workers[0].name);
    assert_eq!(c.settings.scrub(&c.settings.listen), "REDACTED");
    assert_eq!(
        c.settings.scrub("cannot write /zzdir/s.json"),
        "cannot write REDACTED/s.json"
    );
    assert_eq!(
        ok(r#"{"listen": "127.0.0.1:7"}"#).settings.scrub("127.0.0.1:7"),
        "127.0.0.1:7"
    );
}

#[test]
fn precedence_flags_env_file() {
    let file = Some((
        "cfg.json",
        r#"{"listen": "127.0.0.1:1111", "state_file": "/from/file", "workers": [{"url": "http://file/"}]}"#,
    ));
    let c = build(file, &Flags::default(), &Env::new()).unwrap();
    assert_eq!(
        (c.settings.listen.as_str(), c.workers[0].name.as_str()),
        ("127.0.0.1:1111", "file")
    );
    let e = env(&[
        ("PORT", "2222"),
        ("PINGER_WORKERS", r#"[{"url": "http://envw/"}]"#),
        ("PINGER_STATE_FILE", "/from/env"),
    ]);
    let c = build(file, &Flags::default(), &e).unwrap();
    assert_eq!(c.settings.listen, "0.0.0.0:2222");
    assert_eq!(c.workers.len(), 1);
    assert_eq!(c.workers[0].name, "envw");
    assert_eq!(c.settings.state_file, Some(PathBuf::from("/from/env")));
    let flags = Flags {
        listen: Some("127.0.0.1:3333".into()),
        ..Flags::default()
    };
    assert_eq!(build(file, &flags, &e).unwrap().settings.listen, "127.0.0.1:3333");
    let flags = Flags {
        state_file: Some("/from/flag".into()),
        ..Flags::default()
    };
    assert_eq!(
        build(file, &flags, &e).unwrap().settings.state_file,
        Some(PathBuf::from("/from/flag")),
        "--state-file wins over PINGER_STATE_FILE"
    );
}

#[test]
fn self_ping_sources() {
    let e = env(&[
        ("PINGER_SELF_URL", "https://env.example/health"),
        ("SPACE_HOST", "me.hf.space"),
    ]);
    let c = build(None, &Flags::default(), &e).unwrap();
    assert_eq!(c.self_ping.as_ref().unwrap().url, "https://env.example/health");
    let c = build(None, &Flags::default(), &env(&[("SPACE_HOST", "me.hf.space")])).unwrap();
    let s = c.self_ping.unwrap();
    assert_eq!(
        (s.url.as_str(), s.interval, s.name.as_str()),
        ("https://me.hf.space/health", Duration::from_secs(240), "self")
    );
    let file = Some((
        "cfg.json",
        r#"{"self_ping": {"url": "https://file.example/health", "interval": "1m"}}"#,
    ));
    let c = build(file, &Flags::default(), &e).unwrap();
    assert_eq!(
        c.self_ping.unwrap().url,
        "https://file.example/health",
        "self_ping.url wins over PINGER_SELF_URL"
    );
    let off = build(Some(("cfg.json", r#"{"self_ping": false}"#)), &Flags::default(), &e).unwrap();
    assert!(off.self_ping.is_none());
    has(
        &errs(r#"{"self_ping": true}"#),
        "self_ping: expected an object or false, got true",
    );
}

#[test]
fn alerts_defaults_and_format_guess() {
    let c = build(
        None,
        &Flags::default(),
        &env(&[("PINGER_WEBHOOK_URL", "https://discord.com/api/webhooks/1/x")]),
    )
    .unwrap();
    let ch = &c.alerts.channels[0];
    assert_eq!((ch.kind.type_name(), ch.name.as_str()), ("discord", "discord"));
    assert_eq!(
        (ch.failure_threshold, ch.success_threshold, ch.send_on_resolved),
        (3, 1, true)
    );
    assert_eq!(
        (ch.timeout, ch.cert_expiry_days.as_slice()),
        (Duration::from_secs(10), &[14, 7, 3, 1][..])
    );
    let type_of = |json: &str| ok(json).alerts.channels[0].kind.type_name();
    assert_eq!(
        type_of(r#"{"alerts": {"webhook_url": "https://hooks.slack.com/services/x"}}"#),
        "slack"
    );
    assert_eq!(
        type_of(r#"{"alerts": {"webhook_url": "https://hooks.slack.com/services/x", "format": "json"}}"#),
        "json"
    );
    assert_eq!(
        type_of(r#"{"alerts": {"webhook_url": "https://x.example/", "type": "discord"}}"#),
        "discord"
    );
    let c = ok(r#"{"alerts": {"failure_threshold": 5}}"#);
    assert!(c.alerts.channels.is_empty(), "thresholds alone name no channel");
    assert_eq!(c.alerts.failure_threshold, 5);
}

#[test]
fn alert_channel_lists() {
    let c = ok(
        r#"{"workers": [{"name": "a", "url": "https://a.example/"}, {"name": "b", "url": "https://b.example/", "alerts": false}],
        "alerts": [
          {"type": "telegram", "bot_token": "1:x", "chat_id": -100, "failure_threshold": 1},
          {"type": "telegram", "bot_token": "2:y", "chat_id": "@ch", "api_url": "http://127.0.0.1:9"},
          {"name": "telegram-2", "type": "ntfy", "url": "https://ntfy.sh/t", "token": "tk", "workers": ["a"]},
          {"type": "gotify", "url": "https://g.example", "token": "A1", "cert_expiry_days": [3, 30, 3]},
          {"type": "pushover", "user_key": "u", "app_token": "t", "send_on_resolved": false, "timeout": "2s"},
          {"type": "webhook", "url": "https://h.example/x", "method": "put", "headers": {"X-Key": "k"}, "body": "{{worker}}"},
          {"webhook_url": "https://discord.com/api/webhooks/1/x", "cert_expiry_days": []}
        ]}"#,
    );
    let names: Vec<&str> = c.alerts.channels.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "telegram",
            "telegram-3",
            "telegram-2",
            "gotify",
            "pushover",
            "webhook",
            "discord"
        ],
        "a given name is kept; defaults skip it"
    );
    let ch = &c.alerts.channels;
    assert!(matches!(&ch[0].kind, Kind::Telegram(s) if s.chat_id == "-100" && s.api_url == "https://api.telegram.org"));
    assert!(matches!(&ch[1].kind, Kind::Telegram(s) if s.chat_id == "@ch" && s.api_url == "http://127.0.0.1:9"));
    assert_eq!(ch[2].workers.as_deref(), Some(&["a".to_string()][..]));
    assert!(ch[2].speaks_for("a") && !ch[2].speaks_for("b") && ch[0].speaks_for("b"));
    assert_eq!(ch[3].cert_expiry_days, [30, 3]);
    assert_eq!((ch[4].send_on_resolved, ch[4].timeout), (false, Duration::from_secs(2)));
    assert!(
        matches!(&ch[5].kind, Kind::Webhook(s) if s.method == "PUT" && s.headers == [("X-Key".to_string(), "k".to_string())])
    );
    assert!(ch[6].cert_expiry_days.is_empty());
    assert_eq!(
        c.alerts.failure_threshold, 1,
        "restarts follow the lowest threshold of a list"
    );
    assert!(c.workers[0].alerts && !c.workers[1].alerts);
    let shown = format!("{c:?}");
    for secret in ["1:x", "2:y", "tk", "A1", "h.example", "discord.com", "\"k\""] {
        assert!(!shown.contains(secret), "Debug shows {secret}: {shown}");
    }
}

#[test]
fn the_webhook_variable_sets_the_single_channel_or_adds_one_to_a_list() {
    let e = env(&[("PINGER_WEBHOOK_URL", "https://hooks.slack.com/services/env")]);
    let single = r#"{"alerts": {"webhook_url": "https://x.example/file", "failure_threshold": 4}}"#;
    let c = build(Some(("cfg.json", single)), &Flags::default(), &e).unwrap();
    assert_eq!(c.alerts.channels.len(), 1);
    let ch = &c.alerts.channels[0];
    assert!(
        matches!(&ch.kind, Kind::Slack { webhook_url } if webhook_url.ends_with("/env")),
        "{ch:?}"
    );
    assert_eq!(ch.failure_threshold, 4, "the object's settings stay");
    let list = r#"{"alerts": [{"type": "gotify", "url": "https://g.example", "token": "t"}]}"#;
    let c = build(Some(("cfg.json", list)), &Flags::default(), &e).unwrap();
    let names: Vec<&str> = c.alerts.channels.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["gotify", "slack"]);
    assert_eq!(c.alerts.channels[1].field, "PINGER_WEBHOOK_URL");
}

#[test]
fn alert_channel_errors_name_their_field() {
    let e = errs(
        r#"{"workers": [{"name": "a", "url": "https://a.example/", "alerts": "no"}],
            "alerts": [
              {"type": "telegram", "chat_id": [1]},
              {"type": "ntfy", "url": "not a url ${HOME}x"},
              {"type": "webhook", "url": "https://h.example/", "method": "GET", "body": "{{wrokr}}"},
              {"type": "webhook", "url": "https://h.example/", "body": "{{wrokr}}"},
              {"type": "gotify", "url": "https://g.example/", "token": "t", "workers": ["a", "zed"], "cert_expiry_days": [0]},
              {"name": "dup", "webhook_url": "https://x.example/"},
              {"name": "dup", "webhook_url": "https://y.example/", "type": "json", "format": "json"},
              {"type": "slack"},
              {"url": "https://x.example/"},
              "hello"
            ]}"#,
    );
    for needle in [
        "cfg.json: workers[0].alerts: expected false (never alert for this worker) or true, got a string",
        "cfg.json: alerts[0].bot_token: required for type telegram",
        "cfg.json: alerts[0].chat_id: expected a chat id (a number or \"@channel\"), got a list",
        "cfg.json: alerts[2].method: expected one of POST, PUT, PATCH, got \"GET\"",
        "cfg.json: alerts[3].body: unknown placeholder {{wrokr}} (expected {{worker}}, {{url}}",
        "cfg.json: alerts[4].cert_expiry_days[0]: expected a whole number of days from 1 to 365, got 0",
        "cfg.json: alerts[4].workers[1]: no worker is named \"zed\" (workers are: a)",
        "cfg.json: alerts[6].format: give either type or its old name format, not both",
        "cfg.json: alerts[6].name: \"dup\" is already the name of another channel",
        "cfg.json: alerts[7].webhook_url: required for type slack",
        "cfg.json: alerts[8].url: unknown field",
        "cfg.json: alerts[9]: expected an object, got a string",
    ] {
        has(&e, needle);
    }
    assert!(e.iter().any(|l| l.starts_with("cfg.json: alerts[1].url")), "{e:#?}");
    assert!(
        e.iter().all(|l| !l.contains("not a url")),
        "a destination URL is never quoted: {e:#?}"
    );
}

#[test]
fn bad_environment_values() {
    let e = build(
        None,
        &Flags::default(),
        &env(&[("RUST_LOG", "loud"), ("PORT", "99999"), ("PINGER_WEBHOOK_URL", "nope")]),
    )
    .unwrap_err();
    let lines: Vec<String> = e.iter().map(ToString::to_string).collect();
    has(
        &lines,
        "RUST_LOG: expected one of off, error, warn, info, debug, trace, got \"loud\"",
    );
    has(&lines, "PORT: expected a port number from 0 to 65535, got \"99999\"");
    has(&lines, "PINGER_WEBHOOK_URL: expected an http or https URL");
    let c = build(None, &Flags::default(), &env(&[("RUST_LOG", "DEBUG")])).unwrap();
    assert_eq!(c.settings.log_level, log::LevelFilter::Debug);
}

#[test]
fn status_sets() {
    let c = ok(r#"{"workers": [{"url": "http://x/", "expect_status": [200, "300-302", "404"]}]}"#);
    let s = &c.workers[0].expect_status;
    assert!(s.contains(200) && s.contains(301) && s.contains(404) && !s.contains(303));
    assert_eq!(s.to_string(), "200,300-302,404");
    has(
        &errs(r#"{"workers": [{"url": "http://x/", "expect_status": []}]}"#),
        "got an empty list",
    );
    has(
        &errs(r#"{"workers": [{"url": "http://x/", "expect_status": "399-200"}]}"#),
        "expect_status",
    );
}

#[test]
fn values_from_the_environment_are_never_quoted_in_errors() {
    let e = env(&[
        ("IV", "hunter2-interval"),
        ("M", "hunter2-method"),
        ("N", "bad name hunter2"),
    ]);
    let lines = errs_env(
        r#"{"workers": [{"name": "${N}", "url": "http://x/", "interval": "${IV}", "method": "${M}"}]}"#,
        &e,
    );
    has(&lines, "workers[0].interval: expected a duration");
    has(&lines, "workers[0].method: expected one of");
    has(&lines, "workers[0].name: expected a literal name, not ${VAR}");
    assert!(lines.iter().all(|l| !l.contains("hunter2")), "{lines:#?}");
}

#[test]
fn debug_output_never_shows_a_secret() {
    let e = env(&[
        ("TOK", "s3cr3t-url-token"),
        ("HDR", "s3cr3t-header"),
        ("BODY", "s3cr3t-body"),
        ("HOOK", "https://hooks.example/s3cr3t-hook"),
        ("HF_TOKEN", "s3cr3t-hf"),
        ("PINGER_ADMIN_TOKEN", "s3cr3t-admin"),
    ]);
    let c = build(
        Some((
            "cfg.json",
            r#"{"workers": [{"name": "a", "url": "https://a.hf.space/?k=${TOK}", "space_id": "o/a",
                             "headers": {"X-Key": "${HDR}", "Authorization": "plain-s3cr3t-literal"},
                             "expect_body": "${BODY}"},
                            {"name": "b", "url": "https://b.hf.space/", "space_id": "o/b", "restart_token": "s3cr3t-own"}],
                "alerts": {"webhook_url": "${HOOK}"},
                "hf_api_url": "https://user:s3cr3t-pass@hf.example/"}"#,
        )),
        &Flags::default(),
        &e,
    )
    .unwrap();
    let shown = format!("{c:?} {c:#?} {:?} {:?}", c.workers[0], c.alerts);
    assert!(!shown.contains("s3cr3t"), "{shown}");
    // The output still says what is configured, so the test above is not passing on silence.
    for visible in [
        "\"a\"",
        "\"b\"",
        "X-Key",
        "Authorization",
        "REDACTED",
        "https://a.hf.space/?k=REDACTED",
    ] {
        assert!(shown.contains(visible), "no {visible} in {shown}");
    }
    let plain = ok(r#"{"workers": [{"url": "http://x/", "expect_body": "visible text"}]}"#);
    assert!(
        format!("{plain:?}").contains("visible text"),
        "a literal expected body is not a secret"
    );
}

#[test]
fn the_restart_token_is_resolved_in_the_configuration() {
    let file = r#"{"workers": [{"name": "own", "url": "http://x/", "space_id": "o/a", "restart_token": "mine"},
                                {"name": "shared", "url": "http://y/", "space_id": "o/b"}]}"#;
    let c = build(Some(("cfg.json", file)), &Flags::default(), &env(&[("HF_TOKEN", "hf")])).unwrap();
    let tokens: Vec<Option<&str>> = c.workers.iter().map(|w| w.restart_token.as_deref()).collect();
    assert_eq!(tokens, [Some("mine"), Some("hf")]);
    assert!(!c.warnings.iter().any(|w| w.contains("HF_TOKEN")), "{:?}", c.warnings);
    let c = build(Some(("cfg.json", file)), &Flags::default(), &env(&[("HF_TOKEN", "")])).unwrap();
    let tokens: Vec<Option<&str>> = c.workers.iter().map(|w| w.restart_token.as_deref()).collect();
    assert_eq!(tokens, [Some("mine"), None]);
    assert!(
        c.warnings.iter().any(|w| w.contains("HF_TOKEN is not set")),
        "{:?}",
        c.warnings
    );
}

/// `n` workers on `host` with a 2m timeout and a 10s interval.
fn fleet(n: usize, host: &str) -> String {
    let workers: Vec<String> = (0..n)
        .map(|i| format!(r#"{{"name": "w{i}", "url": "https://w{i}.{host}/", "timeout": "2m", "interval": "10s"}}"#))
        .collect();
    format!(r#"{{"self_ping": false, "workers": [{}]}}"#, workers.join(","))
}

#[test]
fn advice_shared_by_many_workers_is_one_line() {
    let c = ok(&fleet(1000, "example.com"));
    assert_eq!(
        c.warnings,
        [
            "1000 workers (\"w0\", \"w1\", \"w2\" and 997 more): timeout 2m is not shorter than the interval 10s: \
             a slow check will skip deadlines"
        ]
    );
    let c = ok(&fleet(3, "example.com"));
    assert_eq!(c.warnings.len(), 3, "{:?}", c.warnings);
    assert_eq!(
        c.warnings[2],
        "worker \"w2\": timeout 2m is not shorter than the interval 10s: a slow check will skip deadlines"
    );
    let c = ok(&fleet(4, "example.com"));
    assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
    assert!(c.warnings[0].starts_with("4 workers (\"w0\", \"w1\", \"w2\" and 1 more): timeout 2m"));
}

#[test]
fn different_advice_is_not_merged() {
    let c = build(
        Some((
            "cfg.json",
            r#"{"self_ping": false, "workers": [
                {"name": "r", "url": "https://r.onrender.com:5000/", "interval": "20m"},
                {"name": "h", "url": "https://h.hf.space/", "interval": "3d", "timeout": "1m"},
                {"name": "t", "url": "https://t.example/", "interval": "1s", "timeout": "1s"}]}"#,
        )),
        &Flags::default(),
        &env(&[("SPACE_HOST", "me.hf.space")]),
    )
    .unwrap();
    assert_eq!(
        c.warnings,
        [
            "worker \"r\": port 5000 is blocked on Hugging Face Spaces (only 80, 443 and 8080 can be reached from a Space)",
            "worker \"r\": interval 20m is longer than Render's sleep window of 15m: the app will fall asleep between pings",
            "worker \"h\": interval 3d is longer than Hugging Face Spaces' sleep window of 2d: the app will fall asleep \
             between pings",
            "worker \"t\": timeout 1s is not shorter than the interval 1s: a slow check will skip deadlines",
        ]
    );
}

#[test]
fn pinger_workers_takes_a_plain_list_of_urls() {
    let file = Some((
        "f.json",
        r#"{"defaults": {"interval": "2m"}, "workers": [{"url": "http://file/"}]}"#,
    ));
    let list = "https://a.hf.space/health, https://b.hf.space/health\n  https://a.hf.space/other,https://c.example/";
    let c = build(file, &Flags::default(), &env(&[("PINGER_WORKERS", list)])).unwrap();
    let names: Vec<&str> = c.workers.iter().map(|w| w.name.as_str()).collect();
    assert_eq!(names, ["a", "b", "a-2", "c"]);
    assert_eq!(c.workers[1].url, "https://b.hf.space/health");
    assert_eq!(
        c.workers[3].interval,
        Duration::from_secs(120),
        "each with the defaults"
    );
    let one = build(
        None,
        &Flags::default(),
        &env(&[("PINGER_WORKERS", "http://solo:8080/")]),
    )
    .unwrap();
    assert_eq!(one.workers.len(), 1);
}

#[test]
fn pinger_workers_that_is_neither_shows_both_forms() {
    for value in ["just-a-name", "https://a.hf.space/ sometoken", "[{\"url\": ", "{oops"] {
        let errs = build(None, &Flags::default(), &env(&[("PINGER_WORKERS", value)])).unwrap_err();
        assert_eq!(errs.len(), 1, "{value}: {errs:?}");
        let text = errs[0].to_string();
        assert!(text.starts_with("PINGER_WORKERS: "), "{text}");
        assert!(text.contains("[{\"url\": \"https://a.hf.space/health\"}]"), "{text}");
        assert!(text.contains("separated by spaces, commas or newlines"), "{text}");
        assert!(!text.contains("sometoken"), "the value is never quoted: {text}");
    }
    let errs = build(
        None,
        &Flags::default(),
        &env(&[("PINGER_WORKERS", "https://ok/ ftp://x/")]),
    )
    .unwrap_err();
    assert_eq!(errs[0].field, "workers[1].url", "{errs:?}");
}

/// A PEM file holding one freshly made CA certificate, in a folder of its own.
fn ca_pem(tag: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("mp-cfg-tls-{}-{tag}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("ca.pem");
    std::fs::write(&path, crate::tls::testcerts::Ca::new().pem()).unwrap();
    path
}

#[test]
fn tls_settings_layer_from_defaults_to_workers_and_self_ping() {
    let ca = ca_pem("layer");
    let c = ok(&format!(
        r#"{{"defaults": {{"tls": {{"ca_file": "{}"}}}},
             "self_ping": {{"url": "https://me.hf.space/health", "tls": {{"insecure": true}}}},
             "workers": [{{"url": "https://a.hf.space/"}}, {{"url": "https://b.hf.space/", "tls": {{"insecure": true}}}}]}}"#,
        ca.display()
    ));
    let (a, b) = (&c.workers[0].tls, &c.workers[1].tls);
    assert_eq!(a.ca_file.as_ref().map(|f| f.path.clone()), Some(ca.clone()));
    assert_eq!(a.ca_file.as_ref().map(|f| f.certs.len()), Some(1));
    assert!(!a.insecure);
    assert!(
        b.insecure && b.ca_file.is_some(),
        "insecure alone keeps the inherited ca_file"
    );
    let s = c.self_ping.as_ref().unwrap();
    assert!(s.tls.insecure && s.tls.ca_file.is_some());
    let warned: Vec<&String> = c.warnings.iter().filter(|w| w.contains("tls.insecure")).collect();
    assert_eq!(warned.len(), 2, "{:?}", c.warnings);
    assert!(
        format!("{c:?}").contains("1 certificate(s)"),
        "Debug shows the file, not its bytes"
    );
}

#[test]
fn bad_tls_settings_name_the_file_and_the_field() {
    let dir = ca_pem("bad").parent().unwrap().to_path_buf();
    let empty = dir.join("empty.pem");
    std::fs::write(&empty, "nothing here\n").unwrap();
    let e = errs(&format!(
        r#"{{"defaults": {{"tls": {{"ca_file": "/nonexistent/ca.pem"}}}},
             "workers": [{{"url": "https://a/", "tls": {{"ca_file": "{}", "insecure": "yes"}}}},
                         {{"url": "https://b/", "tls": {{"verify": false}}}}]}}"#,
        empty.display()
    ));
    has(
        &e,
        "cfg.json: defaults.tls.ca_file: cannot read \"/nonexistent/ca.pem\"",
    );
    has(
        &e,
        &format!(
            "cfg.json: workers[0].tls.ca_file: {:?} holds no certificate",
            empty.display().to_string()
        ),
    );
    has(&e, "workers[0].tls.insecure: expected true or false");
    has(&e, "workers[1].tls.verify: unknown field");
    let e = errs_env(
        r#"{"self_ping": false}"#,
        &env(&[("SSL_CERT_FILE", "/nonexistent/x.pem")]),
    );
    has(&e, "SSL_CERT_FILE: cannot read \"/nonexistent/x.pem\"");
}

#[test]
fn ssl_cert_file_proxies_and_cert_settings() {
    let ca = ca_pem("env");
    let e = env(&[
        ("SSL_CERT_FILE", ca.to_str().unwrap()),
        ("HTTPS_PROXY", "http://u:pw@proxy.example:3128"),
    ]);
    let c = build(
        Some(("cfg.json", r#"{"cert_check_interval": "10m"}"#)),
        &Flags::default(),
        &e,
    )
    .unwrap();
    assert_eq!(c.settings.ssl_cert_file.as_ref().map(|f| f.certs.len()), Some(1));
    assert!(c.settings.proxies.for_url("https://x.hf.space/").is_some());
    assert!(!format!("{c:?}").contains("pw@"), "no proxy credentials in Debug");
    assert_eq!(c.settings.cert_check_interval, Duration::from_secs(600));
    assert_eq!(ok("{}").settings.cert_check_interval, Duration::from_secs(3600));
    let e = errs(r#"{"cert_check_interval": "2h"}"#);
    has(&e, "cert_check_interval: expected a duration from 10ms to 1h");
    let e = errs_env("{}", &env(&[("ALL_PROXY", "socks5://p:1080")]));
    has(&e, "ALL_PROXY: only http:// and https:// proxies are supported");
}

fn sharded(json: &str, flag: Option<&str>, e: &Env) -> Result<Config, Vec<String>> {
    let flags = Flags {
        shard: flag.map(String::from),
        ..Flags::default()
    };
    build(Some(("cfg.json", json)), &flags, e).map_err(|v| v.iter().map(ToString::to_string).collect())
}

#[test]
fn shards_split_the_named_workers_and_keep_the_self_ping() {
    // Unnamed workers are named from the whole list first, so "app-2" is the same worker in
    // every shard.
    let json = r#"{"self_ping": {"url": "https://me.example/health"},
                   "workers": [{"url": "https://app.hf.space/"}, {"url": "https://app.hf.space/b"},
                               {"name": "x", "url": "http://x/"}, {"name": "y", "url": "http://y/"},
                               {"name": "z", "url": "http://z/"}]}"#;
    let all: Vec<String> = ok(json).workers.iter().map(|w| w.name.clone()).collect();
    assert_eq!(all, ["app", "app-2", "x", "y", "z"]);
    let mut seen = Vec::new();
    for i in 1..=3 {
        let c = sharded(json, Some(&format!("{i}/3")), &Env::new()).unwrap();
        assert_eq!(c.shard, Some(Shard { index: i, count: 3 }));
        assert_eq!(c.configured_workers, 5);
        assert_eq!(c.self_ping.as_ref().map(|s| s.name.as_str()), Some("self"));
        for w in &c.workers {
            assert_eq!(shard::fnv1a64(w.name.as_bytes()) % 3, i - 1, "{}", w.name);
            seen.push(w.name.clone());
        }
    }
    seen.sort();
    assert_eq!(seen, all);
    let c = ok(json);
    assert_eq!((c.shard, c.configured_workers), (None, 5));
}

#[test]
fn the_shard_flag_wins_over_the_variable() {
    let json = r#"{"workers": [{"name": "a", "url": "http://a/"}]}"#;
    let e = env(&[("PINGER_SHARD", "2/2")]);
    assert_eq!(
        sharded(json, None, &e).unwrap().shard,
        Some(Shard { index: 2, count: 2 })
    );
    assert_eq!(
        sharded(json, Some("1/2"), &e).unwrap().shard,
        Some(Shard { index: 1, count: 2 })
    );
    // The flag wins even over a variable that would be an error.
    let bad = env(&[("PINGER_SHARD", "nonsense")]);
    assert_eq!(
        sharded(json, Some("1/1"), &bad).unwrap().shard,
        Some(Shard { index: 1, count: 1 })
    );
    // Hosts often set a variable to nothing: that is no shard.
    assert_eq!(sharded(json, None, &env(&[("PINGER_SHARD", "")])).unwrap().shard, None);
}

#[test]
fn bad_shards_name_their_source() {
    let json = r#"{"workers": [{"name": "a", "url": "http://a/"}]}"#;
    let e = sharded(json, Some("4/3"), &Env::new()).unwrap_err();
    assert_eq!(
        e,
        ["--shard: the shard number I must be from 1 to 3 (the number of shards), got \"4/3\""]
    );
    let e = sharded(json, None, &env(&[("PINGER_SHARD", "a/b")])).unwrap_err();
    has(&e, "PINGER_SHARD: expected I/N");
    // Reported beside the file's own problems, not instead of them.
    let e = sharded(r#"{"history": 1}"#, Some("0/3"), &Env::new()).unwrap_err();
    has(&e, "cfg.json: history: expected a whole number");
    has(&e, "--shard: the shard number I must be from 1 to 3");
}

#[test]
fn an_empty_shard_is_warned_about() {
    let json = r#"{"workers": [{"name": "a", "url": "http://a/"}]}"#;
    let owner = if shard::fnv1a64(b"a") % 2 == 0 { 2 } else { 1 };
    let c = sharded(json, Some(&format!("{owner}/2")), &Env::new()).unwrap();
    assert!(c.workers.is_empty());
    assert!(
        c.warnings.iter().any(|w| w
            == &format!(
                "shard {owner}/2 runs none of the 1 configured workers: the service will only keep itself awake"
            )),
        "{:?}",
        c.warnings
    );
    assert!(!c.warnings.iter().any(|w| w.starts_with("no workers configured")));
}

#[test]
fn an_alert_channel_may_name_a_worker_another_shard_runs() {
    let json = r#"{"workers": [{"name": "a", "url": "http://a/"}, {"name": "b", "url": "http://b/"},
                               {"name": "c", "url": "http://c/"}, {"name": "d", "url": "http://d/"}],
                   "alerts": {"type": "json", "webhook_url": "http://hook/", "workers": ["a", "b", "c", "d"]}}"#;
    for i in 1..=2 {
        let c = sharded(json, Some(&format!("{i}/2")), &Env::new()).unwrap_or_else(|e| panic!("{e:?}"));
        assert!(c.workers.len() < 4, "shard {i}/2 runs {:?}", c.workers);
    }
    let e = sharded(&json.replace("\"d\"]", "\"zed\"]"), Some("1/2"), &Env::new()).unwrap_err();
    has(&e, "no worker is named \"zed\" (workers are: a, b, c, d)");
}

#[test]
fn conditions_are_inherited_and_replaced() {
    let c = ok(
        r#"{"defaults": {"expect_latency": "2s", "expect_header": {"Content-Type": "Application/JSON"}},
        "workers": [{"url": "https://a.hf.space/"},
                    {"url": "https://b.hf.space/", "expect_latency": "500ms", "expect_body_absent": "Application Error",
                     "expect_json": [{"pointer": "/status", "equals": "UP"}, {"pointer": "/n", "one_of": [1, 2]},
                                     {"pointer": "/x", "exists": false}, {"pointer": "/s", "not_equals": null}]}]}"#,
    );
    let (a, b) = (&c.workers[0].conditions, &c.workers[1].conditions);
    assert_eq!(a.latency, Some(Duration::from_secs(2)));
    assert_eq!(
        a.headers,
        [("content-type".to_string(), "application/json".to_string())]
    );
    assert!(a.json.is_empty() && a.body_absent.is_none());
    assert_eq!(b.latency, Some(Duration::from_millis(500)));
    assert_eq!(b.body_absent.as_deref(), Some("Application Error"));
    use crate::conditions::JsonTest;
    let tests: Vec<&JsonTest> = b.json.iter().map(|j| &j.test).collect();
    assert_eq!(
        tests,
        [
            &JsonTest::Equals("UP".into()),
            &JsonTest::OneOf(vec![1.into(), 2.into()]),
            &JsonTest::Exists(false),
            &JsonTest::NotEquals(serde_json::Value::Null)
        ]
    );
    assert!(c.self_ping.is_none_or(|s| s.conditions.latency.is_none()));
}

#[test]
fn condition_errors_name_the_field() {
    let e = errs(
        r#"{"workers": [{"url": "https://a.hf.space/"}, {"url": "https://b.hf.space/",
        "expect_json": [{"pointer": "status", "equals": "UP"}, {"pointer": "/a", "equals": 1, "exists": true},
                        {"pointer": "/b"}, {"pointer": "/c", "one_of": []}, {"pointer": "/d~2", "exists": true},
                        {"pointer": "/e", "exists": "yes"}],
        "expect_header": {"bad header": "x"}, "expect_latency": "0s", "expect_body_absent": ""}]}"#,
    );
    has(
        &e,
        "workers[1].expect_json[0].pointer: expected a JSON pointer starting with \"/\"",
    );
    has(&e, "workers[1].expect_json[1]: give only one of equals, exists");
    has(
        &e,
        "workers[1].expect_json[2]: expected one of equals, not_equals, exists, one_of",
    );
    has(&e, "workers[1].expect_json[3].one_of: expected a non-empty list");
    has(&e, "workers[1].expect_json[4].pointer: \"~\" must be written");
    has(&e, "workers[1].expect_json[5].exists: expected true or false");
    has(
        &e,
        "workers[1].expect_header.bad header: is not a valid HTTP header name",
    );
    has(&e, "workers[1].expect_latency: expected a duration from 1ms");
    has(&e, "workers[1].expect_body_absent: expected 1 byte");
    let e = errs_env(
        r#"{"workers": [{"url": "https://a.hf.space/", "expect_body_absent": "${ERR}"}]}"#,
        &env(&[("ERR", "hidden")]),
    );
    has(&e, "workers[0].expect_body_absent: expected literal text, not ${VAR}");
    assert!(e.iter().all(|l| !l.contains("hidden")));
}

#[test]
fn maintenance_windows_add_up() {
    let c = ok(r#"{"maintenance": [{"every": "day", "at": "03:00", "duration": "30m"}],
        "workers": [{"url": "https://a.hf.space/"},
                    {"url": "https://b.hf.space/", "maintenance": [
                        {"start": "2026-12-24T22:00:00Z", "duration": "2h"},
                        {"every": "mon,wed", "at": "22:00", "duration": "1h", "timezone": "-04:00"}]}]}"#);
    use crate::maintenance::When;
    assert_eq!(c.workers[0].maintenance.len(), 1);
    assert_eq!(c.workers[1].maintenance.len(), 3, "its own and the top-level one");
    assert_eq!(
        c.workers[1].maintenance[1].when,
        When::Every {
            days: 0b101,
            at_min: 22 * 60,
            offset_min: -240
        }
    );
    assert_eq!(c.workers[0].maintenance[0].duration, Duration::from_secs(1800));
}

#[test]
fn maintenance_errors_name_the_field() {
    let e = errs(
        r#"{"maintenance": [{"every": "day", "at": "3am", "duration": "30m", "timezone": "Europe/Paris"}],
        "workers": [{"url": "https://a.hf.space/", "maintenance": [
            {"start": "2026-12-24 22:00", "duration": "2h"},
            {"start": "2026-12-24T22:00:00Z", "every": "day", "duration": "2h"},
            {"every": "funday", "at": "03:00", "duration": "8d"},
            {"start": "2026-12-24T22:00:00Z", "duration": "2h", "at": "03:00"},
            {"every": "day", "duration": "1h"},
            {"start": "2026-12-24T22:00:00Z"}]}]}"#,
    );
    has(&e, "maintenance[0].at: expected a time of day such as \"03:00\"");
    has(
        &e,
        "maintenance[0].timezone: time zone names such as \"Europe/Paris\" are not built in",
    );
    has(&e, "workers[0].maintenance[0].start: expected an RFC 3339 time");
    has(
        &e,
        "workers[0].maintenance[1]: give \"start\" or \"every\", not both or neither",
    );
    has(&e, "workers[0].maintenance[2].every: expected \"day\"");
    has(
        &e,
        "workers[0].maintenance[2].duration: expected a duration from 1ms to 7d",
    );
    has(&e, "workers[0].maintenance[3].at: only a repeating window");
    has(&e, "workers[0].maintenance[4]: missing field \"at\"");
    has(&e, "workers[0].maintenance[5]: missing field \"duration\"");
}
