//! One check of one target: up to `retries + 1` HTTP attempts with exponential backoff. Returns an
//! outcome value and never touches shared state, so the worker decides what to do with it.

use crate::conditions;
use crate::config::Target;
use crate::duration;
use crate::shutdown::Waker;
use std::io::{self, Read};
use std::time::{Duration, Instant};

/// Bodies are read at most this far, streaming: a 5 MB page costs no more memory than a small one.
pub const BODY_LIMIT: usize = 1 << 20;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    pub status: Option<u16>,
    pub latency: Duration,
    /// `None` when the attempt succeeded; otherwise a short plain-text reason.
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub ok: bool,
    pub status: Option<u16>,
    /// Latency of the last attempt.
    pub latency: Duration,
    /// The whole check: attempts plus backoff waits.
    pub duration: Duration,
    pub attempts: u32,
    /// Why the check failed; on a successful check, why it is degraded (`expect_latency`).
    pub error: Option<String>,
}

impl Outcome {
    /// A success slower than `expect_latency`.
    pub fn degraded(&self) -> bool {
        self.ok && self.error.is_some()
    }
}

/// An agent with the bundled roots and no proxy, for tests that need no configuration.
#[cfg(test)]
pub fn agent() -> ureq::Agent {
    crate::net::Net::new(None, crate::config::proxy::Proxies::default()).agent_for("")
}

/// Wait after failed attempt `i` (1-based): `backoff * 2^(i-1)`.
pub fn backoff_delay(backoff: Duration, i: u32) -> Duration {
    backoff.saturating_mul(1u32.checked_shl(i.saturating_sub(1)).unwrap_or(u32::MAX))
}

/// Runs a whole check. Backoff waits end early (and the check is abandoned) on shutdown.
pub fn check(agent: &ureq::Agent, t: &Target, waker: &Waker) -> Outcome {
    let start = Instant::now();
    let mut attempts = 0;
    loop {
        attempts += 1;
        let a = attempt(agent, t);
        let last = attempts > t.retries;
        if a.error.is_none() || last || waker.is_stopped() {
            let ok = a.error.is_none();
            return Outcome {
                ok,
                status: a.status,
                latency: a.latency,
                duration: start.elapsed(),
                attempts,
                // A slow success stays a success (up for uptime), with the reason it is degraded.
                error: a
                    .error
                    .or_else(|| conditions::check_latency(t.conditions.latency, a.latency)),
            };
        }
        log::debug!(
            "{}: attempt {attempts} failed ({}), retrying in {}",
            t.name,
            a.error.as_deref().unwrap_or(""),
            duration::format(backoff_delay(t.backoff, attempts))
        );
        if !waker.sleep(backoff_delay(t.backoff, attempts)) {
            return Outcome {
                ok: false,
                status: a.status,
                latency: a.latency,
                duration: start.elapsed(),
                attempts,
                error: a.error,
            };
        }
    }
}

/// One HTTP request, bounded as a whole (connect, TLS, headers, body) by the target's timeout.
pub fn attempt(agent: &ureq::Agent, t: &Target) -> Attempt {
    let start = Instant::now();
    let result = send(agent, t);
    let latency = start.elapsed();
    match result {
        Ok((status, body_result)) => {
            let error = match body_result {
                Err(e) => Some(describe_io(&e, t.timeout)),
                Ok(_) if !t.expect_status.contains(status) => Some(format!("status {status}")),
                Ok(Body { found: false, .. }) => Some(match (&t.expect_body, t.expect_body_secret) {
                    (Some(text), false) => format!("body did not contain {:?}", shorten(text, 60)),
                    _ => "body did not contain the expected text".to_string(),
                }),
                Ok(Body { unmet, .. }) => unmet,
            };
            Attempt {
                status: Some(status),
                latency,
                error,
            }
        }
        Err(e) => Attempt {
            status: None,
            latency,
            error: Some(describe(&e, t.timeout)),
        },
    }
}

/// What the response's body (and headers) told: whether the body held `expect_body`, and the
/// first other condition it failed (`crate::conditions`).
struct Body {
    found: bool,
    unmet: Option<String>,
}

