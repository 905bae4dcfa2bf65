//! `/badge/{name}.svg`: a shields-style badge, "name | 99.9%" or "name | down".

use crate::state::{Health, TargetView};
use crate::web::html::escape;

/// Approximate width of text in 11px Verdana, which shields-style badges assume.
fn text_width(s: &str) -> u32 {
    s.chars()
        .map(|c| match c {
            'i' | 'l' | 'j' | '.' | ',' | ':' | '|' | '!' | '\'' => 4,
            'm' | 'w' | 'M' | 'W' | '%' => 10,
            c if c.is_ascii_uppercase() || c.is_ascii_digit() => 8,
            _ => 7,
        })
        .sum()
}

/// The right-hand text and colour: the state when not up, else the 30-day uptime.
pub fn value(w: &TargetView) -> (String, &'static str) {
    match (w.health, w.uptime[2]) {
        (Health::Pending, _) => ("pending".to_string(), "#9f9f9f"),
        (Health::Down, _) => ("down".to_string(), "#e05d44"),
        (Health::Paused, _) => ("paused".to_string(), "#9f9f9f"),
        (Health::Maintenance, _) => ("maintenance".to_string(), "#5b7bd5"),
        (Health::Degraded, _) => ("degraded".to_string(), "#dfb317"),
        (Health::Up, Some(u)) => {
            let pct = (u * 1000.0).floor() / 10.0;
            let color = if pct >= 99.0 {
                "#4c1"
            } else if pct >= 95.0 {
                "#dfb317"
            } else {
                "#fe7d37"
            };
            (format!("{pct}%"), color)
        }
        (Health::Up, None) => ("up".to_string(), "#4c1"),
    }
}

pub fn render(w: &TargetView) -> String {
    let (right, color) = value(w);
    let left = w.name.as_str();
    let lw = text_width(left) + 12;
    let rw = text_width(&right) + 12;
    let total = lw + rw;
    let (l, r) = (escape(left), escape(&right));
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{total}\" height=\"20\" role=\"img\" aria-label=\"{l}: {r}\">\
<title>{l}: {r}</title><linearGradient id=\"s\" x2=\"0\" y2=\"100%\"><stop offset=\"0\" stop-color=\"#bbb\" stop-opacity=\".1\"/>\
<stop offset=\"1\" stop-opacity=\".1\"/></linearGradient><clipPath id=\"r\"><rect width=\"{total}\" height=\"20\" rx=\"3\" fill=\"#fff\"/></clipPath>\
<g clip-path=\"url(#r)\"><rect width=\"{lw}\" height=\"20\" fill=\"#555\"/><rect x=\"{lw}\" width=\"{rw}\" height=\"20\" fill=\"{color}\"/>\
<rect width=\"{total}\" height=\"20\" fill=\"url(#s)\"/></g>\
<g fill=\"#fff\" text-anchor=\"middle\" font-family=\"Verdana,Geneva,DejaVu Sans,sans-serif\" font-size=\"11\">\
<text x=\"{}\" y=\"15\" fill=\"#010101\" fill-opacity=\".3\">{l}</text><text x=\"{0}\" y=\"14\">{l}</text>\
<text x=\"{}\" y=\"15\" fill=\"#010101\" fill-opacity=\".3\">{r}</text><text x=\"{1}\" y=\"14\">{r}</text></g></svg>",
        lw / 2,
        lw + rw / 2,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::web::testdata::snapshot;

    #[test]
    fn badge_text_and_colour_by_state() {
        let s = snapshot();
        assert_eq!(value(&s.workers[0]), ("100%".to_string(), "#4c1"));
        assert_eq!(value(&s.workers[1]).0, "down");
        assert_eq!(value(&s.workers[2]).0, "pending");
        let svg = render(&s.workers[0]);
        assert!(svg.contains("aria-label=\"api: 100%\""));
        assert!(svg.starts_with("<svg"));
    }

    #[test]
    fn width_grows_with_the_text() {
        let mut s = snapshot();
        let short = render(&s.workers[0]);
        s.workers[0].name = "a-much-longer-worker-name".into();
        let long = render(&s.workers[0]);
        let width = |svg: &str| {
            svg.split("width=\"")
                .nth(1)
                .and_then(|w| w.split('"').next())
                .and_then(|w| w.parse::<u32>().ok())
                .unwrap()
        };
        assert!(width(&long) > width(&short) + 100);
        assert_eq!(text_width("abc"), 21);
    }
}
