//! The log: one line a record on stderr, `2026-11-28T10:55:00.123Z INFO  [master_pinger::worker]
//! text` (UTC to the millisecond, the level padded to five, the record's target). This is the
//! format simple_logger wrote; the few lines here replaced it and the date crate it brought, which
//! were about 20 KiB of the binary.

use crate::timefmt::rfc3339_millis;
use log::{LevelFilter, Log, Metadata, Record};
use std::io::Write;
use std::time::SystemTime;

/// Targets held to warnings whatever the level: the HTTP stack's debug lines are handshake and
/// connection details, not the pinger's. A prefix match ("ureq" covers "ureq_proto" too).
const QUIET: [&str; 3] = ["rustls", "ureq", "tiny_http"];

struct Stderr {
    level: LevelFilter,
}

impl Log for Stderr {
    fn enabled(&self, m: &Metadata) -> bool {
        let cap = if QUIET.iter().any(|q| m.target().starts_with(q)) {
            LevelFilter::Warn
        } else {
            self.level
        };
        m.level() <= cap
    }

    fn log(&self, r: &Record) {
        if self.enabled(r.metadata()) {
            let line = line(SystemTime::now(), r);
            // One write a line, so that lines of different threads do not interleave; a stderr
            // that cannot be written to loses the line rather than panicking the thread.
            let _ = std::io::stderr().write_all(line.as_bytes());
        }
    }

    fn flush(&self) {}
}

fn line(at: SystemTime, r: &Record) -> String {
    let target = match r.target() {
        "" => r.module_path().unwrap_or_default(),
        t => t,
    };
    format!("{} {:<5} [{target}] {}\n", rfc3339_millis(at), r.level(), r.args())
}

/// Sends the `log` macros' records at `level` (and the quiet targets' warnings) to stderr. A
/// second call (tests that run the service twice) keeps the first logger.
pub fn init(level: LevelFilter) {
    log::set_max_level(level.max(LevelFilter::Warn));
    let _ = log::set_boxed_logger(Box::new(Stderr { level }));
}

#[cfg(test)]
mod tests {
    use super::*;
    use log::Level;
    use std::time::{Duration, UNIX_EPOCH};

    fn record_line(level: Level, target: &str, text: &str) -> String {
        let at = UNIX_EPOCH + Duration::from_millis(1_795_860_000_123);
        line(
            at,
            &Record::builder()
                .level(level)
                .target(target)
                .module_path(Some("master_pinger::worker"))
                .args(format_args!("{text}"))
                .build(),
        )
    }

    #[test]
    fn a_line_is_the_time_the_padded_level_the_target_and_the_text() {
        assert_eq!(
            record_line(Level::Info, "master_pinger::worker", "api: up"),
            "2026-11-28T10:00:00.123Z INFO  [master_pinger::worker] api: up\n"
        );
        assert_eq!(
            record_line(Level::Error, "", "x"),
            "2026-11-28T10:00:00.123Z ERROR [master_pinger::worker] x\n"
        );
    }

    #[test]
    fn the_http_stack_is_held_to_warnings() {
        let logger = Stderr {
            level: LevelFilter::Debug,
        };
        let meta = |level, target| Metadata::builder().level(level).target(target).build();
        assert!(logger.enabled(&meta(Level::Debug, "master_pinger::worker")));
        assert!(!logger.enabled(&meta(Level::Trace, "master_pinger::worker")));
        for quiet in ["rustls::client", "ureq::run", "ureq_proto::client", "tiny_http"] {
            assert!(!logger.enabled(&meta(Level::Info, quiet)), "{quiet}");
            assert!(logger.enabled(&meta(Level::Warn, quiet)), "{quiet}");
        }
        let errors_only = Stderr {
            level: LevelFilter::Error,
        };
        assert!(!errors_only.enabled(&meta(Level::Warn, "master_pinger::worker")));
        assert!(errors_only.enabled(&meta(Level::Warn, "rustls::conn")));
    }
}
