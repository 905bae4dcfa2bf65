//! Two process knobs std has no wrapper for (libc is linked anyway, so a few declarations are
//! cheaper than a crate):
//! - the soft open-files limit is raised to the hard one at start-up, so a burst of connections
//!   meets the largest limit the host allows;
//! - the HTTP side runs at a lower CPU priority than the workers, so however hard clients hit the
//!   server, a worker that wakes for its deadline gets a core first.

#[cfg(all(target_os = "linux", target_pointer_width = "64"))]
mod imp {
    /// `struct rlimit` on 64-bit Linux (glibc and musl): two `unsigned long`s.
    #[repr(C)]
    struct RLimit {
        cur: u64,
        max: u64,
    }

    const RLIMIT_NOFILE: i32 = 7;

    const PRIO_PROCESS: i32 = 0;

    unsafe extern "C" {
        fn getrlimit(resource: i32, rlim: *mut RLimit) -> i32;
        fn setrlimit(resource: i32, rlim: *const RLimit) -> i32;
        fn gettid() -> i32;
        fn setpriority(which: i32, who: u32, prio: i32) -> i32;
    }

    /// Sets the nice value of the calling thread (Linux applies it per thread; threads created
    /// afterwards by this one inherit it). False when refused.
    pub fn nice_current_thread(nice: i32) -> bool {
        // SAFETY: plain syscalls on the calling thread's own id; no memory is passed.
        unsafe { setpriority(PRIO_PROCESS, gettid() as u32, nice) == 0 }
    }

    /// Returns (old soft limit, new soft limit), or `None` when the limit could not be read.
    pub fn raise_nofile() -> Option<(u64, u64)> {
        let mut lim = RLimit { cur: 0, max: 0 };
        // SAFETY: `lim` is a valid, writable struct of the layout the kernel ABI expects.
        if unsafe { getrlimit(RLIMIT_NOFILE, &mut lim) } != 0 {
            return None;
        }
        let old = lim.cur;
        if lim.cur < lim.max {
            let want = RLimit {
                cur: lim.max,
                max: lim.max,
            };
            // SAFETY: as above; setrlimit only reads the struct.
            if unsafe { setrlimit(RLIMIT_NOFILE, &want) } == 0 {
                return Some((old, lim.max));
            }
        }
        Some((old, old))
    }
}

#[cfg(not(all(target_os = "linux", target_pointer_width = "64")))]
mod imp {
    pub fn raise_nofile() -> Option<(u64, u64)> {
        None
    }

    pub fn nice_current_thread(_nice: i32) -> bool {
        false
    }
}

pub use imp::{nice_current_thread, raise_nofile};

#[cfg(test)]
mod tests {
    #[test]
    fn a_thread_can_lower_its_own_priority() {
        let ok = std::thread::spawn(|| super::nice_current_thread(5)).join().unwrap();
        assert!(ok || !cfg!(target_os = "linux"));
    }

    #[test]
    fn raising_is_idempotent() {
        if let Some((_, now)) = super::raise_nofile() {
            assert_eq!(super::raise_nofile(), Some((now, now)));
        }
    }
}
