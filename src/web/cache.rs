//! Rendered bodies of `/status`, `/` and `/metrics`, kept because a status page is read far more
//! often than the state changes. A body is rendered again only when the state's version moved
//! and the cached one is at least `MIN_AGE` old; every request in between shares the same bytes,
//! their ETag and (rendered on first demand) their gzip form. While one thread renders a stale
//! entry again, the others keep serving the old body instead of rendering it too: under load
//! that is the difference between one render a second and one per request. Before it, each
//! `/status?history=0` request at 1,000 workers built and freed a 430 KB body (134 page faults,
//! and on musl an `mmap`/`munmap` pair that contends on the process's memory map): 2.3 ms of
//! server CPU a request under wrk -c50 (glibc, `perf stat`), 14 ms measured on musl; with the
//! cache and one write per response, 0.25 ms.
//!
//! Only small, often-read bodies are kept here (the page, `/metrics`, `/status?history=0`);
//! bodies that grow with workers times history are streamed (`stream.rs`). ETags come from the
//! state's version and the variant, not from the body, so a request that has the current body
//! gets its 304 without any render.

use flate2::Compression;
use flate2::write::GzEncoder;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, TryLockError};
use std::time::{Duration, Instant, SystemTime};

/// A body is rendered at most once per this, however often the state changes.
pub const MIN_AGE: Duration = Duration::from_secs(1);
/// Distinct query variants kept; the least recently used goes first. Bounded so that a client
/// walking through `?history=1..N` or unknown names cannot grow memory.
pub const MAX_ENTRIES: usize = 32;
/// Bytes of bodies kept (gzip forms included). A large fleet's `/status?history=100` alone is
/// several MB, so this, not `MAX_ENTRIES`, is what bounds memory; the body just rendered is kept
/// even when it is larger on its own.
pub const MAX_BYTES: usize = 4 << 20;
/// Bodies this small are sent as they are: gzip would save little and cost a header's worth.
pub const GZIP_MIN: usize = 1024;
/// The largest `/status?history=0` kept here; a larger one is streamed like any other `/status`.
/// 1,000 workers make about 450 KB (80 KB gzipped), so up to about 2,000 workers it is cached:
/// with its gzip form, the page and `/metrics` it fits `MAX_BYTES` twice over, and at that size
/// a fresh render (about a millisecond per hundred workers) is worth sparing. Past it, a body
/// held here (plus its copy while it is made) would cost more memory than the render costs time.
pub const MAX_STATUS_BODY: usize = 1 << 20;

/// The part of every ETag that tells this process from the one before a restart: a version
/// number starts again at 0, and a client must not get a 304 for a body of the previous process.
fn boot() -> u64 {
    static BOOT: OnceLock<u64> = OnceLock::new();
    *BOOT.get_or_init(|| {
        let t = SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        t.as_secs() << 20 ^ u64::from(t.subsec_micros()) ^ u64::from(std::process::id()) << 44
    })
}

/// The ETag of variant `key` at state version `version`, unquoted (see `quote`). Weak: a body
/// rendered again at the same version may differ in what time alone changes (`uptime_seconds`).
pub fn tag(version: u64, key: &Key) -> String {
    let mut h = DefaultHasher::new();
    key.hash(&mut h);
    format!("{:x}.{version:x}.{:x}", boot(), h.finish() & 0xffff_ffff)
}

/// The header value of `tag` for the plain or the gzip form (each encoding has its own tag).
pub fn quote(tag: &str, gzip: bool) -> String {
    format!("W/\"{tag}{}\"", if gzip { ".gz" } else { "" })
}

/// True when an `If-None-Match` value names `tag` (in either encoding) or is `*`.
pub fn tag_matches(tag: &str, if_none_match: &str) -> bool {
    if_none_match.split(',').map(str::trim).any(|t| {
        let t = t.strip_prefix("W/").unwrap_or(t).trim_matches('"');
        t == "*" || t.strip_suffix(".gz").unwrap_or(t) == tag
    })
}

/// Which body: the endpoint and the query variants that change it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Key {
    Page,
    Metrics,
    Status {
        history: usize,
        worker: Option<String>,
        state: Option<&'static str>,
    },
}

/// One rendering of a body, shared by every request served from it.
#[derive(Debug)]
pub struct Rendered {
    /// The state's version read before the snapshot this was rendered from.
    pub version: u64,
    pub at: Instant,
    pub body: Arc<[u8]>,
    /// The validator of `body` (see `tag`), unquoted.
    pub tag: Arc<str>,
    gzip: OnceLock<Option<Arc<[u8]>>>,
}

impl Rendered {
    pub fn new(version: u64, at: Instant, tag: String, body: Vec<u8>) -> Rendered {
        Rendered {
            version,
            at,
            tag: tag.into(),
            body: body.into(),
            gzip: OnceLock::new(),
        }
    }

