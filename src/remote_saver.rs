//! The remote saver: reads the state's remote copy at start-up (before the first check) and
//! writes it every `remote_save_interval` and once more at shutdown, on a thread of its own, so a
//! slow or failing store delays no check and no page. Failures are retried with backoff and shown
//! in `persistence_error` and `pinger_state_saves_total{place="remote"}`.
//!
//! The rules, as the README states them:
//! - With a state file too, the file wins when it exists; the remote copy is the fallback.
//! - A copy that cannot be read at start-up (the store down) is read again before any write,
//!   and its history then goes before what was recorded since: never written over unread.
//! - An unreadable copy is kept aside (`<key>.corrupt-<unix time>`) and the state starts fresh.
//! - A conflict (another instance wrote the copy since this one read it) stops remote saving
//!   until a restart: the operator gives each instance its own `state_url` (or stops the other
//!   one), and the restart reads the copy as it then is.

use crate::config::limits::REMOTE_FINAL_SAVE;
use crate::persist::remote::store::{Fetched, RemoteStore, Written};
use crate::persist::remote::{Error, ErrorKind};
use crate::persist::{Persister, Restore};
use crate::shutdown::{Thread, Waker};
use crate::state::{SavePlace, State};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// The first pause after a failed request; it doubles up to the save interval.
const FIRST_BACKOFF: Duration = Duration::from_secs(5);

pub struct RemoteSaver {
    pub store: RemoteStore,
    pub persister: Arc<Persister>,
    pub state: Arc<State>,
    /// `state_url` as messages show it.
    pub shown: String,
    pub interval: Duration,
    pub timeout: Duration,
    /// Hides values that came from `${VAR}` in a message.
    pub scrub: Box<dyn Fn(&str) -> String + Send>,
}

/// What must happen before the next write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Need {
    /// The copy could not be read at start-up: read (and merge) it first.
    Read,
    /// The state file won at start-up, but the copy's version is not known yet.
    Version,
    /// Writes may go ahead.
    Nothing,
    /// A conflict: no more remote writes in this process.
    Stopped,
}

/// The running saver: its thread ends after its last save.
pub struct Running {
    thread: std::sync::Mutex<Option<Thread>>,
    waker: Arc<Waker>,
}

impl Running {
    /// Starts the last save (if its waker was not stopped already) and waits for it, at most
    /// the SPEC's 5 s, then joins the thread. The service calls it after the workers have ended
    /// and the file was saved, so that the copy holds their last checks.
    pub fn wait(&self) {
        self.waker.stop();
        let thread = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(t) = thread {
            let _ = t.join_by(Instant::now() + REMOTE_FINAL_SAVE + Duration::from_millis(200));
        }
    }
}

impl RemoteSaver {
    /// Start-up, before the first check: restores the state from the remote copy unless the
    /// state file was loaded (`local_loaded`; then the thread learns the copy's version). Then
    /// starts the thread, which makes its last save when `waker` is stopped (by
    /// `Running::finish`).
    pub fn start(self, local_loaded: bool, waker: Arc<Waker>) -> Result<Running, String> {
        let need = self.start_up(local_loaded);
        let stop = Arc::clone(&waker);
        let thread = crate::shutdown::spawn("remote-saver".into(), 256 * 1024, move || self.run(need, &stop))
            .map_err(|e| format!("cannot start the remote saver thread: {e}"))?;
        Ok(Running {
            thread: std::sync::Mutex::new(Some(thread)),
            waker,
        })
    }

    fn start_up(&self, local_loaded: bool) -> Need {
        if local_loaded {
            // Learnt on the saver's own thread (`run`): nothing waits for it.
            return Need::Version;
        }
        match self.read(Restore::Replace, self.timeout) {
            Ok(()) => Need::Nothing,
            Err(e) => {
                self.failed(
                    &e,
                    "cannot read it at start-up; starting fresh, and it will be read again before it is written",
                );
                Need::Read
            }
        }
    }

    /// Reads the copy into the state; an unreadable copy is kept aside.
    fn read(&self, how: Restore, timeout: Duration) -> Result<(), Error> {
        match self.store.fetch(timeout)? {
            Fetched::Missing => log::info!("remote state {}: no copy yet; a fresh start", self.shown),
            Fetched::Found(bytes) => match self.persister.restore(&mut bytes.as_slice(), &self.state, how) {
                Ok(loaded) => log::info!(
                    "remote state {}: {}{}",
                    self.shown,
                    loaded.summary(),
                    if how == Restore::Merge {
                        ", put before the checks made since start-up"
                    } else {
                        ""
                    }
                ),
                Err(why) => {
                    let aside = match self.store.keep_aside(&bytes, timeout) {
                        Ok(name) => format!("kept it as {}", (self.scrub)(&name)),
                        Err(e) => format!("could not keep it aside ({})", (self.scrub)(&e.message)),
                    };
                    log::warn!("remote state {}: {why}; {aside} and starting fresh", self.shown);
                }
            },
        }
        Ok(())
    }

