//! What the host allows a fleet: every worker is a thread, and threads (tasks) are limited by the
//! kernel's `pid_max` and `threads-max`, by `RLIMIT_NPROC` (for a user other than root), and by
//! the cgroup's `pids.max` (systemd's `TasksMax=`, `docker run --pids-limit`, a PaaS). A fleet
//! that cannot fit is refused before a thread starts (at start-up, and by a reload), with the
//! limit, its value, the threads needed and what to do, instead of dying half-started.

use std::path::{Path, PathBuf};

/// Threads the service runs whatever the fleet: the main thread, tiny_http's accept thread and
/// its 4 pooled connection threads, the request handlers and renderers, the guard, the signal,
/// reload and saver threads (12 measured with no worker), and room for a few more.
pub const BASE_THREADS: u64 = 16;
/// Room for HTTP connections: tiny_http serves each open connection on a thread of its own.
pub const CONNECTION_THREADS: u64 = 32;

/// One limit on the number of threads the process can have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limit {
    /// What it is called, as a user would look it up (`the cgroup's pids.max (/sys/fs/...)`).
    pub name: String,
    pub value: u64,
    /// Threads (tasks) it already counts that are not this process's.
    pub used_by_others: u64,
}

impl Limit {
    fn room(&self) -> u64 {
        self.value.saturating_sub(self.used_by_others)
    }
}

/// The threads a fleet needs: one per target (workers and the self-ping), one per alert channel,
/// the restart thread when any worker names a Space, and the service's own.
pub fn threads_needed(targets: usize, channels: usize, restarts: bool) -> u64 {
    targets as u64 + channels as u64 + u64::from(restarts) + BASE_THREADS + CONNECTION_THREADS
}

/// The limits that apply to this process now. Each is read where the host has it; one that
/// cannot be read is left out.
pub fn limits() -> Vec<Limit> {
    let own = own_threads();
    let mut out = Vec::new();
    for (name, file) in [
        ("the kernel's pid_max", "/proc/sys/kernel/pid_max"),
        ("the kernel's threads-max", "/proc/sys/kernel/threads-max"),
    ] {
        if let Some(value) = read_number(Path::new(file)) {
            out.push(Limit {
                name: format!("{name} ({file})"),
                value,
                used_by_others: 0,
            });
        }
    }
    if let Some(value) = nproc_limit() {
        out.push(Limit {
            name: "RLIMIT_NPROC (ulimit -u)".to_string(),
            value,
            used_by_others: 0,
        });
    }
    let cgroups = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    out.extend(cgroup_limit(&cgroups, Path::new("/sys/fs/cgroup"), own));
    out
}

/// `Err` naming the limit when `needed` threads do not fit under one of `limits`.
pub fn check(needed: u64, limits: &[Limit]) -> Result<(), String> {
    let Some(tight) = limits.iter().filter(|l| l.room() < needed).min_by_key(|l| l.room()) else {
        return Ok(());
    };
    let others = if tight.used_by_others > 0 {
        format!(", {} of which other processes already use", tight.used_by_others)
    } else {
        String::new()
    };
    Err(format!(
        "this fleet needs about {needed} threads (one per worker, plus {} for the service and its \
         HTTP connections), but {} is {}{others}: raise it (systemd: TasksMax= in the unit; \
         docker: --pids-limit; the kernel: sysctl kernel.pid_max / kernel.threads-max; a user \
         limit: ulimit -u), or split the workers across instances with --shard I/N",
        BASE_THREADS + CONNECTION_THREADS,
        tight.name,
        tight.value,
    ))
}

fn read_number(path: &Path) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// This process's threads now.
fn own_threads() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Threads:").and_then(|v| v.trim().parse().ok()))
        })
        .unwrap_or(1)
}

/// `RLIMIT_NPROC`, when it is finite and applies (the kernel does not hold root to it).
fn nproc_limit() -> Option<u64> {
    let (soft, root) = crate::os::nproc_limit()?;
    (!root).then_some(soft)
}

