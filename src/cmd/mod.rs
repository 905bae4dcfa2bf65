//! The commands `main` dispatches to, one module each: `run` (the service), `check`, `once`,
//! `healthcheck` and `notify-test`. They sit on top of every other layer.

pub mod check;
pub mod healthcheck;
pub mod late_fleet;
mod logging;
pub mod notify_test;
pub mod once;
pub mod run;

use crate::config;

pub const EXIT_OK: u8 = 0;
pub const EXIT_FAILURE: u8 = 1;
pub const EXIT_USAGE: u8 = 2;

pub fn report_config_errors(errors: &[config::ConfigError]) -> u8 {
    for e in errors {
        eprintln!("error: {e}");
    }
    eprintln!(
        "master-pinger: {} configuration problem{} found; not started",
        errors.len(),
        if errors.len() == 1 { "" } else { "s" }
    );
    EXIT_USAGE
}
