//! GET, HEAD and PUT of one object in an S3-compatible store (AWS S3, Cloudflare R2, Backblaze
//! B2, MinIO, Garage...), signed with SigV4 over the payload's SHA-256. A PUT may be
//! conditional: `If-Match` an ETag read earlier, or `If-None-Match: *` for an object that must
//! not exist yet, so that two writers of one object find out instead of overwriting each other.

use super::sigv4::{self, Credentials};
use super::{Call, Error, ErrorKind, Response, server_words};
use crate::net::Net;
use std::time::{Duration, SystemTime};

/// The most of an object that is read: far more than the state of 10,000 workers.
pub const MAX_OBJECT_BYTES: u64 = 256 << 20;
const ERROR_BODY_BYTES: u64 = 64 << 10;

pub use crate::config::S3Settings;

/// A conditional PUT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    /// Write whatever is there.
    None,
    /// Only over the object with this ETag (as the store gave it, quotes included).
    IfMatch(String),
    /// Only when no object exists under the key.
    IfNoneMatch,
}

/// An object read from the store.
#[derive(Debug)]
pub struct Object {
    pub body: Vec<u8>,
    pub etag: Option<String>,
}

#[derive(Clone)]
pub struct Client {
    agent: ureq::Agent,
    scheme: String,
    /// `host[:port]` of the endpoint, without the bucket.
    host: String,
    /// The endpoint's own path (usually empty), before the bucket and key.
    prefix: String,
    region: String,
    credentials: Option<Credentials>,
    settings: S3Settings,
    timeout: Duration,
}

impl Client {
    /// A client for `settings`; the error names what is wrong with `AWS_ENDPOINT_URL`.
    pub fn new(net: &Net, settings: &S3Settings, timeout: Duration) -> Result<Client, String> {
        let endpoint = settings
            .endpoint
            .clone()
            .unwrap_or_else(|| format!("https://s3.{}.amazonaws.com", settings.region));
        let (scheme, rest) = endpoint
            .split_once("://")
            .filter(|(s, _)| s.eq_ignore_ascii_case("http") || s.eq_ignore_ascii_case("https"))
            .ok_or_else(|| "AWS_ENDPOINT_URL: expected an http or https URL".to_string())?;
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        if authority.is_empty() || authority.contains('@') || path.contains(['?', '#']) {
            return Err(
                "AWS_ENDPOINT_URL: expected http(s)://HOST[:PORT][/PATH], with no user, query or fragment".into(),
            );
        }
        let scheme = scheme.to_ascii_lowercase();
        let host = strip_default_port(&scheme, &authority.to_ascii_lowercase());
        Ok(Client {
            agent: net.agent_for(&endpoint),
            scheme,
            host,
            prefix: path.trim_end_matches('/').to_string(),
            region: settings.region.clone(),
            credentials: settings.credentials.clone(),
            settings: settings.clone(),
            timeout,
        })
    }

    /// The same client with another bound on each request (the last save at shutdown).
    pub fn with_timeout(&self, timeout: Duration) -> Client {
        Client {
            timeout,
            ..self.clone()
        }
    }

    /// Path-style or virtual-hosted (see `S3Settings::uses_path_style`).
    pub fn uses_path_style(&self, bucket: &str) -> bool {
        self.settings.uses_path_style(bucket)
    }

    /// Host header and path of the object.
    fn locate(&self, bucket: &str, key: &str) -> (String, String) {
        let key = sigv4::uri_encode(key, false);
        if self.uses_path_style(bucket) {
            (
                self.host.clone(),
                format!("{}/{}/{key}", self.prefix, sigv4::uri_encode(bucket, true)),
            )
        } else {
            (format!("{bucket}.{}", self.host), format!("{}/{key}", self.prefix))
        }
    }

    /// The object, or `None` when there is none under `key`.
    pub fn get(&self, bucket: &str, key: &str) -> Result<Option<Object>, Error> {
        let r = self.send("GET", bucket, key, &[], None, MAX_OBJECT_BYTES)?;
        match r.status {
            200 => Ok(Some(Object {
                etag: r.header("etag").map(str::to_string),
                body: r.body,
            })),
            404 if error_code(&r).as_deref() != Some("NoSuchBucket") => Ok(None),
            _ => Err(self.failure(&r, bucket)),
        }
    }

    /// The object's ETag, or `None` when there is no object under `key`.
    pub fn head(&self, bucket: &str, key: &str) -> Result<Option<String>, Error> {
        let r = self.send("HEAD", bucket, key, &[], None, 0)?;
        match r.status {
            200 => Ok(Some(r.header("etag").unwrap_or_default().to_string())),
            // A HEAD answer has no body, so a missing bucket looks like a missing key.
            404 => Ok(None),
            _ => Err(self.failure(&r, bucket)),
        }
    }

