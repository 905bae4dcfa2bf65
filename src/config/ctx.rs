//! Walking one source's JSON: `Ctx` collects every problem with its source and field path, and
//! reads the value kinds the configuration uses (strings with `${VAR}` expanded, durations within
//! limits, bounded counts, booleans, objects with a fixed set of fields).

use super::limits::{CountLimit, DurationLimit};
use super::{ConfigError, Env};
use crate::{duration, target_url};
use serde_json::{Map, Value};
use std::time::Duration;

/// Collects problems for one source while walking its JSON.
pub struct Ctx<'a> {
    pub source: String,
    pub env: &'a Env,
    pub errors: &'a mut Vec<ConfigError>,
    /// Values substituted from `${VAR}` so far: secrets, scrubbed from every message.
    secrets: Vec<String>,
}

impl<'a> Ctx<'a> {
    pub fn new(source: impl Into<String>, env: &'a Env, errors: &'a mut Vec<ConfigError>) -> Ctx<'a> {
        Ctx {
            source: source.into(),
            env,
            errors,
            secrets: Vec::new(),
        }
    }

    /// A context for another source (an environment variable holding JSON) that adds to the
    /// same list of problems.
    pub fn for_source<'b>(&'b mut self, source: &str) -> Ctx<'b> {
        Ctx::new(source, self.env, &mut *self.errors)
    }

    pub fn err(&mut self, field: &str, message: impl Into<String>) {
        let mut message = message.into();
        // A value that came from the environment may be quoted by a validation message
        // ("expected a duration, got ..."); it is a secret, so it never reaches the terminal.
        for secret in self.secrets.iter().filter(|s| !s.is_empty()) {
            message = message.replace(secret.as_str(), "REDACTED");
        }
        self.errors.push(ConfigError {
            source: self.source.clone(),
            field: field.to_string(),
            message,
        });
    }

    pub fn object<'v>(&mut self, v: &'v Value, field: &str, allowed: &[&str]) -> Option<&'v Map<String, Value>> {
        let Some(obj) = v.as_object() else {
            self.err(field, format!("expected an object, got {}", kind(v)));
            return None;
        };
        for key in obj.keys() {
            if !allowed.contains(&key.as_str()) {
                self.err(
                    &join(field, key),
                    format!("unknown field {key:?} (expected one of: {})", allowed.join(", ")),
                );
            }
        }
        Some(obj)
    }

    /// A string value with `${VAR}` expanded, and the values substituted (empty when none was).
    pub fn string(&mut self, v: &Value, field: &str) -> Option<(String, Vec<String>)> {
        let Some(s) = v.as_str() else {
            self.err(field, format!("expected a string, got {}", kind(v)));
            return None;
        };
        match expand(s, self.env) {
            Ok(x) => {
                self.secrets.extend(x.1.iter().cloned());
                Some(x)
            }
            Err(message) => {
                self.err(field, message);
                None
            }
        }
    }

    /// A string value with `${VAR}` expanded, when it is secret or not does not matter.
    pub fn text(&mut self, v: &Value, field: &str) -> Option<String> {
        self.string(v, field).map(|(s, _)| s)
    }

    /// A duration string within `limit`: the one place the parse-then-limit pattern lives.
    pub fn duration(&mut self, v: &Value, field: &str, limit: DurationLimit) -> Option<Duration> {
        let s = self.text(v, field)?;
        let d = duration::parse(&s).map_err(|m| self.err(field, m)).ok()?;
        self.within(d, field, limit)
    }

    /// `obj[key]` (at `parent.key`), when present, as a duration within `limit`.
    pub fn duration_in(
        &mut self,
        obj: &Map<String, Value>,
        parent: &str,
        key: &str,
        limit: DurationLimit,
    ) -> Option<Duration> {
        let v = obj.get(key)?;
        self.duration(v, &join(parent, key), limit)
    }

    /// `obj[key]` (at `parent.key`), when present, as a whole number within `limit`.
    pub fn count_in(&mut self, obj: &Map<String, Value>, parent: &str, key: &str, limit: CountLimit) -> Option<u64> {
        let v = obj.get(key)?;
        self.count(v, &join(parent, key), limit)
    }

    pub fn within(&mut self, d: Duration, field: &str, limit: DurationLimit) -> Option<Duration> {
        if d < limit.min || d > limit.max {
            self.err(
                field,
                format!(
                    "expected a duration from {} to {}, got {}",
                    duration::format(limit.min),
                    duration::format(limit.max),
                    duration::format(d)
                ),
            );
            return None;
        }
        Some(d)
    }

    pub fn count(&mut self, v: &Value, field: &str, limit: CountLimit) -> Option<u64> {
        match v.as_u64() {
            Some(n) if (limit.min..=limit.max).contains(&n) => Some(n),
            _ => {
                self.err(
                    field,
                    format!(
                        "expected a whole number from {} to {}, got {}",
                        limit.min,
                        limit.max,
                        show(v)
                    ),
                );
                None
            }
        }
    }

    pub fn bool(&mut self, v: &Value, field: &str) -> Option<bool> {
        v.as_bool().or_else(|| {
            self.err(field, format!("expected true or false, got {}", show(v)));
            None
        })
    }

    /// An http or https URL the HTTP client accepts, and the `${VAR}` values in it.
    pub fn url(&mut self, v: &Value, field: &str) -> Option<(String, Vec<String>)> {
        let (url, secrets) = self.string(v, field)?;
        match target_url::parse(&url) {
            Ok(_) if url.bytes().any(|b| b.is_ascii_whitespace() || b.is_ascii_control()) => {
                self.err(field, "the URL contains spaces or control characters");
                None
            }
            // The HTTP client takes only what RFC 3986 allows; say so now rather than at every check.
            Ok(_) if ureq::http::Uri::try_from(url.as_str()).is_err() => {
                self.err(
                    field,
                    "the URL has characters that must be percent-encoded (such as < > \" { } | ^ `)",
                );
                None
            }
            Ok(_) => Some((url, secrets)),
            Err(m) if secrets.is_empty() => {
                self.err(field, m);
                None
            }
            Err(_) => {
                self.err(
                    field,
                    "expected an http or https URL with a host (value not shown: it uses ${...})",
                );
                None
            }
        }
    }

    /// An error that belongs to another source (an environment variable or a flag).
    pub fn err_in(&mut self, source: &str, message: impl Into<String>) {
        self.errors.push(ConfigError {
            source: source.to_string(),
            field: String::new(),
            message: message.into(),
        });
    }
}

