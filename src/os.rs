//! Process and socket knobs std has no wrapper for, on the `libc` crate (its types and constants,
//! so that the same code is right on 32- and 64-bit targets):
//! - the soft open-files limit is raised to the hard one at start-up, so a burst of connections
//!   meets the largest limit the host allows;
//! - the HTTP side runs at a lower CPU priority than the workers, so however hard clients hit the
//!   server, a worker that wakes for its deadline gets a core first;
//! - a worker hands back the stack pages one check touched before it goes back to sleep;
//! - the HTTP side sets `TCP_NODELAY`, tells sockets apart by inode, duplicates descriptors and
//!   reads `TCP_INFO`;
//! - `once --publish` swaps a new folder for the old one in one step (`RENAME_EXCHANGE`).

/// The identity of an open file (here: a socket) for as long as it is open.
#[cfg(target_os = "linux")]
pub type Inode = libc::ino_t;
#[cfg(not(target_os = "linux"))]
pub type Inode = u64;

/// The calling thread's stack. Only `current_stack` makes one, and it cannot leave the thread
/// that made it, so `release_stack_below_here` is only ever given the caller's own stack.
pub struct Stack {
    low: usize,
    size: usize,
    _this_thread_only: std::marker::PhantomData<*const ()>,
}

impl Stack {
    pub fn size(&self) -> usize {
        self.size
    }
}

#[cfg(target_os = "linux")]
mod imp {
    use super::{Inode, Stack};
    use std::mem::MaybeUninit;
    use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

