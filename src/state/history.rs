//! A target's recent checks in 24 bytes each: a ring of fixed-size entries, with the error texts
//! (few distinct ones per target: `status 503`, `timeout after 60s`) kept once in a small table
//! and referred to by number. Converted to `CheckRecord` only when a snapshot asks for them.

use super::CheckRecord;
use std::collections::VecDeque;
use std::ops::Range;
use std::sync::Arc;

/// The most entries a history keeps: every entry may hold a distinct error, and error numbers
/// are `u16`.
pub const MAX_CAP: usize = 60_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    at_ms: u64,
    latency_ms: u32,
    duration_ms: u32,
    /// 0: no response.
    status: u16,
    /// 0: none; else 1 + the index in `History::errors`.
    error: u16,
    attempts: u16,
    ok: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct ErrorText {
    /// Shared, so that copying a history out of the state's lock copies no text.
    text: Arc<str>,
    /// Entries that refer to it; 0 marks a free slot of the table.
    uses: u32,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct History {
    entries: VecDeque<Entry>,
    errors: Vec<ErrorText>,
}

impl History {
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Appends a check, dropping the oldest ones beyond `cap`.
    pub fn push(&mut self, rec: &CheckRecord, cap: usize) {
        let cap = cap.clamp(1, MAX_CAP);
        self.trim(cap - 1);
        let error = rec.error.as_deref().map_or(0, |e| self.intern(e));
        self.entries.push_back(Entry {
            at_ms: rec.at_ms,
            latency_ms: u32::try_from(rec.latency_ms).unwrap_or(u32::MAX),
            duration_ms: u32::try_from(rec.duration_ms).unwrap_or(u32::MAX),
            status: rec.status.unwrap_or(0),
            error,
            attempts: u16::try_from(rec.attempts).unwrap_or(u16::MAX),
            ok: rec.ok,
        });
        // Growth doubles the ring's room; once full it stays at `cap` entries, never 2x.
        if self.entries.len() == cap && self.entries.capacity() > cap {
            self.entries.shrink_to_fit();
        }
    }

    /// Keeps the newest `cap` entries.
    pub fn trim(&mut self, cap: usize) {
        while self.entries.len() > cap {
            if let Some(old) = self.entries.pop_front() {
                self.release(old.error);
            }
        }
    }

    /// Whether the last check carries an error text (on a success: it was degraded).
    pub fn last_has_error(&self) -> bool {
        self.entries.back().is_some_and(|e| e.error != 0)
    }

    /// Whether the last check succeeded (without building its record).
    pub fn last_ok(&self) -> Option<bool> {
        self.entries.back().map(|e| e.ok)
    }

    pub fn last(&self) -> Option<CheckRecord> {
        self.entries.back().map(|e| self.record(e))
    }

    /// The newest `n` checks, oldest first.
    pub fn newest(&self, n: usize) -> impl Iterator<Item = CheckRecord> + '_ {
        let skip = self.entries.len().saturating_sub(n);
        self.entries.iter().skip(skip).map(|e| self.record(e))
    }

    fn record(&self, e: &Entry) -> CheckRecord {
        CheckRecord {
            at_ms: e.at_ms,
            ok: e.ok,
            status: (e.status != 0).then_some(e.status),
            latency_ms: u64::from(e.latency_ms),
            duration_ms: u64::from(e.duration_ms),
            attempts: u32::from(e.attempts),
            error: self.text(e.error).map(str::to_string),
        }
    }

    fn text(&self, code: u16) -> Option<&str> {
        let i = usize::from(code).checked_sub(1)?;
        self.errors.get(i).map(|t| &*t.text)
    }

    fn intern(&mut self, text: &str) -> u16 {
        let i = match self.errors.iter().position(|t| t.uses > 0 && *t.text == *text) {
            Some(i) => i,
            None => {
                let fresh = ErrorText {
                    text: text.into(),
                    uses: 0,
                };
                match self.errors.iter().position(|t| t.uses == 0) {
                    Some(free) => {
                        self.errors[free] = fresh;
                        free
                    }
                    None => {
                        self.errors.push(fresh);
                        self.errors.len() - 1
                    }
                }
            }
        };
        self.errors[i].uses += 1;
        // At most MAX_CAP entries refer to at most MAX_CAP texts, so the number fits.
        u16::try_from(i + 1).unwrap_or(0)
    }

    fn release(&mut self, code: u16) {
        let Some(i) = usize::from(code).checked_sub(1) else {
            return;
        };
        if let Some(t) = self.errors.get_mut(i) {
            t.uses = t.uses.saturating_sub(1);
            if t.uses == 0 {
                t.text = Arc::from("");
            }
        }
    }

    /// Appends the newest `n` entries to `out` as they are (their error texts shared, not
    /// copied) and returns where they went. This is all a reader does under the state's lock;
    /// `Copied::record` decodes them after it.
    pub fn copy_newest(&self, n: usize, out: &mut Copied) -> Range<usize> {
        let start = out.entries.len();
        let first_text = out.texts.len();
        let skip = self.entries.len().saturating_sub(n);
        for e in self.entries.iter().skip(skip) {
            let mut e = *e;
            if let Some(t) = usize::from(e.error).checked_sub(1).and_then(|i| self.errors.get(i)) {
                // A history holds few distinct texts: a linear search among this copy's own.
                let i = match out.texts[first_text..].iter().position(|x| Arc::ptr_eq(x, &t.text)) {
                    Some(i) => first_text + i,
                    None => {
                        out.texts.push(Arc::clone(&t.text));
                        out.texts.len() - 1
                    }
                };
                e.error = u16::try_from(i + 1).unwrap_or(0);
            }
            out.entries.push(e);
        }
        start..out.entries.len()
    }

    /// Distinct error texts held (for tests and the memory figures).
    pub fn error_texts(&self) -> usize {
        self.errors.iter().filter(|t| t.uses > 0).count()
    }
}

