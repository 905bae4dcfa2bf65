//! `/`: the status page, a hand-built HTML string. No JavaScript, no external assets: it refreshes
//! with a meta tag, follows the system theme with CSS, and turns into cards on a phone.
//! Every string that came from a target or the config passes through `escape`.

use crate::duration;
use crate::state::{CheckRecord, Health, Snapshot, TargetView};
use crate::timefmt::{from_unix_millis, relative, rfc3339, unix_secs};
use crate::tls::expiry::days_left;
use crate::web::json::percent;
use std::fmt::Write;
use std::time::{SystemTime, UNIX_EPOCH};

/// How many recent checks the heartbeat bar and sparkline show.
pub const BAR_CELLS: usize = 30;
/// Up to this many workers, each gets a full row. Beyond it, only the ones that need a look do
/// (down, or up only after retries) and the rest are cells of a grid, so the page stays one
/// glance and a few hundred KB at any size.
pub const ROWS_UP_TO: usize = 50;
/// In a larger fleet, at most this many full rows; further down workers are red grid cells.
/// A full row is about 4 KB (30 heartbeat cells with tooltips), a grid cell about 150 bytes.
pub const MAX_FULL_ROWS: usize = 20;
const REFRESH_SECONDS: u32 = 30;
/// A published page only changes when the next scheduled run publishes it again.
const PUBLISHED_REFRESH_SECONDS: u32 = 60;

/// Where the page is seen: served by the running service, or published as static files by
/// `once --publish` (no server behind it: links are relative, and it says when the run was).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Site {
    Served,
    Published,
}

