//! Uptime tallies that take the same room on day 1 and on day 300: one bucket for each of the
//! last 24 clock hours and one for each of the last 30 UTC days, in fixed arrays (no heap).
//!
//! The windows are whole buckets: `24h` is the last 24 clock hours (the current one included),
//! `7d` and `30d` are the current UTC day and the 6 (29) days before it. Compared with a window
//! sliding by the hour (168 or 720 hours), a day window leaves out the hours of its oldest day
//! before the current time of day: none at 23:00 UTC, up to 23 hours at 00:00 UTC.

/// Milliseconds in an hour; hours and days are counted from the Unix epoch (UTC).
pub const HOUR_MS: u64 = 3_600_000;
pub const HOURS: usize = 24;
pub const DAYS: usize = 30;

/// Checks counted in one bucket.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    pub ok: u32,
    pub total: u32,
}

impl Tally {
    pub fn of(ok: bool) -> Tally {
        Tally {
            ok: u32::from(ok),
            total: 1,
        }
    }

    fn add(&mut self, other: Tally) {
        self.ok = self.ok.saturating_add(other.ok);
        self.total = self.total.saturating_add(other.total);
    }
}

/// The newest `N` consecutive units (hours or days), each at index `unit % N`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ring<const N: usize> {
    /// The newest unit counted; `None` before the first check.
    newest: Option<u64>,
    tallies: [Tally; N],
}

impl<const N: usize> Default for Ring<N> {
    fn default() -> Self {
        Ring {
            newest: None,
            tallies: [Tally::default(); N],
        }
    }
}

impl<const N: usize> Ring<N> {
    /// Counts `tally` in `unit`. Moving to a newer unit empties the buckets that fell out of the
    /// ring; a unit older than the newest (a clock stepped backwards) lands in the newest bucket
    /// rather than rewriting the past.
    pub fn add(&mut self, unit: u64, tally: Tally) {
        let unit = match self.newest {
            Some(newest) if unit <= newest => newest,
            Some(newest) => {
                if unit - newest >= N as u64 {
                    self.tallies = [Tally::default(); N];
                } else {
                    for u in newest + 1..=unit {
                        self.tallies[(u % N as u64) as usize] = Tally::default();
                    }
                }
                unit
            }
            None => unit,
        };
        self.newest = Some(unit);
        self.tallies[(unit % N as u64) as usize].add(tally);
    }

    /// The sum over the `count` units ending with `now` (included), as far as the ring holds them.
    pub fn sum(&self, now: u64, count: u64) -> Tally {
        let mut sum = Tally::default();
        let Some(newest) = self.newest else {
            return sum;
        };
        let from = (now + 1)
            .saturating_sub(count)
            .max((newest + 1).saturating_sub(N as u64));
        // Snapshots call this for every target under the state's lock: one division, then a walk.
        let mut i = (from % N as u64) as usize;
        for _ in from..=now.min(newest) {
            sum.add(self.tallies[i]);
            i = if i + 1 == N { 0 } else { i + 1 };
        }
        sum
    }

    /// The newest unit and the ring's buckets oldest first (for the state file).
    pub fn oldest_first(&self) -> Option<(u64, [Tally; N])> {
        let newest = self.newest?;
        let mut out = [Tally::default(); N];
        for (i, t) in out.iter_mut().enumerate() {
            // Units before the epoch do not exist; their buckets are empty anyway.
            if let Some(u) = (newest + 1 + i as u64).checked_sub(N as u64) {
                *t = self.tallies[(u % N as u64) as usize];
            }
        }
        Some((newest, out))
    }

    /// The inverse of `oldest_first`.
    pub fn from_oldest_first(newest: u64, tallies: [Tally; N]) -> Ring<N> {
        let mut ring = Ring {
            newest: Some(newest),
            tallies: [Tally::default(); N],
        };
        for (i, t) in tallies.into_iter().enumerate() {
            if let Some(u) = (newest + 1 + i as u64).checked_sub(N as u64) {
                ring.tallies[(u % N as u64) as usize] = t;
            }
        }
        ring
    }
}

/// A target's uptime: 24 hourly and 30 daily buckets, 448 bytes whatever its age.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Uptime {
    pub hours: Ring<HOURS>,
    pub days: Ring<DAYS>,
}

impl Uptime {
    pub fn record(&mut self, at_ms: u64, ok: bool) {
        self.add_hour(at_ms / HOUR_MS, Tally::of(ok));
    }

    /// Counts a whole hour's tally (also how an hourly bucket of an older state file comes in).
    pub fn add_hour(&mut self, hour: u64, tally: Tally) {
        self.hours.add(hour, tally);
        self.days.add(hour / 24, tally);
    }

