//! deploy/prometheus with the real tools (Debian's `prometheus` package): promtool accepts the
//! scrape configuration and the rules and passes the rules' unit tests, and a real Prometheus
//! server scrapes two running shards and answers for both shards' workers, the shipped rules and
//! the dashboard's queries included. Skipped with a message when the tools are missing (a failure
//! under CI=true).

use crate::common::{FakeServer, Pinger, ok, request, skip, temp_dir};
use crate::integration::shard::{start_shard, status_names};
use serde_json::Value;
use std::collections::BTreeSet;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

fn shipped(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy/prometheus")
        .join(file)
}

/// Whether `tool` runs here; says why not otherwise.
fn available(tool: &str) -> bool {
    let found = Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        skip(&format!("{tool} is not installed (Debian package: prometheus)"));
    }
    found
}

fn promtool(args: &[&str]) {
    let out = Command::new("promtool").args(args).output().expect("run promtool");
    assert!(
        out.status.success(),
        "promtool {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn promtool_accepts_the_shipped_configuration_and_rules_and_passes_their_tests() {
    if !available("promtool") {
        return;
    }
    let path = |f: &str| shipped(f).display().to_string();
    promtool(&["check", "config", &path("prometheus.yml")]);
    promtool(&["check", "rules", &path("rules.yml")]);
    promtool(&["test", "rules", &path("rules.test.yml")]);
}

#[test]
fn the_grafana_dashboard_is_valid_json_with_a_prometheus_datasource_variable() {
    let text = std::fs::read_to_string(shipped("grafana-dashboard.json")).unwrap();
    let d: Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    assert!(d["schemaVersion"].as_u64().is_some_and(|v| v >= 36), "schemaVersion");
    assert!(d["uid"].is_string() && d["title"].is_string());
    let vars = d["templating"]["list"].as_array().expect("templating.list");
    assert!(
        vars.iter()
            .any(|v| v["name"] == "datasource" && v["type"] == "datasource" && v["query"] == "prometheus"),
        "no Prometheus datasource variable"
    );
    let panels = d["panels"].as_array().expect("panels");
    let titles: Vec<&str> = panels.iter().filter_map(|p| p["title"].as_str()).collect();
    for wanted in ["Fleet overview", "Down workers", "Uptime (24 h)", "Check latency"] {
        assert!(titles.contains(&wanted), "no panel {wanted:?} in {titles:?}");
    }
    // Every query goes through the variable, so the dashboard imports into any Grafana.
    for p in panels.iter().filter(|p| p["type"] != "row") {
        assert_eq!(p["datasource"]["uid"], "${datasource}", "{}", p["title"]);
        for t in p["targets"].as_array().expect("targets") {
            assert_eq!(t["datasource"]["uid"], "${datasource}", "{}", p["title"]);
        }
    }
    let ids: BTreeSet<u64> = panels.iter().filter_map(|p| p["id"].as_u64()).collect();
    assert_eq!(ids.len(), panels.len(), "panel ids are unique");
}

/// A Prometheus server on 127.0.0.1 with temporary storage; killed when dropped.
struct Prometheus {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Prometheus {
    /// Starts it with `config` (YAML) and waits until it is ready.
    fn start(config: &str) -> Prometheus {
        let dir = temp_dir("prometheus");
        std::fs::write(dir.join("prometheus.yml"), config).unwrap();
        // A free port is read back from a bound socket and released; another process may take it
        // in between, so a server that exits at once is started again on a new one.
        for _ in 0..3 {
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map(|a| a.port())
                .expect("a free port");
            let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
            let child = Command::new("prometheus")
                .arg(format!("--config.file={}", dir.join("prometheus.yml").display()))
                .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("start prometheus");
            let mut p = Prometheus {
                child,
                port,
                dir: dir.clone(),
            };
            let end = Instant::now() + Duration::from_secs(15);
            while Instant::now() < end {
                if let Ok(Some(_)) = p.child.try_wait() {
                    break;
                }
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
                    && request("GET", &p.url("/-/ready"), None).status == 200
                {
                    return p;
                }
                thread::sleep(Duration::from_millis(50));
            }
            drop(p);
        }
        panic!("prometheus did not start; log:\n{}", log_of(&dir));
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// `data` of an API answer, which must be a success.
    fn api(&self, path: &str) -> Value {
        let r = request("GET", &self.url(path), None);
        let v: Value = serde_json::from_str(&r.body).unwrap_or_else(|_| panic!("{path}: {}", r.body));
        assert_eq!(v["status"], "success", "{path}: {}", r.body);
        v["data"].clone()
    }

    /// The result vector of an instant query.
    fn query(&self, promql: &str) -> Vec<Value> {
        let data = self.api(&format!("/api/v1/query?query={}", encode(promql)));
        data["result"].as_array().cloned().unwrap_or_default()
    }

    /// The single value of a query such as `count(...)`, when it has one.
    fn scalar(&self, promql: &str) -> Option<f64> {
        match self.query(promql).as_slice() {
            [one] => one["value"][1].as_str().and_then(|v| v.parse().ok()),
            _ => None,
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn log_of(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("prometheus.log")).unwrap_or_default()
}

/// Percent-encodes a query parameter.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Polls `f` every 200 ms until it returns `Some`, for at most `within`.
fn wait_for<T>(within: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let end = Instant::now() + within;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() > end {
            return None;
        }
        thread::sleep(Duration::from_millis(200));
    }
}

/// The PromQL of every dashboard panel and variable, with Grafana's variables filled in as
/// "everything" (`label_values(SELECTOR, label)` becomes `SELECTOR`).
fn dashboard_queries() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(shipped("grafana-dashboard.json")).unwrap();
    let d: Value = serde_json::from_str(&text).unwrap();
    let fill = |q: &str| {
        q.replace("$__rate_interval", "1m")
            .replace("$instance", ".*")
            .replace("$worker", ".*")
    };
    let mut out = Vec::new();
    for p in d["panels"].as_array().unwrap() {
        for t in p["targets"].as_array().into_iter().flatten() {
            let title = p["title"].as_str().unwrap_or("").to_string();
            out.push((title, fill(t["expr"].as_str().expect("a target has an expr"))));
        }
    }
    for v in d["templating"]["list"].as_array().unwrap() {
        if let Some(q) = v["definition"].as_str() {
            let inner = q
                .strip_prefix("label_values(")
                .and_then(|r| r.rsplit_once(','))
                .map_or(q, |(selector, _)| selector);
            out.push((format!("variable {}", v["name"].as_str().unwrap_or("")), fill(inner)));
        }
    }
    out
}

#[test]
fn a_real_prometheus_scrapes_two_shards_and_counts_every_worker_once() {
    if !available("prometheus") {
        return;
    }
    let began = Instant::now();
    let target = FakeServer::always(ok());
    let workers: Vec<String> = (1..=10)
        .map(|i| {
            format!(
                r#"{{"name": "w-{i:02}", "url": "{}", "interval": "1s"}}"#,
                target.url("/")
            )
        })
        .collect();
    let config = format!(r#"{{"self_ping": false, "workers": [{}]}}"#, workers.join(","));
    let shards: Vec<Pinger> = (1..=2).map(|i| start_shard(&config, i, 2)).collect();
    let mine: Vec<BTreeSet<String>> = shards.iter().map(status_names).collect();
    assert!(mine.iter().all(|m| !m.is_empty()), "{mine:?}");
    assert!(mine[0].is_disjoint(&mine[1]), "{mine:?}");
    let total = mine[0].len() + mine[1].len();
    assert_eq!(total, 10);
    for (p, names) in shards.iter().zip(&mine) {
        for name in names {
            p.wait_worker(name, 10 * crate::common::SEC, |w| w["state"] == "up");
        }
    }

    let rules = shipped("rules.yml");
    let prom = Prometheus::start(&format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {rules:?}\n\
         scrape_configs:\n  - job_name: master-pinger\n    static_configs:\n      - targets: ['127.0.0.1:{}', '127.0.0.1:{}']\n",
        shards[0].port, shards[1].port
    ));
    let counted = wait_for(Duration::from_secs(20), || {
        prom.scalar("count(pinger_up == 1)").filter(|&n| n == total as f64)
    });
    assert_eq!(
        counted,
        Some(total as f64),
        "count(pinger_up == 1) never reached {total}; last answer {:?}; log:\n{}",
        prom.query("count(pinger_up == 1)"),
        log_of(&prom.dir)
    );
    // Both instances answered, each with its own shard's workers, and no worker is run twice.
    assert_eq!(prom.scalar("count(up{job=\"master-pinger\"} == 1)"), Some(2.0));
    for (p, names) in shards.iter().zip(&mine) {
        let q = format!("count(pinger_up{{instance=\"127.0.0.1:{}\"}} == 1)", p.port);
        assert_eq!(prom.scalar(&q), Some(names.len() as f64), "{q}");
    }
    assert_eq!(
        prom.query("count by (worker) (pinger_up{worker!=\"self\"}) > 1"),
        Vec::<Value>::new()
    );

    // The shipped rules load and evaluate against real series without errors.
    let evaluated = wait_for(Duration::from_secs(10), || {
        let groups = prom.api("/api/v1/rules")["groups"].as_array().cloned()?;
        let rules: Vec<Value> = groups
            .iter()
            .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
            .collect();
        (rules.len() == 5 && rules.iter().all(|r| r["health"] == "ok")).then_some(rules)
    });
    assert!(evaluated.is_some(), "{:#}", prom.api("/api/v1/rules"));

    // Every dashboard query is valid PromQL for this Prometheus (`query` asserts success), and
    // the panels count and show every worker.
    for (title, q) in dashboard_queries() {
        let result = prom.query(&q);
        match title.as_str() {
            "Uptime (24 h)" | "Check latency" => assert_eq!(result.len(), total, "{title}: {q}"),
            "Workers up" => assert_eq!(prom.scalar(&q), Some(total as f64), "{title}: {q}"),
            "Workers down" | "Workers run twice" => assert_eq!(prom.scalar(&q), Some(0.0), "{title}: {q}"),
            "variable instance" => assert_eq!(result.len(), 2, "{title}: {q}"),
            _ => {}
        }
    }
    eprintln!("prometheus test: {:.1}s", began.elapsed().as_secs_f64());
}
