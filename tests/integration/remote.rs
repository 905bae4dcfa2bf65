//! State kept in a remote store: the S3 client against a real S3 implementation (moto, which
//! checks signatures), and the service's remote saver against it and against a fake Hub.

use crate::common::hub::{FakeHub, READ_TOKEN, REGULAR_MAX, WRITE_TOKEN};
use crate::common::s3::{BUCKET, Moto};
use crate::common::{FakeServer, Pinger, SEC, ok, request, run, temp_dir};
use master_pinger::config::proxy::Proxies;
use master_pinger::net::Net;
use master_pinger::persist::remote::hub;
use master_pinger::persist::remote::s3::{Client, Condition, S3Settings};
use master_pinger::persist::remote::sigv4::Credentials;
use master_pinger::persist::remote::{Error, ErrorKind};
use std::path::PathBuf;
use std::time::{Duration, Instant};

pub fn s3_client(moto: &Moto, secret: &str) -> Client {
    let settings = S3Settings {
        endpoint: Some(moto.endpoint()),
        region: "us-east-1".into(),
        credentials: Some(Credentials {
            access_key_id: moto.access_key_id.clone(),
            secret_access_key: secret.to_string(),
            session_token: None,
        }),
        path_style: None,
    };
    Client::new(&Net::new(None, Proxies::default()), &settings, Duration::from_secs(20)).unwrap()
}

#[test]
fn s3_client_reads_writes_and_detects_a_second_writer() {
    let Some(moto) = Moto::start() else { return };
    let c = s3_client(&moto, &moto.secret_access_key);
    // moto signs the path it decoded, so a key with characters to encode (which AWS takes) would
    // be refused there; the encoding itself is checked against AWS's examples in sigv4.rs.
    let key = "dir/state-1.json";
    assert!(c.get(BUCKET, key).unwrap().is_none(), "no object yet");
    assert_eq!(c.head(BUCKET, key).unwrap(), None);

    let first = c
        .put(BUCKET, key, b"{\"v\":1}", "application/json", &Condition::IfNoneMatch)
        .unwrap();
    assert!(!first.is_empty(), "the store gives an ETag");
    let read = c.get(BUCKET, key).unwrap().expect("the object");
    assert_eq!(read.body, b"{\"v\":1}");
    assert_eq!(read.etag.as_deref(), Some(first.as_str()));
    assert_eq!(c.head(BUCKET, key).unwrap().as_deref(), Some(first.as_str()));

    // A first write where an object exists already: another instance got there first.
    let e = c
        .put(BUCKET, key, b"{}", "application/json", &Condition::IfNoneMatch)
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Conflict, "{e}");

    let second = c
        .put(
            BUCKET,
            key,
            b"{\"v\":2}",
            "application/json",
            &Condition::IfMatch(first.clone()),
        )
        .unwrap();
    assert_ne!(second, first);
    // A writer still holding the first ETag is refused: the object moved on.
    let e: Error = c
        .put(
            BUCKET,
            key,
            b"{\"v\":3}",
            "application/json",
            &Condition::IfMatch(first),
        )
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Conflict, "{e}");
    assert_eq!(c.get(BUCKET, key).unwrap().unwrap().body, b"{\"v\":2}");
}

#[test]
fn s3_client_names_a_wrong_secret_key_without_showing_it() {
    let Some(moto) = Moto::start() else { return };
    let wrong = "wrongSECRETwrongSECRETwrongSECRET0000000";
    let e = s3_client(&moto, wrong).get(BUCKET, "k").unwrap_err();
    assert_eq!(e.kind, ErrorKind::Auth, "{e}");
    assert!(
        e.message
            .contains("AWS_SECRET_ACCESS_KEY does not match AWS_ACCESS_KEY_ID"),
        "{e}"
    );
    assert!(
        !e.message.contains(wrong) && !e.message.contains(&moto.access_key_id),
        "{e}"
    );
    // The right key works on the same server: the signature, not the setup, was refused.
    assert!(
        s3_client(&moto, &moto.secret_access_key)
            .get(BUCKET, "k")
            .unwrap()
            .is_none()
    );
}

fn hub_client(hub: &FakeHub, token: Option<&str>) -> hub::Client {
    hub::Client::new(
        &Net::new(None, Proxies::default()),
        &hub.endpoint(),
        token.map(str::to_string),
        Duration::from_secs(20),
    )
}

fn dataset(id: &str) -> hub::Repo {
    hub::Repo {
        kind: hub::RepoKind::Dataset,
        id: id.to_string(),
    }
}

