//! A `Reply` as the bytes on the wire: the status line and every header in one buffer, then the
//! body as it is. tiny_http's own `respond` writes every header name, separator and value as a
//! separate call through a locked writer (about 10k of the 24k instructions it spent on a
//! `/health` answer, callgrind), copies a body through an 8 KiB buffer (55 writes for the 430 KB
//! `/status` of 1,000 workers), and allocates each header twice. From one buffer a `/health`
//! answer took 52k instructions instead of 86k (glibc, callgrind, 2,000 requests on one kept-alive
//! connection); with the request line borrowed rather than copied, musl `/health` went from 31k to
//! 42k req/s. The musl build needs 60k instructions, a quarter to a third in musl's malloc and
//! free; a faster allocator could save at most that share of the user-space part, while most of
//! the ~27 us of server CPU per request under wrk is the kernel's TCP work, so none was added.
//! Head and body also leave together: sent apart, a large body's last segment waited for the
//! client's delayed ACK (30 ms a request on one kept-alive connection, for 3 ms of CPU).

use super::{Body, Reply};

/// Security headers every response carries (see SPEC "HTTP endpoints").
pub const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; \
frame-ancestors 'self' https://huggingface.co; base-uri 'none'; form-action 'none'";

const COMMON: &str = "X-Content-Type-Options: nosniff\r\nReferrer-Policy: no-referrer\r\n";

/// Whether the body goes out: not for HEAD (which still gets its `Content-Length`), nor for 304.
pub fn sends_body(reply: &Reply, head_only: bool) -> bool {
    !head_only && reply.status != 304
}

