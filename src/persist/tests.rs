//! The state file's tests: round trips, migration from format 1, size, tearing.

use super::*;
use crate::state::{CheckRecord, Counters, History, Tally, TargetInfo, TargetView, Uptime};
use crate::streak::ChannelStreak;
use std::time::{Duration, UNIX_EPOCH};

const HOUR: u64 = 3_600_000;

fn state(names: &[&str]) -> State {
    state_with_cap(names, 10)
}

fn state_with_cap(names: &[&str], cap: usize) -> State {
    let infos = names.iter().map(|n| TargetInfo::test(n)).collect();
    State::new(infos, cap, UNIX_EPOCH)
}

fn dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("mp-persist-{tag}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&d);
    fs::create_dir_all(&d).unwrap();
    d
}

fn rec(ok: bool) -> CheckRecord {
    CheckRecord {
        at_ms: 1000,
        ok,
        status: Some(200),
        latency_ms: 1,
        duration_ms: 1,
        attempts: 1,
        error: None,
    }
}

#[test]
fn round_trip_drops_removed_and_changed_workers() {
    let d = dir("rt");
    let path = d.join("s.json");
    let s = state(&["a", "b", "gone"]);
    s.record_check(0, rec(true));
    s.record_check(1, rec(false));
    s.record_check(2, rec(true));
    Persister::new(path.clone(), &["http://a", "http://b", "http://gone"])
        .save(&s)
        .unwrap();
    let text = fs::read_to_string(&path).unwrap();
    assert!(!text.contains("http://a"), "URLs never reach the disk");

    let s2 = state(&["a", "b"]);
    let n = Persister::new(path, &["http://a", "http://b-moved"]).load(&s2);
    assert_eq!(n, 1);
    assert_eq!(s2.record_of(0).unwrap().counters.checks, 1);
    assert_eq!(s2.record_of(1).unwrap().counters.checks, 0, "a new URL starts fresh");
}

#[test]
fn corrupt_file_is_set_aside() {
    let d = dir("corrupt");
    let path = d.join("s.json");
    fs::write(&path, b"{ not json").unwrap();
    let s = state(&["a"]);
    assert_eq!(Persister::new(path.clone(), &["http://a"]).load(&s), 0);
    assert!(!path.exists());
    let aside: Vec<_> = fs::read_dir(&d)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(aside.iter().any(|n| n.starts_with("s.json.corrupt-")), "{aside:?}");
}

#[test]
fn unwritable_folder_is_an_error_not_a_panic() {
    let p = Persister::new(PathBuf::from("/nonexistent-dir-mp/state.json"), &[]);
    assert!(
        p.probe_writable()
            .unwrap_err()
            .contains("/nonexistent-dir-mp/state.json")
    );
    assert!(p.save(&state(&[])).is_err());
    let shown = Persister::new(PathBuf::from("/nonexistent-dir-mp/zz.json"), &[]).shown_as("REDACTED".into());
    let e = shown.probe_writable().unwrap_err() + &shown.save(&state(&[])).unwrap_err();
    assert!(e.contains("REDACTED") && !e.contains("zz"), "{e}");
}

#[test]
fn url_hash_is_stable() {
    assert_eq!(url_hash(""), "cbf29ce484222325");
    assert_ne!(url_hash("http://a"), url_hash("http://b"));
}

fn names_in(d: &Path) -> Vec<String> {
    fs::read_dir(d)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

/// A check as a long-running fleet records it: mostly up, some failures with one of two texts,
/// latencies up to 3 s and retries on failure. Deterministic in `i`.
fn realistic(i: u64, at_ms: u64) -> CheckRecord {
    let n = i.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 40;
    let ok = n % 7 != 0;
    let latency_ms = 20 + n % 2980;
    CheckRecord {
        at_ms,
        ok,
        status: match (ok, n % 2) {
            (true, _) => Some(200),
            (false, 0) => Some(503),
            (false, _) => None,
        },
        latency_ms,
        duration_ms: if ok { latency_ms } else { latency_ms + 15_000 },
        attempts: if ok { 1 } else { 4 },
        error: match (ok, n % 2) {
            (true, _) => None,
            (false, 0) => Some("status 503".into()),
            (false, _) => Some("timeout after 10s".into()),
        },
    }
}

/// The per-hour tally of a target checked every 10 s, with a few failures in some hours.
fn hour_tally(slot: usize, hour: u64) -> Tally {
    let failed = ((hour + slot as u64) % 13) as u32 % 4;
    Tally {
        ok: 360 - failed,
        total: 360,
    }
}

/// 23:30 UTC: the moment the day windows and 0.1's sliding windows cover the same hours.
fn late_evening() -> u64 {
    (20_000 * 24 + 23) * HOUR + HOUR / 2
}

fn aged_names(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!("worker-{i:04}-of-a-fleet-30-days-old"))
        .collect()
}

