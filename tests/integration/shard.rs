//! Sharding by name: `check --shard` and running shards cover every worker exactly once; bad
//! `--shard` / `PINGER_SHARD` values are configuration errors (exit 2) naming their source.

use crate::common::{FakeServer, Pinger, SEC, command, ok, run, temp_dir};
use std::collections::BTreeSet;
use std::path::PathBuf;

/// A configuration of `n` workers named `node-01`, `node-02`, ... (no name is part of another),
/// each on its own path of `target`.
fn fleet(n: usize, target: &str, self_ping: &str) -> String {
    let workers: Vec<String> = (1..=n)
        .map(|i| format!(r#"{{"name": "node-{i:02}", "url": "{target}/n{i}", "interval": "1s", "retries": 0}}"#))
        .collect();
    format!(r#"{{"self_ping": {self_ping}, "workers": [{}]}}"#, workers.join(","))
}

fn config_dir(config: &str) -> PathBuf {
    let d = temp_dir("shard");
    std::fs::write(d.join("pinger.json"), config).unwrap();
    d
}

/// The worker names `check` lists (lines `  NAME  METHOD URL`), the self-ping left out.
fn listed(out: &str) -> Vec<String> {
    out.lines()
        .filter_map(|l| l.strip_prefix("  ")?.split_once("  ").map(|(name, _)| name.to_string()))
        .filter(|name| !name.is_empty() && name != "self")
        .collect()
}

fn names(range: std::ops::RangeInclusive<usize>) -> BTreeSet<String> {
    range.map(|i| format!("node-{i:02}")).collect()
}

#[test]
fn three_shards_of_one_configuration_cover_every_worker_once() {
    let d = config_dir(&fleet(30, "http://127.0.0.1:9", "false"));
    let (code, out, err) = run(&d, &["check"], &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(listed(&out).len(), 30, "{out}");
    assert!(out.contains("workers: 30\n"), "{out}");

    let mut seen: Vec<String> = Vec::new();
    for i in 1..=3 {
        let (code, out, err) = run(&d, &["check", "--shard", &format!("{i}/3")], &[]);
        assert_eq!(code, 0, "{err}");
        let mine = listed(&out);
        assert!(
            out.contains(&format!(
                "shard: {i}/3 (the workers whose name hashes to {} modulo 3",
                i - 1
            )),
            "{out}"
        );
        assert!(
            out.contains(&format!("workers: {} of 30 configured\n", mine.len())),
            "{out}"
        );
        // 30 names over 3 shards: none is empty or holds nearly all.
        assert!((4..=16).contains(&mine.len()), "shard {i}/3 holds {mine:?}");
        // The variable selects the same share as the flag.
        let (_, by_var, _) = run(&d, &["check"], &[("PINGER_SHARD", &format!("{i}/3"))]);
        assert_eq!(listed(&by_var), mine, "PINGER_SHARD={i}/3");
        seen.extend(mine);
    }
    assert_eq!(seen.len(), 30, "{seen:?}");
    assert_eq!(seen.into_iter().collect::<BTreeSet<_>>(), names(1..=30));
}

#[test]
fn the_shard_flag_wins_over_the_variable() {
    let d = config_dir(&fleet(12, "http://127.0.0.1:9", "false"));
    let (_, one, _) = run(&d, &["check", "--shard", "1/2"], &[]);
    let (_, two, _) = run(&d, &["check", "--shard", "2/2"], &[]);
    assert_ne!(listed(&one), listed(&two));
    let (code, out, err) = run(&d, &["check", "--shard", "1/2"], &[("PINGER_SHARD", "2/2")]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(listed(&out), listed(&one));
    // A bad variable does not matter when the flag is given.
    let (code, out, err) = run(&d, &["check", "--shard=2/2"], &[("PINGER_SHARD", "a/b")]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(listed(&out), listed(&two));
}

#[test]
fn bad_shard_values_are_configuration_errors_naming_their_source() {
    let d = config_dir(&fleet(3, "http://127.0.0.1:9", "false"));
    let expected_form = "expected I/N, this instance's shard number I and the number of shards N, with 1 <= I <= N";
    let cases = [
        (
            "0/3",
            "the shard number I must be from 1 to 3 (the number of shards), got \"0/3\"",
        ),
        (
            "4/3",
            "the shard number I must be from 1 to 3 (the number of shards), got \"4/3\"",
        ),
        ("1/0", "the number of shards N must be at least 1, got \"1/0\""),
        ("a/b", expected_form),
        ("3", expected_form),
    ];
    for (value, message) in cases {
        for command_args in [&["check"][..], &[][..]] {
            let mut args = command_args.to_vec();
            args.extend(["--shard", value]);
            let (code, out, err) = run(&d, &args, &[]);
            assert_eq!(code, 2, "{args:?}: {out}{err}");
            assert!(err.contains(&format!("error: --shard: {message}")), "{args:?}: {err}");
            assert!(err.contains("1 configuration problem found; not started"), "{err}");
            assert!(!err.contains("listening"), "{err}");

            let (code, _, err) = run(&d, command_args, &[("PINGER_SHARD", value)]);
            assert_eq!(code, 2, "PINGER_SHARD={value}: {err}");
            assert!(err.contains(&format!("error: PINGER_SHARD: {message}")), "{err}");
        }
    }
    let (code, _, err) = run(&d, &["check", "--shard"], &[]);
    assert_eq!(code, 2);
    assert!(err.contains("--shard needs a value (I/N, such as 2/3)"), "{err}");
}

/// Starts shard `i` of `n` of `config` on a free port.
pub fn start_shard(config: &str, i: usize, n: usize) -> Pinger {
    let dir = temp_dir("shard");
    std::fs::write(dir.join("pinger.json"), config).unwrap();
    let mut c = command(&dir, &[]);
    c.args(["--listen", "127.0.0.1:0", "--shard", &format!("{i}/{n}")]);
    Pinger::spawn(c, dir)
}

/// The worker names in /status.
pub fn status_names(p: &Pinger) -> BTreeSet<String> {
    p.status()["workers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["name"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn running_shards_show_and_ping_only_their_own_workers() {
    let target = FakeServer::always(ok());
    let me = FakeServer::always(ok());
    let config = fleet(
        9,
        &target.url(""),
        &format!(r#"{{"url": "{}", "interval": "1s"}}"#, me.url("/health")),
    );
    let shards: Vec<Pinger> = (1..=3).map(|i| start_shard(&config, i, 3)).collect();
    let mut all = BTreeSet::new();
    for (i, p) in shards.iter().enumerate() {
        let mine = status_names(p);
        assert!(
            p.log().contains(&format!(
                "({} worker(s), shard {}/3, 9 configured in all)",
                mine.len(),
                i + 1
            )),
            "{}",
            p.log()
        );
        for name in &mine {
            assert!(all.insert(name.clone()), "{name} is in two shards");
            p.wait_worker(name, 10 * SEC, |w| w["state"] == "up");
        }
        // The self-ping is not sharded: every instance keeps itself awake.
        p.wait_worker("self", 10 * SEC, |w| w["state"] == "up");
        // Nothing of the other shards' workers anywhere this instance serves.
        let page = p.get("/").body;
        let metrics = p.get("/metrics").body;
        for other in names(1..=9).difference(&mine) {
            assert!(!page.contains(other.as_str()), "shard {}/3 page shows {other}", i + 1);
            assert!(
                !metrics.contains(&format!("worker=\"{other}\"")),
                "shard {}/3 metrics show {other}",
                i + 1
            );
        }
    }
    assert_eq!(all, names(1..=9));
    // Between them, the shards pinged every worker.
    let paths: BTreeSet<String> = target.seen().into_iter().map(|s| s.path).collect();
    assert_eq!(paths, (1..=9).map(|i| format!("/n{i}")).collect::<BTreeSet<_>>());
}

/// The workers `check --shard I/N` lists for `config`.
fn share(config: &str, shard: &str) -> BTreeSet<String> {
    let d = config_dir(config);
    let (code, out, err) = run(&d, &["check", "--shard", shard], &[]);
    assert_eq!(code, 0, "{err}");
    listed(&out).into_iter().collect()
}

#[test]
fn once_checks_only_its_shard() {
    let target = FakeServer::always(ok());
    let d = config_dir(&fleet(9, &target.url(""), "false"));
    let mut lines = 0;
    for i in 1..=3 {
        let shard = format!("{i}/3");
        let (code, out, err) = run(&d, &["once", "--shard", &shard], &[]);
        assert_eq!(code, 0, "{out}{err}");
        let checked: BTreeSet<String> = out
            .lines()
            .filter_map(|l| l.split_whitespace().next().map(String::from))
            .collect();
        assert_eq!(checked, share(&fleet(9, &target.url(""), "false"), &shard), "{out}");
        lines += out.lines().count();
    }
    // Between them, the three runs checked every worker once.
    assert_eq!(lines, 9);
    let mut paths: Vec<String> = target.seen().into_iter().map(|s| s.path).collect();
    paths.sort();
    let mut wanted: Vec<String> = (1..=9).map(|i| format!("/n{i}")).collect();
    wanted.sort();
    assert_eq!(paths, wanted);
}
#[test]
fn a_reloaded_worker_list_is_sharded_too() {
    let target = FakeServer::always(ok());
    let before = fleet(6, &target.url(""), "false");
    let after = fleet(24, &target.url(""), "false");
    let p = start_shard(&before, 1, 2);
    assert_eq!(status_names(&p), share(&before, "1/2"));
    let wanted = share(&after, "1/2");
    assert!(wanted.len() < 24, "{wanted:?}");
    std::fs::write(p.dir.join("pinger.json"), &after).unwrap();
    p.signal("HUP");
    let end = std::time::Instant::now() + 10 * SEC;
    while status_names(&p) != wanted || !p.log().contains("configuration reloaded:") {
        assert!(
            std::time::Instant::now() < end,
            "after the reload /status has {:?}, not {wanted:?}; log:\n{}",
            status_names(&p),
            p.log()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
