//! Where the state lives remotely (`state_url` / `PINGER_STATE_URL`) and how remote stores are
//! reached: the standard AWS variables for S3-compatible storage, `HF_ENDPOINT` and `HF_TOKEN`
//! for the Hugging Face Hub. The store settings are read whether or not `state_url` is set, so
//! `once --publish s3://...` or `hf://...` uses the same ones. Keys and tokens are secrets:
//! `Debug` says only whether they are set.

use super::ctx::{Ctx, env_var};
use super::limits::{DEFAULT_HF_API_URL, HUB_SAVE_WARN, REMOTE_SAVE_INTERVAL, REMOTE_TIMEOUT};
use super::{Env, REDACTED};
use serde_json::{Map, Value};
use std::fmt;
use std::time::Duration;

/// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN`: all three are secrets.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &REDACTED)
            .field("secret_access_key", &REDACTED)
            .field("session_token", &self.session_token.as_ref().map(|_| REDACTED))
            .finish()
    }
}

/// How to reach an S3-compatible store.
#[derive(Debug, Clone)]
pub struct S3Settings {
    /// `AWS_ENDPOINT_URL_S3`, else `AWS_ENDPOINT_URL`; `None`: AWS itself.
    pub endpoint: Option<String>,
    /// `AWS_REGION`, else `AWS_DEFAULT_REGION`, else `us-east-1` (R2 uses `auto`).
    pub region: String,
    /// `None`: neither key is set.
    pub credentials: Option<Credentials>,
    /// `s3_path_style` / `PINGER_S3_PATH_STYLE`; `None`: as the AWS SDKs choose per endpoint.
    pub path_style: Option<bool>,
}

impl S3Settings {
    /// Path-style (`endpoint/bucket/key`) or virtual-hosted (`bucket.endpoint/key`), as set, else
    /// as the AWS SDKs choose by default: virtual-hosted on AWS for a bucket name that is a plain
    /// DNS label (a dot would break the wildcard certificate), path-style for any other endpoint
    /// (R2, B2, MinIO, an IP address, localhost).
    pub fn uses_path_style(&self, bucket: &str) -> bool {
        self.path_style.unwrap_or_else(|| {
            let aws = self.endpoint.as_deref().is_none_or(|e| {
                let host = e.split_once("://").map_or(e, |(_, r)| r);
                let host = host.split(['/', ':']).next().unwrap_or("");
                host.ends_with(".amazonaws.com")
            });
            let dns_label = !bucket.is_empty()
                && bucket.len() <= 63
                && bucket
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
            !(aws && dns_label)
        })
    }
}

/// How to reach the Hugging Face Hub.
#[derive(Clone)]
pub struct HubSettings {
    /// `HF_ENDPOINT`, else `hf_api_url`, else the Hub.
    pub endpoint: String,
    /// `HF_TOKEN`: a secret.
    pub token: Option<String>,
}

impl fmt::Debug for HubSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HubSettings")
            .field("endpoint", &crate::target_url::redact(&self.endpoint, &[]))
            .field("token", &self.token.as_ref().map(|_| REDACTED))
            .finish()
    }
}

/// A remote place for the state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateUrl {
    /// `s3://BUCKET/KEY`
    S3 { bucket: String, key: String },
    /// `hf://datasets/OWNER/NAME/PATH`
    Dataset { repo: String, path: String },
}

impl fmt::Display for StateUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StateUrl::S3 { bucket, key } => write!(f, "s3://{bucket}/{key}"),
            StateUrl::Dataset { repo, path } => write!(f, "hf://datasets/{repo}/{path}"),
        }
    }
}

impl StateUrl {
    pub fn parse(s: &str) -> Result<StateUrl, String> {
        let expected = "expected s3://BUCKET/KEY or hf://datasets/OWNER/NAME/PATH";
        if let Some(rest) = s.strip_prefix("s3://") {
            let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() || key.is_empty() || key.ends_with('/') {
                return Err(format!("{expected}: the bucket and an object key are needed"));
            }
            if !bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'.'))
            {
                return Err(format!(
                    "the bucket name {bucket:?} may hold only lower-case letters, digits, '-' and '.'"
                ));
            }
            return Ok(StateUrl::S3 {
                bucket: bucket.to_string(),
                key: key.to_string(),
            });
        }
        if let Some(rest) = s.strip_prefix("hf://") {
            let parts: Vec<&str> = rest.splitn(4, '/').collect();
            return match parts.as_slice() {
                ["datasets", owner, name, path]
                    if !owner.is_empty() && !name.is_empty() && !path.is_empty() && !path.ends_with('/') =>
                {
                    Ok(StateUrl::Dataset {
                        repo: format!("{owner}/{name}"),
                        path: path.to_string(),
                    })
                }
                ["spaces" | "models", ..] => Err(
                    "the state must live in a dataset (hf://datasets/OWNER/NAME/PATH): a commit to a Space \
                     rebuilds and restarts it"
                        .to_string(),
                ),
                _ => Err(format!(
                    "{expected}: the dataset's owner, name and a file path are needed"
                )),
            };
        }
        Err(format!("{expected}, got {s:?}"))
    }
}