    /// Writes `body` under `key`; returns the new ETag (empty if the store gave none).
    pub fn put(
        &self,
        bucket: &str,
        key: &str,
        body: &[u8],
        content_type: &str,
        condition: &Condition,
    ) -> Result<String, Error> {
        let mut headers = vec![("content-type", content_type.to_string())];
        match condition {
            Condition::None => {}
            Condition::IfMatch(etag) => headers.push(("if-match", etag.clone())),
            Condition::IfNoneMatch => headers.push(("if-none-match", "*".to_string())),
        }
        let r = self.send("PUT", bucket, key, &headers, Some(body), ERROR_BODY_BYTES)?;
        match r.status {
            200 | 201 | 204 => Ok(r.header("etag").unwrap_or_default().to_string()),
            _ => Err(self.failure(&r, bucket)),
        }
    }

    fn send(
        &self,
        method: &str,
        bucket: &str,
        key: &str,
        extra: &[(&str, String)],
        body: Option<&[u8]>,
        body_limit: u64,
    ) -> Result<Response, Error> {
        let Some(creds) = &self.credentials else {
            return Err(Error::new(
                ErrorKind::Auth,
                "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not set",
            ));
        };
        let body = body.unwrap_or_default();
        let (host, path) = self.locate(bucket, key);
        let payload = sigv4::sha256_hex(body);
        let date = sigv4::amz_date(SystemTime::now());
        let mut headers: Vec<(&str, String)> = vec![
            ("host", host.clone()),
            ("x-amz-content-sha256", payload.clone()),
            ("x-amz-date", date.clone()),
        ];
        if let Some(token) = &creds.session_token {
            headers.push(("x-amz-security-token", token.clone()));
        }
        headers.extend(extra.iter().cloned());
        let signed: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let auth = sigv4::authorization(
            creds,
            &self.region,
            "s3",
            &date,
            &sigv4::Request {
                method,
                path: &path,
                query: &[],
                headers: &signed,
                payload_sha256: &payload,
            },
        );
        headers.push(("authorization", auth));
        let url = format!("{}://{host}{path}", self.scheme);
        Call {
            method,
            url: &url,
            headers,
            body,
            timeout: self.timeout,
            body_limit,
            redirects: 0,
        }
        .run(&self.agent)
    }

    /// An error answer in words: the store's code, what it usually means, and its message.
    fn failure(&self, r: &Response, bucket: &str) -> Error {
        let code = error_code(r);
        let message = xml_field(&r.body, "Message").map(|m| server_words(&m));
        let said = match (&code, &message) {
            (Some(c), Some(m)) => format!(" ({c}: {m})"),
            (Some(c), None) => format!(" ({c})"),
            (None, _) => String::new(),
        };
        let status = r.status;
        let (kind, what) = match (status, code.as_deref()) {
            (_, Some("SignatureDoesNotMatch")) => (
                ErrorKind::Auth,
                "the store refused the signature: AWS_SECRET_ACCESS_KEY does not match AWS_ACCESS_KEY_ID \
                 (or AWS_REGION is not the bucket's region)"
                    .to_string(),
            ),
            (_, Some("InvalidAccessKeyId")) => {
                (ErrorKind::Auth, "the store does not know AWS_ACCESS_KEY_ID".to_string())
            }
            (_, Some("InvalidToken" | "ExpiredToken" | "TokenRefreshRequired")) => (
                ErrorKind::Auth,
                "AWS_SESSION_TOKEN was refused (invalid or expired)".to_string(),
            ),
            (_, Some("AuthorizationHeaderMalformed")) => (
                ErrorKind::Auth,
                format!(
                    "the store refused the request's region {:?} (check AWS_REGION)",
                    self.region
                ),
            ),
            (403, _) => (
                ErrorKind::Auth,
                format!("access denied to bucket {bucket:?}: the key lacks a permission (s3:GetObject, s3:PutObject)"),
            ),
            (_, Some("NoSuchBucket")) => (ErrorKind::NotFound, format!("there is no bucket {bucket:?}")),
            (404, _) => (ErrorKind::NotFound, format!("there is no bucket {bucket:?}")),
            (301 | 307, _) => (
                ErrorKind::Refused,
                format!("the bucket {bucket:?} answers elsewhere (status {status}): set AWS_REGION to its region"),
            ),
            (412, _) => (
                ErrorKind::Conflict,
                "the object was changed by another writer since it was read (status 412)".to_string(),
            ),
            // Two conditional writes met at the store: the retry finds out which won.
            (409, Some("ConditionalRequestConflict")) => (
                ErrorKind::Unavailable,
                "a conditional write met another one at the store".to_string(),
            ),
            (429, _) | (503, Some("SlowDown")) => (
                ErrorKind::Throttled(r.retry_after()),
                format!("the store asks to slow down (status {status})"),
            ),
            (500..=599, _) => (ErrorKind::Unavailable, format!("the store failed (status {status})")),
            _ => (
                ErrorKind::Refused,
                format!("the store refused the request (status {status})"),
            ),
        };
        Error::new(kind, format!("{what}{said}"))
    }
}

