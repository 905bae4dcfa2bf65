//! The plain JSON webhook: the facts as fields, for scripts and automation.

use super::{Event, Request, Settings, Transition};
use crate::timefmt;

pub fn request(event: &Event, settings: &Settings) -> Request {
    let mut body = serde_json::json!({
        "worker": event.worker,
        "url": event.url,
        "state": event.transition.state(),
        "error": event.error,
        "at": timefmt::rfc3339(event.at),
    });
    if let Transition::CertExpiring { days_left, .. } = event.transition {
        body["days_left"] = days_left.into();
    }
    Request::post_json(&settings.url, &body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::testdata::{body_of, cert_expiring, event, settings};

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
        assert!(up.get("days_left").is_none());
        let cert = body_of(&request(&event(cert_expiring(6)), &settings(None)));
        assert_eq!(cert["state"], "cert_expiring");
        assert_eq!(cert["days_left"], 6);
        assert_eq!(cert["error"], serde_json::Value::Null);
    }
}
