//! Remote places for the state, for hosts that keep no files across a restart: an S3-compatible
//! bucket (`s3.rs`, signed by `sigv4.rs`) or a Hugging Face repository (`hub.rs`). The clients
//! are blocking, bounded by a timeout per request, and go through the one outbound HTTP setup
//! (`net`: TLS trust, proxies). Their errors say what went wrong in words a user can act on and
//! never carry a key, a token, a signature or a signed URL.

pub mod hub;
pub mod s3;
pub mod sigv4;
pub mod store;

use std::fmt;
use std::time::Duration;

/// What the caller does next about a failed request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// No answer (DNS, refused, timeout, TLS) or a server error: try again later.
    Unavailable,
    /// Throttled; `Some` when the store said how long to wait.
    Throttled(Option<Duration>),
    /// The credentials were refused or do not allow this: the configuration needs fixing.
    Auth,
    /// Another writer changed the object since this one read it.
    Conflict,
    /// The bucket or repository does not exist.
    NotFound,
    /// Anything else the store refused.
    Refused,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub kind: ErrorKind,
    pub message: String,
}

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Error {
        Error {
            kind,
            message: message.into(),
        }
    }

    /// Worth retrying with the same request (after a pause).
    pub fn is_transient(&self) -> bool {
        matches!(self.kind, ErrorKind::Unavailable | ErrorKind::Throttled(_))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

/// What a response left for the client to look at.
pub(crate) struct Response {
    pub status: u16,
    headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// `Retry-After` in seconds, as 429 and 503 answers may carry it.
    pub fn retry_after(&self) -> Option<Duration> {
        self.header("retry-after")
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs)
    }
}

/// One request. `body_limit`: the most of the body that is read (a longer one is an error).
/// `redirects`: how many to follow (signed requests follow none: a redirect would need a new
/// signature).
pub(crate) struct Call<'a> {
    pub method: &'a str,
    pub url: &'a str,
    pub headers: Vec<(&'a str, String)>,
    pub body: &'a [u8],
    pub timeout: Duration,
    pub body_limit: u64,
    pub redirects: u32,
}

/// Headers kept from a response; the rest (cookies, signed redirect targets) are dropped.
const KEPT_HEADERS: &[&str] = &[
    "etag",
    "retry-after",
    "x-error-code",
    "x-error-message",
    "x-repo-commit",
    "content-type",
];

impl Call<'_> {
    pub fn run(&self, agent: &ureq::Agent) -> Result<Response, Error> {
        let mut builder = ureq::http::Request::builder().method(self.method).uri(self.url);
        for (k, v) in &self.headers {
            builder = builder.header(*k, v.as_str());
        }
        let request = builder
            .body(self.body)
            .map_err(|_| Error::new(ErrorKind::Refused, "invalid request URL or header"))?;
        let request = agent
            .configure_request(request)
            .timeout_global(Some(self.timeout))
            .max_redirects(self.redirects)
            .build();
        let unavailable = |e: &ureq::Error| Error::new(ErrorKind::Unavailable, crate::probe::describe(e, self.timeout));
        let mut response = agent.run(request).map_err(|e| unavailable(&e))?;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .filter(|(k, _)| KEPT_HEADERS.contains(&k.as_str()))
            .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
            .collect();
        let body = if self.method == "HEAD" {
            Vec::new()
        } else {
            response
                .body_mut()
                .with_config()
                .limit(self.body_limit)
                .read_to_vec()
                .map_err(|e| match e {
                    ureq::Error::BodyExceedsLimit(_) => Error::new(
                        ErrorKind::Refused,
                        format!("the answer is larger than {} MiB", self.body_limit >> 20),
                    ),
                    e => unavailable(&e),
                })?
        };
        Ok(Response { status, headers, body })
    }
}

/// A store's own words, cut short and stripped of anything that is not plain text.
pub(crate) fn server_words(text: &str) -> String {
    let clean: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    if clean.chars().count() > 200 {
        format!("{}...", clean.chars().take(200).collect::<String>())
    } else {
        clean
    }
}
