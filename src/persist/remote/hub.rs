//! Files in a Hugging Face repository (a dataset for the state, a Static Space for a published
//! page): read through the Hub's download endpoint, written as one commit through its commit API
//! (NDJSON: a `header` line, then one `file` line per file, base64). A commit names its parent,
//! so a commit on top of a branch that moved since it was read is refused (412) rather than
//! silently overwriting another writer's files.

use super::sigv4::uri_encode;
use super::{Call, Error, ErrorKind, Response, server_words};
use crate::net::Net;
use std::fmt;
use std::time::Duration;

pub const DEFAULT_ENDPOINT: &str = "https://huggingface.co";
/// The branch read and written.
pub const REVISION: &str = "main";
/// The most of a file that is read.
pub const MAX_FILE_BYTES: u64 = 256 << 20;
const ERROR_BODY_BYTES: u64 = 64 << 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RepoKind {
    Dataset,
    Space,
    Model,
}

impl RepoKind {
    /// The plural the API paths use.
    fn plural(self) -> &'static str {
        match self {
            RepoKind::Dataset => "datasets",
            RepoKind::Space => "spaces",
            RepoKind::Model => "models",
        }
    }

    fn noun(self) -> &'static str {
        match self {
            RepoKind::Dataset => "dataset",
            RepoKind::Space => "Space",
            RepoKind::Model => "model",
        }
    }
}

/// A repository: its kind and `OWNER/NAME`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repo {
    pub kind: RepoKind,
    pub id: String,
}

impl fmt::Display for Repo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.kind.plural(), self.id)
    }
}

/// One file of a commit.
pub struct CommitFile<'a> {
    pub path: &'a str,
    pub content: &'a [u8],
}

/// What a download found: the file (`None`: the repository has no such file) and the commit
/// the branch was at, when the Hub said.
#[derive(Debug)]
pub struct Fetched {
    pub body: Option<Vec<u8>>,
    pub commit: Option<String>,
}

#[derive(Clone)]
pub struct Client {
    agent: ureq::Agent,
    endpoint: String,
    /// `HF_TOKEN`: a secret.
    token: Option<String>,
    timeout: Duration,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("hub::Client")
            .field("endpoint", &crate::target_url::redact(&self.endpoint, &[]))
            .field("token", &self.token.as_ref().map(|_| "REDACTED"))
            .finish()
    }
}

impl Client {
    /// `endpoint`: `HF_ENDPOINT`, else `DEFAULT_ENDPOINT`; `token`: `HF_TOKEN`.
    pub fn new(net: &Net, endpoint: &str, token: Option<String>, timeout: Duration) -> Client {
        let endpoint = endpoint.trim_end_matches('/').to_string();
        Client {
            agent: net.agent_for(&endpoint),
            endpoint,
            token,
            timeout,
        }
    }

    /// The same client with another bound on each request (the last save at shutdown).
    pub fn with_timeout(&self, timeout: Duration) -> Client {
        Client {
            timeout,
            ..self.clone()
        }
    }

    /// Reads `path` at the branch's head.
    pub fn download(&self, repo: &Repo, path: &str) -> Result<Fetched, Error> {
        let prefix = match repo.kind {
            RepoKind::Model => String::new(),
            kind => format!("{}/", kind.plural()),
        };
        let url = format!(
            "{}/{prefix}{}/resolve/{REVISION}/{}",
            self.endpoint,
            repo.id,
            uri_encode(path, false)
        );
        // A file stored with LFS is a redirect to the CDN (ureq drops the token on the way).
        let r = self.call("GET", &url, None, vec![], MAX_FILE_BYTES, 5)?;
        let commit = r.header("x-repo-commit").map(str::to_string);
        match (r.status, r.header("x-error-code")) {
            (200, _) => Ok(Fetched {
                body: Some(r.body),
                commit,
            }),
            (404, Some("EntryNotFound")) => Ok(Fetched { body: None, commit }),
            _ => Err(self.failure(&r, repo, "read")),
        }
    }

    /// The commit the branch is at.
    pub fn head_commit(&self, repo: &Repo) -> Result<String, Error> {
        let url = self.api_url(repo, "revision");
        let r = self.call("GET", &url, None, vec![], ERROR_BODY_BYTES, 0)?;
        if r.status != 200 {
            return Err(self.failure(&r, repo, "read"));
        }
        text_field(&r.body, "sha").ok_or_else(|| {
            Error::new(
                ErrorKind::Refused,
                format!("the Hub's answer about {repo} had no commit id"),
            )
        })
    }