    fn run(&self, mut need: Need, waker: &Waker) {
        if need == Need::Version && !waker.is_stopped() {
            match self.store.learn_version(self.timeout) {
                Ok(()) => need = Need::Nothing,
                Err(e) => self.failed(&e, "cannot reach it at start-up (the state file was loaded)"),
            }
        }
        let mut failures: u32 = 0;
        let mut delay = self.interval;
        loop {
            let stopping = !waker.sleep(delay);
            let deadline = stopping.then(|| Instant::now() + REMOTE_FINAL_SAVE);
            match self.step(&mut need, deadline) {
                Ok(()) => {
                    if failures > 0 && need != Need::Stopped {
                        log::info!("remote state {}: working again", self.shown);
                    }
                    failures = 0;
                    delay = self.interval;
                }
                Err(e) => {
                    failures += 1;
                    delay = backoff(&e, failures, self.interval);
                }
            }
            if stopping {
                return;
            }
        }
    }

    /// What is left of the time for one request: the timeout, or less before the deadline.
    fn budget(&self, deadline: Option<Instant>) -> Duration {
        deadline.map_or(self.timeout, |d| {
            d.saturating_duration_since(Instant::now()).min(self.timeout)
        })
    }

    /// One save: first whatever start-up left undone, then the write.
    fn step(&self, need: &mut Need, deadline: Option<Instant>) -> Result<(), Error> {
        let what = match *need {
            Need::Stopped => return Ok(()),
            Need::Read => "cannot read it",
            Need::Version => "cannot reach it",
            Need::Nothing => "cannot write it",
        };
        let result = match *need {
            Need::Read => self.read(Restore::Merge, self.budget(deadline)),
            Need::Version => self.store.learn_version(self.budget(deadline)),
            _ => Ok(()),
        }
        .and_then(|()| {
            *need = Need::Nothing;
            let mut bytes = Vec::new();
            self.persister
                .encode(&mut bytes, &self.state)
                .map_err(|e| Error::new(ErrorKind::Refused, format!("cannot encode the state: {e}")))?;
            self.store.write(&bytes, self.budget(deadline))
        });
        match result {
            Ok(Written::Unchanged) => Ok(()),
            Ok(Written::Saved) => {
                self.state.record_save(SavePlace::Remote, true, SystemTime::now());
                self.state.set_save_error(SavePlace::Remote, None);
                Ok(())
            }
            Err(e) if e.kind == ErrorKind::Conflict => {
                *need = Need::Stopped;
                self.state.record_save(SavePlace::Remote, false, SystemTime::now());
                let message = format!(
                    "remote state {}: another instance wrote it since this one read it ({}); remote saving \
                     stopped until a restart: give each instance its own state_url, or stop the other one",
                    self.shown,
                    (self.scrub)(&e.message)
                );
                log::error!("{message}");
                self.state.set_save_error(SavePlace::Remote, Some(message));
                Err(e)
            }
            Err(e) => {
                self.state.record_save(SavePlace::Remote, false, SystemTime::now());
                self.failed(&e, what);
                Err(e)
            }
        }
    }

    /// A failed read or write: logged, and shown in `persistence_error`.
    fn failed(&self, e: &Error, what: &str) {
        let message = format!("remote state {}: {what}: {}", self.shown, (self.scrub)(&e.message));
        log::warn!("{message}");
        self.state.set_save_error(SavePlace::Remote, Some(message));
    }
}

/// The pause before the next try: the interval after a lasting refusal (a wrong key stays wrong
/// until a restart), a growing backoff after a transient failure, longer if the store asked.
fn backoff(e: &Error, failures: u32, interval: Duration) -> Duration {
    if !e.is_transient() {
        return interval;
    }
    let grown = FIRST_BACKOFF.saturating_mul(1 << failures.saturating_sub(1).min(10));
    let wait = grown.min(interval);
    match e.kind {
        ErrorKind::Throttled(Some(after)) => wait.max(after),
        _ => wait,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_the_interval_and_honours_the_store() {
        let down = Error::new(ErrorKind::Unavailable, "refused");
        let min = Duration::from_secs(60);
        let five = Duration::from_secs(300);
        assert_eq!(backoff(&down, 1, five), Duration::from_secs(5));
        assert_eq!(backoff(&down, 3, five), Duration::from_secs(20));
        assert_eq!(backoff(&down, 30, five), five);
        let throttled = Error::new(ErrorKind::Throttled(Some(min * 10)), "429");
        assert_eq!(backoff(&throttled, 1, five), min * 10, "the store's Retry-After wins");
        let wrong_key = Error::new(ErrorKind::Auth, "no");
        assert_eq!(backoff(&wrong_key, 1, five), five);
    }
}