/// Escapes text for HTML content and (double- or single-quoted) attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = r#"
:root{--bg:#f6f7f9;--fg:#1b1f24;--muted:#5c6570;--card:#fff;--line:#dde1e6;--up:#1f9d55;--down:#d64545;--pending:#8a94a0;--warn:#c77c02;--maint:#4a6fd1;--downbg:#fdecec}
@media (prefers-color-scheme:dark){:root{--bg:#0f1216;--fg:#e6e9ed;--muted:#9aa4af;--card:#171b21;--line:#2a3038;--up:#3ecf7a;--down:#ff6b6b;--pending:#7d8793;--warn:#f0a030;--maint:#7d9cf0;--downbg:#3a1a1d}}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;background:var(--bg);color:var(--fg)}
header,main,footer{max-width:1200px;margin:0 auto;padding:12px 16px}
h1{font-size:20px;margin:0 0 4px}
h2{font-size:15px;margin:18px 0 8px;color:var(--muted);font-weight:600}
.overall{font-size:18px;font-weight:600;padding:10px 14px;border-radius:8px;background:var(--card);border:1px solid var(--line);border-left:6px solid var(--up)}
.overall.degraded,.overall.down{border-left-color:var(--down);background:var(--downbg)}
.meta,.muted,small{color:var(--muted)}
table{width:100%;border-collapse:collapse;background:var(--card);border:1px solid var(--line);border-radius:8px}
th,td{padding:8px 10px;text-align:left;vertical-align:middle;border-bottom:1px solid var(--line)}
th{font-size:12px;color:var(--muted);font-weight:600}
tr.down td,tr.down th{background:var(--downbg)}
th[scope=row]{font-size:14px;color:var(--fg);font-weight:400}
.name{font-weight:600;word-break:break-all}
.url{font-size:12px;color:var(--muted);word-break:break-all}
.pill{display:inline-block;padding:1px 8px;border-radius:10px;font-weight:600;font-size:12px;color:#fff}
.pill.up{background:var(--up)}.pill.down{background:var(--down)}.pill.pending,.pill.paused{background:var(--pending)}.pill.degraded{background:var(--warn)}.pill.maintenance{background:var(--maint)}
.bar{display:flex;gap:2px;align-items:stretch;height:22px}
.hb{display:inline-block;width:6px;border-radius:2px;background:var(--pending)}
.hb.up{background:var(--up)}.hb.down{background:var(--down)}.hb.slow{background:var(--warn)}
.spark polyline{fill:none;stroke:var(--fg);stroke-width:1.5}
.spark circle{fill:var(--fg)}
.tls{font-size:12px;color:var(--muted)}.tls.warn{color:var(--warn);font-weight:600}.tls.bad{color:var(--down);font-weight:600}
.err{color:var(--down);font-size:12px;word-break:break-word;max-width:260px}
.err.banner{max-width:none;font-size:14px;padding:10px 14px;border-radius:8px;background:var(--downbg)}
.num{font-variant-numeric:tabular-nums;white-space:nowrap}
h3{font-size:13px;margin:14px 0 6px;color:var(--muted);font-weight:600}
.cells{list-style:none;margin:0;padding:0;display:grid;grid-template-columns:repeat(auto-fill,minmax(92px,1fr));gap:3px}
.cells li{padding:1px 5px;line-height:1.4;border-radius:4px;border:1px solid var(--line);border-left:5px solid var(--up);background:var(--card);font-size:11px;overflow-wrap:anywhere;cursor:default}
.cells li:hover{border-color:var(--muted)}
.cells.down li{border-left-color:var(--down);background:var(--downbg)}.cells.pending li,.cells.paused li{border-left-color:var(--pending)}.cells.degraded li{border-left-color:var(--warn)}.cells.maintenance li{border-left-color:var(--maint)}
@media (max-width:600px){
 header,main,footer{padding:8px 10px}
 table,thead,tbody,tr,th,td{display:block}
 table{border:0;background:none}
 thead{display:none}
 tr{display:grid;grid-template-columns:1fr auto;align-items:center;gap:4px 10px;background:var(--card);border:1px solid var(--line);border-radius:8px;margin:0 0 6px;padding:7px 10px}
 tr.down{background:var(--downbg)}
 tr.down td,tr.down th,th,td{border:0;padding:0;background:none}
 .url,th small,td[data-label=Latency],td[data-label="Last check"],td[data-label="Next check"],td[data-label=Failures],td[data-label=Restarts],td.muted[data-label="Last error"],.wk{display:none}
 td[data-label=Uptime]::before{content:"24h ";color:var(--muted);font-size:12px}
 td[data-label=State]{justify-self:end}
 td[data-label="Last error"]{grid-column:1/-1;max-width:none}
}
"#;

pub fn render(s: &Snapshot) -> String {
    render_for(s, Site::Served)
}

pub fn render_for(s: &Snapshot, site: Site) -> String {
    let mut out = String::with_capacity(4096 + s.workers.len() * 4096);
    page_head(&mut out, s, site);
    about(&mut out, s, site);
    problems(&mut out, s);
    out.push_str("</header><main>");
    workers(&mut out, s);
    if let Some(sp) = &s.self_ping {
        out.push_str("<h2 id=\"self\">Self-ping</h2>");
        table(&mut out, &[sp], s.now, false, "self");
    }
    let _ = write!(
        out,
        "</main><footer class=\"muted\">Rendered <time datetime=\"{0}\">{0}</time>.</footer></body></html>",
        rfc3339(s.now)
    );
    out
}

/// `All 3 workers up`, `1 of 3 workers down (1 degraded)`: the page's title and first line.
fn headline(s: &Snapshot) -> String {
    let down = s.down_count();
    let total = s.workers.len();
    let pending = s.workers.iter().filter(|w| w.health == Health::Pending).count();
    let paused = s.workers.iter().filter(|w| w.health == Health::Paused).count();
    let headline = if total == 0 {
        "No workers configured: only keeping itself awake".to_string()
    } else if down == 0 && paused == total {
        format!("All {total} worker{} paused", plural(total))
    } else if down == 0 && pending + paused == total {
        format!("Waiting for the first checks of {pending} worker{}", plural(pending))
    } else if down == 0 && paused > 0 {
        format!(
            "All {} active worker{} up, {paused} paused",
            total - paused,
            plural(total - paused)
        )
    } else if down == 0 {
        format!("All {total} worker{} up", plural(total))
    } else if down == total {
        format!("All {total} worker{} down", plural(total))
    } else {
        format!("{down} of {total} worker{} down", plural(total))
    };
    headline + &aside(s)
}

/// The document's head (refreshing, styled) and the header's title and overall state.
fn page_head(out: &mut String, s: &Snapshot, site: Site) {
    let headline = headline(s);
    let refresh = match site {
        Site::Served => REFRESH_SECONDS,
        Site::Published => PUBLISHED_REFRESH_SECONDS,
    };
    let _ = write!(
        out,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
<meta http-equiv=\"refresh\" content=\"{refresh}\">\
<meta name=\"color-scheme\" content=\"light dark\">\
<title>{} · master-pinger</title><style>{STYLE}</style></head><body>\
<header><h1>master-pinger</h1>\
<p class=\"overall {}\" role=\"status\">{}</p>",
        escape(&headline),
        s.overall(),
        escape(&headline),
    );
}

/// The line under the headline: the version and uptime with links to the other views, or for a
/// published page, the run it is as of.
fn about(out: &mut String, s: &Snapshot, site: Site) {
    match site {
        Site::Served => {
            let uptime = duration::format(std::time::Duration::from_secs(
                s.now.duration_since(s.started_at).unwrap_or_default().as_secs(),
            ));
            let _ = write!(
                out,
                "<p class=\"meta\">v{} · up {} (since <time datetime=\"{2}\">{2}</time>) · refreshes every {REFRESH_SECONDS} s · \
<a href=\"/status\">JSON</a> · <a href=\"/metrics\">metrics</a></p>",
                escape(s.version),
                escape(&uptime),
                rfc3339(s.started_at),
            );
        }
        // No server: the page is as old as the run that made it, and says so first.
        Site::Published => {
            let _ = write!(
                out,
                "<p class=\"meta\">v{} · as of the run at <time id=\"last-run\" datetime=\"{1}\">{1}</time> · \
checked by scheduled runs, not continuously: this page changes when a later run publishes it · \
<a href=\"status.json\">JSON</a></p>",
                escape(s.version),
                rfc3339(s.now),
            );
        }
    }
}

/// A configuration that could not be reloaded, and a state file that cannot be written.
fn problems(out: &mut String, s: &Snapshot) {
    if let Some(e) = &s.config_error {
        let _ = write!(
            out,
            "<p class=\"err banner\" role=\"alert\"><strong>The configuration could not be reloaded; \
the previous configuration is still running.</strong> {}</p>",
            escape(e)
        );
    }
    if let Some(e) = &s.persistence_error {
        let _ = write!(
            out,
            "<p class=\"err\" role=\"alert\">State file problem: {}</p>",
            escape(e)
        );
    }
}

/// The workers, down ones first so they jump out (config order otherwise): a table, or for a
/// large fleet, the ones that need a look and a grid of the rest.
fn workers(out: &mut String, s: &Snapshot) {
    let show_restarts = s.workers.iter().any(|w| w.restarts_enabled || w.counters.restarts > 0);
    let mut order: Vec<&TargetView> = s.workers.iter().collect();
    order.sort_by_key(|w| match w.health {
        Health::Down => 0,
        Health::Degraded => 1,
        Health::Pending => 2,
        Health::Maintenance => 3,
        Health::Up => 4,
        Health::Paused => 5,
    });
    out.push_str("<h2 id=\"workers\">Workers</h2>");
    if order.len() <= ROWS_UP_TO {
        table(out, &order, s.now, show_restarts, "workers");
    } else {
        large_fleet(out, &order, s.now, show_restarts);
    }
}

/// A worker that needs a look: down, or up only after retries (a cold start or a flaky target).
fn needs_a_look(w: &TargetView) -> bool {
    // A paused worker is not being checked: its last check is old news.
    w.health == Health::Down || (!w.counters.paused && w.last.as_ref().is_some_and(|r| r.ok && r.attempts > 1))
}

/// Full rows for the workers that need a look (at most `MAX_FULL_ROWS`), then every other
/// worker as a cell of a grid, grouped by state under a heading that names it, so the state is
/// told in words as well as colour.
fn large_fleet(out: &mut String, order: &[&TargetView], now: SystemTime, show_restarts: bool) {
    let mut full: Vec<&TargetView> = order.iter().copied().filter(|w| needs_a_look(w)).collect();
    // Down before retried: `order` already has the down ones first.
    full.truncate(MAX_FULL_ROWS);
    if !full.is_empty() {
        table(out, &full, now, show_restarts, "workers");
    }
    let rest: Vec<&TargetView> = order
        .iter()
        .copied()
        .filter(|w| !full.iter().any(|f| std::ptr::eq(*f, *w)))
        .collect();
    for health in [
        Health::Down,
        Health::Degraded,
        Health::Pending,
        Health::Maintenance,
        Health::Up,
        Health::Paused,
    ] {
        let group: Vec<&TargetView> = rest.iter().copied().filter(|w| w.health == health).collect();
        if group.is_empty() {
            continue;
        }
        let state = health.as_str();
        let more = if full.is_empty() || health != Health::Down {
            ""
        } else {
            "more "
        };
        let _ = write!(
            out,
            "<h3 id=\"g-{state}\">{} {more}{state}</h3><ul class=\"cells {state}\" aria-labelledby=\"g-{state}\">",
            group.len()
        );
        for w in group {
            cell(out, w, now);
        }
        out.push_str("</ul>");
    }
}

/// One grid cell: the name, in its group's state colour; the tooltip has its last check, latency
/// and 24 h uptime. Kept this small (no link, no repeated name) so 1,000 of them fit in the page
/// budget even with 64-character names.
fn cell(out: &mut String, w: &TargetView, now: SystemTime) {
    let _ = write!(out, "<li title=\"{}", w.health.as_str());
    match &w.last {
        Some(r) => {
            let status = r.status.map_or("no response".to_string(), |c| format!("status {c}"));
            let _ = write!(
                out,
                " · checked {} · {status} · {} ms",
                escape(&relative(from_unix_millis(r.at_ms), now)),
                r.latency_ms
            );
        }
        None => out.push_str(" · not checked yet"),
    }
    if let Some(u) = w.uptime[0] {
        let _ = write!(out, " · 24h {}%", trim_percent(percent(u)));
    }
    let _ = write!(out, "\">{}</li>", escape(&w.name));
}

/// ` (1 degraded, 2 in maintenance)`: the workers the headline's "up" does not tell about.
fn aside(s: &Snapshot) -> String {
    let count = |h: Health| s.workers.iter().filter(|w| w.health == h).count();
    let parts: Vec<String> = [
        (count(Health::Degraded), "degraded"),
        (count(Health::Maintenance), "in maintenance"),
    ]
    .into_iter()
    .filter(|(n, _)| *n > 0)
    .map(|(n, what)| format!("{n} {what}"))
    .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!(" ({})", parts.join(", "))
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

fn table(out: &mut String, rows: &[&TargetView], now: SystemTime, show_restarts: bool, labelled_by: &str) {
    let _ = write!(
        out,
        "<table aria-labelledby=\"{labelled_by}\"><thead><tr><th scope=\"col\">Worker</th><th scope=\"col\">State</th>\
<th scope=\"col\">Recent checks</th><th scope=\"col\">Uptime 24h / 7d / 30d</th><th scope=\"col\">Latency</th>\
<th scope=\"col\">Last check</th><th scope=\"col\">Next check</th><th scope=\"col\">Failures</th>\
<th scope=\"col\">Last error</th>{}</tr></thead><tbody>",
        if show_restarts {
            "<th scope=\"col\">Restarts</th>"
        } else {
            ""
        }
    );
    if rows.is_empty() {
        out.push_str(
            "<tr><td colspan=\"9\" class=\"muted\">No workers. Add some to pinger.json or PINGER_WORKERS.</td></tr>",
        );
    }
    for w in rows {
        row(out, w, now, show_restarts);
    }
    out.push_str("</tbody></table>");
}

fn row(out: &mut String, w: &TargetView, now: SystemTime, show_restarts: bool) {
    name_and_state(out, w, now);
    let recent = &w.history[w.history.len().saturating_sub(BAR_CELLS)..];
    out.push_str("<td data-label=\"Recent checks\">");
    heartbeat(out, recent);
    out.push_str("</td>");
    uptime(out, w);
    out.push_str("<td data-label=\"Latency\">");
    sparkline(out, recent);
    out.push_str("</td>");
    last_check(out, w, now);
    next_check(out, w.next_check_at_ms, now);
    let _ = write!(
        out,
        "<td data-label=\"Failures\" class=\"num\">{}</td>",
        w.counters.consecutive_failures
    );
    last_error(out, w);
    if show_restarts {
        restarts(out, w, now);
    }
    out.push_str("</tr>");
}

/// The row's start: the name, URL, schedule and certificate, then the state.
fn name_and_state(out: &mut String, w: &TargetView, now: SystemTime) {
    let state = w.health.as_str();
    let name = escape(&w.name);
    let _ = write!(
        out,
        "<tr class=\"{state}\" id=\"w-{name}\"><th scope=\"row\" data-label=\"Worker\"><div class=\"name\">{name}</div><div class=\"url\">{}</div>\
<small>{}</small>{}</th><td data-label=\"State\"><span class=\"pill {state}\">{state}</span>{}</td>",
        escape(&w.url),
        escape(&every(w, now)),
        tls_note(w, now),
        maintenance_note(w),
    );
}

/// `99.5%` over 24 hours; 7 and 30 days beside it on a wide screen.
fn uptime(out: &mut String, w: &TargetView) {
    let uptimes: Vec<String> = w
        .uptime
        .iter()
        .map(|u| u.map_or("–".to_string(), |v| format!("{}%", trim_percent(percent(v)))))
        .collect();
    let _ = write!(
        out,
        "<td data-label=\"Uptime\" class=\"num\" aria-label=\"Uptime: {0} over 24 hours, {1} over 7 days, {2} over 30 days\">{0}<span class=\"wk\"> / {1} / {2}</span></td>",
        uptimes[0], uptimes[1], uptimes[2],
    );
}

/// When the last check was, what it got (a status, or a heartbeat's report) and its latency.
fn last_check(out: &mut String, w: &TargetView, now: SystemTime) {
    let Some(r) = &w.last else {
        out.push_str("<td data-label=\"Last check\" class=\"muted\">not yet</td>");
        return;
    };
    let at = from_unix_millis(r.at_ms);
    let status = match (&w.push, r.status) {
        // A heartbeat's check is a report (or a missed one), never a response.
        (Some(_), _) if r.error.as_deref().is_some_and(|e| e.starts_with("no report")) => "missed".to_string(),
        (Some(_), _) => "report".to_string(),
        (None, status) => status.map_or("no response".to_string(), |c| c.to_string()),
    };
    let _ = write!(
        out,
        "<td data-label=\"Last check\" class=\"num\"><time datetime=\"{0}\" title=\"{0}\">{1}</time><br><small>{2} · {3} ms</small></td>",
        rfc3339(at),
        escape(&relative(at, now)),
        escape(&status),
        r.latency_ms
    );
}

fn next_check(out: &mut String, next_check_at_ms: Option<u64>, now: SystemTime) {
    match next_check_at_ms {
        // The deadline has passed: the check is running (retries and timeouts take a while).
        Some(ms) if from_unix_millis(ms) + std::time::Duration::from_secs(1) < now => {
            out.push_str("<td data-label=\"Next check\">in progress</td>");
        }
        Some(ms) => {
            let at = from_unix_millis(ms);
            let _ = write!(
                out,
                "<td data-label=\"Next check\" class=\"num\"><time datetime=\"{0}\" title=\"{0}\">{1}</time></td>",
                rfc3339(at),
                escape(&relative(at, now))
            );
        }
        None => out.push_str("<td data-label=\"Next check\" class=\"muted\">–</td>"),
    }
}

/// The last check's error, or the newest one in the history, with a heartbeat's message.
fn last_error(out: &mut String, w: &TargetView) {
    match w
        .last
        .as_ref()
        .and_then(|r| r.error.as_deref())
        .or_else(|| w.history.iter().rev().find_map(|r| r.error.as_deref()))
    {
        Some(e) => {
            let _ = write!(
                out,
                "<td data-label=\"Last error\" class=\"err\">{}{}</td>",
                escape(e),
                push_message(w)
            );
        }
        None if w.push.as_ref().is_some_and(|p| p.message.is_some()) => {
            let _ = write!(out, "<td data-label=\"Last error\">{}</td>", push_message(w));
        }
        None => out.push_str("<td data-label=\"Last error\" class=\"muted\">none</td>"),
    }
}

/// How many restarts were requested, and when the last one was.
fn restarts(out: &mut String, w: &TargetView, now: SystemTime) {
    let last = w
        .counters
        .last_restart_at_ms
        .map(|ms| {
            let at = from_unix_millis(ms);
            format!(
                "<br><small><time datetime=\"{0}\" title=\"{0}\">{1}</time></small>",
                rfc3339(at),
                escape(&relative(at, now))
            )
        })
        .unwrap_or_default();
    let _ = write!(
        out,
        "<td data-label=\"Restarts\" class=\"num\">{}{last}</td>",
        w.counters.restarts
    );
}

/// The end of the maintenance window that is on: `until 2026-12-25T00:00:00Z`.
fn maintenance_note(w: &TargetView) -> String {
    let Some(ms) = w.maintenance_until_ms else {
        return String::new();
    };
    let until = rfc3339(from_unix_millis(ms));
    format!("<br><small class=\"maint\">until <time datetime=\"{until}\">{until}</time></small>")
}

/// Under the name: how often a pulled worker is checked, or a push worker's period and grace.
fn every(w: &TargetView, now: SystemTime) -> String {
    match &w.push {
        None => format!("every {}", duration::format(w.interval)),
        Some(p) => format!(
            "push: every {}, grace {}; last report {}",
            duration::format(p.info.period),
            duration::format(p.info.grace),
            p.counts
                .last_report_at_ms
                .map_or("none yet".to_string(), |ms| relative(from_unix_millis(ms), now))
        ),
    }
}

/// The characters of a push report's message the page shows (`/status` has it whole).
const MESSAGE_SHOWN: usize = 500;

/// A push worker's last message, escaped, below its error text.
fn push_message(w: &TargetView) -> String {
    let Some(message) = w.push.as_ref().and_then(|p| p.message.as_deref()) else {
        return String::new();
    };
    let shown: String = message.chars().take(MESSAGE_SHOWN).collect();
    let more = if shown.len() < message.len() { "…" } else { "" };
    format!(
        "<div class=\"msg\"><small>last message:</small> {}{more}</div>",
        escape(&shown)
    )
}

/// The certificate's days left (amber under 14, red under 3) and whether it was verified. A `div`,
/// not a `small`, so that it stays on a phone's card.
pub fn tls_note(w: &TargetView, now: SystemTime) -> String {
    let Some(c) = &w.tls else { return String::new() };
    let days = days_left(c.expires_at, unix_secs(now) as i64);
    let class = match days {
        d if d < 3 => "tls bad",
        d if d < 14 => "tls warn",
        _ => "tls",
    };
    let expires = rfc3339(UNIX_EPOCH + std::time::Duration::from_secs(c.expires_at.max(0) as u64));
    let text = if days < 0 {
        "TLS certificate expired".to_string()
    } else {
        format!("TLS certificate: {days} day{} left", if days == 1 { "" } else { "s" })
    };
    let unverified = if c.verified {
        ""
    } else {
        " · <span class=\"tls bad\" title=\"tls.insecure: the certificate is not verified\">unverified</span>"
    };
    format!("<div class=\"{class}\" title=\"expires {expires}\">{text}{unverified}</div>")
}

fn trim_percent(p: f64) -> String {
    let s = format!("{p:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// One coloured cell per check, oldest left; the tooltip tells time, status, latency, attempts.
pub fn heartbeat(out: &mut String, recent: &[CheckRecord]) {
    let ups = recent.iter().filter(|r| r.ok).count();
    let _ = write!(
        out,
        "<div class=\"bar\" role=\"img\" aria-label=\"Last {} checks: {} up, {} down\">",
        recent.len(),
        ups,
        recent.len() - ups
    );
    if recent.is_empty() {
        out.push_str("<span class=\"muted\">no checks yet</span>");
    }
    for r in recent {
        // A success that needed retries is shown amber: awake, but it was a cold start.
        // A success slower than `expect_latency` is amber too.
        let class = match (r.ok, r.attempts > 1 || r.degraded()) {
            (true, false) => "up",
            (true, true) => "up slow",
            (false, _) => "down",
        };
        let status = r.status.map_or("no response".to_string(), |c| format!("status {c}"));
        let attempts = if r.attempts == 1 {
            "1 attempt".to_string()
        } else {
            format!("{} attempts", r.attempts)
        };
        let error = r.error.as_deref().map(|e| format!(" · {e}")).unwrap_or_default();
        let _ = write!(
            out,
            "<span class=\"hb {class}\" title=\"{} · {} · {} ms · {}{}\"></span>",
            rfc3339(from_unix_millis(r.at_ms)),
            escape(&status),
            r.latency_ms,
            attempts,
            escape(&error)
        );
    }
    out.push_str("</div>");
}

/// Points of a latency polyline in a `w` x `h` box, scaled between the min and max values;
/// equal values draw a flat line through the middle.
pub fn spark_points(values: &[u64], w: f64, h: f64) -> Vec<(f64, f64)> {
    let (Some(&min), Some(&max)) = (values.iter().min(), values.iter().max()) else {
        return Vec::new();
    };
    let n = values.len();
    values
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            let x = if n == 1 { w / 2.0 } else { w * i as f64 / (n - 1) as f64 };
            let y = if max == min {
                h / 2.0
            } else {
                h - 1.0 - (h - 2.0) * (v - min) as f64 / (max - min) as f64
            };
            ((x * 10.0).round() / 10.0, (y * 10.0).round() / 10.0)
        })
        .collect()
}

pub fn sparkline(out: &mut String, recent: &[CheckRecord]) {
    let values: Vec<u64> = recent.iter().map(|r| r.latency_ms).collect();
    let points = spark_points(&values, 120.0, 24.0);
    let (Some(min), Some(max), Some(last)) = (values.iter().min(), values.iter().max(), values.last()) else {
        out.push_str("<span class=\"muted\">–</span>");
        return;
    };
    let _ = write!(
        out,
        "<svg class=\"spark\" width=\"120\" height=\"24\" viewBox=\"0 0 120 24\" role=\"img\" aria-label=\"Latency: last {last} ms, min {min} ms, max {max} ms\">"
    );
    if points.len() == 1 {
        let _ = write!(out, "<circle cx=\"{}\" cy=\"{}\" r=\"2\"/>", points[0].0, points[0].1);
    } else {
        let coords: Vec<String> = points.iter().map(|(x, y)| format!("{x},{y}")).collect();
        let _ = write!(out, "<polyline points=\"{}\"/>", coords.join(" "));
    }
    let _ = write!(out, "</svg><br><small class=\"num\">{last} ms</small>");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::web::testdata::{START, fleet, rec, snapshot};

    #[test]
    fn escape_covers_text_and_attributes() {
        assert_eq!(
            escape("<script>alert('x')</script>"),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"
        );
        assert_eq!(escape("a\"b&c"), "a&quot;b&amp;c");
    }

    #[test]
    fn hostile_target_text_is_escaped_everywhere() {
        let mut s = snapshot();
        s.workers[1].last.as_mut().unwrap().error = Some("<img src=x onerror=alert(1)>".into());
        s.workers[1].history.last_mut().unwrap().error = Some("\"><script>bad()</script>".into());
        s.workers[1].url = "http://h/?q=\"><b>".into();
        let page = render(&s);
        assert!(!page.contains("<img src=x"));
        assert!(!page.contains("<script>"));
        assert!(!page.contains("\"><b>"));
        assert!(page.contains("&lt;img src=x onerror=alert(1)&gt;"));
    }

    #[test]
    fn page_shows_every_worker_state_and_the_headline() {
        let page = render(&snapshot());
        assert!(page.contains("1 of 3 workers down"));
        for (name, state) in [("api", "up"), ("db", "down"), ("new", "pending")] {
            assert!(
                page.contains(&format!("<tr class=\"{state}\" id=\"w-{name}\">")),
                "{name}"
            );
        }
        assert!(page.contains("http-equiv=\"refresh\""));
        assert!(page.contains("prefers-color-scheme:dark"));
        assert!(page.contains("Restarts"));
        assert!(
            page.find("id=\"w-db\"") < page.find("id=\"w-api\""),
            "down rows come first"
        );
        for external in ["<script", "<link", "src=", "@import", "url("] {
            assert!(!page.contains(external), "the page loads nothing: found {external}");
        }
    }

    #[test]
    fn degraded_and_maintenance_workers_show_with_the_headline_saying_so() {
        let mut s = snapshot();
        s.workers[0].health = Health::Degraded;
        s.workers[1].health = Health::Maintenance;
        s.workers[1].maintenance_until_ms = Some((START + 7200) * 1000);
        let page = render(&s);
        assert!(page.contains("<span class=\"pill degraded\">degraded</span>"), "{page}");
        assert!(page.contains("<span class=\"pill maintenance\">maintenance</span><br><small class=\"maint\">until"));
        assert!(page.contains("(1 degraded, 1 in maintenance)"), "{page}");
        assert!(!render(&snapshot()).contains("in maintenance"));
    }

    #[test]
    fn a_paused_worker_and_a_failed_reload_show() {
        let mut s = snapshot();
        s.workers[1].health = Health::Paused;
        s.workers[1].counters.paused = true;
        s.config_error = Some("pinger.json: workers[0].url: <bad>".into());
        let page = render(&s);
        assert!(page.contains("<span class=\"pill paused\">paused</span>"));
        assert!(page.contains("All 2 active workers up, 1 paused"));
        assert!(page.contains("the previous configuration is still running"));
        assert!(page.contains("workers[0].url: &lt;bad&gt;"), "escaped");
        assert!(!render(&snapshot()).contains("previous configuration"));
    }

    #[test]
    fn fifty_workers_get_a_row_each_and_no_grid() {
        let page = render(&fleet(ROWS_UP_TO, 5, false));
        assert_eq!(page.matches("<tr class=").count(), ROWS_UP_TO + 1, "and the self-ping");
        assert!(!page.contains("class=\"cells"));
    }

    #[test]
    fn a_thousand_workers_fit_in_one_glance_under_300_kb() {
        let s = fleet(1000, 10, false);
        let page = render(&s);
        assert!(page.len() < 300_000, "{} bytes", page.len());
        // 100 down and about 140 retried need a look; the first MAX_FULL_ROWS, down first, get rows.
        let rows = page.matches("<tr class=").count() - 1;
        assert_eq!(rows, MAX_FULL_ROWS);
        assert_eq!(page.matches("<tr class=\"down\"").count(), MAX_FULL_ROWS);
        assert!(
            page.contains("<h3 id=\"g-down\">80 more down</h3>"),
            "the other down ones, in red"
        );
        assert!(page.contains("<h3 id=\"g-pending\">1 pending</h3>"));
        assert!(page.contains("<h3 id=\"g-up\">899 up</h3>"));
        assert_eq!(page.matches("<li title=").count(), 1000 - MAX_FULL_ROWS);
        for w in &s.workers {
            assert!(page.contains(&format!("{}</", w.name)), "{} is on the page", w.name);
        }
        assert!(
            page.contains("<li title=\"up · checked 11 min ago · status 200 · 390 ms · 24h 100%\">space-0001</li>"),
            "a grid cell and its tooltip"
        );
    }

    #[test]
    fn paused_workers_of_a_large_fleet_are_in_the_grid() {
        let mut s = fleet(1000, 10, false);
        for w in s.workers.iter_mut().skip(1).step_by(10).take(5) {
            w.health = Health::Paused;
            w.counters.paused = true;
        }
        let page = render(&s);
        assert!(
            page.contains("<h3 id=\"g-paused\">5 paused</h3>"),
            "a group of their own"
        );
        assert_eq!(page.matches("<li title=\"paused").count(), 5);
    }

    #[test]
    fn retried_workers_get_rows_when_few_are_down() {
        let page = render(&fleet(200, 0, false));
        assert_eq!(
            page.matches("<tr class=\"up\"").count(),
            1 + MAX_FULL_ROWS,
            "and the self-ping"
        );
        assert!(
            page.contains("id=\"w-space-0003\""),
            "up only after retries: a full row"
        );
        assert!(!page.contains("g-down"));
    }

    #[test]
    fn the_worst_case_page_stays_under_300_kb() {
        // Every worker down, with the longest names the config allows.
        let page = render(&fleet(1000, 1, true));
        assert!(page.len() < 300_000, "{} bytes", page.len());
        assert_eq!(page.matches("<tr class=\"down\"").count(), MAX_FULL_ROWS);
    }

    #[test]
    fn certificate_days_left_and_colours() {
        let s = snapshot();
        let page = render(&s);
        assert!(
            page.contains(
                "<div class=\"tls\" title=\"expires 2027-01-09T11:00:00Z\">TLS certificate: 42 days left</div>"
            )
        );
        assert!(page.contains("class=\"tls bad\" title=\"expires 2026-11-30T12:00:00Z\">TLS certificate: 2 days left"));
        assert!(page.contains(">unverified</span>"));
        let mut w = s.workers[0].clone();
        let now = s.now;
        let note = |w: &mut TargetView, days: i64, verified: bool| {
            let expires_at = unix_secs(now) as i64 + days * 86_400 + 60;
            w.tls = Some(crate::state::CertInfo { expires_at, verified });
            tls_note(w, now)
        };
        assert!(
            note(&mut w, 13, true).contains("class=\"tls warn\""),
            "amber under 14 days"
        );
        assert!(note(&mut w, 14, true).contains("class=\"tls\""));
        assert!(note(&mut w, 2, true).contains("class=\"tls bad\""), "red under 3 days");
        assert!(note(&mut w, -1, true).contains("TLS certificate expired"));
        assert!(!note(&mut w, -1, true).contains("unverified"));
        w.tls = None;
        assert_eq!(
            tls_note(&w, now),
            "",
            "nothing for http workers or before the first read"
        );
    }

    #[test]
    fn heartbeat_cells_and_colours() {
        let mut out = String::new();
        let mut slow = rec(3, true);
        slow.attempts = 3;
        heartbeat(&mut out, &[rec(1, true), rec(2, false), slow]);
        assert_eq!(out.matches("class=\"hb ").count(), 3);
        assert!(out.contains("class=\"hb up\""));
        assert!(out.contains("class=\"hb down\""));
        assert!(out.contains("class=\"hb up slow\""));
        assert!(out.contains("3 attempts"));
        assert!(out.contains("aria-label=\"Last 3 checks: 2 up, 1 down\""));
        let mut empty = String::new();
        heartbeat(&mut empty, &[]);
        assert!(empty.contains("no checks yet"));
    }

    #[test]
    fn sparkline_scaling_edge_cases() {
        assert!(spark_points(&[], 120.0, 24.0).is_empty());
        assert_eq!(spark_points(&[7], 120.0, 24.0), vec![(60.0, 12.0)]);
        assert_eq!(
            spark_points(&[5, 5, 5], 120.0, 24.0),
            vec![(0.0, 12.0), (60.0, 12.0), (120.0, 12.0)]
        );
        let p = spark_points(&[10, 20], 120.0, 24.0);
        assert_eq!(p, vec![(0.0, 23.0), (120.0, 1.0)], "min at the bottom, max at the top");
        let mut out = String::new();
        sparkline(&mut out, &[rec(1, true)]);
        assert!(out.contains("<circle"));
        let mut none = String::new();
        sparkline(&mut none, &[]);
        assert!(!none.contains("<svg"));
    }
}
