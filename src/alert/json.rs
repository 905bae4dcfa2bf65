//! The plain JSON webhook: the facts as fields, for scripts and automation.

use super::{Event, Request, Settings};
use crate::timefmt;

pub fn request(event: &Event, settings: &Settings) -> Request {
    let body = serde_json::json!({
        "worker": event.worker,
        "url": event.url,
        "state": event.transition.state(),
        "error": event.error,
        "at": timefmt::rfc3339(event.at),
    });
    Request::post_json(&settings.url, &body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::Transition;
    use crate::alert::testdata::{body_of, event, settings};

    #[test]
    fn has_the_spec_fields() {
        let v = body_of(&request(&event(Transition::Down), &settings(Some("https://me/"))));
        assert_eq!(v["worker"], "rag");
        assert_eq!(v["url"], "https://rag.hf.space/health");
        assert_eq!(v["state"], "down");
        assert_eq!(v["error"], "status 503");
        assert_eq!(v["at"], "2026-11-28T10:55:00Z");
        assert_eq!(v.as_object().map(|o| o.len()), Some(5), "no status page here: {v}");
        let up = body_of(&request(&event(Transition::Up), &settings(None)));
        assert_eq!(up["state"], "up");
        assert_eq!(up["error"], serde_json::Value::Null);
    }
}