/// S3's error code, from the XML body (`<Code>`), when there is one.
fn error_code(r: &Response) -> Option<String> {
    xml_field(&r.body, "Code").map(|c| server_words(&c))
}

/// The text of the first `<name>` element; S3's error documents are flat and unescaped codes.
fn xml_field(body: &[u8], name: &str) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?;
    let open = format!("<{name}>");
    let start = text.find(&open)? + open.len();
    let end = start + text[start..].find(&format!("</{name}>"))?;
    Some(
        text[start..end]
            .replace("&quot;", "\"")
            .replace("&apos;", "'")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&"),
    )
}

/// The Host header ureq would send: no port when it is the scheme's default.
fn strip_default_port(scheme: &str, authority: &str) -> String {
    let default = if scheme == "https" { ":443" } else { ":80" };
    authority.strip_suffix(default).unwrap_or(authority).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(endpoint: Option<&str>, path_style: Option<bool>) -> Client {
        let net = Net::new(None, crate::config::proxy::Proxies::default());
        Client::new(
            &net,
            &S3Settings {
                endpoint: endpoint.map(str::to_string),
                region: "eu-west-3".into(),
                credentials: None,
                path_style,
            },
            Duration::from_secs(5),
        )
        .unwrap()
    }

    #[test]
    fn aws_is_virtual_hosted_and_other_endpoints_path_style() {
        let aws = client(None, None);
        assert_eq!(
            aws.locate("my-bucket", "state/pinger.json"),
            (
                "my-bucket.s3.eu-west-3.amazonaws.com".into(),
                "/state/pinger.json".into()
            )
        );
        // A dotted name would not match AWS's wildcard certificate.
        assert_eq!(
            aws.locate("my.bucket", "k"),
            ("s3.eu-west-3.amazonaws.com".into(), "/my.bucket/k".into())
        );
        let r2 = client(Some("https://acct.r2.cloudflarestorage.com:443/"), None);
        assert_eq!(
            r2.locate("b", "a b/c+d.json"),
            ("acct.r2.cloudflarestorage.com".into(), "/b/a%20b/c%2Bd.json".into())
        );
        let local = client(Some("http://127.0.0.1:9000"), None);
        assert_eq!(local.locate("b", "k"), ("127.0.0.1:9000".into(), "/b/k".into()));
        let forced = client(Some("https://minio.example.com"), Some(false));
        assert_eq!(forced.locate("b", "k"), ("b.minio.example.com".into(), "/k".into()));
        assert!(client(None, Some(true)).uses_path_style("my-bucket"));
    }

    #[test]
    fn a_bad_endpoint_is_named() {
        let net = Net::new(None, crate::config::proxy::Proxies::default());
        for bad in ["ftp://x", "s3.example.com", "https://user:pw@host", "https://h/?q=1"] {
            let settings = S3Settings {
                endpoint: Some(bad.into()),
                region: "auto".into(),
                credentials: None,
                path_style: None,
            };
            let e = Client::new(&net, &settings, Duration::from_secs(1)).err().unwrap();
            assert!(e.starts_with("AWS_ENDPOINT_URL:"), "{e}");
            assert!(!e.contains("pw"), "{e}");
        }
    }

    #[test]
    fn error_documents_are_read() {
        let body = b"<?xml version=\"1.0\"?><Error><Code>SignatureDoesNotMatch</Code>\
            <Message>The request signature we calculated does not match the signature you provided.</Message>\
            <AWSAccessKeyId>AKIAEXAMPLE</AWSAccessKeyId><SignatureProvided>abc123</SignatureProvided></Error>";
        let r = Response {
            status: 403,
            headers: vec![],
            body: body.to_vec(),
        };
        let e = client(None, None).failure(&r, "b");
        assert_eq!(e.kind, ErrorKind::Auth);
        assert!(e.message.contains("AWS_SECRET_ACCESS_KEY does not match"), "{e}");
        assert!(
            !e.message.contains("AKIAEXAMPLE") && !e.message.contains("abc123"),
            "{e}"
        );
    }
}
