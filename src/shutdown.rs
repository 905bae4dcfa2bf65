//! Interruptible sleeps. Every thread that waits (workers between checks and between retries,
//! the self-ping, the saver, the senders) sleeps on a `Waker` instead of `thread::sleep`, so that
//! shutdown, an admin's "check now", a pause, or a new schedule from a reload reaches it at once.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

#[derive(Debug, Default)]
struct Flags {
    stop: bool,
    check_now: bool,
    /// A paused worker's schedule sleep lasts until resume (or stop); backoff sleeps end at once.
    paused: bool,
    /// A reload gave the worker a new schedule: its current schedule sleep ends.
    reschedule: bool,
    /// Threads blocked in a wait on this waker (tests wait for a sleeper to be asleep).
    #[cfg(test)]
    asleep: usize,
}

/// Why a sleep ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    Deadline,
    CheckNow,
    Stop,
    /// The worker was paused during this sleep and has just been resumed.
    Resumed,
    /// A reload changed the worker's schedule.
    Reschedule,
}

#[derive(Debug, Default)]
pub struct Waker {
    flags: Mutex<Flags>,
    cv: Condvar,
}

impl Waker {
    fn lock(&self) -> MutexGuard<'_, Flags> {
        self.flags.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sleeps until `deadline` or a stop. A schedule sleep (`schedule`: a worker waiting for its
    /// next check) also ends on check-now, reschedule and resume, and lasts while paused.
    pub fn sleep_until(&self, deadline: Instant, schedule: bool) -> Wake {
        let mut flags = self.lock();
        let mut was_paused = false;
        loop {
            if flags.stop {
                return Wake::Stop;
            }
            if !schedule && flags.paused {
                // A pause abandons the check in progress (its backoff wait ends here).
                return Wake::Stop;
            }
            if schedule && flags.reschedule {
                flags.reschedule = false;
                return Wake::Reschedule;
            }
            if schedule && flags.paused {
                was_paused = true;
                flags = self.wait(flags, None);
                continue;
            }
            if was_paused {
                return Wake::Resumed;
            }
            if schedule && flags.check_now {
                flags.check_now = false;
                return Wake::CheckNow;
            }
            let now = Instant::now();
            if now >= deadline {
                return Wake::Deadline;
            }
            flags = self.wait(flags, Some(deadline - now));
        }
    }

    fn wait<'a>(&self, mut flags: MutexGuard<'a, Flags>, limit: Option<Duration>) -> MutexGuard<'a, Flags> {
        #[cfg(test)]
        {
            flags.asleep += 1;
        }
        flags = match limit {
            None => self.cv.wait(flags).unwrap_or_else(|e| e.into_inner()),
            Some(d) => self.cv.wait_timeout(flags, d).unwrap_or_else(|e| e.into_inner()).0,
        };
        #[cfg(test)]
        {
            flags.asleep -= 1;
        }
        flags
    }

    /// How many threads are blocked in a wait on this waker.
    #[cfg(test)]
    fn asleep(&self) -> usize {
        self.lock().asleep
    }

    /// Sleeps for `d`; false when woken by a stop or a pause (the wait's purpose is gone).
    pub fn sleep(&self, d: Duration) -> bool {
        self.sleep_until(Instant::now() + d, false) != Wake::Stop
    }

    /// Sleeps until a check-now (which it consumes) or a stop; false on a stop. A queue's
    /// consumer waits here for the next item: each push is a check-now.
    pub fn wait_for_check_now(&self) -> bool {
        let mut flags = self.lock();
        loop {
            if flags.stop {
                return false;
            }
            if flags.check_now {
                flags.check_now = false;
                return true;
            }
            flags = self.wait(flags, None);
        }
    }

    /// Pausing or resuming also forgets a pending check-now: a resumed worker checks at once anyway.
    pub fn set_paused(&self, paused: bool) {
        let mut flags = self.lock();
        flags.paused = paused;
        flags.check_now = false;
        drop(flags);
        self.cv.notify_all();
    }

    pub fn is_paused(&self) -> bool {
        self.lock().paused
    }

    pub fn reschedule(&self) {
        self.lock().reschedule = true;
        self.cv.notify_all();
    }

    pub fn check_now(&self) {
        self.lock().check_now = true;
        self.cv.notify_all();
    }

    pub fn stop(&self) {
        self.lock().stop = true;
        self.cv.notify_all();
    }

    pub fn is_stopped(&self) -> bool {
        self.lock().stop
    }
}

