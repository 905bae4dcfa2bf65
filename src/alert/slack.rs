//! Slack incoming webhooks: a JSON `text` message, names in `*bold*` (Slack's mrkdwn).

use super::{Event, Request, Settings, message};

pub fn request(event: &Event, settings: &Settings) -> Request {
    let text = message::chat_text(event, |s| format!("*{s}*"), settings.status_page.as_deref());
    Request::post_json(&settings.url, &serde_json::json!({ "text": text }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::Transition;
    use crate::alert::testdata::{body_of, event, settings};

    #[test]
    fn up_says_how_long_it_was_down() {
        let body = body_of(&request(&event(Transition::Up), &settings(None)));
        let text = body["text"].as_str().unwrap();
        assert!(text.contains("*rag* is UP again after 5m down"), "{text}");
        assert!(!text.contains("**"), "{text}");
        assert!(!text.contains("Status:"), "no status page configured: {text}");
    }
}
