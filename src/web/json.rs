//! `/status`: the SPEC's JSON document, written as it is produced. `write_status` writes the
//! top, then one target at a time (each copied out of the state on its own and dropped once
//! written), so memory does not grow with the fleet or the history asked for. `write_worker` is
//! the one place a target's JSON object is made.

use crate::state::{CertInfo, CheckRecord, Copied, Overview, PushView, Snapshot, State, TargetView};
use crate::timefmt::{from_unix_millis, rfc3339, unix_secs};
use crate::tls::expiry::days_left;
use serde::Serialize;
use std::io::{self, Write};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(Serialize)]
struct WorkerDoc<'a> {
    name: &'a str,
    /// `pull` (we request its URL) or `push` (a heartbeat worker: it reports to us).
    kind: &'static str,
    /// `null` for a push worker.
    url: Option<&'a str>,
    interval_seconds: serde_json::Number,
    state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    maintenance_until: Option<String>,
    paused: bool,
    consecutive_failures: u32,
    checks: u64,
    successes: u64,
    skipped: u64,
    attempts: u64,
    uptime_percent: Uptime,
    last_check: Option<CheckDoc<'a>>,
    next_check_at: Option<String>,
    restarts: u64,
    last_restart_at: Option<String>,
    tls: Option<TlsDoc>,
    history: Vec<CheckDoc<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    push: Option<PushDoc<'a>>,
}

/// A heartbeat worker's reports (`next_check_at` is when the next report is due).
#[derive(Serialize)]
struct PushDoc<'a> {
    endpoint: &'a str,
    period_seconds: f64,
    grace_seconds: f64,
    last_report_at: Option<String>,
    reports: PushCounts,
    /// The body of the last report that had one.
    message: Option<&'a str>,
}

#[derive(Serialize)]
struct PushCounts {
    success: u64,
    failure: u64,
    start: u64,
}

fn push_doc<'a>(w: &'a TargetView, p: &'a PushView) -> PushDoc<'a> {
    PushDoc {
        endpoint: &w.url,
        period_seconds: p.info.period.as_secs_f64(),
        grace_seconds: p.info.grace.as_secs_f64(),
        last_report_at: p.counts.last_report_at_ms.map(|ms| rfc3339(from_unix_millis(ms))),
        reports: PushCounts {
            success: p.counts.success,
            failure: p.counts.failure,
            start: p.counts.start,
        },
        message: p.message.as_deref(),
    }
}

#[derive(Serialize)]
struct TlsDoc {
    expires_at: String,
    days_left: i64,
    verified: bool,
}

fn tls_doc(c: &CertInfo, now: SystemTime) -> TlsDoc {
    TlsDoc {
        expires_at: rfc3339(UNIX_EPOCH + Duration::from_secs(c.expires_at.max(0) as u64)),
        days_left: days_left(c.expires_at, unix_secs(now) as i64),
        verified: c.verified,
    }
}

#[derive(Serialize)]
struct Uptime {
    #[serde(rename = "24h")]
    day: Option<f64>,
    #[serde(rename = "7d")]
    week: Option<f64>,
    #[serde(rename = "30d")]
    month: Option<f64>,
}

#[derive(Serialize)]
struct CheckDoc<'a> {
    at: String,
    ok: bool,
    status_code: Option<u16>,
    latency_ms: u64,
    duration_ms: u64,
    attempts: u32,
    error: Option<&'a str>,
}

fn check_doc(r: &CheckRecord) -> CheckDoc<'_> {
    CheckDoc {
        at: rfc3339(from_unix_millis(r.at_ms)),
        ok: r.ok,
        status_code: r.status,
        latency_ms: r.latency_ms,
        duration_ms: r.duration_ms,
        attempts: r.attempts,
        error: r.error.as_deref(),
    }
}

/// A ratio as a percentage with at most three decimals (`99.861`).
pub fn percent(ratio: f64) -> f64 {
    (ratio * 100_000.0).round() / 1000.0
}