/// `names.len()` targets 30 days old: checked every 10 s for 30 days, a full history of 100.
fn aged_state(names: &[String], now_ms: u64) -> State {
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let s = state_with_cap(&refs, 100);
    let now_hour = now_ms / HOUR;
    for slot in 0..names.len() {
        let mut history = History::default();
        for i in 0..100 {
            history.push(&realistic(slot as u64 * 1000 + i, now_ms - (100 - i) * 10_000), 100);
        }
        let mut uptime = Uptime::default();
        for hour in now_hour - 719..=now_hour {
            uptime.add_hour(hour, hour_tally(slot, hour));
        }
        s.import(
            slot,
            Record {
                counters: Counters {
                    checks: 259_200,
                    successes: 258_000,
                    skipped: 3,
                    attempts: 262_000,
                    consecutive_failures: 0,
                    restarts: 2,
                    last_restart_at_ms: Some(now_ms - 86_400_000),
                    paused: false,
                    paused_config: None,
                    push: Default::default(),
                },
                history,
                uptime,
                // Two alert channels, as a fleet with Telegram and a webhook has.
                streaks: ["telegram", "ops-webhook"]
                    .map(|channel| ChannelStreak {
                        channel: channel.into(),
                        oks: 2_000,
                        down: Some(false),
                        ..ChannelStreak::default()
                    })
                    .to_vec(),
                degraded: Vec::new(),
                cert_warned: vec![("telegram".into(), crate::state::Warned::restored(1_797_000_000, 14))],
            },
        );
    }
    s
}

fn urls(names: &[String]) -> Vec<String> {
    names
        .iter()
        .map(|n| format!("https://{n}.hf.space/health?token=x"))
        .collect()
}

fn persister(path: &Path, urls: &[String]) -> Persister {
    let refs: Vec<&str> = urls.iter().map(String::as_str).collect();
    Persister::new(path.to_path_buf(), &refs)
}

/// Everything a reader sees of every target, as text.
fn views(s: &State, now_ms: u64) -> Vec<String> {
    let snap = s.snapshot(usize::MAX, UNIX_EPOCH + Duration::from_millis(now_ms));
    snap.workers.iter().map(|v: &TargetView| format!("{v:?}")).collect()
}

#[test]
fn steady_state_file_is_at_most_4_kb_per_target() {
    let d = dir("size");
    let path = d.join("s.json");
    let names = aged_names(200);
    let now = late_evening();
    let s = aged_state(&names, now);
    persister(&path, &urls(&names)).save(&s).unwrap();
    let size = fs::metadata(&path).unwrap().len();
    let per_target = size / names.len() as u64;
    assert!(per_target <= 4096, "{per_target} bytes per target ({size} in all)");
    // And it holds everything: a fresh state loaded from it reads the same.
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let back = state_with_cap(&refs, 100);
    assert_eq!(persister(&path, &urls(&names)).load(&back), names.len());
    assert_eq!(views(&back, now), views(&s, now));
}