/// Sends the request; returns the status and what its body said.
fn send(agent: &ureq::Agent, t: &Target) -> Result<(u16, io::Result<Body>), ureq::Error> {
    let mut builder = ureq::http::Request::builder()
        .method(t.method.as_str())
        .uri(t.url.as_str());
    for (k, v) in &t.headers {
        builder = builder.header(k.as_str(), v.as_str());
    }
    let request = builder.body(()).map_err(ureq::Error::from)?;
    let request = agent.configure_request(request).timeout_global(Some(t.timeout)).build();
    let response = agent.run(request)?;
    let status = response.status().as_u16();
    let c = &t.conditions;
    let header_error = if c.headers.is_empty() {
        None
    } else {
        let got: Vec<(String, String)> = response
            .headers()
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        conditions::check_headers(&c.headers, &got).err()
    };
    if t.method == "HEAD" {
        let unmet = header_error.or_else(|| conditions::check_body(c, b"", false).err());
        return Ok((
            status,
            Ok(Body {
                found: t.expect_body.is_none(),
                unmet,
            }),
        ));
    }
    // The global timeout also bounds the body read, so a trickling server cannot hold us.
    let mut reader = response
        .into_body()
        .into_with_config()
        .limit(BODY_LIMIT as u64 + 1)
        .reader();
    let needle = t.expect_body.as_deref().map(str::as_bytes);
    if !c.needs_body() {
        let found = scan_body(reader, needle);
        return Ok((
            status,
            found.map(|found| Body {
                found,
                unmet: header_error,
            }),
        ));
    }
    // Kept whole (up to 1 MiB) only when a condition reads it: JSON must be parsed in one piece.
    let mut body = Vec::new();
    if let Err(e) = (&mut reader).take(BODY_LIMIT as u64).read_to_end(&mut body) {
        return Ok((status, Err(e)));
    }
    let cut = body.len() == BODY_LIMIT && reader.read(&mut [0u8; 1]).is_ok_and(|n| n > 0);
    let found = needle.is_none_or(|n| n.is_empty() || body.windows(n.len()).any(|w| w == n));
    let unmet = header_error.or_else(|| conditions::check_body(c, &body, cut).err());
    Ok((status, Ok(Body { found, unmet })))
}

/// Reads at most `BODY_LIMIT` bytes in small chunks, looking for `needle` across chunk edges.
pub fn scan_body(mut reader: impl Read, needle: Option<&[u8]>) -> io::Result<bool> {
    let mut buf = [0u8; 8 * 1024];
    // The window keeps the last needle.len()-1 bytes of the previous chunk in front of the next.
    let mut window: Vec<u8> = Vec::new();
    let mut read_total = 0;
    let mut found = needle.is_none_or(<[u8]>::is_empty);
    while read_total < BODY_LIMIT {
        let want = buf.len().min(BODY_LIMIT - read_total);
        let n = match reader.read(&mut buf[..want]) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        read_total += n;
        if let (false, Some(needle)) = (found, needle) {
            window.extend_from_slice(&buf[..n]);
            if window.windows(needle.len()).any(|w| w == needle) {
                found = true;
                window = Vec::new();
            } else {
                let keep = needle.len().saturating_sub(1).min(window.len());
                window.drain(..window.len() - keep);
            }
        }
    }
    Ok(found)
}

fn shorten(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max).collect();
    out.push_str("...");
    out
}

/// Short, specific reasons; never the URL (it may hold secrets) or a raw debug dump.
pub fn describe(e: &ureq::Error, timeout: Duration) -> String {
    use ureq::Error as E;
    match e {
        E::Timeout(_) => format!("timeout after {}", duration::format_secs(timeout)),
        E::HostNotFound => "dns: no such host".to_string(),
        E::Io(io) => describe_io(io, timeout),
        E::ConnectionFailed => "connection failed".to_string(),
        E::TooManyRedirects => format!("too many redirects (more than {})", crate::net::MAX_REDIRECTS),
        E::RedirectFailed => "redirect failed (bad or unsupported Location)".to_string(),
        E::Tls(m) => format!("tls: {m}"),
        E::Rustls(r) => crate::tls::errors::describe(r, "this server"),
        E::Pem(_) => "tls: bad certificate".to_string(),
        E::Protocol(p) => format!("protocol error: {p}"),
        E::BadUri(_) | E::Http(_) => "invalid request URL or header".to_string(),
        E::LargeResponseHeader(_, _) => "response headers too large".to_string(),
        E::BodyExceedsLimit(_) => "body too large".to_string(),
        E::BodyStalled => format!("timeout after {} (body stalled)", duration::format_secs(timeout)),
        E::StatusCode(c) => format!("status {c}"),
        // Rare variants (proxy, cookie, charset): their text may quote a URL, which may hold
        // a secret, so such a text is not shown.
        other => {
            let text = other.to_string();
            if text.contains("://") {
                "request failed".to_string()
            } else {
                shorten(&text, 120)
            }
        }
    }
}

