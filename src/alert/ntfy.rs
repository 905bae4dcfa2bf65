//! ntfy: publish to a topic URL.
//!
//! Followed: https://docs.ntfy.sh/publish/ (POST the message as the body to the topic URL;
//! `Title`, `Priority` (`min`, `low`, `default`, `high`, `max`) and `Tags` headers, where a tag
//! that names an emoji shortcode is shown as that emoji before the title; access tokens go in
//! `Authorization: Bearer`; errors are `{"code": 40101, "http": 401, "error": "...", "link": ...}`).
//! Header values must be ASCII, so the emoji travels as a tag, not in the title.

use super::message::Notice;
use super::{Request, explain, shown_host};
use crate::config::channel::ntfy::Settings;

pub fn request(n: &Notice, s: &Settings) -> Request {
    let (priority, tag) = match n.state {
        "down" => ("high", "red_circle"),
        "up" => ("default", "green_circle"),
        "cert_expiring" => ("default", "orange_circle"),
        _ => ("default", "bell"),
    };
    let mut headers = vec![
        ("Content-Type".to_string(), "text/plain; charset=utf-8".to_string()),
        ("Title".to_string(), ascii_title(n)),
        ("Priority".to_string(), priority.to_string()),
        ("Tags".to_string(), tag.to_string()),
    ];
    if let Some(t) = &s.token {
        headers.push(("Authorization".to_string(), format!("Bearer {t}")));
    }
    Request {
        method: "POST",
        url: s.url.clone(),
        headers,
        body: n.body.clone(),
    }
}

/// Where requests go, for log lines: the server only (the topic name is its password).
pub fn shown(s: &Settings) -> String {
    shown_host(&s.url)
}

/// The title without its leading emoji (the tag shows it), and only printable ASCII.
fn ascii_title(n: &Notice) -> String {
    let t: String = n.title.chars().filter(|c| c.is_ascii_graphic() || *c == ' ').collect();
    t.trim().to_string()
}

/// The `error` of a refusal (`unauthorized`), with ntfy's own code.
pub fn explain_error(body: &str, s: &Settings) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(body).ok()?;
    let text = match v["code"].as_u64() {
        Some(code) => format!("{} (ntfy code {code})", v["error"].as_str()?),
        None => v["error"].as_str()?.to_string(),
    };
    explain(Some(&text), &[&s.url, s.token.as_deref().unwrap_or("")])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::testdata::notice;
    use crate::streak::Transition;

    #[test]
    fn publishes_the_body_with_title_priority_and_tags() {
        let s = Settings {
            url: "https://ntfy.sh/secret-topic".into(),
            token: Some("tk_abc".into()),
        };
        let r = request(&notice(Transition::Down), &s);
        assert_eq!((r.method, r.url.as_str()), ("POST", "https://ntfy.sh/secret-topic"));
        assert_eq!(shown(&s), "https://ntfy.sh/...");
        assert_eq!(r.header("Title"), Some("rag is DOWN"));
        assert_eq!(r.header("Priority"), Some("high"));
        assert_eq!(r.header("Tags"), Some("red_circle"));
        assert_eq!(r.header("Authorization"), Some("Bearer tk_abc"));
        let body = r.body.clone();
        assert!(body.starts_with("status 503\nhttps://rag.hf.space/health\n"), "{body}");
        let up = request(&notice(Transition::Up), &Settings { token: None, ..s });
        assert_eq!(up.header("Priority"), Some("default"));
        assert_eq!(up.header("Authorization"), None);
        assert!(up.headers.iter().all(|(_, v)| v.is_ascii()));
    }

    #[test]
    fn refusals_are_explained() {
        let s = Settings {
            url: "https://ntfy.sh/t".into(),
            token: None,
        };
        let body =
            r#"{"code":40101,"http":401,"error":"unauthorized","link":"https://ntfy.sh/docs/publish/#authentication"}"#;
        assert_eq!(
            explain_error(body, &s).as_deref(),
            Some("unauthorized (ntfy code 40101)")
        );
    }
}