    /// Memory held: the body and its gzip form once made.
    pub fn size(&self) -> usize {
        self.body.len() + self.gzip.get().and_then(|g| g.as_ref()).map_or(0, |g| g.len())
    }

    /// The gzip form, compressed on first demand and kept; `None` for small bodies.
    pub fn gzip(&self) -> Option<Arc<[u8]>> {
        self.gzip
            .get_or_init(|| {
                if self.body.len() < GZIP_MIN {
                    return None;
                }
                gzip(&self.body).map(Arc::from)
            })
            .clone()
    }

    /// The `ETag` header of the plain or the gzip form.
    pub fn etag(&self, gzip: bool) -> String {
        quote(&self.tag, gzip)
    }

    /// True when an `If-None-Match` value names this body (in either encoding) or is `*`.
    pub fn matches(&self, if_none_match: &str) -> bool {
        tag_matches(&self.tag, if_none_match)
    }
}

/// Stack for the compressing thread. The deflate state is about 300 KB and, unoptimised, is
/// built on the stack before it is boxed: more than an HTTP handler's 256 KiB.
const GZIP_STACK: usize = 2 << 20;

/// Compresses on a short-lived thread of its own (at most once a second per body), so the HTTP
/// handlers keep their small stacks. `None` when no thread can be started.
fn gzip(data: &[u8]) -> Option<Vec<u8>> {
    std::thread::scope(|s| {
        let spawned = std::thread::Builder::new()
            .name("gzip".into())
            .stack_size(GZIP_STACK)
            .spawn_scoped(s, || {
                let mut enc = GzEncoder::new(Vec::with_capacity(data.len() / 4), Compression::default());
                // Writing into a Vec cannot fail.
                let _ = enc.write_all(data);
                enc.finish().unwrap_or_default()
            });
        match spawned {
            Ok(h) => h.join().ok(),
            Err(e) => {
                log::warn!("cannot start a thread to compress a response ({e}); sending it uncompressed");
                None
            }
        }
    })
}

#[derive(Default)]
struct Slot {
    current: Mutex<Option<Arc<Rendered>>>,
    /// Held by the one thread rendering this key again.
    rendering: Mutex<()>,
}

impl Slot {
    fn current(&self) -> Option<Arc<Rendered>> {
        lock(&self.current).clone()
    }
}

struct Entry {
    key: Key,
    slot: Arc<Slot>,
    used: u64,
}

#[derive(Default)]
pub struct Cache {
    entries: Mutex<(u64, Vec<Entry>)>,
    /// The fleet size at which `/status?history=0` last came out over `MAX_STATUS_BODY` (0:
    /// never), so that a large fleet streams it without first trying a render that is dropped.
    pub status_too_large_at: AtomicUsize,
}

/// A poisoned lock here only means a render panicked; the cached values are still whole.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn fresh(r: &Rendered, version: u64, now: Instant) -> bool {
    r.version == version || now.saturating_duration_since(r.at) < MIN_AGE
}

impl Cache {
    fn slot(&self, key: &Key) -> Arc<Slot> {
        let mut guard = lock(&self.entries);
        let (clock, entries) = &mut *guard;
        *clock += 1;
        if let Some(e) = entries.iter_mut().find(|e| &e.key == key) {
            e.used = *clock;
            return Arc::clone(&e.slot);
        }
        if entries.len() >= MAX_ENTRIES {
            if let Some(oldest) = (0..entries.len()).min_by_key(|&i| entries[i].used) {
                entries.swap_remove(oldest);
            }
        }
        let slot = Arc::new(Slot::default());
        entries.push(Entry {
            key: key.clone(),
            slot: Arc::clone(&slot),
            used: *clock,
        });
        slot
    }

    /// The body for `key`: the cached one while it is fresh for `version`, else `render()`'s,
    /// with its gzip form made (and counted) when `gzip` is asked. `version` must be read before
    /// `render` takes its snapshot. `None` when `render` declines (a body too large to keep).
    pub fn get(
        &self,
        key: &Key,
        version: u64,
        now: Instant,
        gzip: bool,
        render: impl FnOnce() -> Option<Vec<u8>>,
    ) -> Option<Arc<Rendered>> {
        let slot = self.slot(key);
        let r = self.current_or_render(&slot, key, version, now, render)?;
        if gzip && r.gzip.get().is_none() {
            // The gzip form adds to what is held: trim again once it is there.
            r.gzip();
            self.trim(&slot);
        }
        Some(r)
    }

