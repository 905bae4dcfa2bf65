//! `healthcheck`: asks a running service's /health, for a container's HEALTHCHECK.

use super::{EXIT_FAILURE, EXIT_OK};
use crate::config::{self, Env};
use crate::{probe, target_url};
use std::time::Duration;

/// `healthcheck`: GET the local /health; 0 when it answers alive.
pub fn run(url: Option<String>, env: &Env) -> u8 {
    let url = url.unwrap_or_else(|| {
        let port = env
            .get("PORT")
            .and_then(|p| p.trim().parse::<u16>().ok())
            .unwrap_or(config::DEFAULT_PORT);
        format!("http://127.0.0.1:{port}/health")
    });
    let timeout = Duration::from_secs(5);
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(timeout))
        .proxy(None)
        .build()
        .new_agent();
    let shown = target_url::redact(&url, &[]);
    match agent.get(&url).call() {
        Ok(mut resp) => {
            let status = resp.status().as_u16();
            let body = resp
                .body_mut()
                .with_config()
                .limit(64 * 1024)
                .read_to_string()
                .unwrap_or_default();
            if status == 200 && body.contains("alive") {
                println!("{shown}: alive");
                EXIT_OK
            } else {
                eprintln!("{shown}: not alive (status {status})");
                EXIT_FAILURE
            }
        }
        Err(e) => {
            eprintln!("{shown}: not alive ({})", probe::describe(&e, timeout));
            EXIT_FAILURE
        }
    }
}