    /// Commits `files` to the branch on top of `parent` (when given: refused with a `Conflict`
    /// if the branch has moved since). Returns the new commit's id.
    pub fn commit(
        &self,
        repo: &Repo,
        summary: &str,
        parent: Option<&str>,
        files: &[CommitFile],
    ) -> Result<String, Error> {
        self.check_regular(repo, files)?;
        let mut header = serde_json::json!({ "summary": summary, "description": "" });
        if let Some(p) = parent {
            header["parentCommit"] = p.into();
        }
        let mut body = serde_json::to_vec(&serde_json::json!({ "key": "header", "value": header }))
            .map_err(|_| Error::new(ErrorKind::Refused, "cannot encode the commit"))?;
        body.push(b'\n');
        for f in files {
            let line = serde_json::json!({
                "key": "file",
                "value": { "content": base64(f.content), "path": f.path, "encoding": "base64" },
            });
            serde_json::to_writer(&mut body, &line)
                .map_err(|_| Error::new(ErrorKind::Refused, "cannot encode the commit"))?;
            body.push(b'\n');
        }
        let r = self.post(repo, "commit", &body, "application/x-ndjson")?;
        if r.status != 200 && r.status != 201 {
            return Err(self.failure(&r, repo, "write"));
        }
        text_field(&r.body, "commitOid").ok_or_else(|| {
            Error::new(
                ErrorKind::Refused,
                format!("the Hub's answer to the commit to {repo} had no commit id"),
            )
        })
    }

    /// Asks the Hub how each file would be stored: this client commits regular files only (base64
    /// in the commit), so a file the Hub wants in LFS (too large for a regular file, or matched by
    /// the repository's `.gitattributes`) is a clear error, not a rejected commit.
    fn check_regular(&self, repo: &Repo, files: &[CommitFile]) -> Result<(), Error> {
        let list: Vec<serde_json::Value> = files
            .iter()
            .map(|f| {
                serde_json::json!({
                    "path": f.path,
                    "sample": base64(&f.content[..f.content.len().min(512)]),
                    "size": f.content.len(),
                })
            })
            .collect();
        let body = serde_json::to_vec(&serde_json::json!({ "files": list }))
            .map_err(|_| Error::new(ErrorKind::Refused, "cannot encode the upload check"))?;
        let r = self.post(repo, "preupload", &body, "application/json")?;
        if r.status != 200 {
            return Err(self.failure(&r, repo, "write"));
        }
        let modes = upload_modes(&r.body).ok_or_else(|| {
            Error::new(
                ErrorKind::Refused,
                format!("the Hub's answer to the upload check for {repo} was not understood"),
            )
        })?;
        for m in modes {
            let size = files.iter().find(|f| f.path == m.path).map_or(0, |f| f.content.len());
            if m.upload_mode == "lfs" {
                return Err(Error::new(
                    ErrorKind::Refused,
                    format!(
                        "the Hub wants {:?} ({} KB) stored with LFS (a regular file must be under 10 MB and not \
                         matched by the repository's .gitattributes); master-pinger commits regular files only",
                        m.path,
                        size.div_ceil(1000)
                    ),
                ));
            }
            if m.should_ignore {
                return Err(Error::new(
                    ErrorKind::Refused,
                    format!("{:?} is ignored by the .gitignore of {repo}", m.path),
                ));
            }
        }
        Ok(())
    }

    /// `{endpoint}/api/{datasets|spaces|models}/OWNER/NAME/{action}/main`
    fn api_url(&self, repo: &Repo, action: &str) -> String {
        format!(
            "{}/api/{}/{}/{action}/{REVISION}",
            self.endpoint,
            repo.kind.plural(),
            repo.id
        )
    }

    fn post(&self, repo: &Repo, action: &str, body: &[u8], content_type: &str) -> Result<Response, Error> {
        let headers = vec![("content-type", content_type.to_string())];
        self.call(
            "POST",
            &self.api_url(repo, action),
            Some(body),
            headers,
            ERROR_BODY_BYTES,
            0,
        )
    }

    fn call(
        &self,
        method: &str,
        url: &str,
        body: Option<&[u8]>,
        mut headers: Vec<(&str, String)>,
        body_limit: u64,
        redirects: u32,
    ) -> Result<Response, Error> {
        if let Some(t) = &self.token {
            headers.push(("authorization", format!("Bearer {t}")));
        }
        Call {
            method,
            url,
            headers,
            body: body.unwrap_or_default(),
            timeout: self.timeout,
            body_limit,
            redirects,
        }
        .run(&self.agent)
    }