/// The tightest `pids.max` of this process's cgroup and its ancestors, from `/proc/self/cgroup`
/// (`cgroups`) under `root`: cgroup v2 (`0::/path`) or v1's `pids` controller (`N:pids:/path`).
pub fn cgroup_limit(cgroups: &str, root: &Path, own: u64) -> Option<Limit> {
    let mut candidates: Vec<(PathBuf, String)> = Vec::new();
    for line in cgroups.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        let rel = path.trim_start_matches('/');
        if controllers.split(',').any(|c| c == "pids") {
            candidates.push((root.join("pids"), rel.to_string()));
        } else if controllers.is_empty() {
            candidates.push((root.to_path_buf(), rel.to_string()));
            candidates.push((root.join("unified"), rel.to_string()));
        }
    }
    let mut best: Option<Limit> = None;
    for (mount, rel) in candidates {
        let mut dir = mount.join(&rel);
        loop {
            let max = std::fs::read_to_string(dir.join("pids.max")).ok();
            if let Some(value) = max.and_then(|m| m.trim().parse::<u64>().ok()) {
                let current = read_number(&dir.join("pids.current")).unwrap_or(own);
                let limit = Limit {
                    name: format!("the cgroup's pids.max ({})", dir.join("pids.max").display()),
                    value,
                    used_by_others: current.saturating_sub(own),
                };
                if best.as_ref().is_none_or(|b| limit.room() < b.room()) {
                    best = Some(limit);
                }
            }
            if dir == mount || !dir.pop() || !dir.starts_with(&mount) {
                break;
            }
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(name: &str, value: u64, others: u64) -> Limit {
        Limit {
            name: name.into(),
            value,
            used_by_others: others,
        }
    }

    #[test]
    fn a_fleet_that_does_not_fit_names_the_tightest_limit_and_what_to_do() {
        let needed = threads_needed(5_000, 2, false);
        assert_eq!(needed, 5_000 + 2 + BASE_THREADS + CONNECTION_THREADS);
        let limits = [limit("pid_max", 32_768, 0), limit("the cgroup's pids.max", 4_915, 0)];
        let e = check(needed, &limits).unwrap_err();
        assert!(e.contains(&format!("needs about {needed} threads")), "{e}");
        assert!(e.contains("the cgroup's pids.max is 4915"), "{e}");
        for what in ["TasksMax=", "--pids-limit", "--shard"] {
            assert!(e.contains(what), "{e}");
        }
        assert!(check(4_000, &limits).is_ok());
        let crowded = [limit("pids.max", 5_000, 1_200)];
        let e = check(4_000, &crowded).unwrap_err();
        assert!(e.contains("is 5000, 1200 of which other processes already use"), "{e}");
        assert!(check(1, &[]).is_ok(), "no limit known: no refusal");
    }

    #[test]
    fn the_cgroup_limit_is_the_tightest_of_the_cgroup_and_its_ancestors() {
        let root = std::env::temp_dir().join(format!("mp-cgroup-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let svc = root.join("system.slice/pinger.service");
        std::fs::create_dir_all(&svc).unwrap();
        std::fs::write(root.join("system.slice/pids.max"), "300\n").unwrap();
        std::fs::write(root.join("system.slice/pids.current"), "120\n").unwrap();
        std::fs::write(svc.join("pids.max"), "max\n").unwrap();
        let l = cgroup_limit("0::/system.slice/pinger.service\n", &root, 20).unwrap();
        assert_eq!((l.value, l.used_by_others), (300, 100), "{l:?}");
        assert!(l.name.contains("system.slice/pids.max"), "{l:?}");
        std::fs::write(svc.join("pids.max"), "50\n").unwrap();
        assert_eq!(
            cgroup_limit("0::/system.slice/pinger.service", &root, 20)
                .unwrap()
                .value,
            50
        );
        // cgroup v1: the pids controller's own hierarchy.
        let v1 = root.join("pids/docker/abc");
        std::fs::create_dir_all(&v1).unwrap();
        std::fs::write(v1.join("pids.max"), "64\n").unwrap();
        let l = cgroup_limit("8:pids:/docker/abc\n4:memory:/x\n", &root, 10).unwrap();
        assert_eq!(l.value, 64);
        assert!(cgroup_limit("3:cpu:/\n", &root, 1).is_none());
        let _ = std::fs::remove_dir_all(&root);
    }
}