#[test]
fn every_field_round_trips_through_format_2() {
    let d = dir("fields");
    let path = d.join("s.json");
    let s = state_with_cap(&["a", "b", "pending"], 50);
    let base = 1_795_860_000_000;
    for i in 0..70 {
        s.record_check(0, realistic(i, base + i * 61_000));
    }
    // A clock stepped backwards, a status-less failure, odd values.
    s.record_check(1, realistic(7, base));
    s.record_check(
        1,
        CheckRecord {
            at_ms: base - 5_000,
            ok: false,
            status: None,
            latency_ms: 0,
            duration_ms: 120_000,
            attempts: 11,
            error: Some("dns: no such host \"x\" \u{1F600}".into()),
        },
    );
    s.record_skipped(1, 4);
    s.record_restart(1, UNIX_EPOCH + Duration::from_millis(base));
    let p = Persister::new(path.clone(), &["u-a", "u-b", "u-p"]);
    p.save(&s).unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
    assert_eq!(doc["version"], FORMAT_VERSION);
    assert_eq!(doc["workers"]["a"]["history"].as_array().unwrap().len(), 50);
    assert_eq!(
        doc["workers"]["a"]["errors"].as_array().unwrap().len(),
        2,
        "texts kept once"
    );
    let streaks = vec![
        ChannelStreak {
            channel: "ops".into(),
            fails: 3,
            oks: 0,
            down: Some(true),
            since_ms: Some(base - 5_000),
        },
        ChannelStreak {
            channel: "quiet".into(),
            ..ChannelStreak::default()
        },
    ];
    let slow = vec![ChannelStreak {
        channel: "ops".into(),
        fails: 1,
        ..ChannelStreak::default()
    }];
    s.set_streaks(1, streaks.clone(), slow.clone());
    p.save(&s).unwrap();
    let back = state_with_cap(&["a", "b", "pending"], 50);
    assert_eq!(p.load(&back), 3);
    assert_eq!(back.record_of(1).unwrap().streaks, streaks, "alert streaks are kept");
    assert_eq!(back.record_of(1).unwrap().degraded, slow, "and the slow-check ones");
    assert!(back.record_of(0).unwrap().streaks.is_empty());
    let now = base + 70 * 61_000;
    assert_eq!(views(&back, now), views(&s, now));
    assert!(
        views(&back, now)[0].contains("history: ["),
        "{:?}",
        views(&back, now)[0]
    );
}

/// What master-pinger 0.1 wrote, built with the structures 0.1 serialized (format 1): counters,
/// `last` beside a full history of 100 checks, and 720 hourly buckets.
fn format_1_file(names: &[String], now_ms: u64) -> (String, Vec<v1::Target>) {
    let now_hour = now_ms / HOUR;
    let targets: Vec<v1::Target> = names
        .iter()
        .enumerate()
        .map(|(slot, name)| {
            let history: Vec<v1::Check> = (0..100)
                .map(|i| {
                    let r = realistic(slot as u64 * 1000 + i, now_ms - (100 - i) * 10_000);
                    v1::Check {
                        at_ms: r.at_ms,
                        ok: r.ok,
                        status: r.status,
                        latency_ms: r.latency_ms,
                        duration_ms: r.duration_ms,
                        attempts: r.attempts,
                        error: r.error,
                    }
                })
                .collect();
            v1::Target {
                url_hash: url_hash(&format!("https://{name}.hf.space/health?token=x")),
                checks: 259_200 + slot as u64,
                successes: 258_000,
                skipped: slot as u64,
                attempts: 262_000,
                consecutive_failures: if history.last().is_some_and(|c| c.ok) { 0 } else { 1 },
                restarts: 1,
                last_restart_at_ms: Some(now_ms - 3 * 86_400_000),
                paused: false,
                paused_config: None,
                push: Default::default(),
                last: history.last().cloned(),
                history,
                buckets: (now_hour - 719..=now_hour)
                    .map(|hour| {
                        let t = hour_tally(slot, hour);
                        v1::Bucket {
                            hour,
                            ok: t.ok,
                            total: t.total,
                        }
                    })
                    .collect(),
            }
        })
        .collect();
    let workers: serde_json::Map<String, serde_json::Value> = names
        .iter()
        .zip(&targets)
        .map(|(n, t)| (n.clone(), serde_json::to_value(t).unwrap()))
        .collect();
    let doc = serde_json::json!({"version": 1, "saved_at": "2026-11-28T23:30:00Z", "workers": workers});
    (doc.to_string(), targets)
}

/// 0.1's uptime: the share of good checks in the buckets of the last `hours` clock hours.
fn uptime_0_1(buckets: &[v1::Bucket], now_hour: u64, hours: u64) -> Option<f64> {
    let (ok, total) = buckets
        .iter()
        .filter(|b| b.hour + hours > now_hour)
        .fold((0u64, 0u64), |(o, t), b| (o + u64::from(b.ok), t + u64::from(b.total)));
    (total > 0).then(|| ok as f64 / total as f64)
}

