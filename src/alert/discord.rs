//! Discord webhooks: a JSON `content` message, names in `**bold**`.
//!
//! Followed: https://discord.com/developers/docs/resources/webhook#execute-webhook (POST the
//! webhook URL with a JSON body; `content` is the message text, Markdown allowed).

use super::Request;
use super::message::{Markup, Notice};

pub fn request(n: &Notice, webhook_url: &str) -> Request {
    Request::post_json(webhook_url, &serde_json::json!({ "content": n.text(Markup::Markdown) }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::testdata::{HOOK, body_of, event};
    use crate::streak::Transition;

    #[test]
    fn down_reads_at_a_glance_with_the_status_page() {
        let n = Notice::new(&event(Transition::Down), Some("https://me.hf.space/"));
        let body = body_of(&request(&n, HOOK));
        let text = body["content"].as_str().unwrap();
        assert!(text.contains("**rag** is DOWN: status 503"), "{text}");
        assert!(text.contains("since 2026-11-28T10:50:00Z"), "{text}");
        assert!(text.contains("Status: https://me.hf.space/"), "{text}");
        assert_eq!(body.as_object().map(|o| o.len()), Some(1), "{body}");
    }
}
