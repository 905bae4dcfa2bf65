//! Gotify: push a message to an application.
//!
//! Followed: https://gotify.net/docs/pushmsg and the API reference at
//! https://gotify.net/api-docs (POST `/message` with the application token in the
//! `X-Gotify-Key` header, JSON `{"title", "message", "priority"}`; priority 8 and above is shown
//! as a high-priority notification by the Android app, 4-7 as normal; errors are
//! `{"error": "Unauthorized", "errorCode": 401, "errorDescription": "..."}`).

use super::message::Notice;
use super::{Request, explain, join, shown_host};
use crate::config::channel::gotify::Settings;

pub fn request(n: &Notice, s: &Settings) -> Request {
    let priority = if n.state == "down" { 8 } else { 4 };
    let mut r = Request::post_json(
        &join(&s.url, "/message"),
        &serde_json::json!({ "title": n.title, "message": n.body, "priority": priority }),
    );
    r.headers.push(("X-Gotify-Key".to_string(), s.token.clone()));
    r
}

/// Where requests go, for log lines.
pub fn shown(s: &Settings) -> String {
    shown_host(&s.url).replace("/...", "/message")
}

/// The `errorDescription` of a refusal.
pub fn explain_error(body: &str, s: &Settings) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(body).ok()?;
    explain(v["errorDescription"].as_str().or(v["error"].as_str()), &[&s.token])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::testdata::notice;
    use crate::streak::Transition;

    #[test]
    fn posts_message_with_the_app_token_header() {
        let s = Settings {
            url: "https://push.example.com/".into(),
            token: "AbCdEf.secret".into(),
        };
        let r = request(&notice(Transition::Down), &s);
        assert_eq!(r.url, "https://push.example.com/message");
        assert_eq!(shown(&s), "https://push.example.com/message");
        assert_eq!(r.header("X-Gotify-Key"), Some("AbCdEf.secret"));
        assert_eq!(r.header("Content-Type"), Some("application/json"));
        let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(v["title"], "🔴 rag is DOWN");
        assert_eq!(v["priority"], 8);
        assert!(v["message"].as_str().unwrap().contains("status 503"));
        let up: serde_json::Value = serde_json::from_str(&request(&notice(Transition::Up), &s).body).unwrap();
        assert_eq!(up["priority"], 4);
    }

    #[test]
    fn refusals_are_explained() {
        let s = Settings {
            url: "http://x".into(),
            token: "t".into(),
        };
        let body = r#"{"error":"Unauthorized","errorCode":401,"errorDescription":"you need to provide a valid access token or user credentials to access this api"}"#;
        assert!(
            explain_error(body, &s)
                .unwrap()
                .starts_with("you need to provide a valid access token")
        );
    }
}