    /// Share of good checks in the `24h`, `7d` and `30d` windows (see the module doc), or `None`
    /// for a window without checks.
    pub fn ratios(&self, now_ms: u64) -> [Option<f64>; 3] {
        let hour = now_ms / HOUR_MS;
        let day = hour / 24;
        [self.hours.sum(hour, 24), self.days.sum(day, 7), self.days.sum(day, 30)]
            .map(|t| (t.total > 0).then(|| f64::from(t.ok) / f64::from(t.total)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: u64 = 24;

    fn t(ok: u32, total: u32) -> Tally {
        Tally { ok, total }
    }

    #[test]
    fn hours_merge_and_expire_after_24() {
        let mut r = Ring::<24>::default();
        r.add(10, Tally::of(true));
        r.add(10, Tally::of(false));
        r.add(11, Tally::of(true));
        assert_eq!(r.sum(11, 24), t(2, 3));
        assert_eq!(r.sum(10, 1), t(1, 2));
        r.add(10 + 24, Tally::of(true));
        assert_eq!(r.sum(34, 24), t(2, 2), "hour 10 fell out; 11 and 34 remain");
        r.add(1000, Tally::of(false));
        assert_eq!(r.sum(1000, 24), t(0, 1), "a long gap empties the ring");
    }

    #[test]
    fn a_clock_stepped_back_counts_in_the_newest_bucket() {
        let mut r = Ring::<24>::default();
        r.add(50, Tally::of(true));
        r.add(40, Tally::of(false));
        assert_eq!(r.sum(50, 1), t(1, 2));
        assert_eq!(r.sum(40, 1), t(0, 0));
    }

    #[test]
    fn windows_cross_day_boundaries() {
        let mut u = Uptime::default();
        let day1 = 1000 * DAY;
        // 23:00 on day 0 fails, 00:00 and 01:00 on day 1 succeed; 8 days earlier one failure.
        u.add_hour(day1 - 8 * DAY, Tally::of(false));
        u.add_hour(day1 - 1, Tally::of(false));
        u.add_hour(day1, Tally::of(true));
        u.add_hour(day1 + 1, Tally::of(true));
        let now = (day1 + 1) * HOUR_MS + 5;
        assert_eq!(u.ratios(now), [Some(2.0 / 3.0), Some(2.0 / 3.0), Some(0.5)]);
        // At 22:xx on day 1 the 24 h window still holds 23:00 of day 0; at 23:xx it does not.
        assert_eq!(u.ratios(now + 21 * HOUR_MS)[0], Some(2.0 / 3.0));
        assert_eq!(u.ratios(now + 22 * HOUR_MS)[0], Some(1.0));
        assert_eq!(u.ratios(now + 24 * HOUR_MS)[0], None, "nothing in the last 24 hours");
        assert_eq!(Uptime::default().ratios(now), [None; 3]);
    }

    #[test]
    fn day_windows_are_whole_utc_days() {
        let mut u = Uptime::default();
        let today = 2000 * DAY;
        // One failure on each of the 40 days before today, one success at every hour of today.
        for d in (1..=40).rev() {
            u.add_hour(today - d * DAY + 3, Tally::of(false));
        }
        for h in 0..24 {
            u.add_hour(today + h, Tally::of(true));
        }
        let now = (today + 23) * HOUR_MS;
        let [day, week, month] = u.ratios(now);
        assert_eq!(day, Some(1.0));
        assert_eq!(week, Some(24.0 / 30.0), "today and the 6 days before");
        assert_eq!(month, Some(24.0 / 53.0), "today and the 29 days before");
        // A day later, yesterday's 24 successes are still in both day windows.
        assert_eq!(u.ratios(now + DAY * HOUR_MS)[1], Some(24.0 / 29.0));
        // 30 days on, the ring has emptied; 31 days on, nothing is left.
        assert_eq!(u.ratios(now + 29 * DAY * HOUR_MS)[2], Some(1.0));
        assert_eq!(u.ratios(now + 30 * DAY * HOUR_MS), [None; 3]);
    }

    #[test]
    fn oldest_first_round_trips() {
        let mut r = Ring::<30>::default();
        assert_eq!(r.oldest_first(), None);
        for d in [3, 10, 25, 40, 41] {
            r.add(d, t(d as u32, d as u32 + 1));
        }
        let (newest, tallies) = r.oldest_first().unwrap();
        assert_eq!(newest, 41);
        assert_eq!(tallies[DAYS - 1], t(41, 42));
        assert_eq!(tallies[DAYS - 2], t(40, 41));
        assert_eq!(tallies[DAYS - 1 - 16], t(25, 26));
        assert_eq!(tallies[0], t(0, 0), "day 12 was never counted; day 10 fell out");
        assert_eq!(Ring::from_oldest_first(newest, tallies), r);
        // Near the epoch the ring is shorter than N units; nothing before unit 0 is invented.
        let mut young = Ring::<30>::default();
        young.add(2, t(1, 1));
        let (n, ts) = young.oldest_first().unwrap();
        assert_eq!(Ring::from_oldest_first(n, ts), young);
    }
}