    /// A new descriptor for whatever `fd` refers to right now, or `None` (closed, or no
    /// descriptor to spare). Unlike a borrowed raw fd, the duplicate keeps that very socket
    /// alive: it cannot be closed and reused under the caller.
    pub fn dup(fd: RawFd) -> Option<OwnedFd> {
        // SAFETY: fcntl(F_DUPFD_CLOEXEC) only reads the descriptor number; a closed one is EBADF.
        let new = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0 as libc::c_int) };
        // SAFETY: a non-negative result is a fresh descriptor that nothing else owns.
        (new >= 0).then(|| unsafe { OwnedFd::from_raw_fd(new) })
    }

    /// The inode of the socket descriptor `fd` refers to right now; `None` when it is closed or
    /// not a socket. It takes no descriptor, so it works when none are left.
    pub fn socket_inode(fd: RawFd) -> Option<Inode> {
        let mut st = MaybeUninit::<libc::stat>::zeroed();
        // SAFETY: fstat writes a `struct stat` into the buffer it is given, which is one; a
        // closed descriptor is EBADF and leaves it untouched.
        if unsafe { libc::fstat(fd, st.as_mut_ptr()) } != 0 {
            return None;
        }
        // SAFETY: zeroed, then filled in by a successful fstat; every field is an integer.
        let st = unsafe { st.assume_init() };
        (st.st_mode & libc::S_IFMT == libc::S_IFSOCK).then_some(st.st_ino)
    }

    /// `TCP_INFO` of a TCP socket: (state, milliseconds since data was last sent on it). The time
    /// counts from the connection's start when nothing has been sent yet.
    pub fn tcp_info(fd: BorrowedFd<'_>) -> Option<(u8, u32)> {
        let mut info = MaybeUninit::<libc::tcp_info>::zeroed();
        let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
        // SAFETY: the kernel writes at most `len` bytes into `info` and sets `len` to the count.
        let r = unsafe {
            libc::getsockopt(
                fd.as_raw_fd(),
                libc::SOL_TCP,
                libc::TCP_INFO,
                info.as_mut_ptr().cast(),
                &mut len,
            )
        };
        // An older kernel fills in a shorter prefix; the fields read here are in every version.
        let needed = std::mem::offset_of!(libc::tcp_info, tcpi_last_data_sent) + 4;
        if r != 0 || (len as usize) < needed {
            return None;
        }
        // SAFETY: zeroed, then (partly) filled in by the kernel; every field is an integer.
        let info = unsafe { info.assume_init() };
        Some((info.tcpi_state, info.tcpi_last_data_sent))
    }

    /// Copies up to `buf.len()` bytes waiting to be read on a socket without taking them;
    /// `None` on an error (nothing waiting is `Some(0)`).
    pub fn peek(fd: BorrowedFd<'_>, buf: &mut [u8]) -> Option<usize> {
        // SAFETY: recv writes at most `buf.len()` bytes into `buf`; MSG_PEEK leaves them queued.
        let n = unsafe {
            libc::recv(
                fd.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_PEEK | libc::MSG_DONTWAIT,
            )
        };
        match n {
            n if n >= 0 => Some(n as usize),
            _ if std::io::Error::last_os_error().kind() == std::io::ErrorKind::WouldBlock => Some(0),
            _ => None,
        }
    }

    /// Bytes written to a TCP socket that the peer has not acknowledged yet (`SIOCOUTQ`).
    pub fn unsent_bytes(fd: BorrowedFd<'_>) -> Option<u32> {
        let mut n: libc::c_int = 0;
        // SAFETY: TIOCOUTQ (SIOCOUTQ) writes one int into `n`, which lives across the call.
        let r = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCOUTQ, &mut n) };
        (r == 0).then(|| u32::try_from(n).unwrap_or(0))
    }

    /// Sets `TCP_NODELAY` on a TCP socket. On a listening socket, Linux copies it to every
    /// connection accepted from it.
    pub fn set_nodelay(fd: BorrowedFd<'_>) -> std::io::Result<()> {
        let on: libc::c_int = 1;
        // SAFETY: setsockopt reads `size_of::<c_int>()` bytes from `on`, which lives across the call.
        let r = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::IPPROTO_TCP,
                libc::TCP_NODELAY,
                (&raw const on).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if r == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    }

    pub fn current_stack() -> Option<Stack> {
        let mut attr = MaybeUninit::<libc::pthread_attr_t>::uninit();
        let (mut addr, mut size) = (std::ptr::null_mut::<libc::c_void>(), 0 as libc::size_t);
        // SAFETY: pthread_getattr_np initialises `attr` when it succeeds; only then is it read,
        // and it is destroyed after.
        unsafe {
            if libc::pthread_getattr_np(libc::pthread_self(), attr.as_mut_ptr()) != 0 {
                return None;
            }
            let ok = libc::pthread_attr_getstack(attr.as_ptr(), &mut addr, &mut size) == 0;
            libc::pthread_attr_destroy(attr.as_mut_ptr());
            (ok && size > 0).then_some(Stack {
                low: addr as usize,
                size,
                _this_thread_only: std::marker::PhantomData,
            })
        }
    }

    fn page_size() -> Option<usize> {
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        usize::try_from(page).ok().filter(|p| p.is_power_of_two())
    }

    /// Returns to the kernel the pages of this thread's stack below the caller's frame (minus a
    /// margin). A worker's check touches ~50-80 KiB of stack (HTTP, DNS, TLS; at 1,000 workers
    /// releasing it took the process from 52 MB to 16.5 MB resident); without this every
    /// sleeping worker would keep those pages resident for good. Returns the bytes released.
    ///
    /// Sound for any `Stack`: one can only be made by `current_stack` on this same thread, and
    /// the range is checked to hold the caller's frame, so everything released lies below every
    /// live frame of this thread, where nothing else lives.
    #[inline(never)]
    pub fn release_stack_below_here(stack: &Stack) -> usize {
        let Some(page) = page_size() else {
            return 0;
        };
        let marker = 0u8;
        let sp = std::hint::black_box(&marker) as *const u8 as usize;
        // Keep the current frames and a page of margin; never touch the lowest (guard) page.
        let end = sp.saturating_sub(4 * 1024) & !(page - 1);
        let start = stack.low.saturating_add(2 * page - 1) & !(page - 1);
        if sp < stack.low || sp - stack.low > stack.size || end <= start {
            return 0;
        }
        // SAFETY: [start, end) lies inside this thread's own stack mapping, below every live
        // frame (see above); MADV_DONTNEED on private anonymous memory only drops pages, which
        // read back as zeroes when the stack grows into them again.
        let ok = unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED) } == 0;
        if ok { end - start } else { 0 }
    }

    /// Sets the nice value of the calling thread (Linux applies it per thread; threads created
    /// afterwards by this one inherit it). False when refused.
    pub fn nice_current_thread(nice: i32) -> bool {
        // SAFETY: plain syscalls on the calling thread's own id; no memory is passed.
        unsafe { libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, nice) == 0 }
    }

    /// Exchanges two existing paths in one step (`renameat2` with `RENAME_EXCHANGE`): a reader
    /// sees either the old or the new entry at each path, never neither. Through the raw
    /// syscall, since older C libraries have no wrapper. Fails where the kernel (before 3.15) or
    /// the file system does not support it.
    pub fn exchange(a: &std::path::Path, b: &std::path::Path) -> std::io::Result<()> {
        use std::os::unix::ffi::OsStrExt;
        let c = |p: &std::path::Path| {
            std::ffi::CString::new(p.as_os_str().as_bytes())
                .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "a path with a NUL byte"))
        };
        let (a, b) = (c(a)?, c(b)?);
        // SAFETY: both paths are NUL-terminated strings that outlive the call; the kernel only
        // reads them.
        let r = unsafe {
            libc::syscall(
                libc::SYS_renameat2,
                libc::AT_FDCWD,
                a.as_ptr(),
                libc::AT_FDCWD,
                b.as_ptr(),
                libc::RENAME_EXCHANGE,
            )
        };
        if r == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    }

    /// Writes everything cached for the file system holding `path` to disk (`syncfs`): one call
    /// in place of an fsync per file, for a folder of a thousand new files.
    pub fn sync_filesystem(path: &std::path::Path) -> std::io::Result<()> {
        let dir = std::fs::File::open(path)?;
        // SAFETY: a valid descriptor, open for the duration of the call.
        if unsafe { libc::syncfs(dir.as_raw_fd()) } == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    }

    /// Returns (old soft limit, new soft limit), or `None` when the limit could not be read.
    /// `RLIMIT_NPROC`'s soft value when finite, and whether the process runs as root (which
    /// the kernel does not hold to it).
    pub fn nproc_limit() -> Option<(u64, bool)> {
        let mut lim = MaybeUninit::<libc::rlimit>::zeroed();
        // SAFETY: getrlimit fills in the `struct rlimit` it is given.
        if unsafe { libc::getrlimit(libc::RLIMIT_NPROC, lim.as_mut_ptr()) } != 0 {
            return None;
        }
        // SAFETY: getrlimit succeeded, so the struct is filled in.
        let soft = unsafe { lim.assume_init() }.rlim_cur;
        // SAFETY: geteuid cannot fail.
        let root = unsafe { libc::geteuid() } == 0;
        // `rlim_t` is 32 bits on some targets.
        #[allow(clippy::unnecessary_cast)]
        (soft != libc::RLIM_INFINITY).then_some((soft as u64, root))
    }

    pub fn raise_nofile() -> Option<(libc::rlim_t, libc::rlim_t)> {
        let mut lim = MaybeUninit::<libc::rlimit>::zeroed();
        // SAFETY: getrlimit fills in the `struct rlimit` it is given.
        if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, lim.as_mut_ptr()) } != 0 {
            return None;
        }
        // SAFETY: zeroed, then filled in by a successful getrlimit.
        let mut lim = unsafe { lim.assume_init() };
        let old = lim.rlim_cur;
        if lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            // SAFETY: setrlimit only reads the struct.
            if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } == 0 {
                return Some((old, lim.rlim_max));
            }
        }
        Some((old, old))
    }
}

