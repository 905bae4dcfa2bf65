//! The words of an alert, rendered once per event for every channel: a one-line text for chat
//! services (with or without Markdown) and a title + body pair for phone notifications, where the
//! title is what a lock screen shows; and the status-page link. Pure functions; no I/O.

use super::Event;
use crate::streak::Transition;
use crate::timefmt;
use std::time::Duration;

/// How a chat service marks bold text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Markup {
    /// `**bold**` (Discord).
    Markdown,
    /// `*bold*` (Slack mrkdwn).
    Slack,
    /// No markup: Telegram without parse_mode, ntfy, Gotify, Pushover, webhook templates.
    Plain,
}

/// The facts and texts of one alert.
#[derive(Debug, Clone)]
pub struct Notice {
    pub worker: String,
    /// Redacted URL of the worker.
    pub url: String,
    /// `down`, `up`, `cert_expiring` or `test`.
    pub state: &'static str,
    pub error: Option<String>,
    /// RFC 3339 time of the transition.
    pub at: String,
    pub days_left: Option<i64>,
    /// Lock-screen title, e.g. `🔴 rag is DOWN`.
    pub title: String,
    /// Lines under the title: error, URL, since when / for how long.
    pub body: String,
    /// The status page, appended to chat texts when known.
    pub status_page: Option<String>,
    /// Bold segment and the rest of the one-line text, kept apart so each markup can be applied.
    line_name: String,
    line_rest: String,
    emoji: &'static str,
}

/// What one transition says, before the facts common to every notice are added.
struct Words {
    state: &'static str,
    emoji: &'static str,
    title: String,
    /// The one-line text after the worker's name.
    line_rest: String,
    body: String,
}

impl Notice {
    pub fn new(event: &Event, status_page: Option<&str>) -> Notice {
        let words = match event.transition {
            Transition::Down => {
                let mut words = began(event, "down", "🔴", "DOWN", "check failed");
                let since = event.since.unwrap_or(event.at);
                let lasted = for_how_long(event.at.duration_since(since).unwrap_or_default());
                words.body.push_str(&format!(" ({lasted})"));
                words
            }
            Transition::Degraded => began(event, "degraded", "🟠", "DEGRADED", "slow"),
            Transition::Up => ended(event, "up", "is back UP", " after", "down"),
            Transition::DegradedResolved => ended(
                event,
                "degraded_resolved",
                "is no longer degraded",
                ", after",
                "degraded",
            ),
            Transition::CertExpiring { days_left, expires_at } => cert_expiring(event, days_left, expires_at),
            Transition::Test => Words {
                state: "test",
                emoji: "🔔",
                title: "🔔 master-pinger test".to_string(),
                line_rest: String::new(),
                body: test_text(),
            },
        };
        Notice {
            worker: event.worker.clone(),
            url: event.url.clone(),
            state: words.state,
            error: event.error.clone(),
            at: timefmt::rfc3339(event.at),
            days_left: match event.transition {
                Transition::CertExpiring { days_left, .. } => Some(days_left),
                _ => None,
            },
            title: words.title,
            body: words.body,
            status_page: status_page.map(str::to_string),
            line_name: event.worker.clone(),
            line_rest: words.line_rest,
            emoji: words.emoji,
        }
    }

    /// The whole alert on one line (plus the status page on a second), for chat services.
    pub fn text(&self, markup: Markup) -> String {
        let mut text = if self.state == "test" {
            format!("{} {}", self.emoji, test_text())
        } else {
            let name = match markup {
                Markup::Markdown => format!("**{}**", self.line_name),
                Markup::Slack => format!("*{}*", self.line_name),
                Markup::Plain => self.line_name.clone(),
            };
            format!("{} {name}{}", self.emoji, self.line_rest)
        };
        if let Some(page) = &self.status_page {
            text.push_str(&format!("\nStatus: {page}"));
        }
        text
    }
}

/// A problem that began: `🔴 rag is DOWN`, the error (`fallback` when none was given), the URL
/// and since when; `state` is also the word the body uses (`down since ...`).
fn began(event: &Event, state: &'static str, emoji: &'static str, what: &str, fallback: &str) -> Words {
    let (w, url) = (&event.worker, &event.url);
    let error = event.error.as_deref().unwrap_or(fallback);
    let since = timefmt::rfc3339(event.since.unwrap_or(event.at));
    Words {
        state,
        emoji,
        title: format!("{emoji} {w} is {what}"),
        line_rest: format!(" is {what}: {error} ({url}, since {since})"),
        body: format!("{error}\n{url}\n{state} since {since}"),
    }
}

