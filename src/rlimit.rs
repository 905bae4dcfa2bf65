//! Raises the soft open-files limit to the hard one at start-up, so that a burst of connections
//! meets the largest limit the host allows. std has no wrapper for this; libc is linked anyway,
//! so two declarations are cheaper than a crate.

#[cfg(all(target_os = "linux", target_pointer_width = "64"))]
mod imp {
    /// `struct rlimit` on 64-bit Linux (glibc and musl): two `unsigned long`s.
    #[repr(C)]
    struct RLimit {
        cur: u64,
        max: u64,
    }

    const RLIMIT_NOFILE: i32 = 7;

    unsafe extern "C" {
        fn getrlimit(resource: i32, rlim: *mut RLimit) -> i32;
        fn setrlimit(resource: i32, rlim: *const RLimit) -> i32;
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
}

pub use imp::raise_nofile;

#[cfg(test)]
mod tests {
    #[test]
    fn raising_is_idempotent() {
        if let Some((_, now)) = super::raise_nofile() {
            assert_eq!(super::raise_nofile(), Some((now, now)));
        }
    }
}
