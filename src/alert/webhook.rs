//! The `webhook` type: any service that takes an HTTP request (Matrix, Mattermost, Home
//! Assistant, n8n, ...). The body is the user's template with `{{worker}}`, `{{url}}`,
//! `{{state}}`, `{{error}}`, `{{at}}` and `{{message}}` replaced in one pass, each value
//! JSON-escaped when the Content-Type is JSON, so a quote in an error cannot break the payload.

use super::message::{Markup, Notice};
use super::{Request, shown_host};
use crate::config::channel::webhook::Settings;

impl Settings {
    fn content_type(&self) -> &str {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-type"))
            .map_or("application/json", |(_, v)| v.as_str())
    }
}

pub fn request(n: &Notice, s: &Settings) -> Request {
    let json = is_json(s.content_type());
    let message = n.text(Markup::Plain);
    let body = render(&s.body, |name| {
        let value = match name {
            "worker" => n.worker.as_str(),
            "url" => n.url.as_str(),
            "state" => n.state,
            "error" => n.error.as_deref().unwrap_or(""),
            "at" => n.at.as_str(),
            "message" => message.as_str(),
            _ => return None,
        };
        Some(if json { json_escape(value) } else { value.to_string() })
    });
    let mut headers = s.headers.clone();
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("content-type")) {
        headers.push(("Content-Type".into(), "application/json".into()));
    }
    Request {
        method: s.method,
        url: s.url.clone(),
        headers,
        body,
    }
}

/// Where requests go, for log lines: the host only (the URL is the credential).
pub fn shown(s: &Settings) -> String {
    shown_host(&s.url)
}

/// `application/json`, `application/vnd.x+json; charset=utf-8`, ...
fn is_json(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    essence == "application/json" || essence.ends_with("+json")
}

/// The inside of a JSON string literal for `s` (no surrounding quotes).
fn json_escape(s: &str) -> String {
    let quoted = serde_json::Value::String(s.to_string()).to_string();
    quoted[1..quoted.len() - 1].to_string()
}

/// Replaces each `{{name}}` that `value` knows; anything else is copied as written. One pass,
/// so a value that itself contains `{{...}}` is never expanded again.
fn render(template: &str, value: impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(template.len() + 128);
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after
            .find("}}")
            .and_then(|end| Some((end, value(after[..end].trim())?)))
        {
            Some((end, v)) => {
                out.push_str(&v);
                rest = &after[end + 2..];
            }
            None => {
                out.push_str("{{");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::testdata::notice;
    use crate::config::channel::webhook::{DEFAULT_BODY, unknown_placeholders};
    use crate::streak::Transition;

    fn settings(body: &str, headers: &[(&str, &str)]) -> Settings {
        Settings {
            url: "https://hooks.example.com/abc?key=s3cret".into(),
            method: "POST",
            headers: headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            body: body.into(),
        }
    }

    #[test]
    fn values_are_json_escaped_for_json_bodies() {
        let mut n = notice(Transition::Down);
        n.error = Some(r#"body had "quotes" and a \ backslash"#.into());
        let r = request(&n, &settings(DEFAULT_BODY, &[]));
        assert_eq!(r.header("Content-Type"), Some("application/json"));
        assert_eq!(shown(&settings(DEFAULT_BODY, &[])), "https://hooks.example.com/...");
        let v: serde_json::Value = serde_json::from_str(&r.body).expect("still valid JSON");
        assert_eq!(v["error"], r#"body had "quotes" and a \ backslash"#);
        assert_eq!(v["state"], "down");
        assert_eq!(v["worker"], "rag");
        assert!(v["message"].as_str().unwrap().starts_with("🔴 rag is DOWN"));
    }

    #[test]
    fn other_content_types_get_the_raw_values() {
        let s = settings(
            "{{worker}} is {{state}}: {{error}} {{unknown}} {{",
            &[("Content-Type", "text/plain"), ("X-Token", "t")],
        );
        let mut n = notice(Transition::Down);
        n.error = Some(r#"a "b" {{worker}}"#.into());
        let r = request(&n, &s);
        assert_eq!(r.header("X-Token"), Some("t"));
        assert_eq!(r.body, r#"rag is down: a "b" {{worker}} {{unknown}} {{"#);
    }

    #[test]
    fn json_is_told_by_the_media_type() {
        assert!(is_json("application/json; charset=utf-8"));
        assert!(is_json("application/vnd.api+json"));
        assert!(!is_json("text/plain"));
        assert!(!is_json("application/x-www-form-urlencoded"));
    }

    #[test]
    fn unknown_placeholders_are_found() {
        assert_eq!(unknown_placeholders(DEFAULT_BODY), Vec::<String>::new());
        assert_eq!(unknown_placeholders("{{ worker }} {{wroker}}"), ["wroker"]);
    }
}
