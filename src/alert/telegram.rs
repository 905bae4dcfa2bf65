//! Telegram: the Bot API's sendMessage method.
//!
//! Followed: https://core.telegram.org/bots/api#sendmessage (POST
//! `https://api.telegram.org/bot<token>/sendMessage`, JSON body with `chat_id` and `text`;
//! `disable_web_page_preview` keeps the worker's URL from unfolding into a preview card) and
//! https://core.telegram.org/bots/api#making-requests (every answer is
//! `{"ok": bool, "description": "...", "error_code": N}`). No `parse_mode` is sent, so the text
//! is plain and a worker error can never be mistaken for markup.

use super::message::{Markup, Notice};
use super::{Request, explain};
use crate::config::channel::telegram::Settings;

pub fn request(n: &Notice, s: &Settings) -> Request {
    let base = s.api_url.trim_end_matches('/');
    // A numeric id goes as a number, as the API documents it; `@channel` stays a string.
    let chat_id = match s.chat_id.parse::<i64>() {
        Ok(id) => serde_json::json!(id),
        Err(_) => serde_json::json!(s.chat_id),
    };
    Request::post_json(
        &format!("{base}/bot{}/sendMessage", s.bot_token),
        &serde_json::json!({
            "chat_id": chat_id,
            "text": n.text(Markup::Plain),
            "disable_web_page_preview": true,
        }),
    )
}

/// Where requests go, for log lines: the bot token is the credential, so it is left out.
pub fn shown(s: &Settings) -> String {
    format!("{}/botREDACTED/sendMessage", s.api_url.trim_end_matches('/'))
}

/// The `description` of a refusal (`Bad Request: chat not found`).
pub fn explain_error(body: &str, s: &Settings) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(body).ok()?;
    explain(v["description"].as_str(), &[&s.bot_token])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::testdata::notice;
    use crate::config::channel::telegram::DEFAULT_API_URL;
    use crate::streak::Transition;

    fn settings() -> Settings {
        Settings {
            bot_token: "123456:ABC-secret".into(),
            chat_id: "-1001234567890".into(),
            api_url: DEFAULT_API_URL.into(),
        }
    }

    #[test]
    fn posts_send_message_with_the_documented_fields() {
        let r = request(&notice(Transition::Down), &settings());
        assert_eq!(r.method, "POST");
        assert_eq!(r.url, "https://api.telegram.org/bot123456:ABC-secret/sendMessage");
        assert_eq!(shown(&settings()), "https://api.telegram.org/botREDACTED/sendMessage");
        assert_eq!(r.header("content-type"), Some("application/json"));
        let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(v["chat_id"], -1001234567890_i64);
        assert_eq!(v["disable_web_page_preview"], true);
        assert!(v.get("parse_mode").is_none());
        let text = v["text"].as_str().unwrap();
        assert!(text.starts_with("🔴 rag is DOWN: status 503"), "{text}");
        assert!(!text.contains("**"), "plain text: {text}");
    }

    #[test]
    fn a_channel_username_stays_a_string() {
        let s = Settings {
            chat_id: "@my_alerts".into(),
            api_url: "http://127.0.0.1:9/".into(),
            ..settings()
        };
        let r = request(&notice(Transition::Up), &s);
        assert!(r.url.starts_with("http://127.0.0.1:9/bot"));
        let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(v["chat_id"], "@my_alerts");
    }

    #[test]
    fn refusals_are_explained_without_the_token() {
        let body = r#"{"ok":false,"error_code":400,"description":"Bad Request: chat not found"}"#;
        assert_eq!(
            explain_error(body, &settings()).as_deref(),
            Some("Bad Request: chat not found")
        );
        let echo = r#"{"ok":false,"description":"token 123456:ABC-secret is bad"}"#;
        assert_eq!(
            explain_error(echo, &settings()).as_deref(),
            Some("token REDACTED is bad")
        );
        assert_eq!(explain_error("<html>", &settings()), None);
    }
}
