//! The value a provider builds and the channel's sender thread sends: method, URL, headers and
//! body. Its URL and header values are secrets; `shown` is the form fit for a log line.

/// One HTTP request to an alert service.
#[derive(Clone)]
pub struct Request {
    pub method: &'static str,
    /// The full URL, secrets included (webhook paths, bot tokens). Never log it: use `shown`.
    pub url: String,
    /// Where the request goes, without secrets (`https://api.telegram.org/botREDACTED/sendMessage`).
    pub shown: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Header values and the URL are secrets; Debug output ends up in logs and test failures.
        f.debug_struct("Request")
            .field("method", &self.method)
            .field("url", &self.shown)
            .field("headers", &self.headers.iter().map(|(k, _)| k).collect::<Vec<_>>())
            .field("body_len", &self.body.len())
            .finish()
    }
}

impl Request {
    /// A JSON POST.
    pub fn json(url: String, shown: String, body: &serde_json::Value) -> Request {
        Request {
            method: "POST",
            url,
            shown,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: body.to_string().into_bytes(),
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// `https://host[:port]/...`: scheme and host of `url`, nothing that could be a secret.
pub fn shown_host(url: &str) -> String {
    match crate::target_url::parse(url) {
        Ok(p) => match p.port {
            Some(port) => format!("{}://{}:{port}/...", p.scheme, p.host),
            None => format!("{}://{}/...", p.scheme, p.host),
        },
        Err(_) => "(invalid URL)".to_string(),
    }
}

/// A base URL joined with a path, without doubling the slash (`https://x/` + `/message`).
pub fn join(base: &str, path: &str) -> String {
    format!("{}{path}", base.trim_end_matches('/'))
}

/// A provider's own explanation of a refusal, from the JSON error body its API documents, made
/// safe to print: one line, at most 200 characters, and never quoting a secret of the channel.
pub fn explain(text: Option<&str>, secrets: &[&str]) -> Option<String> {
    let mut t: String = text?.split_whitespace().collect::<Vec<_>>().join(" ");
    if t.is_empty() {
        return None;
    }
    for s in secrets.iter().filter(|s| s.len() >= 4) {
        t = t.replace(s, "REDACTED");
    }
    if t.chars().count() > 200 {
        t = t.chars().take(199).collect::<String>() + "…";
    }
    Some(t)
}
