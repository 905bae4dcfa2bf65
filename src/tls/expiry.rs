//! Certificate expiry: `notAfter` of the leaf a server presented, days left, and when a warning
//! is due. The warning rule is a pure function so it can be tested without a clock or a server.

use std::time::{Duration, Instant};
use x509_cert::der::{self, Decode, Reader, SliceReader, Tag};
use x509_cert::time::Validity;

pub const DAY_SECS: i64 = 86_400;

/// What was read from a server's certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CertInfo {
    /// Unix seconds of the leaf's notAfter.
    pub expires_at: i64,
    /// False for a worker with `tls.insecure`: nothing was verified.
    pub verified: bool,
}

/// The leaf certificate's notAfter as Unix seconds.
pub fn not_after(der: &[u8]) -> Result<i64, String> {
    let validity = validity(der).map_err(|e| format!("unreadable certificate ({e})"))?;
    let secs = validity.not_after.to_unix_duration().as_secs();
    i64::try_from(secs).map_err(|_| "certificate expiry out of range".to_string())
}

/// The validity of `Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signature }`,
/// `TBSCertificate ::= SEQUENCE { [0] version OPTIONAL, serialNumber, signature, issuer,
/// validity, subject, ... }` (RFC 5280, 4.1). The other fields are taken as whole DER elements
/// (tag and length checked, the certificate's end too) and not decoded: decoding names,
/// extensions and the key for one date was about 30 KiB of the binary.
fn validity(der: &[u8]) -> der::Result<Validity> {
    let mut r = SliceReader::new(der)?;
    let validity = r.sequence(|cert| {
        let validity = cert.sequence(|tbs| {
            if matches!(Tag::peek(tbs)?, Tag::ContextSpecific { .. }) {
                tbs.tlv_bytes()?;
            }
            for _ in 0..3 {
                tbs.tlv_bytes()?;
            }
            let validity = Validity::decode(tbs)?;
            while !tbs.is_finished() {
                tbs.tlv_bytes()?;
            }
            Ok::<_, der::Error>(validity)
        })?;
        cert.tlv_bytes()?;
        cert.tlv_bytes()?;
        Ok::<_, der::Error>(validity)
    })?;
    r.finish()?;
    Ok(validity)
}

/// Whole days until `expires_at` (rounded down; negative once expired).
pub fn days_left(expires_at: i64, now: i64) -> i64 {
    (expires_at - now).div_euclid(DAY_SECS)
}

/// What the warning rule remembers between readings (for one worker and one alert channel).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Warned {
    /// The latest notAfter seen: a later one is a renewed certificate.
    newest: Option<i64>,
    /// The lowest threshold already warned about for that certificate.
    below: Option<u32>,
}

impl Warned {
    /// What a state file keeps: the certificate's notAfter and the lowest threshold warned
    /// about for it; `None` before any warning.
    pub fn saved(&self) -> Option<(i64, u32)> {
        Some((self.newest?, self.below?))
    }

    pub fn restored(newest: i64, below: u32) -> Warned {
        Warned {
            newest: Some(newest),
            below: Some(below),
        }
    }

    /// True once a warning was sent for the certificate seen last.
    pub fn warned(&self) -> bool {
        self.saved().is_some()
    }
}

/// Whether this reading warrants a warning: `days_left` is under a threshold lower than any
/// already warned about. One reading gives at most one warning however many thresholds it
/// crossed; a later notAfter (a renewal) starts over. A certificate with an earlier notAfter
/// (say, a second server behind the same name) does not start over, so two certificates taking
/// turns cannot repeat the same warning.
pub fn should_warn(thresholds: &[u32], expires_at: i64, days_left: i64, w: &mut Warned) -> bool {
    if w.newest.is_none_or(|n| expires_at > n) {
        w.newest = Some(expires_at);
        w.below = None;
    }
    let Some(lowest) = thresholds.iter().copied().filter(|&t| days_left < i64::from(t)).min() else {
        return false;
    };
    if w.below.is_some_and(|b| b <= lowest) {
        return false;
    }
    w.below = Some(lowest);
    true
}

/// When one worker reads its server's certificate; owned by the worker's thread, so it needs no
/// lock. What to warn about is the alert channels' business (`alert::Alerter::observe_cert`).
#[derive(Debug)]
pub struct Watch {
    every: Duration,
    verified: bool,
    last_read: Option<Instant>,
}

impl Watch {
    pub fn new(every: Duration, verified: bool) -> Watch {
        Watch {
            every,
            verified,
            last_read: None,
        }
    }

    /// True until the first reading, then again `every` after the last one.
    pub fn due(&self, now: Instant) -> bool {
        self.last_read
            .is_none_or(|t| now.saturating_duration_since(t) >= self.every)
    }