/// A problem that ended: `🟢 rag is back UP`, and for how long it `was` down when that is known.
/// `after` leads from `phrase` to the duration in the one-line text.
fn ended(event: &Event, state: &'static str, phrase: &str, after: &str, was: &str) -> Words {
    let (w, url) = (&event.worker, &event.url);
    let lasted = event
        .since
        .and_then(|s| event.at.duration_since(s).ok())
        .map(for_how_long);
    Words {
        state,
        emoji: "🟢",
        title: format!("🟢 {w} {phrase}"),
        line_rest: match &lasted {
            Some(d) => format!(" {phrase}{after} {d} ({url})"),
            None => format!(" {phrase} ({url})"),
        },
        body: match &lasted {
            Some(d) => format!("was {was} for {d}\n{url}"),
            None => url.clone(),
        },
    }
}

/// `🟠 rag: TLS certificate expires in 6 days`, with the date it expires.
fn cert_expiring(event: &Event, days_left: i64, expires_at: std::time::SystemTime) -> Words {
    let when = expires_in(days_left);
    let expires_at = timefmt::rfc3339(expires_at);
    Words {
        state: "cert_expiring",
        emoji: "🟠",
        title: format!("🟠 {}: TLS certificate {when}", event.worker),
        line_rest: format!(": TLS certificate {when} ({expires_at})"),
        body: format!("TLS certificate {when}: {expires_at}\n{}", event.url),
    }
}

/// The public status page, told from the self-ping URL (`https://me.hf.space/health` -> `https://me.hf.space/`).
pub fn status_page_from(self_url: &str) -> String {
    let base = self_url.split('?').next().unwrap_or(self_url);
    let base = base
        .strip_suffix("/healthz")
        .or_else(|| base.strip_suffix("/health"))
        .unwrap_or(base);
    format!("{}/", base.trim_end_matches('/'))
}

/// `expires in 6 days`, `expires in 1 day`, `expires today`, `has expired`.
fn expires_in(days_left: i64) -> String {
    match days_left {
        d if d < 0 => "has expired".to_string(),
        0 => "expires today".to_string(),
        1 => "expires in 1 day".to_string(),
        d => format!("expires in {d} days"),
    }
}

/// `master-pinger test message from HOST`.
pub fn test_text() -> String {
    format!("master-pinger test message from {}", hostname())
}

/// This machine's name: the kernel's, else `$HOSTNAME`, else `unknown host`.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok().filter(|s| !s.is_empty()))
        .unwrap_or_else(|| "unknown host".to_string())
}

