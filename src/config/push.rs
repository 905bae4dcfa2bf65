//! Heartbeat (push) workers: `{"name": "nightly-backup", "push": {"period": "1d", "grace": "1h"},
//! "token": "${BACKUP_PUSH_TOKEN}"}`. They have no URL: they are up while reports arrive on
//! `/push/NAME` within `period + grace` of the last. So a push worker needs its `name` (there is
//! no URL to derive one from) and its `token` (a secret), and refuses the fields that only make
//! sense for a pulled worker (its URL, the request and what it expects back, the retries, the
//! Space to restart), so that a misplaced field is never silently ignored.

use super::Target;
use super::check;
use super::ctx::{Ctx, join};
use super::limits::{PUSH_GRACE, PUSH_PERIOD, PUSH_TOKEN_MAX_BYTES};
use std::fmt;
use std::time::Duration;

/// A heartbeat worker's settings.
#[derive(Clone, PartialEq, Eq)]
pub struct Push {
    /// How often a report is expected.
    pub period: Duration,
    /// How late a report may be before the worker is down.
    pub grace: Duration,
    /// What a report must carry (`Authorization: Bearer` or `?token=`). A secret.
    pub token: String,
}

impl Push {
    /// How long after a report (or the start) the next one may come.
    pub fn allowance(&self) -> Duration {
        self.period + self.grace
    }
}

impl fmt::Debug for Push {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Push")
            .field("period", &self.period)
            .field("grace", &self.grace)
            .field("token", &"REDACTED")
            .finish()
    }
}

/// The worker fields only a push worker takes.
pub const FIELDS: &[&str] = &["push", "token"];

/// Fields of a pulled worker that a push worker refuses (beyond every check setting).
const PULL_ONLY: &[&str] = &["url", "space_id", "restart_token"];

/// The path reports for `name` go to (the token is never part of it).
pub fn endpoint(name: &str) -> String {
    format!("/push/{name}")
}

/// A push worker (`obj` has `push`) named `name`, or `None` after reporting what is wrong.
/// `base` carries the fields every worker takes (`paused`, `alerts`).
pub fn parse(
    ctx: &mut Ctx,
    obj: &serde_json::Map<String, serde_json::Value>,
    field: &str,
    name: Option<String>,
    base: Target,
) -> Option<Target> {
    for key in obj.keys() {
        if PULL_ONLY.contains(&key.as_str()) || check::fields().contains(&key.as_str()) {
            ctx.err(
                &join(field, key),
                format!("a push worker takes no {key:?}: it is checked by the reports it sends, not by requests"),
            );
        }
    }
    if name.is_none() && !obj.contains_key("name") {
        ctx.err(
            field,
            "missing field \"name\" (a push worker has no URL to take a name from)",
        );
    }
    let settings = settings(ctx, obj, field);
    let token = match obj.get("token") {
        None => {
            ctx.err(
                field,
                "missing field \"token\" (the secret a report must carry; \"${VAR}\" keeps it out of the file)",
            );
            None
        }
        Some(v) => token(ctx, v, &join(field, "token")),
    };
    let (name, (period, grace), token) = (name?, settings?, token?);
    Some(Target {
        display_url: endpoint(&name),
        name,
        interval: period,
        push: Some(Push { period, grace, token }),
        ..base
    })
}

/// What `check` prints for a push worker (never its token).
pub fn describe(name: &str, push: &Push, paused: bool) -> String {
    format!(
        "  {name}  push {}\n    a report expected every {}, down {} after the last (grace {}); token required{}",
        endpoint(name),
        crate::duration::format(push.period),
        crate::duration::format(push.allowance()),
        crate::duration::format(push.grace),
        if paused {
            format!("\n    starts paused (\"paused\": true): reports are ignored until POST /api/workers/{name}/resume")
        } else {
            String::new()
        }
    )
}

fn settings(
    ctx: &mut Ctx,
    obj: &serde_json::Map<String, serde_json::Value>,
    field: &str,
) -> Option<(Duration, Duration)> {
    let path = join(field, "push");
    let v = obj.get("push")?;
    let push = ctx.object(v, &path, &["period", "grace"])?;
    let period = match push.get("period") {
        Some(_) => ctx.duration_in(push, &path, "period", PUSH_PERIOD),
        None => Some(PUSH_PERIOD.default),
    };
    let grace = match push.get("grace") {
        Some(_) => ctx.duration_in(push, &path, "grace", PUSH_GRACE),
        None => Some(PUSH_GRACE.default),
    };
    Some((period?, grace?))
}

