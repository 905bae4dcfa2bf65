//! `/push/NAME`, `/push/NAME/fail`, `/push/NAME/start` and `/push/NAME/CODE`: the reports of
//! heartbeat workers. The one endpoint that takes a body (a POST's first 10 KB is the report's
//! message), so the server hands it the request before routing (`read_body`); `answer` is the
//! rest, a function of the request's parts.
//!
//! A wrong token and an unknown name get the same 404 (the one every unknown path gets), after
//! the same work: the token given is compared, in time that depends only on its own length,
//! against the worker's token or, for a name that is not a push worker here (another shard's
//! included), against a dummy. Past the worker's rate limit a report gets 429 with
//! `Retry-After`. The token is never logged: nothing here logs, and the query is not kept.

use super::{App, Body, Reply, constant_time_eq, percent_decode};
use crate::heartbeat::{Delivery, Report};
use crate::state::ReportKind;
use crate::state::push::MESSAGE_MAX;
use std::io::Read;
use std::sync::Arc;

pub const PREFIX: &str = "/push/";
pub const ALLOW: &str = "GET, POST, HEAD";
/// Bytes of a body read past the kept message and thrown away, so the connection can carry its
/// next request. What is left past this, tiny_http skips before reading the next request.
const DRAIN_MAX: u64 = 1024 * 1024;

/// How much of a report's body `read_body` reads at most; past it the connection is closed.
pub const BODY_READ_MAX: usize = MESSAGE_MAX + DRAIN_MAX as usize;
/// What an unknown name's "token" is compared with, so it costs what a known name's does.
const DUMMY_TOKEN: &str = "no-such-push-worker-0123456789abcdef0123456789abcdef";

/// The first `MESSAGE_MAX` bytes of the request's body; the rest (up to `DRAIN_MAX`) is read
/// and dropped. A body that is not UTF-8 is kept with its invalid bytes replaced.
pub fn read_body(request: &mut tiny_http::Request) -> Option<Arc<str>> {
    if *request.method() != tiny_http::Method::Post {
        return None;
    }
    let reader = request.as_reader();
    let mut kept = Vec::new();
    let ok = reader.take(MESSAGE_MAX as u64).read_to_end(&mut kept).is_ok();
    if ok {
        let _ = std::io::copy(&mut reader.take(DRAIN_MAX), &mut std::io::sink());
    }
    let text = String::from_utf8_lossy(&kept);
    let text = text.trim();
    (!text.is_empty()).then(|| Arc::from(text))
}

/// The report a path asks for: `NAME`, `NAME/fail`, `NAME/start` or `NAME/CODE`.
fn parse(rest: &str) -> Option<(&str, ReportKind, Option<i64>)> {
    let (name, action) = match rest.split_once('/') {
        Some((name, action)) => (name, Some(action)),
        None => (rest, None),
    };
    if name.is_empty() {
        return None;
    }
    let (kind, code) = match action {
        None | Some("") => (ReportKind::Success, None),
        Some("fail") => (ReportKind::Failure, None),
        Some("start") => (ReportKind::Start, None),
        Some(code) if (1..=10).contains(&code.len()) && code.bytes().all(|b| b.is_ascii_digit()) => {
            let code: i64 = code.parse().ok()?;
            let kind = if code == 0 {
                ReportKind::Success
            } else {
                ReportKind::Failure
            };
            (kind, Some(code))
        }
        Some(_) => return None,
    };
    Some((name, kind, code))
}

/// The token a report carries: `Authorization: Bearer TOKEN`, else `?token=TOKEN`.
fn token<'a>(authorization: Option<&'a str>, query: &str) -> Option<std::borrow::Cow<'a, str>> {
    if let Some(t) = authorization.and_then(|a| a.strip_prefix("Bearer ")) {
        return Some(std::borrow::Cow::Borrowed(t.trim()));
    }
    query
        .split('&')
        .find_map(|pair| pair.strip_prefix("token="))
        .map(|t| std::borrow::Cow::Owned(percent_decode(t)))
}

fn text(status: u16, body: &'static str) -> Reply {
    Reply::new(status, "text/plain; charset=utf-8", Body::Static(body.as_bytes()))
}

/// The answer to a report at `url` (which starts with `PREFIX`).
///
/// `message` reads the report's body; it is called only once the report is authenticated, so
/// that a client without the token cannot hold a thread by declaring a body it never sends.
pub fn answer(
    app: &App,
    method: &str,
    url: &str,
    authorization: Option<&str>,
    message: impl FnOnce() -> Option<Arc<str>>,
) -> Reply {
    let (path, query) = url.split_once('?').unwrap_or((url, ""));
    let not_found = || Reply::error(404, "not found");
    let Some((name, kind, code)) = path.strip_prefix(PREFIX).and_then(parse) else {
        return not_found();
    };
    if !matches!(method, "GET" | "POST" | "HEAD") {
        return Reply {
            allow: Some(ALLOW),
            ..Reply::error(405, &format!("method {method} is not allowed here; use {ALLOW}"))
        };
    }
    let inbox = app.fleet.push_inbox(name);
    let expected = inbox.as_ref().map_or(Arc::from(DUMMY_TOKEN), |i| i.token());
    let given = token(authorization, query);
    let matches = constant_time_eq(given.as_deref().unwrap_or("").as_bytes(), expected.as_bytes());
    let inbox = match inbox {
        Some(inbox) if matches && given.is_some() => inbox,
        _ => return not_found(),
    };
    match inbox.deliver(Report::new(kind, code, message())) {
        Delivery::Accepted => text(200, "OK\n"),
        Delivery::Paused => text(200, "OK (paused: report ignored)\n"),
        Delivery::TooMany(wait) => Reply {
            retry_after: Some(wait.as_secs_f64().ceil().max(1.0) as u32),
            ..text(429, "too many reports: slow down (see Retry-After)\n")
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_name_the_report() {
        assert_eq!(parse("backup"), Some(("backup", ReportKind::Success, None)));
        assert_eq!(parse("backup/"), Some(("backup", ReportKind::Success, None)));
        assert_eq!(parse("backup/fail"), Some(("backup", ReportKind::Failure, None)));
        assert_eq!(parse("backup/start"), Some(("backup", ReportKind::Start, None)));
        assert_eq!(parse("backup/0"), Some(("backup", ReportKind::Success, Some(0))));
        assert_eq!(parse("backup/137"), Some(("backup", ReportKind::Failure, Some(137))));
        for bad in [
            "",
            "/fail",
            "backup/-1",
            "backup/x",
            "backup/fail/2",
            "backup/12345678901",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_token_comes_from_the_header_or_the_query() {
        assert_eq!(token(Some("Bearer abc"), "token=zzz").as_deref(), Some("abc"));
        assert_eq!(token(None, "x=1&token=a%2Bb").as_deref(), Some("a+b"));
        assert_eq!(token(Some("Basic abc"), ""), None);
        assert_eq!(token(None, "tokens=1"), None);
    }
}