fn worker_doc(w: &TargetView, now: SystemTime) -> WorkerDoc<'_> {
    let secs = w.interval.as_secs_f64();
    WorkerDoc {
        name: &w.name,
        kind: if w.push.is_some() { "push" } else { "pull" },
        url: w.push.is_none().then_some(w.url.as_str()),
        interval_seconds: if secs.fract() == 0.0 {
            serde_json::Number::from(w.interval.as_secs())
        } else {
            serde_json::Number::from_f64(secs).unwrap_or_else(|| serde_json::Number::from(w.interval.as_secs()))
        },
        state: w.health.as_str(),
        maintenance_until: w.maintenance_until_ms.map(|ms| rfc3339(from_unix_millis(ms))),
        paused: w.counters.paused,
        consecutive_failures: w.counters.consecutive_failures,
        checks: w.counters.checks,
        successes: w.counters.successes,
        skipped: w.counters.skipped,
        attempts: w.counters.attempts,
        uptime_percent: {
            let [day, week, month] = w.uptime.map(|u| u.map(percent));
            Uptime { day, week, month }
        },
        last_check: w.last.as_ref().map(check_doc),
        next_check_at: w.next_check_at_ms.map(|ms| rfc3339(from_unix_millis(ms))),
        restarts: w.counters.restarts,
        last_restart_at: w.counters.last_restart_at_ms.map(|ms| rfc3339(from_unix_millis(ms))),
        tls: w.tls.as_ref().map(|c| tls_doc(c, now)),
        history: w.history.iter().map(check_doc).collect(),
        push: w.push.as_ref().map(|p| push_doc(w, p)),
    }
}

/// Which targets `/status` lists. The top-level `status` still describes the whole fleet.
#[derive(Debug, Clone, Copy, Default)]
pub struct Filter<'a> {
    /// Only the target of this name (the self-ping is `self`).
    pub worker: Option<&'a str>,
    /// Only targets in this state (`up`, `down`, `pending`, `paused`).
    pub state: Option<&'a str>,
}

impl Filter<'_> {
    pub fn keeps(&self, w: &TargetView) -> bool {
        self.worker.is_none_or(|n| n == w.name) && self.state.is_none_or(|s| s == w.health.as_str())
    }
}

/// Where `write_status` takes its targets from: the live state (one at a time) or a snapshot.
pub trait Targets {
    fn overview(&self) -> Overview;
    /// The target `id` of the overview with its newest `history` checks; `None` when it is gone.
    /// `buf` is scratch space reused from one target to the next.
    fn target(&self, id: usize, history: usize, now: SystemTime, buf: &mut Copied) -> Option<TargetView>;
}

impl Targets for State {
    fn overview(&self) -> Overview {
        State::overview(self)
    }

    fn target(&self, id: usize, history: usize, now: SystemTime, buf: &mut Copied) -> Option<TargetView> {
        self.view(id, history, now, buf)
    }
}

/// A snapshot's targets are numbered in order, the self-ping last. The history it holds is what
/// it was taken with.
impl Targets for Snapshot {
    fn overview(&self) -> Overview {
        let n = self.workers.len();
        Overview {
            started_at: self.started_at,
            status: self.overall(),
            workers: (0..n).collect(),
            self_ping: self.self_ping.as_ref().map(|_| n),
            persistence_error: self.persistence_error.clone(),
            config_error: self.config_error.clone(),
        }
    }

    fn target(&self, id: usize, history: usize, _: SystemTime, _: &mut Copied) -> Option<TargetView> {
        let mut w = self
            .workers
            .get(id)
            .or(self.self_ping.as_ref().filter(|_| id == self.workers.len()))?
            .clone();
        let drop = w.history.len().saturating_sub(history);
        w.history.drain(..drop);
        Some(w)
    }
}