/// Entries copied out of histories (see `History::copy_newest`), still 24 bytes each; error
/// numbers refer to `texts`. Reused across copies, so a reader allocates once, not per target.
#[derive(Debug, Clone, Default)]
pub struct Copied {
    entries: Vec<Entry>,
    texts: Vec<Arc<str>>,
}

impl Copied {
    pub fn clear(&mut self) {
        self.entries.clear();
        self.texts.clear();
    }

    /// Makes room for `entries` more without allocating under a lock.
    pub fn reserve(&mut self, entries: usize) {
        self.entries.reserve(entries);
        self.texts.reserve(8);
    }

    /// The decoded check at `i` (an index in a range `copy_newest` returned).
    pub fn record(&self, i: usize) -> Option<CheckRecord> {
        let e = self.entries.get(i)?;
        let text = usize::from(e.error).checked_sub(1).and_then(|t| self.texts.get(t));
        Some(CheckRecord {
            at_ms: e.at_ms,
            ok: e.ok,
            status: (e.status != 0).then_some(e.status),
            latency_ms: u64::from(e.latency_ms),
            duration_ms: u64::from(e.duration_ms),
            attempts: u32::from(e.attempts),
            error: text.map(|t| t.to_string()),
        })
    }

    pub fn records(&self, range: Range<usize>) -> impl Iterator<Item = CheckRecord> + '_ {
        range.filter_map(|i| self.record(i))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(i: u64, error: Option<&str>) -> CheckRecord {
        CheckRecord {
            at_ms: 1_000_000 + i,
            ok: error.is_none(),
            status: if error.is_some() { None } else { Some(200) },
            latency_ms: i * 3,
            duration_ms: i * 7,
            attempts: 1 + (i % 3) as u32,
            error: error.map(str::to_string),
        }
    }

    #[test]
    fn entries_are_24_bytes() {
        assert_eq!(std::mem::size_of::<Entry>(), 24);
    }

    #[test]
    fn round_trips_every_field() {
        let mut h = History::default();
        let input = [
            rec(1, None),
            rec(2, Some("status 503")),
            rec(3, Some("timeout after 2s")),
        ];
        for r in &input {
            h.push(r, 10);
        }
        assert_eq!(h.newest(10).collect::<Vec<_>>(), input);
        assert_eq!(h.newest(2).collect::<Vec<_>>(), input[1..]);
        assert_eq!(h.last().as_ref(), input.last());
        let huge = CheckRecord {
            latency_ms: u64::MAX,
            attempts: 70_000,
            ..rec(4, None)
        };
        h.push(&huge, 10);
        let back = h.last().unwrap();
        assert_eq!(
            (back.latency_ms, back.attempts),
            (u64::from(u32::MAX), 65_535),
            "saturated"
        );
    }

    #[test]
    fn capped_oldest_first_and_room_stays_at_cap() {
        let mut h = History::default();
        for i in 0..250 {
            h.push(&rec(i, None), 100);
        }
        assert_eq!(h.len(), 100);
        assert_eq!(h.newest(1000).next().map(|r| r.at_ms), Some(1_000_150));
        assert_eq!(h.entries.capacity(), 100);
    }

    #[test]
    fn error_texts_are_shared_and_freed() {
        let mut h = History::default();
        for i in 0..20 {
            h.push(
                &rec(i, Some(if i % 2 == 0 { "status 503" } else { "connection refused" })),
                10,
            );
        }
        assert_eq!(h.error_texts(), 2, "ten entries, two texts");
        // Unique texts come and go; the table never holds more than the entries refer to.
        for i in 0..1000 {
            h.push(&rec(i, Some(&format!("error {i}"))), 10);
            assert!(h.errors.len() <= 11, "{} slots after {i}", h.errors.len());
        }
        assert_eq!(h.error_texts(), 10);
        for i in 0..10 {
            h.push(&rec(i, None), 10);
        }
        assert_eq!(h.error_texts(), 0);
        assert!(h.newest(10).all(|r| r.error.is_none()));
    }

    #[test]
    fn copies_decode_to_the_same_records() {
        let (mut a, mut b) = (History::default(), History::default());
        for i in 0..30 {
            a.push(&rec(i, (i % 4 == 0).then_some("status 503")), 20);
            b.push(&rec(i, (i % 3 == 0).then_some(if i % 2 == 0 { "x" } else { "y" })), 20);
        }
        let mut out = Copied::default();
        let ra = a.copy_newest(5, &mut out);
        let rb = b.copy_newest(100, &mut out);
        assert_eq!(out.records(ra).collect::<Vec<_>>(), a.newest(5).collect::<Vec<_>>());
        assert_eq!(out.records(rb).collect::<Vec<_>>(), b.newest(100).collect::<Vec<_>>());
        assert_eq!(out.texts.len(), 3, "each text once per copy, shared with the history");
        assert!(Arc::ptr_eq(&out.texts[0], &a.errors[0].text));
    }
}
