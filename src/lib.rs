//! master-pinger: keeps a fleet of sleepy free-tier web apps awake and shows how each is doing.
//!
//! Data flows one way: config -> worker threads (schedule, check with retries) -> shared state
//! (history, counters) -> web (HTML, JSON, metrics), with alerts and persistence beside the state.
//!
//! The modules form layers, bottom to top. A module imports only from its own layer or those
//! below it, and no two modules (or folders) import each other:
//!
//! - values:   `duration`, `timefmt`, `target_url`, `schedule`, `streak`, `conditions`,
//!   `maintenance`, `shutdown`, `os`, `host`
//! - config:   `config/` (file + env + flags -> `Config`; `Env`, proxies, TLS and channel
//!   settings), `cli`
//! - outbound: `tls/`, `net`, `resolve`, `probe` (one HTTP client setup for everything)
//! - state:    `state/`, `persist/`
//! - actors:   `alert/` (queues; each provider's request builder is pure), `restart`, `worker`,
//!   `heartbeat` (push workers), `fleet`, `reload`, `remote_saver` (the state's remote copy)
//! - web:      `web/` (server, guard, router, renderers, cache), `publish` (the page as files)
//! - commands: `cmd/` (`run`, `check`, `once`, `healthcheck`, `notify-test`); this file only
//!   dispatches to them.

pub mod alert;
pub mod cli;
pub mod cmd;
pub mod conditions;
pub mod config;
pub mod duration;
pub mod fleet;
pub mod heartbeat;
pub mod host;
pub mod maintenance;
pub mod net;
pub mod os;
pub mod persist;
pub mod probe;
pub mod publish;
pub mod reload;
pub mod remote_saver;
pub mod resolve;
pub mod restart;
pub mod schedule;
pub mod shutdown;
pub mod state;
pub mod streak;
pub mod target_url;
pub mod timefmt;
pub mod tls;
pub mod web;
pub mod worker;

use cmd::{EXIT_FAILURE, EXIT_OK, EXIT_USAGE, report_config_errors};
use config::Env;

/// The whole program behind `main`: returns the exit status.
pub fn main_with(args: &[String], env: &Env) -> u8 {
    let command = match cli::parse(args) {
        Ok(c) => c,
        Err(message) => {
            eprintln!("error: {message}\n\nRun 'master-pinger --help' for usage.");
            return EXIT_USAGE;
        }
    };
    match command {
        cli::Command::Help => {
            print!("{}", cli::USAGE);
            EXIT_OK
        }
        cli::Command::Version => {
            println!("{}", version_line());
            EXIT_OK
        }
        cli::Command::Healthcheck { url } => cmd::healthcheck::run(url, env),
        cli::Command::Check(flags) => match config::load(&flags, env) {
            Ok(cfg) => cmd::check::run(&cfg),
            Err(errors) => report_config_errors(&errors),
        },
        cli::Command::Once { flags, options } => match config::load(&flags, env) {
            Ok(cfg) => {
                for w in &cfg.warnings {
                    eprintln!("warning: {w}");
                }
                cmd::once::run(&cfg, &options)
            }
            Err(errors) => report_config_errors(&errors),
        },
        cli::Command::NotifyTest(flags) => match config::load(&flags, env) {
            Ok(cfg) => cmd::notify_test::run(&cfg.alerts.channels, &net::Net::from_settings(&cfg.settings)),
            Err(errors) => report_config_errors(&errors),
        },
        cli::Command::Run(flags) => match config::load(&flags, env) {
            // A fleet past the host's thread limits is refused before any thread starts.
            Ok(cfg) => match fleet::fits(&cfg) {
                Err(e) => {
                    eprintln!("error: {}: {e}", cfg.source);
                    eprintln!("master-pinger: the fleet does not fit this host's thread limits; not started");
                    EXIT_USAGE
                }
                Ok(()) => match cmd::run::run(cfg, flags, env.clone()) {
                    Ok(()) => EXIT_OK,
                    Err(message) => {
                        eprintln!("error: {message}");
                        EXIT_FAILURE
                    }
                },
            },
            Err(errors) => report_config_errors(&errors),
        },
    }
}

/// What `--version` prints: the version and the target triple the binary was built for.
pub fn version_line() -> String {
    format!(
        "master-pinger {} ({})",
        env!("CARGO_PKG_VERSION"),
        env!("MASTER_PINGER_TARGET")
    )
}