    fn current_or_render(
        &self,
        slot: &Arc<Slot>,
        key: &Key,
        version: u64,
        now: Instant,
        render: impl FnOnce() -> Option<Vec<u8>>,
    ) -> Option<Arc<Rendered>> {
        let stale = slot.current();
        if let Some(r) = stale.as_ref().filter(|r| fresh(r, version, now)) {
            return Some(Arc::clone(r));
        }
        let _rendering = match slot.rendering.try_lock() {
            Ok(g) => g,
            Err(TryLockError::WouldBlock) => match stale {
                // Someone is rendering this key right now: the body they replace is at most a
                // render old, so serve it rather than render the same thing twice.
                Some(r) => return Some(r),
                None => lock(&slot.rendering),
            },
            Err(TryLockError::Poisoned(e)) => e.into_inner(),
        };
        // Whoever held the render lock before may have just stored what we need.
        if let Some(r) = slot
            .current()
            .filter(|r| fresh(r, version, now) || r.version >= version)
        {
            return Some(r);
        }
        let r = Arc::new(Rendered::new(version, now, tag(version, key), render()?));
        *lock(&slot.current) = Some(Arc::clone(&r));
        self.trim(slot);
        Some(r)
    }

    /// Drops the least recently used entries, never `keep`, until the bodies fit in `MAX_BYTES`.
    fn trim(&self, keep: &Arc<Slot>) {
        let mut guard = lock(&self.entries);
        let entries = &mut guard.1;
        let size = |e: &Entry| e.slot.current().map_or(0, |r| r.size());
        let mut total: usize = entries.iter().map(size).sum();
        while total > MAX_BYTES {
            let oldest = (0..entries.len())
                .filter(|&i| !Arc::ptr_eq(&entries[i].slot, keep))
                .min_by_key(|&i| entries[i].used);
            let Some(i) = oldest else { break };
            total -= size(&entries[i]);
            entries.swap_remove(i);
        }
    }

    /// Variants held (for tests).
    #[cfg(test)]
    pub fn entries(&self) -> usize {
        lock(&self.entries).1.len()
    }