#[cfg(not(target_os = "linux"))]
mod imp {
    use super::{Inode, Stack};
    use std::os::fd::{BorrowedFd, OwnedFd, RawFd};

    pub fn raise_nofile() -> Option<(u64, u64)> {
        None
    }

    pub fn nproc_limit() -> Option<(u64, bool)> {
        None
    }

    pub fn exchange(_a: &std::path::Path, _b: &std::path::Path) -> std::io::Result<()> {
        Err(std::io::ErrorKind::Unsupported.into())
    }

    pub fn sync_filesystem(_path: &std::path::Path) -> std::io::Result<()> {
        Err(std::io::ErrorKind::Unsupported.into())
    }

    pub fn nice_current_thread(_nice: i32) -> bool {
        false
    }

    pub fn current_stack() -> Option<Stack> {
        None
    }

    pub fn release_stack_below_here(_stack: &Stack) -> usize {
        0
    }

    pub fn dup(_fd: RawFd) -> Option<OwnedFd> {
        None
    }

    pub fn socket_inode(_fd: RawFd) -> Option<Inode> {
        None
    }

    pub fn tcp_info(_fd: BorrowedFd<'_>) -> Option<(u8, u32)> {
        None
    }

    pub fn set_nodelay(_fd: BorrowedFd<'_>) -> std::io::Result<()> {
        Ok(())
    }

