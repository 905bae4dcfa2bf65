//! Deadline arithmetic for the worker loops, kept pure so it can be tested without clocks.
//! Check k of a target is due at `first + k * interval` (absolute: no drift however long checks
//! take); slots that pass while a check runs are skipped and counted, never caught up.

use std::time::Duration;

/// The longest the first check may wait after start-up.
pub const FIRST_CHECK_WINDOW: Duration = Duration::from_secs(10);

/// Offset of target `index` of `count` from start-up: spread evenly over `min(interval, 10s)` so
/// a fleet does not fire all at once.
pub fn stagger(index: usize, count: usize, interval: Duration) -> Duration {
    let window = interval.min(FIRST_CHECK_WINDOW);
    if count == 0 {
        return Duration::ZERO;
    }
    let nanos = window.as_nanos() * index as u128 / count as u128;
    Duration::from_nanos(nanos as u64)
}

/// How far after the first deadline slot `k` is due.
pub fn offset_of(interval: Duration, k: u64) -> Duration {
    let nanos = interval.as_nanos().saturating_mul(u128::from(k));
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

/// After a check finished `elapsed` after the first deadline, with `pending` the next slot not
/// yet run: the slot to wait for next and how many slots were skipped because they passed.
pub fn advance(pending: u64, elapsed: Duration, interval: Duration) -> (u64, u64) {
    let interval_ns = interval.as_nanos().max(1);
    let due = elapsed.as_nanos().div_ceil(interval_ns);
    let due = u64::try_from(due).unwrap_or(u64::MAX);
    let next = pending.max(due);
    (next, next - pending)
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn stagger_spreads_within_the_window() {
        let i = Duration::from_secs(300);
        assert_eq!(stagger(0, 4, i), Duration::ZERO);
        assert_eq!(stagger(1, 4, i), Duration::from_millis(2500));
        assert_eq!(stagger(3, 4, i), Duration::from_millis(7500));
        assert_eq!(
            stagger(1, 2, S),
            Duration::from_millis(500),
            "a 1s interval spreads over 1s"
        );
        assert!((0..1000).all(|k| stagger(k, 1000, i) < FIRST_CHECK_WINDOW));
    }

    #[test]
    fn deadlines_are_absolute() {
        assert_eq!(offset_of(Duration::from_millis(1500), 4), Duration::from_secs(6));
        assert_eq!(offset_of(S, u64::MAX), Duration::from_nanos(u64::MAX), "saturates");
    }

    #[test]
    fn a_quick_check_skips_nothing() {
        // Slot 3 ran (pending 4) and finished 3.2 intervals in: wait for slot 4.
        assert_eq!(advance(4, Duration::from_millis(3200), S), (4, 0));
    }

    #[test]
    fn an_overrun_skips_the_passed_slots() {
        // Slot 3 ran and took until 6.5: slots 4, 5 and 6 passed; wait for 7.
        assert_eq!(advance(4, Duration::from_millis(6500), S), (7, 3));
        // Finishing exactly on a deadline runs that slot rather than skipping it.
        assert_eq!(advance(4, Duration::from_secs(5), S), (5, 1));
    }

    #[test]
    fn an_extra_check_now_keeps_the_schedule() {
        // A manual check between slots leaves the pending slot alone.
        assert_eq!(advance(2, Duration::from_millis(1100), S), (2, 0));
    }
}