#[test]
fn hub_client_reads_commits_and_detects_a_moved_parent() {
    let fake = FakeHub::with_repo("datasets/me/state");
    let c = hub_client(&fake, Some(WRITE_TOKEN));
    let repo = dataset("me/state");
    let missing = c.download(&repo, "pinger/state.json").unwrap();
    assert!(missing.body.is_none());
    let head = c.head_commit(&repo).unwrap();

    let files = [hub::CommitFile {
        path: "pinger/state.json",
        content: b"{\"version\":2}",
    }];
    let new = c.commit(&repo, "master-pinger state", Some(&head), &files).unwrap();
    assert_ne!(new, head);
    let read = c.download(&repo, "pinger/state.json").unwrap();
    assert_eq!(read.body.as_deref(), Some(&b"{\"version\":2}"[..]));
    assert_eq!(read.commit.as_deref(), Some(new.as_str()));

    // Committing again on the old parent: someone (here, this client) moved the branch.
    let e = c.commit(&repo, "master-pinger state", Some(&head), &files).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Conflict, "{e}");
    assert!(e.message.contains("A commit has happened since"), "{e}");
    let commits = fake.repo("datasets/me/state").commits;
    assert_eq!(commits.len(), 1);
    assert_eq!(commits[0].parent.as_deref(), Some(head.as_str()));
    assert_eq!(fake.problems(), Vec::<String>::new());
    assert!(
        fake.requests()
            .iter()
            .any(|r| r == "POST /api/datasets/me/state/preupload/main")
    );
}

#[test]
fn hub_client_words_each_refusal() {
    let fake = FakeHub::with_repo("datasets/me/state");
    let repo = dataset("me/state");
    let file = [hub::CommitFile {
        path: "s.json",
        content: b"{}",
    }];
    let e = hub_client(&fake, Some("hf_wrong"))
        .download(&repo, "s.json")
        .unwrap_err();
    assert_eq!(
        (e.kind, e.message.as_str()),
        (
            ErrorKind::Auth,
            "HF_TOKEN was refused (invalid or expired) (the Hub said: Invalid credentials in Authorization header)"
        )
    );
    let e = hub_client(&fake, Some(READ_TOKEN))
        .commit(&repo, "s", None, &file)
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Auth, "{e}");
    assert!(e.message.contains("may not write datasets/me/state"), "{e}");
    let e = hub_client(&fake, Some(WRITE_TOKEN))
        .download(&dataset("me/nothing"), "s.json")
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::NotFound, "{e}");
    assert!(e.message.contains("there is no dataset me/nothing"), "{e}");
    fake.state.lock().unwrap().throttle = 1;
    let e = hub_client(&fake, Some(WRITE_TOKEN))
        .commit(&repo, "s", None, &file)
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Throttled(Some(Duration::from_secs(1))), "{e}");
    let big = vec![b'x'; REGULAR_MAX + 1];
    let e = hub_client(&fake, Some(WRITE_TOKEN))
        .commit(
            &repo,
            "s",
            None,
            &[hub::CommitFile {
                path: "big.json",
                content: &big,
            }],
        )
        .unwrap_err();
    assert!(e.message.contains("stored with LFS"), "{e}");
    for secret in [WRITE_TOKEN, READ_TOKEN] {
        assert!(!format!("{e:?}").contains(secret));
    }
    assert_eq!(fake.problems(), Vec::<String>::new());
}

// --- The service with its state in S3 (moto) -------------------------------------------------

const KEY: &str = "pinger/state.json";

fn state_url() -> String {
    format!("s3://{BUCKET}/{KEY}")
}

/// One worker `t` checked every second, the remote copy written every `every`.
fn config(target: &FakeServer, every: &str, extra: &str) -> String {
    format!(
        r#"{{"self_ping": false, "remote_save_interval": "{every}", {extra}
            "workers": [{{"name": "t", "url": "{}", "interval": "1s", "retries": 0}}]}}"#,
        target.url("/")
    )
}

fn start(dir: PathBuf, cfg: &str, env: &[(&str, String)]) -> Pinger {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    Pinger::start_in(dir, cfg, &env)
}

fn s3_env(moto: &Moto) -> Vec<(&'static str, String)> {
    let mut env = moto.env();
    env.push(("PINGER_STATE_URL", state_url()));
    env
}

/// The copy in the store, parsed.
fn stored(moto: &Moto) -> Option<serde_json::Value> {
    let object = s3_client(moto, &moto.secret_access_key).get(BUCKET, KEY).unwrap()?;
    Some(serde_json::from_slice(&object.body).expect("the stored state is JSON"))
}