#[test]
fn a_format_1_file_migrates_with_nothing_lost() {
    let d = dir("v1");
    let path = d.join("s.json");
    let names = aged_names(20);
    let now = late_evening();
    let (text, old) = format_1_file(&names, now);
    assert!(
        text.len() > 30_000 * names.len(),
        "the fixture is 0.1-sized: {}",
        text.len()
    );
    fs::write(&path, &text).unwrap();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let s = state_with_cap(&refs, 100);
    let p = persister(&path, &urls(&names));
    assert_eq!(p.load(&s), names.len());
    assert!(
        !names_in(&d).iter().any(|n| n.contains("corrupt")),
        "an older format is never set aside"
    );

    let snap = s.snapshot(100, UNIX_EPOCH + Duration::from_millis(now));
    for (view, was) in snap.workers.iter().zip(&old) {
        assert_eq!(view.counters, was.counters());
        let history: Vec<CheckRecord> = was.history.iter().cloned().map(CheckRecord::from).collect();
        assert_eq!(view.history, history);
        assert_eq!(view.last, was.last.clone().map(CheckRecord::from));
        // At 23:30 UTC the day windows cover exactly 0.1's last 168 and 720 clock hours.
        let expected = [24, 7 * 24, 30 * 24].map(|h| uptime_0_1(&was.buckets, now / HOUR, h));
        assert_eq!(view.uptime, expected, "{}", view.name);
        assert!(
            expected.iter().all(|u| u.is_some_and(|u| u < 1.0)),
            "the fixture has failures"
        );
    }
    // The 24 h window is exact at any hour; at 05:30 the day windows hold today so far and whole
    // days before it.
    let morning = now + 6 * HOUR;
    for (view, was) in s
        .snapshot(0, UNIX_EPOCH + Duration::from_millis(morning))
        .workers
        .iter()
        .zip(&old)
    {
        assert_eq!(view.uptime[0], uptime_0_1(&was.buckets, morning / HOUR, 24));
    }

    // The next save writes format 2, a ninth of the size, and reads back the same.
    p.save(&s).unwrap();
    let size = fs::metadata(&path).unwrap().len() as usize;
    assert!(size <= 4096 * names.len(), "{size} bytes after migration");
    assert!(size * 9 < text.len(), "{size} bytes against 0.1's {}", text.len());
    let again = state_with_cap(&refs, 100);
    assert_eq!(p.load(&again), names.len());
    assert_eq!(views(&again, now), views(&s, now));
}

#[test]
fn the_file_0_1_wrote_loads() {
    let d = dir("real-v1");
    let path = d.join("s.json");
    let text = include_str!("../../tests/fixtures/state-v1-from-0.1.json");
    fs::write(&path, text).unwrap();
    let doc: serde_json::Value = serde_json::from_str(text).unwrap();
    let names = ["self-health", "refused", "wrong-status"];
    let s = state_with_cap(&names, 100);
    let p = Persister::new(
        path.clone(),
        &[
            "http://127.0.0.1:47811/health",
            "http://127.0.0.1:9/",
            "http://127.0.0.1:47811/nope",
        ],
    );
    assert_eq!(p.load(&s), 3);
    let snap = s.snapshot(100, SystemTime::now());
    for (view, name) in snap.workers.iter().zip(names) {
        let was = &doc["workers"][name];
        assert_eq!(view.counters.checks, was["checks"].as_u64().unwrap(), "{name}");
        assert_eq!(view.counters.successes, was["successes"].as_u64().unwrap(), "{name}");
        let at: Vec<u64> = view.history.iter().map(|c| c.at_ms).collect();
        let was_at: Vec<u64> = was["history"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["at_ms"].as_u64().unwrap())
            .collect();
        assert_eq!(at, was_at, "{name}");
        let errors: Vec<Option<&str>> = view.history.iter().map(|c| c.error.as_deref()).collect();
        let was_errors: Vec<Option<&str>> = was["history"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["error"].as_str())
            .collect();
        assert_eq!(errors, was_errors, "{name}");
    }
    assert_eq!(
        snap.workers[1].last.as_ref().and_then(|c| c.error.as_deref()),
        Some("connection refused")
    );
    assert_eq!(
        snap.workers[2].last.as_ref().map(|c| (c.status, c.attempts)),
        Some((Some(404), 2))
    );
}

