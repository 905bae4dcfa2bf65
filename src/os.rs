//! Two process knobs std has no wrapper for (libc is linked anyway, so a few declarations are
//! cheaper than a crate):
//! - the soft open-files limit is raised to the hard one at start-up, so a burst of connections
//!   meets the largest limit the host allows;
//! - the HTTP side runs at a lower CPU priority than the workers, so however hard clients hit the
//!   server, a worker that wakes for its deadline gets a core first;
//! - a worker hands back the stack pages one check touched before it goes back to sleep;
//! - the HTTP connection guard duplicates descriptors and reads `TCP_INFO`.

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
    const MADV_DONTNEED: i32 = 4;
    const PAGE: usize = 4096;

    unsafe extern "C" {
        fn getrlimit(resource: i32, rlim: *mut RLimit) -> i32;
        fn setrlimit(resource: i32, rlim: *const RLimit) -> i32;
        fn gettid() -> i32;
        fn setpriority(which: i32, who: u32, prio: i32) -> i32;
        fn pthread_self() -> usize;
        fn pthread_getattr_np(thread: usize, attr: *mut PthreadAttr) -> i32;
        fn pthread_attr_getstack(attr: *const PthreadAttr, addr: *mut usize, size: *mut usize) -> i32;
        fn pthread_attr_destroy(attr: *mut PthreadAttr) -> i32;
        fn madvise(addr: usize, len: usize, advice: i32) -> i32;
        fn fcntl(fd: i32, cmd: i32, ...) -> i32;
        fn getsockopt(fd: i32, level: i32, name: i32, value: *mut u8, len: *mut u32) -> i32;
    }

    const F_DUPFD_CLOEXEC: i32 = 1030;
    const SOL_TCP: i32 = 6;
    const TCP_INFO: i32 = 11;

    /// A new descriptor for whatever `fd` refers to right now, or `None` (closed, or no
    /// descriptor to spare). Unlike a borrowed raw fd, the duplicate keeps that very socket
    /// alive: it cannot be closed and reused under the caller.
    pub fn dup(fd: i32) -> Option<std::os::fd::OwnedFd> {
        use std::os::fd::FromRawFd;
        // SAFETY: fcntl(F_DUPFD_CLOEXEC) only reads the descriptor number; a closed one is EBADF.
        let new = unsafe { fcntl(fd, F_DUPFD_CLOEXEC, 0i32) };
        // SAFETY: a non-negative result is a fresh descriptor that nothing else owns.
        (new >= 0).then(|| unsafe { std::os::fd::OwnedFd::from_raw_fd(new) })
    }

    /// `TCP_INFO` of a TCP socket: (state, ms since data was last sent, ms since data was last
    /// received). Both times count from the connection's start when nothing has moved yet.
    pub fn tcp_info(fd: std::os::fd::BorrowedFd<'_>) -> Option<(u8, u32, u32)> {
        use std::os::fd::AsRawFd;
        // Offsets in `struct tcp_info`, stable since Linux 2.6: state at 0, last_data_sent at
        // 44, last_data_recv at 52.
        let mut buf = [0u8; 104];
        let mut len = buf.len() as u32;
        // SAFETY: the kernel writes at most `len` bytes into `buf` and updates `len`.
        let r = unsafe { getsockopt(fd.as_raw_fd(), SOL_TCP, TCP_INFO, buf.as_mut_ptr(), &mut len) };
        if r != 0 || len < 56 {
            return None;
        }
        let u32_at = |at: usize| u32::from_ne_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]]);
        Some((buf[0], u32_at(44), u32_at(52)))
    }

    /// `pthread_attr_t` is 56 bytes on 64-bit glibc and musl; 64 leaves room to spare.
    #[repr(C, align(8))]
    pub struct PthreadAttr([u8; 64]);

    /// The calling thread's stack as (lowest address, size).
    pub fn current_stack() -> Option<(usize, usize)> {
        let mut attr = PthreadAttr([0; 64]);
        let (mut addr, mut size) = (0usize, 0usize);
        // SAFETY: `attr` is large enough and aligned for pthread_attr_t; it is initialised by
        // pthread_getattr_np before use and destroyed after.
        unsafe {
            if pthread_getattr_np(pthread_self(), &mut attr) != 0 {
                return None;
            }
            let ok = pthread_attr_getstack(&attr, &mut addr, &mut size) == 0;
            pthread_attr_destroy(&mut attr);
            (ok && size > 0).then_some((addr, size))
        }
    }

    /// Returns to the kernel the pages of `stack` below the caller's frame (minus a margin).
    /// A worker's check touches ~50-80 KiB of stack (HTTP, DNS, TLS); without this every sleeping
    /// worker would keep those pages resident for good. Returns the bytes released.
    #[inline(never)]
    pub fn release_stack_below_here(stack: (usize, usize)) -> usize {
        let marker = 0u8;
        let sp = std::hint::black_box(&marker) as *const u8 as usize;
        let (low, size) = stack;
        // Keep the current frames and a page of margin; never touch the lowest page.
        let end = sp.saturating_sub(4 * 1024) & !(PAGE - 1);
        let start = (low + PAGE + PAGE - 1) & !(PAGE - 1);
        if sp < low || sp > low + size || end <= start {
            return 0;
        }
        // SAFETY: [start, end) lies inside this thread's own stack mapping, below every live
        // frame; MADV_DONTNEED on private anonymous memory only drops pages, which read back as
        // zeroes when the stack grows into them again.
        let ok = unsafe { madvise(start, end - start, MADV_DONTNEED) } == 0;
        if ok { end - start } else { 0 }
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

    pub fn current_stack() -> Option<(usize, usize)> {
        None
    }

    pub fn release_stack_below_here(_stack: (usize, usize)) -> usize {
        0
    }

    pub fn dup(_fd: i32) -> Option<std::os::fd::OwnedFd> {
        None
    }

    pub fn tcp_info(_fd: std::os::fd::BorrowedFd<'_>) -> Option<(u8, u32, u32)> {
        None
    }
}

pub use imp::{current_stack, dup, nice_current_thread, raise_nofile, release_stack_below_here, tcp_info};

#[cfg(test)]
mod tests {
    #[test]
    fn a_thread_can_lower_its_own_priority() {
        let ok = std::thread::spawn(|| super::nice_current_thread(5)).join().unwrap();
        assert!(ok || !cfg!(target_os = "linux"));
    }

    #[test]
    fn a_deep_stack_is_released_and_still_works() {
        fn deep(n: u32) -> u64 {
            let buf = std::hint::black_box([n as u8; 1024]);
            if n == 0 {
                u64::from(buf[0])
            } else {
                deep(n - 1) + u64::from(buf[1])
            }
        }
        let released = std::thread::Builder::new()
            .stack_size(512 * 1024)
            .spawn(|| {
                let stack = super::current_stack().expect("stack bounds");
                assert!(stack.1 >= 512 * 1024);
                assert_eq!(deep(100), 5050);
                let released = super::release_stack_below_here(stack);
                // The released pages come back as zeroed memory when used again.
                assert_eq!(deep(100), 5050);
                released
            })
            .unwrap()
            .join()
            .unwrap();
        assert!(
            released >= 256 * 1024 || !cfg!(target_os = "linux"),
            "released {released}"
        );
    }

    #[test]
    fn raising_is_idempotent() {
        if let Some((_, now)) = super::raise_nofile() {
            assert_eq!(super::raise_nofile(), Some((now, now)));
        }
    }
}