/// A duration as a person says it on a phone: `40 s`, `12 min`, `3 h 5 min`, `2 d 4 h`.
pub fn for_how_long(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min", s / 60),
        3600..86_400 if s % 3600 / 60 == 0 => format!("{} h", s / 3600),
        3600..86_400 => format!("{} h {} min", s / 3600, s % 3600 / 60),
        _ if s % 86_400 / 3600 == 0 => format!("{} d", s / 86_400),
        _ => format!("{} d {} h", s / 86_400, s % 86_400 / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::testdata::{event, notice};

    #[test]
    fn down_reads_like_the_spec() {
        let n = Notice::new(&event(Transition::Down), Some("https://me.hf.space/"));
        assert_eq!(
            words(&n, Markup::Markdown),
            (
                "🔴 rag is DOWN",
                "🔴 **rag** is DOWN: status 503 (https://rag.hf.space/health, since 2026-11-28T10:50:00Z)\nStatus: https://me.hf.space/".into(),
                "status 503\nhttps://rag.hf.space/health\ndown since 2026-11-28T10:50:00Z (5 min)"
            )
        );
        assert_eq!((n.state, n.at.as_str()), ("down", "2026-11-28T10:55:00Z"));
    }

    /// The title, the one-line text in `markup` and the body.
    fn words(n: &Notice, markup: Markup) -> (&str, String, &str) {
        (&n.title, n.text(markup), &n.body)
    }

    #[test]
    fn degraded_and_its_end_read_like_down_and_up() {
        let mut e = event(Transition::Degraded);
        e.error = Some("slower than 500 ms".into());
        let n = Notice::new(&e, None);
        assert_eq!(n.state, "degraded");
        assert_eq!(
            words(&n, Markup::Slack),
            (
                "🟠 rag is DEGRADED",
                "🟠 *rag* is DEGRADED: slower than 500 ms (https://rag.hf.space/health, since 2026-11-28T10:50:00Z)"
                    .into(),
                "slower than 500 ms\nhttps://rag.hf.space/health\ndegraded since 2026-11-28T10:50:00Z"
            )
        );
        let n = notice(Transition::DegradedResolved);
        assert_eq!(n.state, "degraded_resolved");
        assert_eq!(
            words(&n, Markup::Plain),
            (
                "🟢 rag is no longer degraded",
                "🟢 rag is no longer degraded, after 5 min (https://rag.hf.space/health)".into(),
                "was degraded for 5 min\nhttps://rag.hf.space/health"
            )
        );
        let mut e = event(Transition::DegradedResolved);
        e.since = None;
        assert_eq!(
            words(&Notice::new(&e, None), Markup::Plain),
            (
                "🟢 rag is no longer degraded",
                "🟢 rag is no longer degraded (https://rag.hf.space/health)".into(),
                "https://rag.hf.space/health"
            )
        );
    }

    #[test]
    fn up_says_how_long_it_was_down() {
        let n = notice(Transition::Up);
        assert_eq!(n.title, "🟢 rag is back UP");
        assert_eq!(
            n.text(Markup::Slack),
            "🟢 *rag* is back UP after 5 min (https://rag.hf.space/health)"
        );
        assert_eq!(
            n.text(Markup::Plain),
            "🟢 rag is back UP after 5 min (https://rag.hf.space/health)"
        );
        assert_eq!(n.body, "was down for 5 min\nhttps://rag.hf.space/health");
        assert_eq!(n.error, None);
    }

    #[test]
    fn the_test_message_names_this_host() {
        let n = notice(Transition::Test);
        assert_eq!(n.state, "test");
        assert!(n.body.starts_with("master-pinger test message from "));
        assert!(n.text(Markup::Markdown).contains("master-pinger test message from "));
        assert!(!hostname().is_empty());
    }

    #[test]
    fn a_certificate_warning_says_when() {
        let cert = |days_left| {
            let mut e = event(Transition::Up);
            e.transition = Transition::CertExpiring {
                days_left,
                expires_at: std::time::UNIX_EPOCH + Duration::from_secs(1_796_378_400),
            };
            Notice::new(&e, None)
        };
        let n = cert(6);
        assert_eq!((n.state, n.days_left), ("cert_expiring", Some(6)));
        assert_eq!(
            words(&n, Markup::Markdown),
            (
                "🟠 rag: TLS certificate expires in 6 days",
                "🟠 **rag**: TLS certificate expires in 6 days (2026-12-04T10:00:00Z)".into(),
                "TLS certificate expires in 6 days: 2026-12-04T10:00:00Z\nhttps://rag.hf.space/health"
            )
        );
        assert_eq!(cert(1).title, "🟠 rag: TLS certificate expires in 1 day");
        assert!(cert(0).title.ends_with("expires today"));
        assert!(cert(-2).title.ends_with("has expired"));
    }

    #[test]
    fn status_page_from_self_url() {
        assert_eq!(status_page_from("https://me.hf.space/health"), "https://me.hf.space/");
        assert_eq!(status_page_from("https://x.onrender.com"), "https://x.onrender.com/");
    }

    #[test]
    fn durations_read_like_speech() {
        let d = |s| for_how_long(Duration::from_secs(s));
        assert_eq!(d(40), "40 s");
        assert_eq!(d(720), "12 min");
        assert_eq!(d(7200), "2 h");
        assert_eq!(d(3 * 3600 + 300), "3 h 5 min");
        assert_eq!(d(2 * 86_400), "2 d");
        assert_eq!(d(2 * 86_400 + 4 * 3600 + 59), "2 d 4 h");
    }
}
