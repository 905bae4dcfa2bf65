//! The status page as static files, for `once --publish`: `index.html`, `status.json` and
//! `badge/NAME.svg` for every worker, made by the same renderers as `/`, `/status` and
//! `/badge/NAME.svg`, so they show (and redact) exactly what the service would. Every link
//! between them is relative, so the folder works from `file://`, a bucket or any static host.

use crate::state::Snapshot;
use crate::web::{badge, html, json};

/// One file of the site: its path inside the folder (`/`-separated), type and contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct File {
    pub path: String,
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

/// The page and the badges come from `page` (the page's history), `status.json` from `status`
/// (the `/status` default history); both are snapshots of the same moment.
pub fn files(page: &Snapshot, status: &Snapshot) -> Vec<File> {
    let mut out = Vec::with_capacity(page.workers.len() + 2);
    out.push(File {
        path: "index.html".into(),
        content_type: "text/html; charset=utf-8",
        body: html::render_for(page, html::Site::Published).into_bytes(),
    });
    out.push(File {
        path: "status.json".into(),
        content_type: "application/json",
        body: json::render(status).into_bytes(),
    });
    // Worker names are `[A-Za-z0-9._-]` (see config): one path component, never `/` or empty.
    for w in page.workers.iter().chain(page.self_ping.iter()) {
        out.push(File {
            path: format!("badge/{}.svg", w.name),
            content_type: "image/svg+xml",
            body: badge::render(w).into_bytes(),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::web::testdata::snapshot;

    #[test]
    fn every_worker_gets_a_badge_and_links_are_relative() {
        let s = snapshot();
        let files = files(&s, &s);
        let paths: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths[..2], ["index.html", "status.json"]);
        for w in &s.workers {
            assert!(paths.contains(&format!("badge/{}.svg", w.name).as_str()), "{paths:?}");
        }
        let page = String::from_utf8(files[0].body.clone()).unwrap();
        assert!(page.contains("href=\"status.json\""), "{page}");
        assert!(!page.contains("href=\"/"), "no absolute link: {page}");
        assert!(!page.contains("/metrics"), "no server, no metrics");
        assert!(page.contains("id=\"last-run\""), "the page says when the run was");
        let doc: serde_json::Value = serde_json::from_slice(&files[1].body).unwrap();
        assert_eq!(doc["workers"].as_array().map(Vec::len), Some(s.workers.len()));
        assert!(files[2].body.starts_with(b"<svg"));
    }
}
