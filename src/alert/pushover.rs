//! Pushover: the Message API.
//!
//! Followed: https://pushover.net/api (POST `https://api.pushover.net/1/messages.json` with
//! `token` (the application's API token), `user` (the user or group key), `message` (required,
//! at most 1,024 characters), `title` (at most 250) and `priority` (-2..2: 1 is high priority
//! and bypasses quiet hours, 0 normal); the parameters may be sent as a JSON body; a refusal is
//! HTTP 4xx with `{"status": 0, "errors": ["..."], "request": "..."}`).

use super::message::Notice;
use super::{Request, explain, join};
use crate::config::channel::pushover::Settings;

const MAX_MESSAGE: usize = 1024;
const MAX_TITLE: usize = 250;

pub fn request(n: &Notice, s: &Settings) -> Request {
    Request::post_json(
        &join(&s.api_url, "/1/messages.json"),
        &serde_json::json!({
            "token": s.app_token,
            "user": s.user_key,
            "title": truncate(&n.title, MAX_TITLE),
            "message": truncate(&n.body, MAX_MESSAGE),
            "priority": if n.state == "down" { 1 } else { 0 },
        }),
    )
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    s.chars().take(max - 1).collect::<String>() + "…"
}

/// Where requests go, for log lines (the keys travel in the body).
pub fn shown(s: &Settings) -> String {
    join(&s.api_url, "/1/messages.json")
}

/// The `errors` of a refusal, joined.
pub fn explain_error(body: &str, s: &Settings) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(body).ok()?;
    let errors: Vec<&str> = v["errors"].as_array()?.iter().filter_map(|e| e.as_str()).collect();
    explain(Some(&errors.join("; ")), &[&s.user_key, &s.app_token])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::testdata::notice;
    use crate::config::channel::pushover::DEFAULT_API_URL;
    use crate::streak::Transition;

    fn settings() -> Settings {
        Settings {
            user_key: "uQiRzpo4DXghDmr9QzzfQu27cmVRsG".into(),
            app_token: "azGDORePK8gMaC0QOYAMyEEuzJnyUi".into(),
            api_url: DEFAULT_API_URL.into(),
        }
    }

    #[test]
    fn posts_messages_json_with_the_documented_fields() {
        let r = request(&notice(Transition::Down), &settings());
        assert_eq!(r.url, "https://api.pushover.net/1/messages.json");
        let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(v["token"], "azGDORePK8gMaC0QOYAMyEEuzJnyUi");
        assert_eq!(v["user"], "uQiRzpo4DXghDmr9QzzfQu27cmVRsG");
        assert_eq!(v["title"], "🔴 rag is DOWN");
        assert_eq!(v["priority"], 1);
        let up: serde_json::Value = serde_json::from_str(&request(&notice(Transition::Up), &settings()).body).unwrap();
        assert_eq!(up["priority"], 0);
    }

    #[test]
    fn a_long_message_is_cut_to_the_api_limit() {
        let mut n = notice(Transition::Down);
        n.body = "x".repeat(5000);
        let v: serde_json::Value = serde_json::from_str(&request(&n, &settings()).body).unwrap();
        assert_eq!(v["message"].as_str().unwrap().chars().count(), MAX_MESSAGE);
    }

    #[test]
    fn refusals_are_explained_without_keys() {
        let body = r#"{"user":"invalid","errors":["user identifier is not a valid user, group, or subscribed user key"],"status":0,"request":"5042853c-402d-4a18-abcb-168734a801de"}"#;
        assert_eq!(
            explain_error(body, &settings()).as_deref(),
            Some("user identifier is not a valid user, group, or subscribed user key")
        );
    }
}