    pub fn peek(_fd: BorrowedFd<'_>, _buf: &mut [u8]) -> Option<usize> {
        None
    }

    pub fn unsent_bytes(_fd: BorrowedFd<'_>) -> Option<u32> {
        None
    }
}

pub use imp::{
    current_stack, dup, exchange, nice_current_thread, nproc_limit, peek, raise_nofile, release_stack_below_here,
    set_nodelay, socket_inode, sync_filesystem, tcp_info, unsent_bytes,
};

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
                assert!(stack.size() >= 512 * 1024);
                assert_eq!(deep(100), 5050);
                let released = super::release_stack_below_here(&stack);
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

    #[cfg(target_os = "linux")]
    #[test]
    fn the_soft_open_files_limit_is_raised_to_the_hard_one() {
        let (_, now) = super::raise_nofile().expect("getrlimit(RLIMIT_NOFILE) works on Linux");
        let limits = std::fs::read_to_string("/proc/self/limits").unwrap();
        let open_files: Vec<&str> = limits
            .lines()
            .find(|l| l.starts_with("Max open files"))
            .expect("an open files line")
            .split_whitespace()
            .collect();
        // "Max open files <soft> <hard> files": both now the same, and what was returned.
        assert_eq!(open_files[3], open_files[4], "{open_files:?}");
        assert_eq!(open_files[3], now.to_string());
        assert_eq!(super::raise_nofile(), Some((now, now)), "raising again changes nothing");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn sockets_are_told_apart_by_inode() {
        use std::os::fd::{AsFd, AsRawFd};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        // Before any connection: Linux copies the option to a connection when it is set up.
        super::set_nodelay(listener.as_fd()).unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let a = super::socket_inode(listener.as_raw_fd()).expect("a socket");
        let b = super::socket_inode(client.as_raw_fd()).expect("a socket");
        assert_ne!(a, b);
        let dup = super::dup(client.as_raw_fd()).unwrap();
        assert_eq!(
            super::socket_inode(dup.as_raw_fd()),
            Some(b),
            "a duplicate is the same socket"
        );
        let file = std::fs::File::open("/proc/self/limits").unwrap();
        assert_eq!(super::socket_inode(file.as_raw_fd()), None, "a file is not a socket");
        let (accepted, _) = listener.accept().unwrap();
        assert!(accepted.nodelay().unwrap(), "an accepted socket inherits TCP_NODELAY");
        assert!(!client.nodelay().unwrap());
    }
}