#[derive(Debug, Clone)]
pub struct Remote {
    /// `None`: the state is not kept remotely.
    pub state_url: Option<StateUrl>,
    /// How often the remote copy is written.
    pub save_interval: Duration,
    /// The bound on each remote request (the last save at shutdown gets less).
    pub timeout: Duration,
    pub s3: S3Settings,
    pub hub: HubSettings,
}

/// `hf_api_url` as settings read it; `HF_ENDPOINT` wins over it, as in `huggingface_hub`.
pub fn parse(ctx: &mut Ctx, top: &Map<String, Value>, hf_api_url: &str, secrets: &mut Vec<String>) -> Remote {
    let env = ctx.env;
    let state_url = match env_var(env, "PINGER_STATE_URL") {
        Some(s) => Some((s.clone(), "PINGER_STATE_URL")),
        None => top
            .get("state_url")
            .and_then(|v| ctx.string(v, "state_url"))
            .map(|(s, from_env)| {
                secrets.extend(from_env);
                (s, "state_url")
            }),
    }
    .filter(|(s, _)| !s.is_empty())
    .and_then(|(s, field)| {
        StateUrl::parse(s.trim())
            .map_err(|m| {
                if field == "state_url" {
                    ctx.err(field, m)
                } else {
                    ctx.err_in(field, m)
                }
            })
            .ok()
    });
    let s3 = s3_settings(ctx, top);
    let hub = HubSettings {
        endpoint: env_var(env, "HF_ENDPOINT")
            .map(|e| e.trim_end_matches('/').to_string())
            .unwrap_or_else(|| {
                if hf_api_url.is_empty() {
                    DEFAULT_HF_API_URL.to_string()
                } else {
                    hf_api_url.to_string()
                }
            }),
        token: env_var(env, "HF_TOKEN").cloned(),
    };
    if matches!(state_url, Some(StateUrl::S3 { .. })) {
        if let Some(e) = s3.endpoint.as_deref().and_then(|e| endpoint_problem(e).err()) {
            ctx.err_in(endpoint_var(env), e);
        }
    }
    if matches!(state_url, Some(StateUrl::Dataset { .. }))
        && !hub.endpoint.starts_with("https://")
        && !hub.endpoint.starts_with("http://")
    {
        ctx.err_in("HF_ENDPOINT", "expected an http or https URL");
    }
    Remote {
        state_url,
        save_interval: ctx
            .duration_in(top, "", "remote_save_interval", REMOTE_SAVE_INTERVAL)
            .unwrap_or(REMOTE_SAVE_INTERVAL.default),
        timeout: ctx
            .duration_in(top, "", "remote_timeout", REMOTE_TIMEOUT)
            .unwrap_or(REMOTE_TIMEOUT.default),
        s3,
        hub,
    }
}

/// Advice about the remote state that does not stop the service. `shown`: `state_url` with its
/// secrets hidden.
pub fn warnings(remote: &Remote, shown: &str) -> Vec<String> {
    let mut out = Vec::new();
    match &remote.state_url {
        Some(StateUrl::S3 { .. }) if remote.s3.credentials.is_none() => out.push(format!(
            "state_url is {shown} but AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not set: the state cannot be saved there"
        )),
        Some(StateUrl::Dataset { .. }) => {
            if remote.hub.token.is_none() {
                out.push(format!(
                    "state_url is {shown} but HF_TOKEN is not set: the state cannot be saved there"
                ));
            }
            if remote.save_interval < HUB_SAVE_WARN {
                out.push(format!(
                    "remote_save_interval is {}: every save to a dataset is a commit, and the Hub throttles frequent commits (at least {} is advised)",
                    crate::duration::format(remote.save_interval),
                    crate::duration::format(HUB_SAVE_WARN)
                ));
            }
        }
        _ => {}
    }
    out
}

/// For `check`: where the state lives remotely and how it is reached, with no secret (the
/// endpoint redacted, the credentials only said to be set or not).
pub fn describe(remote: &Remote, shown: &str) -> Option<String> {
    let url = remote.state_url.as_ref()?;
    let how = match url {
        StateUrl::S3 { bucket, .. } => format!(
            "{}, region {}, {} addressing; credentials: {}",
            remote.s3.endpoint.as_deref().map_or("AWS S3".to_string(), |e| format!(
                "endpoint {}",
                crate::target_url::redact(e, &[])
            )),
            remote.s3.region,
            if remote.s3.uses_path_style(bucket) {
                "path-style"
            } else {
                "virtual-hosted"
            },
            match &remote.s3.credentials {
                Some(c) if c.session_token.is_some() => {
                    "AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN set"
                }
                Some(_) => "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY set",
                None => "MISSING (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)",
            }
        ),
        StateUrl::Dataset { .. } => format!(
            "Hub {}; credentials: {}",
            crate::target_url::redact(&remote.hub.endpoint, &[]),
            if remote.hub.token.is_some() {
                "HF_TOKEN set"
            } else {
                "MISSING (HF_TOKEN)"
            }
        ),
    };
    Some(format!(
        "remote state: {shown} ({how}); written every {}",
        crate::duration::format(remote.save_interval)
    ))
}

