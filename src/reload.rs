//! Reloading the configuration while running: on SIGHUP, and when the configuration file's
//! modification time or size changes (looked at every `watch_config`, 5 s by default). A valid
//! configuration goes to the fleet; an invalid one changes nothing and is reported in the log,
//! `/status`, the page and `/metrics`. The environment is always the one the process started with.

use crate::config::{self, Config, Env, Flags};
use crate::fleet::Fleet;
use crate::shutdown::{Thread, Wake, Waker};
use crate::state::State;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// What identifies a version of the file without reading it.
type Stamp = Option<(SystemTime, u64)>;

fn stamp(path: &PathBuf) -> Stamp {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

/// The configuration file (when the service started with one) and its version when it was
/// loaded: a change after that reloads, even one made before the reload thread runs (which can be
/// seconds later, after a slow store's start-up read).
pub struct Loaded {
    path: Option<PathBuf>,
    seen: Option<Stamp>,
}

impl Loaded {
    /// Noted as soon as the configuration is loaded.
    pub fn now(flags: &Flags, env: &Env) -> Loaded {
        let path = config::file_path(flags, env);
        let seen = path.as_ref().map(stamp);
        Loaded { path, seen }
    }
}

pub struct Reloader {
    pub fleet: Arc<Fleet>,
    pub state: Arc<State>,
    /// The configuration running now.
    pub current: Config,
    pub flags: Flags,
    pub env: Env,
    /// Woken with "check now" by SIGHUP, stopped at shutdown.
    pub waker: Arc<Waker>,
    /// The file watched, as it was when loaded.
    pub loaded: Loaded,
}

impl Reloader {
    pub fn spawn(self) -> std::io::Result<Thread> {
        // Only a file the service started with is watched; SIGHUP reloads in any case.
        crate::shutdown::spawn("reload".into(), 256 * 1024, move || self.run())
    }

    fn run(mut self) {
        let path = self.loaded.path.take();
        let mut seen = self.loaded.seen.take();
        loop {
            // The file watch polls on purpose (no inotify without a new crate, and a mounted
            // ConfigMap changes by a symlink swap that a watch on the file would miss); SIGHUP
            // and shutdown still end the sleep at once.
            let poll = self.current.settings.watch_config.filter(|_| path.is_some());
            let wait = poll.unwrap_or(Duration::from_secs(86_400));
            match self.waker.sleep_until(Instant::now() + wait, true) {
                Wake::Stop => return,
                Wake::CheckNow => {
                    log::info!("received SIGHUP, reloading the configuration");
                    seen = path.as_ref().map(stamp);
                    self.reload();
                }
                _ => {
                    let now = path.as_ref().map(stamp);
                    if poll.is_some() && now != seen {
                        log::info!("the configuration file changed, reloading it");
                        seen = now;
                        self.reload();
                    }
                }
            }
        }
    }

    fn reload(&mut self) {
        let cfg = match config::load(&self.flags, &self.env) {
            Ok(cfg) => cfg,
            Err(errors) => {
                for e in &errors {
                    log::error!("{e}");
                }
                log::error!(
                    "configuration reload failed: {} problem{} found; the previous configuration is still running",
                    errors.len(),
                    if errors.len() == 1 { "" } else { "s" }
                );
                let text: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
                self.state.record_reload(Err(text.join("; ")));
                return;
            }
        };
        for w in &cfg.warnings {
            log::warn!("{w}");
        }
        for what in needs_restart(&self.current, &cfg) {
            log::warn!("{what} changed: this needs a restart of master-pinger to take effect");
        }
        match self.fleet.apply(&cfg) {
            Ok(changes) => {
                log::info!("configuration reloaded: {changes}");
                self.state.record_reload(Ok(()));
                self.current = cfg;
            }
            Err(e) => {
                log::error!("configuration reload failed: {e}");
                self.state.record_reload(Err(e));
            }
        }
    }
}

/// Settings read only at start-up that differ between two configurations.
pub fn needs_restart(old: &Config, new: &Config) -> Vec<&'static str> {
    let (old, new) = (&old.settings, &new.settings);
    let mut out = Vec::new();
    if old.listen != new.listen {
        out.push("listen");
    }
    if old.state_file != new.state_file {
        out.push("state_file");
    }
    if old.history != new.history {
        out.push("history");
    }
    if old.save_interval != new.save_interval {
        out.push("save_interval");
    }
    if old.header_timeout != new.header_timeout || old.max_connections != new.max_connections {
        out.push("header_timeout or max_connections");
    }
    let (r, n) = (&old.remote, &new.remote);
    if r.state_url != n.state_url || r.save_interval != n.save_interval || r.timeout != n.timeout {
        out.push("state_url, remote_save_interval or remote_timeout");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(text: &str) -> Config {
        config::build(Some(("t.json", text)), &Flags::default(), &Env::new()).unwrap()
    }

    #[test]
    fn restart_only_settings_are_named() {
        let a = cfg(r#"{"self_ping": false, "listen": "127.0.0.1:1"}"#);
        let b = cfg(
            r#"{"self_ping": false, "listen": "127.0.0.1:2", "state_file": "/tmp/x", "history": 20,
                "state_url": "s3://b/k"}"#,
        );
        assert_eq!(
            needs_restart(&a, &b),
            [
                "listen",
                "state_file",
                "history",
                "state_url, remote_save_interval or remote_timeout"
            ]
        );
        assert!(needs_restart(&a, &a.clone()).is_empty());
    }
}