fn wait_until<T>(what: &str, within: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let end = Instant::now() + within;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits for a log line holding `text` (the remote copy is read just after "listening").
fn wait_log(p: &Pinger, text: &str) -> String {
    let end = Instant::now() + 15 * SEC;
    loop {
        let log = p.log();
        if log.contains(text) {
            return log;
        }
        if Instant::now() > end {
            let lines: Vec<&str> = log.lines().collect();
            panic!(
                "no {text:?} in the log; its end:\n{}",
                lines[lines.len().saturating_sub(25)..].join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The value of one series in /metrics (0 when absent).
fn metric(p: &Pinger, series: &str) -> f64 {
    let text = p.get("/metrics").body;
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

const REMOTE_OK: &str = r#"pinger_state_saves_total{place="remote",result="success"}"#;
const REMOTE_FAILED: &str = r#"pinger_state_saves_total{place="remote",result="failure"}"#;

#[test]
fn first_start_without_a_copy_is_fresh_then_the_state_is_written() {
    let Some(moto) = Moto::start() else { return };
    let target = FakeServer::always(ok());
    let p = start(temp_dir("s3-first"), &config(&target, "200ms", ""), &s3_env(&moto));
    wait_log(&p, "no copy yet; a fresh start");
    let saved = wait_until("a saved state with a check", 15 * SEC, || {
        stored(&moto).filter(|s| s["workers"]["t"]["checks"].as_u64() >= Some(1))
    });
    assert_eq!(saved["version"], 2);
    assert!(metric(&p, REMOTE_OK) >= 1.0);
    assert!(metric(&p, r#"pinger_last_state_save_timestamp_seconds{place="remote"}"#) > 1.0e9);
    assert!(p.status()["persistence_error"].is_null(), "{}", p.status());
    for secret in [&moto.secret_access_key, &moto.access_key_id] {
        assert!(!p.log().contains(secret.as_str()));
        assert!(!p.get("/metrics").body.contains(secret.as_str()));
    }
}

#[test]
fn checks_uptime_and_pauses_survive_a_restart_through_s3() {
    let Some(moto) = Moto::start() else { return };
    let target = FakeServer::always(ok());
    let cfg = format!(
        r#"{{"self_ping": false, "remote_save_interval": "1h",
            "workers": [{{"name": "a", "url": "{}", "interval": "1s", "retries": 0}},
                        {{"name": "b", "url": "{}", "interval": "1s", "retries": 0}}]}}"#,
        target.url("/a"),
        target.url("/b")
    );
    let mut env = s3_env(&moto);
    env.push(("PINGER_ADMIN_TOKEN", "adm1n".into()));
    let mut p = start(temp_dir("s3-restart-1"), &cfg, &env);
    p.wait_worker("a", 15 * SEC, |w| w["checks"].as_u64() >= Some(2));
    let r = request("POST", &p.url("/api/workers/b/pause"), Some("Bearer adm1n"));
    assert_eq!(r.status, 200, "{}", r.body);
    p.signal("TERM");
    assert_eq!(p.wait_exit(8 * SEC), Some(0), "{}", p.log());
    let saved = stored(&moto).expect("the state written at SIGTERM");
    let checks = saved["workers"]["a"]["checks"].as_u64().unwrap();
    assert!(checks >= 2, "{saved}");
    drop(p);

    // A new instance on a host with no disk: a fresh folder, the same store.
    let p = start(temp_dir("s3-restart-2"), &cfg, &env);
    wait_log(&p, "restored 2 target(s)");
    let a = p.worker("a");
    assert!(a["checks"].as_u64().unwrap() >= checks, "{a}");
    assert_eq!(a["uptime_percent"]["24h"].as_f64(), Some(100.0), "{a}");
    assert!(a["history"].as_array().unwrap().len() as u64 >= checks);
    assert_eq!(p.worker("b")["state"], "paused", "the pause was kept");
}

#[test]
fn a_wrong_secret_key_is_named_and_never_shown() {
    let Some(moto) = Moto::start() else { return };
    let target = FakeServer::always(ok());
    let wrong = "wrongSECRETwrongSECRETwrongSECRET0000000".to_string();
    let mut env = s3_env(&moto);
    env.retain(|(k, _)| *k != "AWS_SECRET_ACCESS_KEY");
    env.push(("AWS_SECRET_ACCESS_KEY", wrong.clone()));
    let p = start(temp_dir("s3-wrong-key"), &config(&target, "200ms", ""), &env);
    let error = wait_until("persistence_error", 10 * SEC, || {
        p.status()["persistence_error"].as_str().map(str::to_string)
    });
    assert!(
        error.contains("AWS_SECRET_ACCESS_KEY does not match AWS_ACCESS_KEY_ID"),
        "{error}"
    );
    assert!(error.starts_with(&format!("remote state {}", state_url())), "{error}");
    // Checks go on meanwhile.
    p.wait_worker("t", 10 * SEC, |w| w["checks"].as_u64() >= Some(2));
    wait_until("a counted failure", 10 * SEC, || {
        (metric(&p, REMOTE_FAILED) >= 1.0).then_some(())
    });
    assert!(p.get("/").body.contains("AWS_SECRET_ACCESS_KEY does not match"));
    for text in [p.log(), p.get("/").body, p.get("/status").body, p.get("/metrics").body] {
        assert!(!text.contains(&wrong) && !text.contains(&moto.access_key_id), "{text}");
    }
}

#[test]
fn a_store_down_at_start_up_is_read_when_it_comes_back_and_its_history_kept() {
    let target = FakeServer::always(ok());
    // A history saved earlier (by an instance with a state file).
    let dir = temp_dir("s3-down-0");
    let file = dir.join("state.json");
    let mut p = Pinger::start_in(
        dir.clone(),
        &config(&target, "1h", &format!(r#""state_file": "{}","#, file.display())),
        &[],
    );
    p.wait_worker("t", 15 * SEC, |w| w["checks"].as_u64() >= Some(3));
    p.signal("TERM");
    assert_eq!(p.wait_exit(5 * SEC), Some(0));
    let saved = std::fs::read(&file).unwrap();
    let saved_checks = serde_json::from_slice::<serde_json::Value>(&saved).unwrap()["workers"]["t"]["checks"]
        .as_u64()
        .unwrap();
    drop(p);

    let port = crate::common::s3::free_port();
    let env = vec![
        ("PINGER_STATE_URL", state_url()),
        ("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{port}")),
        ("AWS_ACCESS_KEY_ID", "AKIAOPENOPENOPENOPEN".to_string()),
        ("AWS_SECRET_ACCESS_KEY", "open-secret".to_string()),
    ];
    let p = start(temp_dir("s3-down-1"), &config(&target, "300ms", ""), &env);
    wait_log(&p, "cannot read it at start-up; starting fresh");
    // The checks are not held up by the store.
    p.wait_worker("t", 10 * SEC, |w| w["checks"].as_u64() >= Some(2));
    let error = p.status()["persistence_error"].as_str().unwrap_or_default().to_string();
    assert!(error.contains("connection refused"), "{error}");

    // The store comes back at that address holding the saved state (it is filled before it
    // answers there: an object that appeared between this instance's read and its first write
    // would be another writer's, a conflict).
    let Some(moto) = Moto::start_open_on(crate::common::s3::free_port()) else {
        return;
    };
    s3_client(&moto, &moto.secret_access_key)
        .put(BUCKET, KEY, &saved, "application/json", &Condition::None)
        .unwrap();
    crate::common::s3::forward(port, moto.port, Duration::ZERO);
    wait_log(&p, "put before the checks made since start-up");
    let w = p.worker("t");
    assert!(w["checks"].as_u64().unwrap() >= saved_checks + 2, "{w}");
    let written = wait_until("a write with both histories", 15 * SEC, || {
        stored(&moto).filter(|s| s["workers"]["t"]["checks"].as_u64() >= Some(saved_checks + 2))
    });
    assert!(written["workers"]["t"]["history"].as_array().unwrap().len() as u64 >= saved_checks + 2);
    wait_until("the error cleared", 10 * SEC, || {
        p.status()["persistence_error"].is_null().then_some(())
    });
}

/// A history saved in moto by a first instance: the number of checks it holds.
fn saved_in(moto: &Moto, target: &FakeServer) -> u64 {
    let mut p = start(temp_dir("s3-held-0"), &config(target, "200ms", ""), &s3_env(moto));
    wait_until("a saved state with checks", 15 * SEC, || {
        stored(moto).filter(|s| s["workers"]["t"]["checks"].as_u64() >= Some(2))
    });
    p.signal("TERM");
    assert_eq!(p.wait_exit(10 * SEC), Some(0));
    stored(moto).unwrap()["workers"]["t"]["checks"].as_u64().unwrap()
}

/// A store that answers only once the test opens it: (the environment pointing at it, the
/// switch).
fn held_store(
    moto: &Moto,
) -> (
    Vec<(&'static str, String)>,
    std::sync::Arc<std::sync::atomic::AtomicBool>,
) {
    use std::sync::atomic::{AtomicBool, Ordering};
    let open = std::sync::Arc::new(AtomicBool::new(false));
    let port = crate::common::s3::free_port();
    let gate = std::sync::Arc::clone(&open);
    crate::common::s3::forward_when(port, moto.port, move || {
        while !gate.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(10));
        }
    });
    let mut env = s3_env(moto);
    env.retain(|(k, _)| *k != "AWS_ENDPOINT_URL");
    env.push(("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{port}")));
    env.push(("PINGER_ADMIN_TOKEN", "admin-secret".to_string()));
    (env, open)
}

#[test]
fn a_slow_store_at_start_up_delays_no_page_and_the_first_check_waits_for_its_copy() {
    let Some(moto) = Moto::start() else { return };
    let target = FakeServer::always(ok());
    let saved = saved_in(&moto, &target);
    let before = target.count();
    let (env, open) = held_store(&moto);
    // `t` as before, and a heartbeat worker whose job reports while the copy is read.
    let cfg = format!(
        r#"{{"self_ping": false, "remote_save_interval": "1h", "remote_timeout": "60s",
            "workers": [{{"name": "t", "url": "{}", "interval": "1s", "retries": 0}},
                        {{"name": "job", "push": {{"period": "1h"}}, "token": "job-token"}}]}}"#,
        target.url("/")
    );
    let p = start(temp_dir("s3-held-1"), &cfg, &env);
    // The store has not answered: the page and /health are served, the worker is listed with
    // nothing checked, and admin calls and reports are told to come back.
    assert_eq!(p.get("/health").status, 200);
    assert_eq!(p.get("/").status, 200);
    assert_eq!(p.worker("t")["checks"].as_u64(), Some(0), "{}", p.worker("t"));
    let check = request("POST", &p.url("/api/workers/t/check"), Some("Bearer admin-secret"));
    assert_eq!(check.status, 503, "{}", check.body);
    assert_eq!(check.header("retry-after"), Some("5"));
    assert_eq!(p.get("/metrics").status, 503, "no counters until they are restored");
    assert_eq!(p.get("/push/job?token=wrong").status, 404);
    let report = p.get("/push/job?token=job-token");
    assert_eq!(
        (report.status, report.body.as_str()),
        (200, "OK\n"),
        "a report is taken"
    );
    assert!(
        !p.log().contains("remote state s3://"),
        "the copy was not read yet:\n{}",
        p.log()
    );
    assert_eq!(target.count(), before, "no check before the copy is read");
    open.store(true, std::sync::atomic::Ordering::SeqCst);
    wait_log(&p, ": restored");
    // The first check comes after the copy: it adds to the saved history.
    let w = p.wait_worker("t", 10 * SEC, |w| w["checks"].as_u64() > Some(saved));
    assert!(w["history"].as_array().unwrap().len() as u64 > saved, "{w}");
    let check = request("POST", &p.url("/api/workers/t/check"), Some("Bearer admin-secret"));
    assert_eq!(check.status, 202, "{}", check.body);
    // The report taken while starting reached its worker.
    let job = p.wait_worker("job", 10 * SEC, |w| w["successes"].as_u64() == Some(1));
    assert_eq!(job["state"], "up", "{job}");
    assert_eq!(p.get("/metrics").status, 200);
}

#[test]
fn sigterm_while_the_copy_is_read_exits_at_once_and_writes_nothing() {
    let Some(moto) = Moto::start() else { return };
    let target = FakeServer::always(ok());
    let saved = saved_in(&moto, &target);
    let before = stored_raw(&s3_client(&moto, &moto.secret_access_key)).unwrap();
    let (env, open) = held_store(&moto);
    let mut p = start(temp_dir("s3-held-2"), &config(&target, "1h", ""), &env);
    assert_eq!(p.get("/health").status, 200);
    p.signal("TERM");
    assert_eq!(p.wait_exit(5 * SEC), Some(0), "{}", p.log());
    open.store(true, std::sync::atomic::Ordering::SeqCst);
    let after = stored_raw(&s3_client(&moto, &moto.secret_access_key)).unwrap();
    assert!(after == before, "the copy is as it was, byte for byte ({saved} checks)");
}

#[test]
fn a_config_edit_made_while_the_copy_is_read_is_picked_up_once_the_service_runs() {
    let Some(moto) = Moto::start() else { return };
    let target = FakeServer::always(ok());
    let (env, open) = held_store(&moto);
    let cfg = |names: &[&str]| {
        format!(
            r#"{{"self_ping": false, "remote_save_interval": "1h", "remote_timeout": "60s",
                "watch_config": "50ms", "workers": [{}]}}"#,
            crate::common::named_workers(&target, names)
        )
    };
    let p = start(temp_dir("s3-held-edit"), &cfg(&["a"]), &env);
    assert_eq!(p.get("/health").status, 200);
    p.rewrite_config(&cfg(&["a", "b"]));
    open.store(true, std::sync::atomic::Ordering::SeqCst);
    wait_log(&p, "no copy yet");
    p.wait_worker("b", 15 * SEC, |w| w["checks"].as_u64() >= Some(1));
}

#[test]
fn two_instances_on_one_object_find_out_and_the_loser_stops_writing() {
    let Some(moto) = Moto::start() else { return };
    let target = FakeServer::always(ok());
    let cfg = config(&target, "300ms", "");
    let a = start(temp_dir("s3-two-a"), &cfg, &s3_env(&moto));
    let b = start(temp_dir("s3-two-b"), &cfg, &s3_env(&moto));
    let (loser, winner) = wait_until("a conflict", 20 * SEC, || {
        for (x, y) in [(&a, &b), (&b, &a)] {
            if x.status()["persistence_error"]
                .as_str()
                .is_some_and(|e| e.contains("another instance wrote it"))
            {
                return Some((x, y));
            }
        }
        None
    });
    let error = loser.status()["persistence_error"].as_str().unwrap().to_string();
    assert!(error.contains("remote saving stopped until a restart"), "{error}");
    assert!(loser.log().contains("another instance wrote it"), "{}", loser.log());
    assert!(loser.get("/").body.contains("another instance wrote it"));
    let failed = metric(loser, REMOTE_FAILED);
    let won = metric(winner, REMOTE_OK);
    // Several intervals later: the loser wrote nothing more, the winner went on.
    wait_until("the winner's next saves", 10 * SEC, || {
        (metric(winner, REMOTE_OK) >= won + 2.0).then_some(())
    });
    assert_eq!(metric(loser, REMOTE_FAILED), failed, "no more tries after the conflict");
    assert!(winner.status()["persistence_error"].is_null());
}

#[test]
fn sigterm_writes_the_last_state_within_the_budget() {
    let Some(moto) = Moto::start() else { return };
    // A slow store: each connection waits 700 ms, longer than the rest of the shutdown takes, so
    // the last write is there only if the shutdown waits for it.
    let port = crate::common::s3::free_port();
    crate::common::s3::forward(port, moto.port, Duration::from_millis(700));
    let mut env = s3_env(&moto);
    env.retain(|(k, _)| *k != "AWS_ENDPOINT_URL");
    env.push(("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{port}")));
    let target = FakeServer::always(ok());
    let mut p = start(temp_dir("s3-term"), &config(&target, "1h", ""), &env);
    wait_log(&p, "no copy yet; a fresh start");
    let w = p.wait_worker("t", 15 * SEC, |w| w["checks"].as_u64() >= Some(2));
    assert!(stored(&moto).is_none(), "nothing written before the hour is up");
    let t0 = Instant::now();
    p.signal("TERM");
    assert_eq!(p.wait_exit(8 * SEC), Some(0), "{}", p.log());
    assert!(
        t0.elapsed() < 7 * SEC,
        "2 s plus at most 5 s for the remote save: {:?}",
        t0.elapsed()
    );
    let saved = stored(&moto).expect("written at SIGTERM");
    assert!(
        saved["workers"]["t"]["checks"].as_u64() >= w["checks"].as_u64(),
        "{saved}"
    );
}