fn token(ctx: &mut Ctx, v: &serde_json::Value, path: &str) -> Option<String> {
    let (token, _) = ctx.string(v, path)?;
    // The value is a secret: no message quotes it.
    if token.is_empty() || token.len() > PUSH_TOKEN_MAX_BYTES {
        ctx.err(
            path,
            format!(
                "expected 1 to {PUSH_TOKEN_MAX_BYTES} bytes, got {}",
                if token.is_empty() {
                    "an empty token".to_string()
                } else {
                    format!("{} bytes", token.len())
                }
            ),
        );
        None
    } else if !token.bytes().all(|b| b.is_ascii_graphic()) {
        ctx.err(
            path,
            "expected printable ASCII without spaces (it travels in a header or a query)",
        );
        None
    } else {
        Some(token)
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Env, Flags, build};
    use std::time::Duration;

    fn load(json: &str, env: &[(&str, &str)]) -> Result<super::super::Config, Vec<String>> {
        let env: Env = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        build(Some(("cfg.json", json)), &Flags::default(), &env)
            .map_err(|e| e.iter().map(ToString::to_string).collect())
    }

    fn errors(json: &str) -> Vec<String> {
        load(json, &[("T", "s3cret-token")]).err().unwrap_or_default()
    }

    #[test]
    fn a_push_worker_has_a_name_a_token_and_no_url() {
        let c = load(
            r#"{"workers": [{"name": "nightly-backup", "push": {"period": "1d", "grace": "1h"}, "token": "${T}",
                             "alerts": false, "paused": true},
                            {"name": "quick", "push": {"period": "250ms"}, "token": "literal"}]}"#,
            &[("T", "s3cret-token")],
        )
        .unwrap();
        let w = &c.workers[0];
        let push = w.push.as_ref().unwrap();
        assert_eq!(
            (push.period, push.grace),
            (Duration::from_secs(86_400), Duration::from_secs(3600))
        );
        assert_eq!(push.token, "s3cret-token");
        assert_eq!((w.url.as_str(), w.display_url.as_str()), ("", "/push/nightly-backup"));
        assert_eq!(w.interval, push.period);
        assert!(w.paused && !w.alerts);
        assert_eq!(w.restart_token, None);
        let quick = c.workers[1].push.as_ref().unwrap();
        assert_eq!(
            (quick.period, quick.grace),
            (Duration::from_millis(250), Duration::from_secs(3600))
        );
        let debug = format!("{c:?}");
        assert!(!debug.contains("s3cret-token") && !debug.contains("literal"), "{debug}");
    }

    #[test]
    fn every_problem_of_a_push_worker_names_its_field() {
        let e = errors(
            r#"{"workers": [{"push": {"period": "1d"}, "token": "${T}"},
                            {"name": "a", "push": {"period": "1d"}},
                            {"name": "b", "url": "https://b.hf.space/", "push": {}, "token": "x",
                             "method": "HEAD", "headers": {"X": "y"}, "expect_status": 200, "space_id": "o/s",
                             "interval": "1m"},
                            {"name": "c", "push": {"period": "10ms", "grace": "40d", "every": "1h"}, "token": "has space"},
                            {"name": "d", "url": "https://d.hf.space/", "token": "x"},
                            {"name": "e", "push": "1d", "token": "x"}]}"#,
        );
        for needle in [
            "workers[0]: missing field \"name\"",
            "workers[1]: missing field \"token\"",
            "workers[2].url: a push worker takes no \"url\"",
            "workers[2].method: a push worker takes no",
            "workers[2].headers: a push worker takes no",
            "workers[2].expect_status: a push worker takes no",
            "workers[2].space_id: a push worker takes no",
            "workers[2].interval: a push worker takes no",
            "workers[3].push.period: expected a duration from 100ms",
            "workers[3].push.grace: expected a duration from 0",
            "workers[3].push.every: unknown field",
            "workers[3].token: expected printable ASCII",
            "workers[4].token: only a push worker takes a \"token\"",
            "workers[5].push: expected an object",
        ] {
            assert!(e.iter().any(|x| x.contains(needle)), "no {needle:?} in {e:#?}");
        }
        assert!(!e.iter().any(|x| x.contains("has space")), "the token is never quoted");
    }
}