fn endpoint_var(env: &Env) -> &'static str {
    if env_var(env, "AWS_ENDPOINT_URL_S3").is_some() {
        "AWS_ENDPOINT_URL_S3"
    } else {
        "AWS_ENDPOINT_URL"
    }
}

/// Why an endpoint URL cannot be used (it is never quoted: it may hold a secret).
pub fn endpoint_problem(endpoint: &str) -> Result<(), String> {
    let rest = endpoint
        .split_once("://")
        .filter(|(s, _)| s.eq_ignore_ascii_case("http") || s.eq_ignore_ascii_case("https"))
        .map(|(_, r)| r);
    match rest {
        Some(r) if !r.is_empty() && !r.starts_with('/') && !r.contains(['@', '?', '#']) => Ok(()),
        _ => Err("expected http(s)://HOST[:PORT][/PATH], with no user, query or fragment".into()),
    }
}

fn s3_settings(ctx: &mut Ctx, top: &Map<String, Value>) -> S3Settings {
    let env = ctx.env;
    let key_id = env_var(env, "AWS_ACCESS_KEY_ID");
    let secret = env_var(env, "AWS_SECRET_ACCESS_KEY");
    let credentials = match (key_id, secret) {
        (Some(id), Some(secret)) => Some(Credentials {
            access_key_id: id.clone(),
            secret_access_key: secret.clone(),
            session_token: env_var(env, "AWS_SESSION_TOKEN").cloned(),
        }),
        (Some(_), None) => {
            ctx.err_in("AWS_SECRET_ACCESS_KEY", "not set, but AWS_ACCESS_KEY_ID is");
            None
        }
        (None, Some(_)) => {
            ctx.err_in("AWS_ACCESS_KEY_ID", "not set, but AWS_SECRET_ACCESS_KEY is");
            None
        }
        (None, None) => None,
    };
    let path_style = match env_var(env, "PINGER_S3_PATH_STYLE") {
        Some(v) => match v.trim().to_ascii_lowercase().as_str() {
            "true" | "1" => Some(true),
            "false" | "0" => Some(false),
            _ => {
                ctx.err_in("PINGER_S3_PATH_STYLE", format!("expected true or false, got {v:?}"));
                None
            }
        },
        None => top.get("s3_path_style").and_then(|v| ctx.bool(v, "s3_path_style")),
    };
    S3Settings {
        endpoint: env_var(env, "AWS_ENDPOINT_URL_S3")
            .or_else(|| env_var(env, "AWS_ENDPOINT_URL"))
            .map(|e| e.trim().to_string()),
        region: env_var(env, "AWS_REGION")
            .or_else(|| env_var(env, "AWS_DEFAULT_REGION"))
            .map_or_else(|| "us-east-1".to_string(), |r| r.trim().to_string()),
        credentials,
        path_style,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_urls_parse_or_say_what_is_missing() {
        assert_eq!(
            StateUrl::parse("s3://my-bucket/pinger/state.json").unwrap(),
            StateUrl::S3 {
                bucket: "my-bucket".into(),
                key: "pinger/state.json".into()
            }
        );
        let hf = StateUrl::parse("hf://datasets/me/pinger-state/state.json").unwrap();
        assert_eq!(
            hf,
            StateUrl::Dataset {
                repo: "me/pinger-state".into(),
                path: "state.json".into()
            }
        );
        assert_eq!(hf.to_string(), "hf://datasets/me/pinger-state/state.json");
        for (bad, says) in [
            ("s3://bucket", "an object key"),
            ("s3://Bucket/k", "lower-case"),
            ("hf://datasets/me/state", "file path"),
            ("hf://spaces/me/app/state.json", "must live in a dataset"),
            ("https://example.com/state.json", "expected s3://BUCKET/KEY"),
        ] {
            let e = StateUrl::parse(bad).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn debug_shows_no_key_or_token() {
        let c = Credentials {
            access_key_id: "AKIA-ID".into(),
            secret_access_key: "SECRET-KEY".into(),
            session_token: Some("SESSION".into()),
        };
        let hub = HubSettings {
            endpoint: "https://user:pw@hub.example".into(),
            token: Some("hf_TOKEN".into()),
        };
        let shown = format!("{c:?} {hub:?}");
        for secret in ["AKIA-ID", "SECRET-KEY", "SESSION", "hf_TOKEN", "pw"] {
            assert!(!shown.contains(secret), "{shown}");
        }
    }
}