    /// Bytes held, by what is in the entries themselves (not by `Rendered::size`).
    #[cfg(test)]
    fn held(&self) -> usize {
        let guard = lock(&self.entries);
        let held = |r: &Rendered| r.body.len() + r.gzip.get().and_then(|g| g.as_ref()).map_or(0, |g| g.len());
        guard.1.iter().filter_map(|e| e.slot.current()).map(|r| held(&r)).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::read::GzDecoder;
    use std::io::Read;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A plain (not gzip) read that always renders when asked.
    fn get(cache: &Cache, key: &Key, version: u64, at: Instant, render: impl FnOnce() -> Vec<u8>) -> Arc<Rendered> {
        cache.get(key, version, at, false, || Some(render())).unwrap()
    }

    fn status(history: usize) -> Key {
        Key::Status {
            history,
            worker: None,
            state: None,
        }
    }

    #[test]
    fn renders_again_only_after_a_change_and_a_second() {
        let cache = Cache::default();
        let renders = AtomicUsize::new(0);
        let t0 = Instant::now();
        let get = |version, at| {
            get(&cache, &Key::Page, version, at, || {
                let n = renders.fetch_add(1, Ordering::SeqCst);
                format!("body {n}").into_bytes()
            })
        };
        let first = get(1, t0);
        let same = get(1, t0 + Duration::from_secs(60));
        assert!(Arc::ptr_eq(&first.body, &same.body), "nothing changed: the same bytes");
        assert_eq!(first.tag, same.tag);
        let soon = get(2, t0 + Duration::from_millis(500));
        assert_eq!(&*soon.body, b"body 0", "changed, but rendered less than a second ago");
        let later = get(2, t0 + Duration::from_millis(1001));
        assert_eq!(&*later.body, b"body 1");
        assert_ne!(later.tag, first.tag);
        assert_eq!(renders.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn keys_are_separate_and_bounded() {
        let cache = Cache::default();
        let t0 = Instant::now();
        let a = get(&cache, &status(0), 1, t0, || b"zero".to_vec());
        let b = get(&cache, &status(5), 1, t0, || b"five".to_vec());
        assert_ne!(a.body, b.body);
        for n in 0..3 * MAX_ENTRIES {
            get(&cache, &status(100 + n), 1, t0, Vec::new);
        }
        assert_eq!(cache.entries(), MAX_ENTRIES);
    }

    #[test]
    fn large_bodies_are_bounded_in_bytes() {
        let cache = Cache::default();
        let t0 = Instant::now();
        let big = || vec![b'x'; MAX_BYTES / 3 + 1];
        for n in 0..5 {
            get(&cache, &status(n), 1, t0, big);
        }
        assert_eq!(cache.entries(), 2, "two fit, a third would pass the budget");
        let huge = get(&cache, &status(99), 1, t0, || vec![b'x'; MAX_BYTES * 2]);
        assert_eq!(huge.body.len(), MAX_BYTES * 2, "served even when over the budget alone");
        assert_eq!(cache.entries(), 1);
    }

    #[test]
    fn a_render_in_progress_is_not_repeated() {
        let cache = Arc::new(Cache::default());
        let t0 = Instant::now();
        get(&cache, &Key::Metrics, 1, t0, || b"old".to_vec());
        let (started_tx, started_rx) = std::sync::mpsc::channel();
        let (finish_tx, finish_rx) = std::sync::mpsc::channel::<()>();
        let slow = {
            let cache = Arc::clone(&cache);
            std::thread::spawn(move || {
                get(&cache, &Key::Metrics, 2, t0 + MIN_AGE, || {
                    started_tx.send(()).unwrap();
                    finish_rx.recv().unwrap();
                    b"new".to_vec()
                })
            })
        };
        started_rx.recv().unwrap();
        let during = get(&cache, &Key::Metrics, 2, t0 + MIN_AGE, || panic!("rendered twice"));
        assert_eq!(&*during.body, b"old", "served the old body while the new one renders");
        finish_tx.send(()).unwrap();
        assert_eq!(&*slow.join().unwrap().body, b"new");
        let after = get(&cache, &Key::Metrics, 2, t0 + MIN_AGE, || panic!("rendered twice"));
        assert_eq!(&*after.body, b"new");
    }

    #[test]
    fn gzip_round_trip_only_above_the_threshold() {
        let big: Vec<u8> = (0..20_000).map(|i| b"status page "[i % 12]).collect();
        let r = Rendered::new(1, Instant::now(), "t".into(), big.clone());
        let z = r.gzip().expect("compressed");
        assert!(z.len() < big.len() / 10, "{} bytes", z.len());
        let mut back = Vec::new();
        GzDecoder::new(&*z).read_to_end(&mut back).unwrap();
        assert_eq!(back, big);
        assert!(Arc::ptr_eq(&z, &r.gzip().unwrap()), "compressed once, then shared");
        assert!(
            Rendered::new(1, Instant::now(), "t".into(), vec![b'x'; GZIP_MIN - 1])
                .gzip()
                .is_none()
        );
    }

    #[test]
    fn if_none_match_forms() {
        let t = tag(7, &status(3));
        assert_ne!(t, tag(8, &status(3)), "another version");
        assert_ne!(t, tag(7, &status(4)), "another variant");
        let r = Rendered::new(7, Instant::now(), t.clone(), b"x".to_vec());
        let (plain, gz) = (r.etag(false), r.etag(true));
        assert!(
            plain.starts_with("W/\"") && plain.ends_with('"') && plain != gz,
            "{plain} {gz}"
        );
        assert!(r.matches(&plain));
        assert!(r.matches(plain.trim_start_matches("W/")));
        assert!(r.matches(&format!("\"other\", {gz}")));
        assert!(r.matches("*"));
        assert!(!r.matches(&quote(&tag(8, &status(3)), false)));
        assert!(!r.matches(""));
    }

    /// Bytes that gzip cannot shrink, so that a gzip form is about as large as its body.
    fn noise(n: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    #[test]
    fn the_byte_bound_counts_gzip_forms() {
        let cache = Cache::default();
        let t0 = Instant::now();
        let n = MAX_BYTES / 5;
        for k in 0..6 {
            let r = cache
                .get(&status(k), 1, t0, true, || Some(noise(n, k as u64 + 1)))
                .unwrap();
            let z = r.gzip().expect("a gzip form");
            assert!(z.len() > n, "incompressible: {} of {n}", z.len());
            assert!(r.size() > 2 * n, "the size counts the gzip form");
            assert!(cache.held() <= MAX_BYTES, "{} held after {k}", cache.held());
        }
        // Body and gzip form take 2/5 of the budget each: two fit, not five.
        assert_eq!(cache.entries(), 2);
        assert!(cache.held() > MAX_BYTES * 3 / 4);
        // A gzip form made after the render counts too: the oldest plain entries make room.
        let cache = Cache::default();
        for k in 0..4 {
            get(&cache, &status(k), 1, t0, || noise(n, k as u64 + 9));
        }
        assert_eq!(cache.entries(), 4, "plain, four fit");
        cache.get(&status(3), 1, t0, true, || panic!("cached")).unwrap();
        cache.get(&status(2), 1, t0, true, || panic!("cached")).unwrap();
        assert!(cache.held() <= MAX_BYTES, "{} held", cache.held());
        assert_eq!(cache.entries(), 2, "the two gzip-read ones");
    }

    #[test]
    fn a_declined_render_keeps_nothing() {
        let cache = Cache::default();
        assert!(cache.get(&status(0), 1, Instant::now(), false, || None).is_none());
        assert_eq!(cache.held(), 0);
    }
}