#[test]
fn workers_before_version_still_load_and_a_newer_format_is_set_aside() {
    let d = dir("order");
    let path = d.join("s.json");
    let s = state(&["a"]);
    s.record_check(0, rec(true));
    let p = Persister::new(path.clone(), &["http://a"]);
    p.save(&s).unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
    let reordered = format!(r#"{{"workers": {}, "extra": [1], "version": 2}}"#, doc["workers"]);
    fs::write(&path, reordered).unwrap();
    let back = state(&["a"]);
    assert_eq!(p.load(&back), 1);
    assert_eq!(back.record_of(0).unwrap().counters.checks, 1);

    fs::write(&path, r#"{"version": 3, "workers": {}}"#).unwrap();
    assert_eq!(p.load(&state(&["a"])), 0);
    assert!(names_in(&d).iter().any(|n| n.starts_with("s.json.corrupt-")));
}

#[test]
fn a_damaged_target_before_version_is_named_with_its_position_in_the_file() {
    let p = Persister::without_file(&["http://a"]);
    let text = format!(
        r#"{{"workers": {{"a": {{"url_hash": "{}", "checks": "many"}}}}, "version": 2}}"#,
        url_hash("http://a")
    );
    let err = p
        .restore(&mut text.as_bytes(), &state(&["a"]), Restore::Replace)
        .unwrap_err();
    // The position is the file's (its end, where the held-back targets are read), as when the
    // target was read from the `Value` itself, not one inside the text it is re-read from.
    assert!(
        err.ends_with(&format!(
            "invalid type: string \"many\", expected u64 at line 1 column {}",
            text.len()
        )),
        "{err}"
    );
}

#[test]
fn a_damaged_format_2_target_sets_the_file_aside_and_restores_nothing() {
    let cases = [
        r#"{"url_hash": "H", "history": [[1, 0, 0, 0, 0, 1, 2]], "errors": ["x"]}"#,
        r#"{"url_hash": "H", "history": [[1, 2, 200, 0, 0, 1, 0]]}"#,
        r#"{"url_hash": "H", "hours": {"newest": 5, "total": [1], "failed": [0]}}"#,
        r#"{"url_hash": "H", "days": {"newest": 5, "total": [1], "failed": [2]}}"#,
        r#"{"url_hash": "H", "checks": -1}"#,
    ];
    for (i, bad) in cases.iter().enumerate() {
        let d = dir(&format!("damaged-{i}"));
        let path = d.join("s.json");
        let good = format!(r#"{{"url_hash": "{}", "checks": 5}}"#, url_hash("http://a"));
        let bad = bad.replace('H', &url_hash("http://b"));
        fs::write(
            &path,
            format!(r#"{{"version": 2, "workers": {{"a": {good}, "b": {bad}}}}}"#),
        )
        .unwrap();
        let s = state(&["a", "b"]);
        assert_eq!(Persister::new(path, &["http://a", "http://b"]).load(&s), 0, "case {i}");
        assert_eq!(
            s.record_of(0).unwrap().counters.checks,
            0,
            "case {i}: nothing half-restored"
        );
        assert!(
            names_in(&d).iter().any(|n| n.starts_with("s.json.corrupt-")),
            "case {i}"
        );
    }
}

#[test]
fn a_save_copies_each_target_whole_while_checks_land() {
    let d = dir("tear");
    let path = d.join("s.json");
    let names: Vec<String> = (0..20).map(|i| format!("w{i}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let s = std::sync::Arc::new(state_with_cap(&refs, 1000));
    let p = Persister::new(path.clone(), &refs);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (s, stop) = (std::sync::Arc::clone(&s), std::sync::Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut i = 0u64;
            // All within one hour, so the hourly buckets must sum to the counter.
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && i < 3_000_000 {
                s.record_check((i % 20) as usize, realistic(i, HOUR * 1000 + i));
                i += 1;
            }
            i
        })
    };
    for _ in 0..10 {
        p.save(&s).unwrap();
        let doc: serde_json::Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
        for name in &names {
            let w = &doc["workers"][name.as_str()];
            let checks = w["checks"].as_u64().unwrap();
            let rows = w["history"].as_array().map_or(0, |h| h.len()) as u64;
            let in_hours: u64 = w["hours"]["total"]
                .as_array()
                .map_or(0, |t| t.iter().map(|x| x.as_u64().unwrap()).sum());
            assert_eq!(
                (rows, in_hours),
                (checks.min(1000), checks),
                "{name}: counters, history and buckets of one moment"
            );
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(writer.join().unwrap() > 100, "checks landed during the saves");
}

#[test]
fn a_pause_is_saved_and_restored() {
    let d = dir("paused");
    let path = d.join("s.json");
    let s = state(&["a", "b"]);
    s.set_paused(1, true, false);
    Persister::new(path.clone(), &["http://a", "http://b"])
        .save(&s)
        .unwrap();
    let s2 = state(&["a", "b"]);
    assert_eq!(Persister::new(path, &["http://a", "http://b"]).load(&s2), 2);
    assert!(!s2.record_of(0).unwrap().counters.paused);
    let b = s2.record_of(1).unwrap().counters;
    assert_eq!(
        (b.paused, b.paused_config),
        (true, Some(false)),
        "paused through the API"
    );
    // Neither paused nor configured paused: nothing about it is written.
    let text = std::fs::read_to_string(d.join("s.json")).unwrap();
    assert_eq!(text.matches("paused_config").count(), 1, "{text}");
}

#[test]
fn a_pause_saved_before_its_configuration_was_recorded_still_holds() {
    let d = dir("paused-old");
    let path = d.join("s.json");
    let s = state(&["a"]);
    s.set_paused(0, true, false);
    Persister::new(path.clone(), &["http://a"]).save(&s).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replace(r#","paused_config":false"#, "")).unwrap();
    let s2 = state(&["a"]);
    assert_eq!(Persister::new(path, &["http://a"]).load(&s2), 1);
    let a = s2.record_of(0).unwrap().counters;
    assert_eq!((a.paused, a.paused_config), (true, None));
    assert!(a.paused_now(false) && a.paused_now(true));
}

#[test]
fn certificate_warnings_sent_are_saved_and_restored() {
    let d = dir("cert-warned");
    let path = d.join("s.json");
    let s = state(&["a", "b"]);
    let warned = vec![
        ("discord".to_string(), crate::state::Warned::restored(1_797_000_000, 7)),
        ("ntfy".to_string(), crate::state::Warned::restored(1_797_000_000, 14)),
    ];
    s.set_cert_warned(1, warned.clone());
    Persister::new(path.clone(), &["http://a", "http://b"])
        .save(&s)
        .unwrap();
    let text = fs::read_to_string(&path).unwrap();
    assert!(
        text.contains(r#""cert_warned":{"discord":[1797000000,7],"ntfy":[1797000000,14]}"#),
        "{text}"
    );
    let s2 = state(&["a", "b"]);
    assert_eq!(Persister::new(path.clone(), &["http://a", "http://b"]).load(&s2), 2);
    assert!(s2.record_of(0).unwrap().cert_warned.is_empty());
    assert_eq!(s2.record_of(1).unwrap().cert_warned, warned);

    // A file written before the field existed still loads, with nothing warned.
    let old = text.replace(
        r#","cert_warned":{"discord":[1797000000,7],"ntfy":[1797000000,14]}"#,
        "",
    );
    assert!(!old.contains("cert_warned"));
    fs::write(&path, old).unwrap();
    let s3 = state(&["a", "b"]);
    assert_eq!(Persister::new(path, &["http://a", "http://b"]).load(&s3), 2);
    assert!(s3.record_of(1).unwrap().cert_warned.is_empty());
}

#[test]
fn after_a_reload_targets_are_saved_by_id_under_their_new_names() {
    let d = dir("reloaded");
    let path = d.join("s.json");
    let s = state(&["a", "b"]);
    s.record_check(1, rec(true));
    let p = Persister::new(path.clone(), &["http://a", "http://b"]);
    s.remove(0);
    let c = s.add(TargetInfo::test("c"), Record::default());
    s.record_check(c, rec(false));
    p.set_targets(&[(1, "http://b"), (c, "http://c")]);
    p.save(&s).unwrap();
    let s2 = state(&["b", "c"]);
    assert_eq!(Persister::new(path, &["http://b", "http://c"]).load(&s2), 2);
    assert_eq!(s2.record_of(0).unwrap().counters.successes, 1);
    assert_eq!(s2.record_of(1).unwrap().counters.consecutive_failures, 1);
}
