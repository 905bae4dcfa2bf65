//! Sending a `Reply` on a tiny_http request: the head dated now (`wire::head` builds it), written
//! together with a small body straight to the connection, and whether the request left a body in
//! the socket so the connection must close. Used by the serving threads and the render threads.

use super::{Reply, wire};
use std::io::Write;

/// The head of the response to `reply` (see `wire::head`), dated now.
pub fn head(reply: &Reply, version: (u8, u8), head_only: bool) -> Vec<u8> {
    DATE.with(|d| wire::head(reply, version, head_only, d.borrow_mut().now()))
}

/// Writes `reply` in at most two writes (head, then a large body) straight to the connection.
pub fn respond(request: tiny_http::Request, mut reply: Reply) {
    reply.close |= body_left_unread(&request);
    let tiny_http::HTTPVersion(major, minor) = *request.http_version();
    let head_only = *request.method() == tiny_http::Method::Head;
    let head = head(&reply, (major, minor), head_only);
    let body = reply.body.as_ref();
    let large = wire::sends_body(&reply, head_only) && body.len() > wire::SMALL;
    // Dropping the writer tells tiny_http the response is complete, so the connection's next
    // request can be read. A client that went away is not our problem; nothing to do but move on.
    let mut w = request.into_writer();
    let _ = w
        .write_all(&head)
        .and_then(|()| if large { w.write_all(body) } else { Ok(()) })
        .and_then(|()| w.flush());
}

/// tiny_http reads a request body up to this size itself, before the request is handed over.
pub const READ_BY_TINY_HTTP: usize = 1024;

/// Whether the request declared a body that stays unread in the socket. tiny_http reads a body of
/// up to 1 KiB before handing the request over; a larger one is left for the handler, and only
/// `/push` reads it (up to its own bound). Our tiny_http does not drain the rest on drop (see
/// .patched/tiny_http/PATCHED.md: draining aborted on a huge Content-Length and blocked on a body
/// that never came), so the connection must end after the answer.
pub fn body_left_unread(request: &tiny_http::Request) -> bool {
    let declared = request.body_length().unwrap_or(0);
    let read_by_us = if request.url().starts_with(super::push::PREFIX) && *request.method() == tiny_http::Method::Post {
        super::push::BODY_READ_MAX
    } else {
        0
    };
    declared > READ_BY_TINY_HTTP.max(read_by_us)
}

/// The `Date` header's value, formatted once a second per handler thread.
#[derive(Default)]
struct CachedDate {
    second: u64,
    text: String,
}

impl CachedDate {
    fn now(&mut self) -> &str {
        let now = std::time::SystemTime::now();
        let second = crate::timefmt::unix_secs(now);
        if second != self.second || self.text.is_empty() {
            self.second = second;
            self.text = crate::timefmt::http_date(now);
        }
        &self.text
    }
}

thread_local! {
    static DATE: std::cell::RefCell<CachedDate> = std::cell::RefCell::default();
}