/// `parent.key`, or `key` at the top level.
pub fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

pub fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// A value for an error message; strings are quoted, long values shortened.
pub fn show(v: &Value) -> String {
    let mut s = v.to_string();
    if s.len() > 60 {
        let cut = (0..=57).rev().find(|i| s.is_char_boundary(*i)).unwrap_or(0);
        s.truncate(cut);
        s.push_str("...");
    }
    s
}

/// Walks an object of HTTP header names to `values` (the words its message uses when it is not
/// an object): `each` gets every entry's path, name and value; a name HTTP does not allow is
/// reported and skipped.
pub fn each_header(
    ctx: &mut Ctx,
    v: &Value,
    field: &str,
    values: &str,
    mut each: impl FnMut(&mut Ctx, String, &String, &Value),
) {
    let Some(obj) = v.as_object() else {
        ctx.err(
            field,
            format!("expected an object of header names to {values}, got {}", kind(v)),
        );
        return;
    };
    for (name, value) in obj {
        let path = join(field, name);
        if valid_header_name(name) {
            each(ctx, path, name, value);
        } else {
            ctx.err(&path, "is not a valid HTTP header name");
        }
    }
}

/// A header name as HTTP allows it (a token).
fn valid_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Replaces each `${VAR}` with the variable's value. Returns the text and the values substituted
/// (secrets, to be kept out of anything displayed).
pub fn expand(text: &str, env: &Env) -> Result<(String, Vec<String>), String> {
    let mut out = String::with_capacity(text.len());
    let mut secrets = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| "unterminated \"${\" (write ${NAME} to use an environment variable)".to_string())?;
        let name = &after[..end];
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(format!("\"${{{name}}}\" is not a valid environment variable reference"));
        }
        let value = env
            .get(name)
            .ok_or_else(|| format!("environment variable {name} is not set (used as ${{{name}}})"))?;
        out.push_str(value);
        secrets.push(value.clone());
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok((out, secrets))
}

/// An environment variable's value, treating an empty one as unset (hosts often set `VAR=`).
pub fn env_var<'e>(env: &'e Env, name: &str) -> Option<&'e String> {
    env.get(name).filter(|s| !s.is_empty())
}
