//! The words of an alert, shared by the chat providers: one line a person reads at a glance
//! ("🔴 rag is DOWN: status 503 (url, since ...)"), and the status-page link under it.

use super::{Event, Transition, down_for};
use crate::timefmt;

/// How a chat service marks bold text (Discord `**x**`, Slack `*x*`).
pub type Bold = fn(&str) -> String;

/// The chat message for `event`, with the worker's name in bold and the status page linked.
pub fn chat_text(event: &Event, bold: Bold, status_page: Option<&str>) -> String {
    let mut text = match event.transition {
        Transition::Down => format!(
            "🔴 {} is DOWN: {} ({}, since {})",
            bold(&event.worker),
            event.error.as_deref().unwrap_or("check failed"),
            event.url,
            timefmt::rfc3339(event.since.unwrap_or(event.at)),
        ),
        Transition::CertExpiring { days_left, expires_at } => format!(
            "🟠 {}: TLS certificate {} ({})",
            bold(&event.worker),
            expires_in(days_left),
            timefmt::rfc3339(expires_at),
        ),
        Transition::Up => {
            let was = down_for(event).map(|d| format!(" after {d} down")).unwrap_or_default();
            format!("🟢 {} is UP again{was} ({})", bold(&event.worker), event.url)
        }
    };
    if let Some(page) = status_page {
        text.push_str(&format!("\nStatus: {page}"));
    }
    text
}

/// "expires in 6 days", "expires in 1 day", "expires today", "has expired".
fn expires_in(days_left: i64) -> String {
    match days_left {
        d if d < 0 => "has expired".to_string(),
        0 => "expires today".to_string(),
        1 => "expires in 1 day".to_string(),
        d => format!("expires in {d} days"),
    }
}

/// The public status page, told from the self-ping URL (`https://me.hf.space/health` -> `https://me.hf.space/`).
pub fn status_page_from(self_url: &str) -> String {
    let base = self_url.split('?').next().unwrap_or(self_url);
    let base = base
        .strip_suffix("/healthz")
        .or_else(|| base.strip_suffix("/health"))
        .unwrap_or(base);
    format!("{}/", base.trim_end_matches('/'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::testdata::{cert_expiring, event};

    #[test]
    fn cert_warning_text_says_when() {
        let text = |d| chat_text(&event(cert_expiring(d)), plain, None);
        assert_eq!(
            text(6),
            "🟠 <rag>: TLS certificate expires in 6 days (2026-12-04T10:00:00Z)"
        );
        assert!(text(1).contains("expires in 1 day ("), "{}", text(1));
        assert!(text(0).contains("expires today"));
        assert!(text(-1).contains("TLS certificate has expired"));
    }

    fn plain(s: &str) -> String {
        format!("<{s}>")
    }

    #[test]
    fn down_text_names_error_url_and_start() {
        let text = chat_text(&event(Transition::Down), plain, None);
        assert_eq!(
            text,
            "🔴 <rag> is DOWN: status 503 (https://rag.hf.space/health, since 2026-11-28T10:50:00Z)"
        );
    }

    #[test]
    fn up_text_says_how_long_and_links_the_page() {
        let text = chat_text(&event(Transition::Up), plain, Some("https://me.hf.space/"));
        assert_eq!(
            text,
            "🟢 <rag> is UP again after 5m down (https://rag.hf.space/health)\nStatus: https://me.hf.space/"
        );
    }

    #[test]
    fn status_page_from_self_url() {
        assert_eq!(status_page_from("https://me.hf.space/health"), "https://me.hf.space/");
        assert_eq!(status_page_from("https://x.onrender.com"), "https://x.onrender.com/");
    }
}