/// The status line and headers of the response to `reply`, for a request of HTTP version
/// `major.minor`, ending with the blank line, and the body when it is at most `SMALL`.
pub fn head(reply: &Reply, (major, minor): (u8, u8), head_only: bool, date: &str) -> Vec<u8> {
    let body = reply.body.as_ref();
    let not_modified = reply.status == 304;
    let mut out = Vec::with_capacity(512 + if body.len() <= SMALL { body.len() } else { 0 });
    let reason = tiny_http::StatusCode(reply.status).default_reason_phrase();
    // Pieces appended as they are, not through `write!`: formatting was half of a `/health`
    // answer's own instructions (callgrind).
    let put = |out: &mut Vec<u8>, parts: &[&str]| parts.iter().for_each(|p| out.extend_from_slice(p.as_bytes()));
    out.extend_from_slice(b"HTTP/");
    number(&mut out, usize::from(major));
    out.push(b'.');
    number(&mut out, usize::from(minor));
    out.push(b' ');
    number(&mut out, usize::from(reply.status));
    put(
        &mut out,
        &[" ", reason, "\r\n", COMMON, "Content-Security-Policy: ", CSP, "\r\n"],
    );
    // A body with a validator may be stored, as long as it is checked again before each use;
    // anything else is not stored at all.
    let cache = if reply.etag.is_some() { "no-cache" } else { "no-store" };
    put(
        &mut out,
        &[
            "Cache-Control: ",
            cache,
            "\r\nContent-Type: ",
            reply.content_type,
            "\r\nDate: ",
            date,
            "\r\n",
        ],
    );
    if let Some(allow) = reply.allow {
        put(&mut out, &["Allow: ", allow, "\r\n"]);
    }
    if let Some(etag) = &reply.etag {
        put(&mut out, &["ETag: ", etag, "\r\n"]);
    }
    if reply.gzip {
        out.extend_from_slice(b"Content-Encoding: gzip\r\n");
    }
    if reply.vary {
        out.extend_from_slice(b"Vary: Accept-Encoding\r\n");
    }
    if let Some(secs) = reply.retry_after {
        out.extend_from_slice(b"Retry-After: ");
        number(&mut out, secs as usize);
        out.extend_from_slice(b"\r\n");
    }
    let stream = matches!(reply.body, Body::Stream(_));
    if reply.close && !(stream && (major, minor) < (1, 1)) {
        out.extend_from_slice(b"Connection: close\r\n");
    }
    if stream {
        // Its length is known only at its end. HTTP/1.0 has no chunks: the close ends it.
        out.extend_from_slice(if (major, minor) >= (1, 1) {
            b"Transfer-Encoding: chunked\r\n"
        } else {
            b"Connection: close\r\n"
        });
    } else if !not_modified {
        out.extend_from_slice(b"Content-Length: ");
        number(&mut out, body.len());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    if sends_body(reply, head_only) && body.len() <= SMALL {
        out.extend_from_slice(body);
    }
    out
}

/// Appends `n` in decimal.
fn number(out: &mut Vec<u8>, mut n: usize) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        // A remainder of 10 is one digit.
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// Bodies up to this size are copied behind the head and leave in the same write (one system
/// call, one segment). Larger ones are written from where they are (the cache's shared bytes),
/// after the head: copying them cost more than the second write. With 256 KiB here, the 80 KB page
/// of 1,000 workers was copied for every request, into a fresh `mmap` that musl's allocator
/// unmapped again, with about 30 `futex` calls a request on its lock: 8.4k req/s at 187 us of
/// server CPU a request (wrk -t2 -c50, static musl build, 2026-12-05). Written apart, neither
/// part waits for an ACK: the listening socket's `TCP_NODELAY` is on every connection.
pub const SMALL: usize = 16 * 1024;

/// The whole response, for tests.
#[cfg(test)]
fn encode(reply: &Reply, version: (u8, u8), head_only: bool, date: &str) -> Vec<u8> {
    let mut out = head(reply, version, head_only, date);
    if sends_body(reply, head_only) && reply.body.as_ref().len() > SMALL {
        out.extend_from_slice(reply.body.as_ref());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const DATE: &str = "Sat, 28 Nov 2026 10:00:00 GMT";

    fn text(bytes: &[u8]) -> String {
        String::from_utf8_lossy(bytes).into_owned()
    }

    #[test]
    fn a_whole_response_in_one_buffer() {
        let reply = Reply::json(200, r#"{"status":"alive"}"#);
        let out = text(&encode(&reply, (1, 1), false, DATE));
        assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
        for h in [
            "X-Content-Type-Options: nosniff\r\n",
            "Referrer-Policy: no-referrer\r\n",
            "Content-Security-Policy: default-src 'none';",
            "Cache-Control: no-store\r\n",
            "Content-Type: application/json\r\n",
            "Date: Sat, 28 Nov 2026 10:00:00 GMT\r\n",
            "Content-Length: 18\r\n",
        ] {
            assert!(out.contains(h), "{h} in {out}");
        }
        assert!(out.ends_with("\r\n\r\n{\"status\":\"alive\"}"), "{out}");
        assert!(!out.contains("Allow") && !out.contains("ETag") && !out.contains("Vary"));
        let old = text(&encode(&reply, (1, 0), false, DATE));
        assert!(old.starts_with("HTTP/1.0 200 OK\r\n"));
    }

    #[test]
    fn head_304_and_the_optional_headers() {
        let reply = Reply {
            etag: Some("\"abc\"".into()),
            gzip: true,
            vary: true,
            ..Reply::json(200, vec![b'x'; SMALL + 1])
        };
        let whole = encode(&reply, (1, 1), false, DATE);
        assert!(whole.ends_with(&[b'x'; SMALL + 1]) && whole.len() < SMALL + 1000);
        assert!(
            !head(&reply, (1, 1), false, DATE).ends_with(b"x"),
            "a large body is not copied"
        );
        let small = Reply::json(200, vec![b'x'; SMALL]);
        assert!(head(&small, (1, 1), false, DATE).ends_with(&[b'x'; SMALL]), "one write");
        let head = text(&encode(&reply, (1, 1), true, DATE));
        let length = format!("Content-Length: {}\r\n\r\n", SMALL + 1);
        assert!(head.ends_with(&length), "HEAD: the length, no body: {head}");
        for h in [
            "ETag: \"abc\"\r\n",
            "Content-Encoding: gzip\r\n",
            "Vary: Accept-Encoding\r\n",
            "Cache-Control: no-cache\r\n",
        ] {
            assert!(head.contains(h), "{h} in {head}");
        }
        let not_modified = Reply {
            status: 304,
            body: Body::Static(b""),
            ..reply
        };
        let out = text(&encode(&not_modified, (1, 1), false, DATE));
        assert!(out.starts_with("HTTP/1.1 304 Not Modified\r\n"), "{out}");
        assert!(!out.contains("Content-Length") && out.ends_with("\r\n\r\n"));
        let refused = Reply {
            allow: Some("GET, HEAD"),
            ..Reply::error(405, "no")
        };
        let out = text(&encode(&refused, (1, 1), false, DATE));
        assert!(out.starts_with("HTTP/1.1 405 Method Not Allowed\r\n") && out.contains("Allow: GET, HEAD\r\n"));
    }
}
