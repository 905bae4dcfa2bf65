//! Conditions a check's response must meet beyond its status code and `expect_body`:
//! `expect_body_absent`, `expect_header`, `expect_json` and `expect_latency`. Pure: the probe hands
//! over what it read (headers, the first 1 MiB of the body, the latency) and gets back the first
//! failed condition as the check's error text, short and specific
//! (`/status is "loading", expected "UP"`, `content-type is "text/html"`).

use serde_json::Value;
use std::time::Duration;

/// How one `expect_json` item compares the value at its pointer.
#[derive(Debug, Clone, PartialEq)]
pub enum JsonTest {
    Equals(Value),
    NotEquals(Value),
    /// `exists: true` (the pointer must find a value) or `false` (it must not).
    Exists(bool),
    OneOf(Vec<Value>),
}

/// One `expect_json` item: an RFC 6901 pointer and what its value must be.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonCheck {
    pub pointer: String,
    pub test: JsonTest,
}

/// The conditions of one worker (all optional; empty means none).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Conditions {
    /// `expect_latency`: a successful check slower than this leaves the worker degraded.
    pub latency: Option<Duration>,
    pub json: Vec<JsonCheck>,
    /// `expect_header`: lowercased names, each with a lowercased substring its value must hold.
    pub headers: Vec<(String, String)>,
    /// `expect_body_absent`: text that must not appear in the first 1 MiB of the body.
    pub body_absent: Option<String>,
}

impl Conditions {
    /// Whether the probe must keep the body (up to 1 MiB) rather than only scan it.
    pub fn needs_body(&self) -> bool {
        !self.json.is_empty() || self.body_absent.is_some()
    }
}

/// The first failed condition on a response's headers (`(name, value)` pairs as received).
pub fn check_headers(wanted: &[(String, String)], got: &[(String, String)]) -> Result<(), String> {
    for (name, want) in wanted {
        let values: Vec<&str> = got
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect();
        if values.is_empty() {
            return Err(format!("no {name} header"));
        }
        if !values.iter().any(|v| v.to_ascii_lowercase().contains(want.as_str())) {
            return Err(format!("{name} is {}", quoted(values[0], 60)));
        }
    }
    Ok(())
}

/// The first failed condition on the body (its first 1 MiB; `cut`: the body went on past it).
pub fn check_body(c: &Conditions, body: &[u8], cut: bool) -> Result<(), String> {
    if let Some(absent) = &c.body_absent {
        if contains(body, absent.as_bytes()) {
            return Err(format!("body contains {}", quoted(absent, 60)));
        }
    }
    if c.json.is_empty() {
        return Ok(());
    }
    // Read as text, as the configuration is: one JSON parser in the binary, not two.
    let Ok(text) = std::str::from_utf8(body) else {
        return Err("body is not JSON (not UTF-8)".to_string());
    };
    let doc: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(_) if cut => return Err("body is not JSON within its first 1 MiB".to_string()),
        Err(e) => return Err(format!("body is not JSON (line {} column {})", e.line(), e.column())),
    };
    c.json.iter().try_for_each(|j| check_json(j, &doc))
}

fn check_json(j: &JsonCheck, doc: &Value) -> Result<(), String> {
    let p = &j.pointer;
    let got = doc.pointer(p);
    let shown = |v: &Value| shorten(&v.to_string(), 60);
    match (&j.test, got) {
        (JsonTest::Exists(true), None) => Err(format!("{p} is missing")),
        (JsonTest::Exists(false), Some(v)) => Err(format!("{p} is {}, expected none", shown(v))),
        (JsonTest::Exists(_), _) => Ok(()),
        (JsonTest::Equals(want), None) => Err(format!("{p} is missing, expected {}", shown(want))),
        (JsonTest::Equals(want), Some(v)) if v != want => Err(format!("{p} is {}, expected {}", shown(v), shown(want))),
        (JsonTest::NotEquals(bad), Some(v)) if v == bad => Err(format!("{p} is {}", shown(v))),
        (JsonTest::OneOf(list), None) => Err(format!(
            "{p} is missing, expected one of {}",
            shown(&Value::from(list.clone()))
        )),
        (JsonTest::OneOf(list), Some(v)) if !list.contains(v) => Err(format!(
            "{p} is {}, expected one of {}",
            shown(v),
            shown(&Value::from(list.clone()))
        )),
        _ => Ok(()),
    }
}

