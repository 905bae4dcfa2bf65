//! The plain JSON webhook: the facts as fields, for scripts and automation.

use super::Request;
use super::message::Notice;

pub fn request(n: &Notice, webhook_url: &str) -> Request {
    let mut body = serde_json::json!({
        "worker": n.worker,
        "url": n.url,
        "state": n.state,
        "error": n.error,
        "at": n.at,
    });
    if let Some(days) = n.days_left {
        body["days_left"] = days.into();
    }
    Request::post_json(webhook_url, &body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::testdata::{HOOK, body_of, event};
    use crate::streak::Transition;

    #[test]
    fn has_the_spec_fields() {
        let n = Notice::new(&event(Transition::Down), Some("https://me/"));
        let v = body_of(&request(&n, HOOK));
        assert_eq!(v["worker"], "rag");
        assert_eq!(v["url"], "https://rag.hf.space/health");
        assert_eq!(v["state"], "down");
        assert_eq!(v["error"], "status 503");
        assert_eq!(v["at"], "2026-11-28T10:55:00Z");
        assert_eq!(v.as_object().map(|o| o.len()), Some(5), "no status page here: {v}");
        let up = body_of(&request(&Notice::new(&event(Transition::Up), None), HOOK));
        assert_eq!(up["state"], "up");
        assert_eq!(up["error"], serde_json::Value::Null);
        assert!(up.get("days_left").is_none());
        let mut e = event(Transition::Up);
        e.transition = Transition::CertExpiring {
            days_left: 6,
            expires_at: e.at,
        };
        let cert = body_of(&request(&Notice::new(&e, None), HOOK));
        assert_eq!(
            (cert["state"].as_str(), cert["days_left"].as_i64()),
            (Some("cert_expiring"), Some(6))
        );
    }
}
