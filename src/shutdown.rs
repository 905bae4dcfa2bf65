//! Interruptible sleeps, and the threads that sleep on them. Every thread that waits (workers
//! between checks and between retries, the self-ping, the saver, the senders) sleeps on a
//! `Waker` instead of `thread::sleep`, so that shutdown, an admin's "check now", a pause, or a new
//! schedule from a reload reaches it at once. Every thread the service starts is started by
//! `spawn`, which keeps a list of those not joined yet: at the end of `run` that list is empty.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
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

/// What a stop must also do for a thread that does not sleep on a `Waker` (the HTTP server's).
type Hook = Box<dyn Fn() + Send>;

/// The process-wide stop switch: one `Waker` per sleeping thread, all stopped together.
#[derive(Default)]
pub struct Shutdown {
    stopped: AtomicBool,
    wakers: Mutex<Vec<Arc<Waker>>>,
    hooks: Mutex<Vec<Hook>>,
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

    /// Runs `hook` at the trigger (at once if that happened already).
    pub fn on_trigger(&self, hook: impl Fn() + Send + 'static) {
        let mut hooks = self.hooks.lock().unwrap_or_else(|e| e.into_inner());
        if self.is_triggered() {
            drop(hooks);
            hook();
        } else {
            hooks.push(Box::new(hook));
        }
    }

    pub fn trigger(&self) {
        if self.stopped.swap(true, Ordering::SeqCst) {
            return;
        }
        let wakers = std::mem::take(&mut *self.wakers.lock().unwrap_or_else(|e| e.into_inner()));
        for w in wakers {
            w.stop();
        }
        let hooks = std::mem::take(&mut *self.hooks.lock().unwrap_or_else(|e| e.into_inner()));
        for hook in hooks {
            hook();
        }
    }

    pub fn is_triggered(&self) -> bool {
        self.stopped.load(Ordering::SeqCst)
    }
}

/// The threads started by `spawn` and not joined yet, by name.
static UNJOINED: Mutex<Vec<(u64, String)>> = Mutex::new(Vec::new());

/// Set when a thread ends (its closure returned or unwound), for a join with a deadline.
#[derive(Default)]
struct Ended {
    done: Mutex<bool>,
    cv: Condvar,
}

/// Marks its thread ended when dropped, at the end of its closure even when it panicked.
struct EndMark(Arc<Ended>);

impl Drop for EndMark {
    fn drop(&mut self) {
        *self.0.done.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.0.cv.notify_all();
    }
}

/// A thread that can be joined with a deadline (std's `join` waits for ever).
pub struct Thread {
    handle: JoinHandle<()>,
    ended: Arc<Ended>,
    id: u64,
}

/// Starts the thread `name` with a stack of `stack` bytes, listed until it is joined.
pub fn spawn(name: String, stack: usize, f: impl FnOnce() + Send + 'static) -> std::io::Result<Thread> {
    spawn_boxed(name, stack, Box::new(f))
}

/// Starts a thread that is not listed for joining (one that ends by itself: a DNS lookup,
/// `once`'s checks) with the same one compiled start-up as `spawn`'s threads share.
pub fn start_unlisted(name: String, stack: usize, f: Box<dyn FnOnce() + Send>) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new().name(name).stack_size(stack).spawn(f)
}

/// `spawn`'s body, compiled once: std's thread start-up is generic over the closure, and a copy
/// for each kind of thread was KiBs of the binary. One allocation a thread start pays for it.
fn spawn_boxed(name: String, stack: usize, f: Box<dyn FnOnce() + Send>) -> std::io::Result<Thread> {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let ended = Arc::new(Ended::default());
    let mark = EndMark(Arc::clone(&ended));
    let id = NEXT.fetch_add(1, Ordering::Relaxed);
    let handle = std::thread::Builder::new()
        .name(name.clone())
        .stack_size(stack)
        .spawn(move || {
            let _mark = mark;
            f();
        })?;
    UNJOINED.lock().unwrap_or_else(|e| e.into_inner()).push((id, name));
    Ok(Thread { handle, ended, id })
}

impl Thread {
    /// Joins the thread if it ends by `deadline`; otherwise gives it back, still running.
    pub fn join_by(self, deadline: Instant) -> Result<(), Thread> {
        let mut done = self.ended.done.lock().unwrap_or_else(|e| e.into_inner());
        while !*done {
            let now = Instant::now();
            if now >= deadline {
                drop(done);
                return Err(self);
            }
            done = self
                .ended
                .cv
                .wait_timeout(done, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        drop(done);
        // Its closure has returned: what is left is the thread's exit, which does not block.
        // A panic in it was logged by the hook already.
        let _ = self.handle.join();
        UNJOINED
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|(id, _)| *id != self.id);
        Ok(())
    }

    pub fn is_finished(&self) -> bool {
        self.handle.is_finished()
    }
}

/// Joins each of `threads` that ends by `deadline`; the others are left running (and listed).
pub fn join_all(threads: impl IntoIterator<Item = Thread>, deadline: Instant) {
    for t in threads {
        let _ = t.join_by(deadline);
    }
}

/// The names of the threads started by `spawn` and not joined.
pub fn unjoined() -> Vec<String> {
    let list = UNJOINED.lock().unwrap_or_else(|e| e.into_inner());
    list.iter().map(|(_, name)| name.clone()).collect()
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
    fn a_thread_is_joined_by_its_deadline_or_given_back() {
        let w = Arc::new(Waker::default());
        let w2 = Arc::clone(&w);
        let t = spawn("test-join".into(), 64 * 1024, move || {
            w2.sleep(Duration::from_secs(60));
        })
        .unwrap();
        let t = t
            .join_by(Instant::now() + Duration::from_millis(20))
            .expect_err("a sleeping thread is not joined");
        assert!(unjoined().contains(&"test-join".to_string()));
        w.stop();
        assert!(t.join_by(Instant::now() + Duration::from_secs(10)).is_ok());
        assert!(!unjoined().contains(&"test-join".to_string()));
        let hooked = Arc::new(AtomicBool::new(false));
        let sd = Shutdown::default();
        let h = Arc::clone(&hooked);
        sd.on_trigger(move || h.store(true, Ordering::SeqCst));
        sd.trigger();
        assert!(hooked.load(Ordering::SeqCst));
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