/// `latency 3.2 s over 2 s` when a successful check took longer than `limit`.
pub fn check_latency(limit: Option<Duration>, latency: Duration) -> Option<String> {
    let limit = limit?;
    (latency > limit).then(|| format!("latency {} over {}", seconds(latency), seconds(limit)))
}

/// `3.2 s`, `2 s`, `0.25 s`: seconds with at most the decimals that say something, one for
/// a latency of a second or more.
fn seconds(d: Duration) -> String {
    let s = d.as_secs_f64();
    let text = if s >= 1.0 { format!("{s:.1}") } else { format!("{s:.3}") };
    let text = text.trim_end_matches('0').trim_end_matches('.');
    format!("{text} s")
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || hay.windows(needle.len()).any(|w| w == needle)
}

fn shorten(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    s.chars().take(max).collect::<String>() + "..."
}

fn quoted(s: &str, max: usize) -> String {
    format!("{:?}", shorten(s, max))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn json_cond(pointer: &str, test: JsonTest) -> Conditions {
        Conditions {
            json: vec![JsonCheck {
                pointer: pointer.into(),
                test,
            }],
            ..Conditions::default()
        }
    }

    #[test]
    fn json_pointers_compare_values() {
        let body = br#"{"status": "loading", "ready": false, "n": 3, "a": {"b/c": [1, 2]}}"#;
        let c = json_cond("/status", JsonTest::Equals(json!("UP")));
        assert_eq!(
            check_body(&c, body, false),
            Err(r#"/status is "loading", expected "UP""#.into())
        );
        let c = json_cond("/status", JsonTest::Equals(json!("loading")));
        assert_eq!(check_body(&c, body, false), Ok(()));
        let c = json_cond("/ready", JsonTest::NotEquals(json!(false)));
        assert_eq!(check_body(&c, body, false), Err("/ready is false".into()));
        let c = json_cond("/a/b~1c/1", JsonTest::Equals(json!(2)));
        assert_eq!(check_body(&c, body, false), Ok(()), "RFC 6901 escapes");
        let c = json_cond("/missing", JsonTest::Exists(true));
        assert_eq!(check_body(&c, body, false), Err("/missing is missing".into()));
        let c = json_cond("/n", JsonTest::Exists(false));
        assert_eq!(check_body(&c, body, false), Err("/n is 3, expected none".into()));
        let c = json_cond("/n", JsonTest::OneOf(vec![json!(1), json!(2)]));
        assert_eq!(
            check_body(&c, body, false),
            Err("/n is 3, expected one of [1,2]".into())
        );
        let c = json_cond("/n", JsonTest::OneOf(vec![json!(3)]));
        assert_eq!(check_body(&c, body, false), Ok(()));
        let c = json_cond("/status", JsonTest::Exists(true));
        assert_eq!(
            check_body(&c, b"<html>", false),
            Err("body is not JSON (line 1 column 1)".into())
        );
    }

    #[test]
    fn absent_text_and_headers() {
        let c = Conditions {
            body_absent: Some("Application Error".into()),
            ..Conditions::default()
        };
        assert_eq!(
            check_body(&c, b"<h1>Application Error</h1>", false),
            Err(r#"body contains "Application Error""#.into())
        );
        assert_eq!(check_body(&c, b"fine", false), Ok(()));
        let wanted = vec![("content-type".to_string(), "application/json".to_string())];
        let html = vec![("Content-Type".to_string(), "text/html".to_string())];
        assert_eq!(
            check_headers(&wanted, &html),
            Err(r#"content-type is "text/html""#.into())
        );
        let json = vec![(
            "content-type".to_string(),
            "Application/JSON; charset=utf-8".to_string(),
        )];
        assert_eq!(check_headers(&wanted, &json), Ok(()));
        assert_eq!(check_headers(&wanted, &[]), Err("no content-type header".into()));
    }

    #[test]
    fn latency_reads_in_seconds() {
        let two = Some(Duration::from_secs(2));
        assert_eq!(
            check_latency(two, Duration::from_millis(3200)).as_deref(),
            Some("latency 3.2 s over 2 s")
        );
        assert_eq!(check_latency(two, Duration::from_secs(2)), None);
        assert_eq!(check_latency(None, Duration::from_secs(60)), None);
        assert_eq!(
            check_latency(Some(Duration::from_millis(250)), Duration::from_millis(312)).as_deref(),
            Some("latency 0.312 s over 0.25 s")
        );
    }
}
