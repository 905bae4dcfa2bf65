//! Discord webhooks: a JSON `content` message, names in `**bold**`.

use super::{Event, Request, Settings, message};

pub fn request(event: &Event, settings: &Settings) -> Request {
    let text = message::chat_text(event, |s| format!("**{s}**"), settings.status_page.as_deref());
    Request::post_json(&settings.url, &serde_json::json!({ "content": text }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::Transition;
    use crate::alert::testdata::{body_of, event, settings};

    #[test]
    fn down_reads_at_a_glance_with_the_status_page() {
        let r = request(&event(Transition::Down), &settings(Some("https://me.hf.space/")));
        let body = body_of(&r);
        let text = body["content"].as_str().unwrap();
        assert!(text.contains("**rag** is DOWN: status 503"), "{text}");
        assert!(text.contains("since 2026-11-28T10:50:00Z"), "{text}");
        assert!(text.contains("Status: https://me.hf.space/"), "{text}");
        assert_eq!(body.as_object().map(|o| o.len()), Some(1), "{body}");
    }
}