    /// Takes in the leaf certificate of a handshake.
    pub fn read(&mut self, der: &[u8], now: Instant) -> Result<CertInfo, String> {
        // A certificate that cannot be read is not retried at every check either.
        self.last_read = Some(now);
        Ok(CertInfo {
            expires_at: not_after(der)?,
            verified: self.verified,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::limits::CERT_EXPIRY_DAYS as DEFAULT_THRESHOLDS;
    use crate::tls::testcerts::{Ca, leaf_days};

    #[test]
    fn reads_not_after_from_a_certificate() {
        let ca = Ca::new();
        let leaf = leaf_days(&ca, &["localhost"], 30);
        assert_eq!(not_after(&leaf.der), Ok(leaf.not_after));
        assert!(
            not_after(b"not a certificate")
                .unwrap_err()
                .starts_with("unreadable certificate")
        );
        assert!(not_after(&[]).is_err());
        let mut trailing = leaf.der.to_vec();
        trailing.push(0);
        assert!(not_after(&trailing).is_err(), "data after the certificate");
        assert!(not_after(&leaf.der[..leaf.der.len() - 1]).is_err(), "a cut certificate");
        // The same notAfter as decoding the whole certificate.
        let whole = x509_cert::Certificate::from_der(&leaf.der).unwrap();
        let secs = whole
            .tbs_certificate()
            .validity()
            .not_after
            .to_unix_duration()
            .as_secs();
        assert_eq!(not_after(&leaf.der), Ok(secs as i64));
    }

    #[test]
    fn days_left_rounds_down() {
        let now = 1_800_000_000;
        assert_eq!(days_left(now + 6 * DAY_SECS + 3600, now), 6);
        assert_eq!(days_left(now + DAY_SECS - 1, now), 0);
        assert_eq!(days_left(now - 1, now), -1);
        assert_eq!(days_left(now, now), 0);
    }

    fn readings(thresholds: &[u32], steps: &[(i64, i64)]) -> Vec<bool> {
        let mut w = Warned::default();
        steps
            .iter()
            .map(|&(exp, days)| should_warn(thresholds, exp, days, &mut w))
            .collect()
    }

    #[test]
    fn one_warning_per_threshold_crossed() {
        let t = DEFAULT_THRESHOLDS;
        // 20 days: nothing; 13: under 14; 12..8: quiet; 6: under 7; 5, 4: quiet; 2: under 3; 0: under 1.
        let days = [20, 13, 12, 8, 6, 5, 4, 2, 2, 0, -1];
        let got = readings(&t, &days.map(|d| (1000, d)));
        assert_eq!(
            got,
            [false, true, false, false, true, false, false, true, false, true, false]
        );
    }

    #[test]
    fn a_reading_that_crosses_several_thresholds_warns_once() {
        // First reading at 5 days: under 14 and 7 at once -> one warning, then quiet until 3.
        let got = readings(
            &DEFAULT_THRESHOLDS,
            &[(1000, 5), (1000, 5), (1000, 4), (1000, 3), (1000, 2)],
        );
        assert_eq!(got, [true, false, false, false, true]);
    }

    #[test]
    fn a_renewed_certificate_starts_over() {
        let got = readings(
            &DEFAULT_THRESHOLDS,
            &[(1000, 5), (1000, 5), (2000, 6), (2000, 6), (3000, 90)],
        );
        assert_eq!(got, [true, false, true, false, false]);
        // Two certificates taking turns (the earlier one does not reset the state).
        let got = readings(&DEFAULT_THRESHOLDS, &[(2000, 6), (1000, 5), (2000, 6), (1000, 5)]);
        assert_eq!(got, [true, false, false, false]);
    }

    #[test]
    fn watch_reads_when_due() {
        let ca = Ca::new();
        let leaf = leaf_days(&ca, &["localhost"], 5);
        let t0 = Instant::now();
        let mut w = Watch::new(Duration::from_secs(3600), false);
        assert!(w.due(t0), "due before the first reading");
        let c = w.read(&leaf.der, t0).unwrap();
        assert_eq!(
            c,
            CertInfo {
                expires_at: leaf.not_after,
                verified: false
            }
        );
        assert!(!w.due(t0 + Duration::from_secs(3599)));
        assert!(w.due(t0 + Duration::from_secs(3600)));
        assert!(w.read(b"junk", t0).is_err());
        assert!(
            !w.due(t0 + Duration::from_secs(1)),
            "a bad certificate waits for the next hour too"
        );
    }

    #[test]
    fn no_thresholds_never_warn() {
        assert_eq!(readings(&[], &[(1000, 0), (1000, -3)]), [false, false]);
        assert_eq!(readings(&[30], &[(1000, 29), (1000, 1)]), [true, false]);
    }
}
