//! Sharding by name (`--shard I/N`, `PINGER_SHARD=I/N`): which share of the worker list this
//! instance runs. A worker belongs to shard `I` of `N` when the FNV-1a 64-bit hash of its name's
//! bytes is `I-1` modulo `N`. The hash depends on nothing but the name, so N instances given the
//! same configuration cover every worker exactly once without talking to each other, and adding or
//! removing a worker moves no other worker to another shard.

use super::ctx::{Ctx, env_var};
use super::{Flags, Target};
use std::fmt;

/// The variable that selects a shard when the flag does not.
pub const VARIABLE: &str = "PINGER_SHARD";
/// The flag that selects a shard; it wins over the variable.
pub const FLAG: &str = "--shard";

/// Shard `index` (1-based) of `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: u64,
    pub count: u64,
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl Shard {
    /// Whether the worker named `name` is this shard's.
    pub fn runs(&self, name: &str) -> bool {
        fnv1a64(name.as_bytes()) % self.count == self.index - 1
    }
}

/// FNV-1a, 64-bit: for each byte, xor it in, then multiply by the FNV prime.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    bytes
        .iter()
        .fold(OFFSET_BASIS, |h, &b| (h ^ u64::from(b)).wrapping_mul(PRIME))
}

/// Reads `I/N`: two whole numbers with `1 <= I <= N`. `Err` says what was expected.
pub fn parse(text: &str) -> Result<Shard, String> {
    let expected =
        "expected I/N, this instance's shard number I and the number of shards N, with 1 <= I <= N (such as 2/3)";
    let number = |s: &str| -> Option<u64> {
        // `u64::from_str` takes a leading '+'; a shard is written with digits only.
        s.bytes().all(|b| b.is_ascii_digit()).then(|| s.parse().ok()).flatten()
    };
    let Some((i, n)) = text.trim().split_once('/') else {
        return Err(format!("{expected}, got {text:?}"));
    };
    let (Some(index), Some(count)) = (number(i.trim()), number(n.trim())) else {
        return Err(format!("{expected}, got {text:?}"));
    };
    if count == 0 {
        return Err(format!("the number of shards N must be at least 1, got {text:?}"));
    }
    if index == 0 || index > count {
        return Err(format!(
            "the shard number I must be from 1 to {count} (the number of shards), got {text:?}"
        ));
    }
    Ok(Shard { index, count })
}

/// The shard named by `--shard`, else by `PINGER_SHARD`, else none (this instance runs every
/// worker). A bad value is an error in the source it came from.
pub fn select(ctx: &mut Ctx, flags: &Flags) -> Option<Shard> {
    let (source, text) = match (&flags.shard, env_var(ctx.env, VARIABLE)) {
        (Some(flag), _) => (FLAG, flag.clone()),
        (None, Some(var)) => (VARIABLE, var.clone()),
        (None, None) => return None,
    };
    parse(&text).map_err(|message| ctx.err_in(source, message)).ok()
}

/// Keeps this shard's workers, in their configured order.
pub fn keep(workers: Vec<Target>, shard: Option<Shard>) -> Vec<Target> {
    match shard {
        None => workers,
        Some(s) => workers.into_iter().filter(|w| s.runs(&w.name)).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a64_matches_the_published_test_vectors() {
        // From the FNV reference test suite (Fowler, Noll, Vo: test_fnv.c, FNV-1a 64-bit).
        for (input, hash) in [
            ("", 0xcbf29ce484222325_u64),
            ("a", 0xaf63dc4c8601ec8c),
            ("b", 0xaf63df4c8601f1a5),
            ("c", 0xaf63de4c8601eff2),
            ("foo", 0xdcb27518fed9d577),
            ("foobar", 0x85944171f73967e8),
            ("chongo was here!\n", 0x46810940eff5f915),
        ] {
            assert_eq!(fnv1a64(input.as_bytes()), hash, "{input:?}");
        }
    }

    #[test]
    fn a_name_belongs_to_exactly_one_shard() {
        for n in 1..=7 {
            for i in 0..200 {
                let name = format!("worker-{i}");
                let owners: Vec<u64> = (1..=n).filter(|&index| Shard { index, count: n }.runs(&name)).collect();
                assert_eq!(owners.len(), 1, "{name} in {n} shards: {owners:?}");
                assert_eq!(owners[0] - 1, fnv1a64(name.as_bytes()) % n);
            }
        }
    }

    #[test]
    fn the_hash_spreads_names_across_shards() {
        let mut sizes = [0; 3];
        for i in 0..3000 {
            sizes[(fnv1a64(format!("w{i}").as_bytes()) % 3) as usize] += 1;
        }
        assert!(sizes.iter().all(|&s| (800..=1200).contains(&s)), "{sizes:?}");
    }

    #[test]
    fn parses_good_values() {
        assert_eq!(parse("1/1"), Ok(Shard { index: 1, count: 1 }));
        assert_eq!(parse("2/3"), Ok(Shard { index: 2, count: 3 }));
        assert_eq!(parse(" 3 / 3 "), Ok(Shard { index: 3, count: 3 }));
        assert_eq!(parse("2/3").map(|s| s.to_string()), Ok("2/3".to_string()));
    }

    #[test]
    fn bad_values_say_what_was_expected() {
        for bad in [
            "3",
            "a/b",
            "1/",
            "/3",
            "+1/3",
            "-1/3",
            "1/3/5",
            "1.5/3",
            "",
            "99999999999999999999/3",
        ] {
            let e = parse(bad).unwrap_err();
            assert!(e.starts_with("expected I/N"), "{bad:?}: {e}");
            assert!(e.contains(&format!("{bad:?}")), "{bad:?}: {e}");
        }
        assert_eq!(
            parse("0/3").unwrap_err(),
            "the shard number I must be from 1 to 3 (the number of shards), got \"0/3\""
        );
        assert!(parse("4/3").unwrap_err().contains("must be from 1 to 3"));
        assert_eq!(
            parse("1/0").unwrap_err(),
            "the number of shards N must be at least 1, got \"1/0\""
        );
    }
}