/// The process-wide stop switch: one `Waker` per sleeping thread, all stopped together.
#[derive(Default)]
pub struct Shutdown {
    stopped: AtomicBool,
    wakers: Mutex<Vec<Arc<Waker>>>,
}

impl Shutdown {
    /// A waker that the next `trigger()` will stop (already stopped if that happened).
    pub fn waker(&self) -> Arc<Waker> {
        let w = Arc::new(Waker::default());
        self.wakers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Arc::clone(&w));
        if self.is_triggered() {
            w.stop();
        }
        w
    }

    /// Drops a waker that `trigger()` no longer needs to reach (its thread was stopped alone).
    pub fn forget(&self, waker: &Arc<Waker>) {
        self.wakers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|w| !Arc::ptr_eq(w, waker));
    }

    pub fn trigger(&self) {
        if self.stopped.swap(true, Ordering::SeqCst) {
            return;
        }
        let wakers = std::mem::take(&mut *self.wakers.lock().unwrap_or_else(|e| e.into_inner()));
        for w in wakers {
            w.stop();
        }
    }

    pub fn is_triggered(&self) -> bool {
        self.stopped.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::thread;

    #[test]
    fn stop_wakes_a_long_sleep_at_once() {
        let sd = Arc::new(Shutdown::default());
        let w = sd.waker();
        let t0 = Instant::now();
        let h = thread::spawn(move || w.sleep(Duration::from_secs(60)));
        thread::sleep(Duration::from_millis(50));
        sd.trigger();
        assert!(!h.join().unwrap());
        assert!(t0.elapsed() < Duration::from_secs(5));
        assert!(sd.waker().is_stopped(), "a waker made after the trigger starts stopped");
    }

    #[test]
    fn check_now_ends_a_schedule_sleep_but_not_a_backoff() {
        let w = Waker::default();
        w.check_now();
        assert!(w.sleep(Duration::from_millis(20)), "backoff sleeps ignore check-now");
        assert_eq!(
            w.sleep_until(Instant::now() + Duration::from_secs(60), true),
            Wake::CheckNow
        );
        assert_eq!(
            w.sleep_until(Instant::now() + Duration::from_millis(10), true),
            Wake::Deadline
        );
    }

    #[test]
    fn a_paused_schedule_sleep_outlasts_its_deadline_until_resumed() {
        let w = Arc::new(Waker::default());
        w.set_paused(true);
        assert!(!w.sleep(Duration::from_secs(60)), "a pause ends a backoff wait at once");
        let w2 = Arc::clone(&w);
        let deadline = Instant::now() + Duration::from_millis(10);
        let h = thread::spawn(move || w2.sleep_until(deadline, true));
        // Wait for the sleeper to be blocked, with its deadline past.
        let give_up = Instant::now() + Duration::from_secs(10);
        while w.asleep() == 0 || Instant::now() <= deadline {
            assert!(Instant::now() < give_up, "the sleeper never went to sleep");
            thread::sleep(Duration::from_millis(1));
        }
        assert!(!h.is_finished(), "the deadline passed but the worker is paused");
        w.set_paused(false);
        // A sleep that had ended at its deadline would say `Deadline`, even if it ended late.
        assert_eq!(h.join().unwrap(), Wake::Resumed);
        w.reschedule();
        assert_eq!(
            w.sleep_until(Instant::now() + Duration::from_secs(60), true),
            Wake::Reschedule
        );
    }

    #[test]
    fn a_forgotten_waker_is_not_stopped_by_trigger() {
        let sd = Shutdown::default();
        let (a, b) = (sd.waker(), sd.waker());
        sd.forget(&a);
        sd.trigger();
        assert!(!a.is_stopped());
        assert!(b.is_stopped());
    }
}