fn describe_io(e: &io::Error, timeout: Duration) -> String {
    if let Some(inner) = e.get_ref().and_then(|r| r.downcast_ref::<ureq::Error>()) {
        return describe(inner, timeout);
    }
    // Described already, by the TLS connector (handshake) or rustls (later records).
    if let Some(f) = e
        .get_ref()
        .and_then(|r| r.downcast_ref::<crate::tls::errors::Failure>())
    {
        return f.0.clone();
    }
    if let Some(r) = e.get_ref().and_then(|r| r.downcast_ref::<rustls::Error>()) {
        return crate::tls::errors::describe(r, "this server");
    }
    use io::ErrorKind as K;
    match e.kind() {
        K::ConnectionRefused => "connection refused".to_string(),
        K::ConnectionReset => "connection reset".to_string(),
        K::ConnectionAborted => "connection aborted".to_string(),
        K::TimedOut | K::WouldBlock => format!("timeout after {}", duration::format_secs(timeout)),
        K::UnexpectedEof => "connection closed before the response ended".to_string(),
        K::HostUnreachable => "host unreachable".to_string(),
        // rustls reports handshake and record failures as InvalidData on the stream.
        K::InvalidData => format!("tls: {}", shorten(&e.to_string(), 100)),
        K::NetworkUnreachable => "network unreachable".to_string(),
        K::AddrNotAvailable => "address not available".to_string(),
        _ => {
            let text = e.to_string();
            // getaddrinfo failures arrive as plain io errors; say what they mean.
            if text.contains("lookup address") || text.contains("Name or service not known") {
                if text.contains("emporary failure") {
                    "dns: temporary failure in name resolution".to_string()
                } else {
                    "dns: no such host".to_string()
                }
            } else {
                format!("io error: {}", shorten(&text, 100))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_the_base() {
        let b = Duration::from_secs(5);
        let delays: Vec<u64> = (1..=3).map(|i| backoff_delay(b, i).as_secs()).collect();
        assert_eq!(delays, [5, 10, 20]);
        assert_eq!(backoff_delay(Duration::ZERO, 4), Duration::ZERO);
        assert_eq!(
            backoff_delay(Duration::from_millis(100), 11),
            Duration::from_millis(102_400)
        );
        assert!(
            backoff_delay(b, 40) >= Duration::from_secs(5 << 20),
            "saturates, no overflow"
        );
    }

    #[test]
    fn body_scan_finds_text_across_chunks_and_stops_at_limit() {
        let mut body = vec![b'x'; 8 * 1024 - 1];
        body.extend_from_slice(b"ok!");
        assert!(scan_body(&body[..], Some(b"ok!")).unwrap());
        assert!(!scan_body(&body[..], Some(b"nope")).unwrap());
        assert!(scan_body(&b""[..], None).unwrap());
        let mut big = vec![b'a'; BODY_LIMIT];
        big.extend_from_slice(b"needle");
        assert!(
            !scan_body(&big[..], Some(b"needle")).unwrap(),
            "text past 1 MiB is not read"
        );
        let mut r = &big[..];
        scan_body(&mut r, None).unwrap();
        assert_eq!(r.len(), 6, "reading stops at the limit");
    }

    #[test]
    fn io_errors_are_short() {
        let t = Duration::from_secs(1);
        assert_eq!(
            describe_io(&io::Error::from(io::ErrorKind::ConnectionRefused), t),
            "connection refused"
        );
        assert_eq!(
            describe_io(&io::Error::from(io::ErrorKind::TimedOut), t),
            "timeout after 1s"
        );
        assert_eq!(describe(&ureq::Error::HostNotFound, t), "dns: no such host");
        assert_eq!(
            describe(&ureq::Error::Timeout(ureq::Timeout::Global), Duration::from_secs(60)),
            "timeout after 60s"
        );
    }
}