/// The whole `/status` document to `out`, as it is produced: the top, then each target copied
/// from `src`, written and dropped before the next. `out` should be buffered.
pub fn write_status(
    out: &mut impl Write,
    src: &impl Targets,
    history: usize,
    filter: &Filter,
    now: SystemTime,
) -> io::Result<()> {
    let o = src.overview();
    write!(
        out,
        r#"{{"status":"{}","version":"{}","started_at":"{}","uptime_seconds":{},"self_ping":"#,
        o.status,
        env!("CARGO_PKG_VERSION"),
        rfc3339(o.started_at),
        unix_secs(now).saturating_sub(unix_secs(o.started_at)),
    )?;
    let mut buf = Copied::default();
    let self_ping = o
        .self_ping
        .and_then(|id| src.target(id, history, now, &mut buf))
        .filter(|w| filter.keeps(w));
    match self_ping {
        Some(w) => write_worker(out, &w, now)?,
        None => out.write_all(b"null")?,
    }
    out.write_all(br#","workers":["#)?;
    let mut first = true;
    for &id in &o.workers {
        let Some(w) = src.target(id, history, now, &mut buf).filter(|w| filter.keeps(w)) else {
            continue;
        };
        if !std::mem::take(&mut first) {
            out.write_all(b",")?;
        }
        write_worker(out, &w, now)?;
    }
    out.write_all(b"]")?;
    for (name, text) in [
        ("persistence_error", &o.persistence_error),
        ("config_error", &o.config_error),
    ] {
        if let Some(text) = text {
            write!(out, r#","{name}":"#)?;
            serde_json::to_writer(&mut *out, text)?;
        }
    }
    out.write_all(b"}")
}

/// One target's JSON object, as `/status` lists it and the admin endpoints answer with it.
pub fn write_worker(out: &mut impl Write, w: &TargetView, now: SystemTime) -> io::Result<()> {
    serde_json::to_writer(out, &worker_doc(w, now)).map_err(io::Error::from)
}

/// The document into memory, for small bodies and tests.
pub fn render_filtered(src: &impl Targets, history: usize, filter: &Filter, now: SystemTime) -> String {
    let mut out = Vec::new();
    // Writing into a Vec cannot fail.
    let _ = write_status(&mut out, src, history, filter, now);
    String::from_utf8(out).unwrap_or_default()
}

/// A snapshot as the whole document, with the history it was taken with.
pub fn render(s: &Snapshot) -> String {
    render_filtered(s, usize::MAX, &Filter::default(), s.now)
}

/// One worker as `/status` shows it (the answer to pause and resume).
pub fn render_worker(w: &TargetView, now: SystemTime) -> String {
    let mut out = Vec::new();
    let _ = write_worker(&mut out, w, now);
    String::from_utf8(out).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::web::testdata::snapshot;
    use serde_json::Value;

    #[test]
    fn status_has_the_spec_shape() {
        let v: Value = serde_json::from_str(&render(&snapshot())).unwrap();
        assert_eq!(v["status"], "degraded");
        assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
        assert_eq!(v["started_at"], "2026-11-28T10:00:00Z");
        assert_eq!(v["uptime_seconds"], 3600);
        let up = &v["workers"][0];
        assert_eq!(up["name"], "api");
        assert_eq!(up["interval_seconds"], 300);
        assert_eq!(up["state"], "up");
        assert_eq!(up["uptime_percent"]["24h"], 100.0);
        assert_eq!(up["last_check"]["status_code"], 200);
        assert_eq!(up["last_check"]["error"], Value::Null);
        assert_eq!(up["history"].as_array().unwrap().len(), 3);
        assert_eq!(up["next_check_at"], "2026-11-28T11:05:00Z");
        let down = &v["workers"][1];
        assert_eq!(down["last_check"]["error"], "status 503");
        assert_eq!(down["restarts"], 1);
        assert_eq!(v["workers"][2]["state"], "pending");
        assert_eq!(v["workers"][2]["last_check"], Value::Null);
        assert_eq!(v["workers"][2]["uptime_percent"]["30d"], Value::Null);
        assert_eq!(v["self_ping"]["name"], "self");
        assert_eq!(
            up["tls"],
            serde_json::json!({"expires_at": "2027-01-09T11:00:00Z", "days_left": 42, "verified": true})
        );
        assert_eq!(down["tls"]["days_left"], 2);
        assert_eq!(down["tls"]["verified"], false);
        assert_eq!(v["workers"][2]["tls"], Value::Null, "null before the first read");
        assert_eq!(v["self_ping"]["tls"], Value::Null);
    }

    #[test]
    fn filters_narrow_the_targets_but_not_the_overall_status() {
        let names = |f: Filter| {
            let s = snapshot();
            let v: Value = serde_json::from_str(&render_filtered(&s, usize::MAX, &f, s.now)).unwrap();
            assert_eq!(v["status"], "degraded", "the whole fleet's status");
            let mut n: Vec<String> = v["workers"]
                .as_array()
                .unwrap()
                .iter()
                .map(|w| w["name"].as_str().unwrap().into())
                .collect();
            if !v["self_ping"].is_null() {
                n.push(format!("self_ping:{}", v["self_ping"]["name"].as_str().unwrap()));
            }
            n
        };
        assert_eq!(names(Filter::default()), ["api", "db", "new", "self_ping:self"]);
        let by = |worker, state| Filter { worker, state };
        assert_eq!(names(by(Some("db"), None)), ["db"]);
        assert_eq!(names(by(Some("self"), None)), ["self_ping:self"]);
        assert_eq!(names(by(None, Some("up"))), ["api", "self_ping:self"]);
        assert_eq!(names(by(None, Some("down"))), ["db"]);
        assert_eq!(names(by(None, Some("pending"))), ["new"]);
        assert!(names(by(None, Some("paused"))).is_empty());
        assert_eq!(names(by(Some("api"), Some("up"))), ["api"]);
        assert!(names(by(Some("api"), Some("down"))).is_empty());
    }

    #[test]
    fn percent_rounds_to_three_decimals() {
        assert_eq!(percent(2.0 / 3.0), 66.667);
        assert_eq!(percent(1.0), 100.0);
    }
}