    /// An error answer in words: what it means for this repository, then the Hub's own message.
    fn failure(&self, r: &Response, repo: &Repo, action: &str) -> Error {
        let said = hub_message(r).map_or(String::new(), |m| format!(" (the Hub said: {m})"));
        let noun = repo.kind.noun();
        let status = r.status;
        let (kind, what) = match (status, r.header("x-error-code")) {
            (_, Some("RepoNotFound")) => (
                ErrorKind::NotFound,
                format!(
                    "there is no {noun} {} on the Hub, or it is private and {}",
                    repo.id,
                    if self.token.is_some() {
                        "HF_TOKEN cannot read it"
                    } else {
                        "HF_TOKEN is not set"
                    }
                ),
            ),
            (_, Some("RevisionNotFound")) => (
                ErrorKind::NotFound,
                format!("the {noun} {} has no branch {REVISION}", repo.id),
            ),
            (401, _) if self.token.is_none() => (
                ErrorKind::Auth,
                format!("HF_TOKEN is not set (needed to {action} {repo})"),
            ),
            (401, _) => (ErrorKind::Auth, "HF_TOKEN was refused (invalid or expired)".to_string()),
            (403, _) => (
                ErrorKind::Auth,
                format!(
                    "HF_TOKEN may not {action} {repo} (a read-only token, or a fine-grained one without this repository)"
                ),
            ),
            (404, _) => (ErrorKind::NotFound, format!("the Hub found no {repo}")),
            (412, _) => (
                ErrorKind::Conflict,
                format!("{repo} was changed by another writer since it was read (status 412)"),
            ),
            (429, _) => (
                ErrorKind::Throttled(r.retry_after()),
                "the Hub asks to slow down (status 429)".to_string(),
            ),
            (500..=599, _) => (ErrorKind::Unavailable, format!("the Hub failed (status {status})")),
            _ => (
                ErrorKind::Refused,
                format!("the Hub refused to {action} {repo} (status {status})"),
            ),
        };
        Error::new(kind, format!("{what}{said}"))
    }
}

// The Hub's answers are read as a `serde_json::Value` (as its error bodies are) rather than into
// structures of their own: one JSON reader for all of them is KiBs less binary.

/// The string `key` of the JSON object `body`.
fn text_field(body: &[u8], key: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    Some(v.get(key)?.as_str()?.to_string())
}

/// How the Hub would store each file: `{"files": [{"path", "uploadMode", "shouldIgnore"?}]}`.
struct Mode {
    path: String,
    upload_mode: String,
    should_ignore: bool,
}

fn upload_modes(body: &[u8]) -> Option<Vec<Mode>> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let text = |m: &serde_json::Value, key| Some(m.get(key)?.as_str()?.to_string());
    v.get("files")?
        .as_array()?
        .iter()
        .map(|m| {
            Some(Mode {
                path: text(m, "path")?,
                upload_mode: text(m, "uploadMode")?,
                should_ignore: match m.get("shouldIgnore") {
                    None => false,
                    Some(b) => b.as_bool()?,
                },
            })
        })
        .collect()
}

/// The Hub's explanation: `X-Error-Message`, else the JSON body's `error`.
fn hub_message(r: &Response) -> Option<String> {
    let text = r.header("x-error-message").map(str::to_string).or_else(|| {
        let v: serde_json::Value = serde_json::from_slice(&r.body).ok()?;
        match v.get("error")? {
            serde_json::Value::String(s) => Some(s.clone()),
            other => Some(other.to_string()),
        }
    })?;
    let words = server_words(&text);
    (!words.is_empty()).then_some(words)
}

/// Standard base64 with padding (RFC 4648), as the commit API takes file contents.
pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc_4648_vectors() {
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(plain.as_bytes()), encoded);
        }
        assert_eq!(base64(&[0xff, 0xfe, 0x00]), "//4A");
    }

    #[test]
    fn debug_hides_the_token() {
        let net = Net::new(None, crate::config::proxy::Proxies::default());
        let c = Client::new(
            &net,
            "https://huggingface.co/",
            Some("hf_SECRET".into()),
            Duration::from_secs(1),
        );
        let shown = format!("{c:?}");
        assert!(!shown.contains("hf_SECRET"), "{shown}");
        assert_eq!(
            Repo {
                kind: RepoKind::Dataset,
                id: "me/state".into()
            }
            .to_string(),
            "datasets/me/state"
        );
    }

    #[test]
    fn hub_errors_are_worded_by_cause() {
        let net = Net::new(None, crate::config::proxy::Proxies::default());
        let c = Client::new(&net, DEFAULT_ENDPOINT, Some("hf_x".into()), Duration::from_secs(1));
        let repo = Repo {
            kind: RepoKind::Dataset,
            id: "me/state".into(),
        };
        let answer = |status, code: Option<&str>, body: &str| Response {
            status,
            headers: code
                .map(|c| vec![("x-error-code".to_string(), c.to_string())])
                .unwrap_or_default(),
            body: body.as_bytes().to_vec(),
        };
        let e = c.failure(
            &answer(404, Some("RepoNotFound"), r#"{"error":"Repository not found"}"#),
            &repo,
            "read",
        );
        assert_eq!(e.kind, ErrorKind::NotFound);
        assert!(e.message.contains("no dataset me/state"), "{e}");
        let e = c.failure(
            &answer(
                412,
                None,
                r#"{"error":"A commit has happened since. Please refresh and try again."}"#,
            ),
            &repo,
            "write",
        );
        assert_eq!(e.kind, ErrorKind::Conflict);
        assert!(e.message.contains("A commit has happened since"), "{e}");
        let e = c.failure(&answer(403, None, "{}"), &repo, "write");
        assert_eq!(e.kind, ErrorKind::Auth);
        let e = c.failure(&answer(429, None, ""), &repo, "write");
        assert_eq!(e.kind, ErrorKind::Throttled(None));
    }
}
