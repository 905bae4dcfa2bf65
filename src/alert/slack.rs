//! Slack incoming webhooks (and Mattermost, Rocket.Chat): a JSON `text` message, names in
//! `*bold*` (Slack's mrkdwn).
//!
//! Followed: https://api.slack.com/messaging/webhooks (POST the webhook URL with
//! `Content-type: application/json` and `{"text": ...}`).

use super::Request;
use super::message::{Markup, Notice};

pub fn request(n: &Notice, webhook_url: &str) -> Request {
    Request::post_json(webhook_url, &serde_json::json!({ "text": n.text(Markup::Slack) }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::testdata::{HOOK, body_of, notice};
    use crate::streak::Transition;

    #[test]
    fn up_says_how_long_it_was_down() {
        let body = body_of(&request(&notice(Transition::Up), HOOK));
        let text = body["text"].as_str().unwrap();
        assert!(text.contains("*rag* is back UP after 5 min"), "{text}");
        assert!(!text.contains("**"), "{text}");
        assert!(!text.contains("Status:"), "no status page configured: {text}");
    }
}