#[test]
fn an_unreadable_copy_is_kept_aside_and_the_state_starts_fresh() {
    let Some(moto) = Moto::start() else { return };
    let c = s3_client(&moto, &moto.secret_access_key);
    c.put(BUCKET, KEY, b"{not json", "application/json", &Condition::None)
        .unwrap();
    let target = FakeServer::always(ok());
    let p = start(temp_dir("s3-corrupt"), &config(&target, "200ms", ""), &s3_env(&moto));
    let log = wait_log(&p, "it is not a valid state file");
    let aside = log
        .split(&format!("kept it as s3://{BUCKET}/"))
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no set-aside line in {log}"));
    assert!(aside.starts_with(&format!("{KEY}.corrupt-")), "{aside}");
    assert_eq!(c.get(BUCKET, aside).unwrap().unwrap().body, b"{not json");
    wait_until("the fresh state written over it", 15 * SEC, || {
        stored_raw(&c).filter(|b| b.starts_with(b"{\"version\":2"))
    });
}

fn stored_raw(c: &Client) -> Option<Vec<u8>> {
    c.get(BUCKET, KEY).unwrap().map(|o| o.body)
}

#[test]
fn the_state_file_wins_and_the_remote_copy_is_the_fallback() {
    let Some(moto) = Moto::start() else { return };
    let target = FakeServer::always(ok());
    let dir = temp_dir("s3-both");
    let file = dir.join("state.json");
    let cfg = config(&target, "1h", &format!(r#""state_file": "{}","#, file.display()));
    let mut p = start(dir.clone(), &cfg, &s3_env(&moto));
    p.wait_worker("t", 15 * SEC, |w| w["checks"].as_u64() >= Some(2));
    p.signal("TERM");
    assert_eq!(p.wait_exit(8 * SEC), Some(0));
    let remote_checks = stored(&moto).unwrap()["workers"]["t"]["checks"].as_u64().unwrap();
    drop(p);

    // The file is there: it is loaded, and the remote copy is not read (only its version).
    let mut p = start(dir.clone(), &cfg, &s3_env(&moto));
    wait_log(&p, "state file");
    // The remote copy's version is learnt quietly; it is never read or logged as restored.
    p.wait_worker("t", 15 * SEC, |w| w["checks"].as_u64() > Some(remote_checks));
    assert!(!p.log().contains("remote state s3://"), "{}", p.log());
    p.signal("TERM");
    assert_eq!(p.wait_exit(8 * SEC), Some(0));
    drop(p);
    assert!(stored(&moto).unwrap()["workers"]["t"]["checks"].as_u64() >= Some(remote_checks));

    // The file is gone (a host that lost its disk): the remote copy is read.
    std::fs::remove_file(&file).unwrap();
    let p = start(dir, &cfg, &s3_env(&moto));
    wait_log(&p, &format!("remote state {}: restored 1 target(s)", state_url()));
    assert!(p.worker("t")["checks"].as_u64() >= Some(remote_checks));
}

#[test]
fn check_says_where_the_state_lives_and_whether_keys_are_set() {
    let dir = temp_dir("s3-check");
    let secret = "SECRETkeySECRETkey";
    let (code, out, err) = run(
        &dir,
        &["check"],
        &[
            ("PINGER_STATE_URL", "s3://my-bucket/pinger/state.json"),
            ("AWS_ENDPOINT_URL", "https://acct.r2.cloudflarestorage.com"),
            ("AWS_REGION", "auto"),
            ("AWS_ACCESS_KEY_ID", "AKIAVISIBLEIFLEAKED"),
            ("AWS_SECRET_ACCESS_KEY", secret),
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(
            "remote state: s3://my-bucket/pinger/state.json (endpoint https://acct.r2.cloudflarestorage.com, \
             region auto, path-style addressing; credentials: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY set); \
             written every 5m"
        ),
        "{out}"
    );
    assert!(!out.contains(secret) && !out.contains("AKIAVISIBLEIFLEAKED") && !err.contains(secret));

    let (code, out, err) = run(
        &dir,
        &["check"],
        &[("PINGER_STATE_URL", "hf://datasets/me/pinger-state/state.json")],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("remote state: hf://datasets/me/pinger-state/state.json (Hub https://huggingface.co; credentials: MISSING (HF_TOKEN))"), "{out}");
    assert!(
        err.contains("HF_TOKEN is not set: the state cannot be saved there"),
        "{err}"
    );

    let (code, _, err) = run(&dir, &["check"], &[("PINGER_STATE_URL", "hf://spaces/me/app/s.json")]);
    assert_eq!(code, 2);
    assert!(
        err.contains("PINGER_STATE_URL") && err.contains("must live in a dataset"),
        "{err}"
    );
}

// --- The service with its state in a Hugging Face dataset (the fake Hub) ---------------------

const REPO: &str = "datasets/me/pinger-state";
const HF_URL: &str = "hf://datasets/me/pinger-state/pinger/state.json";
const HF_PATH: &str = "pinger/state.json";

fn hub_env(hub: &FakeHub, url: &str, token: &str) -> Vec<(&'static str, String)> {
    vec![
        ("PINGER_STATE_URL", url.to_string()),
        ("HF_ENDPOINT", hub.endpoint()),
        ("HF_TOKEN", token.to_string()),
    ]
}

/// The pinger's own commits (the fake's other writer uses another summary).
fn our_commits(hub: &FakeHub) -> Vec<crate::common::hub::Commit> {
    hub.repo(REPO)
        .commits
        .into_iter()
        .filter(|c| c.summary == "master-pinger state")
        .collect()
}

#[test]
fn history_survives_a_restart_through_a_hugging_face_dataset() {
    let hub = FakeHub::with_repo(REPO);
    let first_head = hub.repo(REPO).head;
    let target = FakeServer::always(ok());
    let cfg = config(&target, "300ms", "");
    let env = hub_env(&hub, HF_URL, WRITE_TOKEN);
    let mut p = start(temp_dir("hf-1"), &cfg, &env);
    wait_log(&p, "no copy yet; a fresh start");
    let commits = wait_until("a commit", 15 * SEC, || {
        let c = our_commits(&hub);
        (!c.is_empty()).then_some(c)
    });
    assert_eq!(
        commits[0].parent.as_deref(),
        Some(first_head.as_str()),
        "on top of the head read"
    );
    assert_eq!(commits[0].paths, [HF_PATH]);
    p.wait_worker("t", 15 * SEC, |w| w["checks"].as_u64() >= Some(2));
    p.signal("TERM");
    assert_eq!(p.wait_exit(8 * SEC), Some(0), "{}", p.log());
    let repo = hub.repo(REPO);
    let saved: serde_json::Value = serde_json::from_slice(&repo.files[HF_PATH]).unwrap();
    let checks = saved["workers"]["t"]["checks"].as_u64().unwrap();
    // Each commit names the one before it: no write went over another.
    let ours = our_commits(&hub);
    assert!(ours.len() >= 2, "{ours:?}");
    assert!(!p.log().contains(WRITE_TOKEN));
    drop(p);

    let p = start(temp_dir("hf-2"), &cfg, &env);
    wait_log(&p, "restored 1 target(s)");
    assert!(p.worker("t")["checks"].as_u64() >= Some(checks));
    assert_eq!(hub.problems(), Vec::<String>::new());
    assert!(
        hub.requests()
            .iter()
            .any(|r| r == &format!("GET /{REPO}/resolve/main/{HF_PATH}")),
        "{:?}",
        hub.requests()
    );
}

#[test]
fn another_commit_to_the_dataset_is_no_conflict_but_a_changed_state_file_is() {
    let hub = FakeHub::with_repo(REPO);
    let target = FakeServer::always(ok());
    let p = start(
        temp_dir("hf-conflict"),
        &config(&target, "300ms", ""),
        &hub_env(&hub, HF_URL, WRITE_TOKEN),
    );
    wait_until("a first commit", 15 * SEC, || {
        (!our_commits(&hub).is_empty()).then_some(())
    });
    // Someone edits the dataset's README on the Hub: the branch moves, the state file does not.
    hub.commit_elsewhere(REPO, "README.md", b"# pinger state");
    let before = our_commits(&hub).len();
    wait_until("a commit on top of the README edit", 15 * SEC, || {
        (our_commits(&hub).len() >= before + 2).then_some(())
    });
    assert!(p.status()["persistence_error"].is_null(), "{}", p.status());

    // Another instance writes the state file: that is a conflict.
    hub.commit_elsewhere(REPO, HF_PATH, br#"{"version":2,"workers":{}}"#);
    let error = wait_until("the conflict", 15 * SEC, || {
        p.status()["persistence_error"]
            .as_str()
            .filter(|e| e.contains("another instance wrote it"))
            .map(str::to_string)
    });
    assert!(error.contains("A commit has happened since"), "{error}");
    let stopped = our_commits(&hub).len();
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(our_commits(&hub).len(), stopped, "no commit after the conflict");
    assert_eq!(hub.repo(REPO).files[HF_PATH], br#"{"version":2,"workers":{}}"#);
    assert_eq!(hub.problems(), Vec::<String>::new());
}

#[test]
fn hub_refusals_are_worded_and_a_throttle_is_waited_out() {
    let hub = FakeHub::with_repo(REPO);
    let target = FakeServer::always(ok());
    let cfg = config(&target, "300ms", "");
    let error_of = |p: &Pinger, says: &str| {
        wait_until(&format!("an error saying {says:?}"), 15 * SEC, || {
            p.status()["persistence_error"]
                .as_str()
                .filter(|e| e.contains(says))
                .map(str::to_string)
        })
    };
    let wrong = "hf_wrongTOKENwrongTOKEN";
    let p = start(temp_dir("hf-401"), &cfg, &hub_env(&hub, HF_URL, wrong));
    error_of(&p, "HF_TOKEN was refused (invalid or expired)");
    for text in [p.log(), p.get("/status").body, p.get("/").body] {
        assert!(!text.contains(wrong), "{text}");
    }
    drop(p);
    let p = start(temp_dir("hf-403"), &cfg, &hub_env(&hub, HF_URL, READ_TOKEN));
    error_of(&p, "HF_TOKEN may not write datasets/me/pinger-state");
    drop(p);
    let p = start(
        temp_dir("hf-404"),
        &cfg,
        &hub_env(&hub, "hf://datasets/me/missing/s.json", WRITE_TOKEN),
    );
    error_of(&p, "there is no dataset me/missing");
    drop(p);

    let p = start(temp_dir("hf-429"), &cfg, &hub_env(&hub, HF_URL, WRITE_TOKEN));
    wait_until("a first commit", 15 * SEC, || {
        (!our_commits(&hub).is_empty()).then_some(())
    });
    hub.state.lock().unwrap().throttle = 1;
    error_of(&p, "the Hub asks to slow down (status 429)");
    let after = our_commits(&hub).len();
    wait_until("a commit after the Retry-After", 15 * SEC, || {
        (our_commits(&hub).len() > after && p.status()["persistence_error"].is_null()).then_some(())
    });
    assert!(metric(&p, REMOTE_FAILED) >= 1.0);
    assert_eq!(hub.problems(), Vec::<String>::new());
}

#[test]
fn a_reload_changes_what_is_written_and_a_restart_restores_it_by_name() {
    let Some(moto) = Moto::start() else { return };
    let target = FakeServer::always(ok());
    let workers = |names: &[&str]| {
        format!(
            r#"{{"self_ping": false, "remote_save_interval": "300ms", "watch_config": false, "workers": [{}]}}"#,
            crate::common::named_workers(&target, names)
        )
    };
    let dir = temp_dir("s3-reload");
    let mut p = start(dir.clone(), &workers(&["a", "b"]), &s3_env(&moto));
    p.wait_worker("b", 15 * SEC, |w| w["checks"].as_u64() >= Some(2));
    // Reordered, one removed, one added.
    std::fs::write(dir.join("pinger.json"), workers(&["c", "a"])).unwrap();
    p.signal("HUP");
    p.wait_worker("c", 15 * SEC, |w| w["checks"].as_u64() >= Some(1));
    let saved = wait_until("a copy with the new fleet", 15 * SEC, || {
        stored(&moto).filter(|s| s["workers"]["c"]["checks"].as_u64() >= Some(1))
    });
    assert!(
        saved["workers"]["b"].is_null(),
        "a removed worker is not written: {saved}"
    );
    let a_checks = saved["workers"]["a"]["checks"].as_u64().unwrap();
    assert!(a_checks >= 2, "{saved}");
    p.signal("TERM");
    assert_eq!(p.wait_exit(8 * SEC), Some(0));
    drop(p);

    let p = start(temp_dir("s3-reload-2"), &workers(&["c", "a"]), &s3_env(&moto));
    wait_log(&p, "restored 2 target(s)");
    assert!(p.worker("a")["checks"].as_u64() >= Some(a_checks));
    assert!(p.worker("c")["checks"].as_u64() >= Some(1));
}
