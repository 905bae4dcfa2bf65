//! The conditions fields (`expect_latency`, `expect_json`, `expect_header`, `expect_body_absent`,
//! which `defaults` and each worker take, a worker's own replacing the default's) and the
//! `maintenance` windows (top level and per worker, the two lists adding up). What they mean is
//! in `crate::conditions` and `crate::maintenance`; this module reads them and names the field of
//! every problem (`workers[1].expect_json[0].pointer`).
//!
//! Their texts are quoted in check errors (`body contains "Application Error"`), which the page
//! shows, so a value from `${VAR}` (a secret) is refused here.

use super::Target;
use super::ctx::{Ctx, each_header, join, kind, show};
use super::limits::{CONDITION_ITEMS, EXPECT_BODY_MAX_BYTES, EXPECT_LATENCY, MAINTENANCE_EVERY, MAINTENANCE_ONCE};
use crate::conditions::{JsonCheck, JsonTest};
use crate::maintenance::{self, When, Window};
use serde_json::{Map, Value};

/// The condition fields `defaults` and each worker take.
pub const FIELDS: &[&str] = &["expect_latency", "expect_json", "expect_header", "expect_body_absent"];

/// Reads the condition fields present in `obj` (at `field`) into `out`, over what it inherited.
pub fn parse(ctx: &mut Ctx, obj: &Map<String, Value>, field: &str, out: &mut Target) {
    let c = &mut out.conditions;
    if let Some(d) = ctx.duration_in(obj, field, "expect_latency", EXPECT_LATENCY) {
        c.latency = Some(d);
    }
    if let Some(v) = obj.get("expect_json") {
        c.json = list(ctx, v, &join(field, "expect_json"))
            .iter()
            .filter_map(|(item, path)| json_check(ctx, item, path))
            .collect();
    }
    if let Some(v) = obj.get("expect_header") {
        c.headers = headers(ctx, v, &join(field, "expect_header"));
    }
    if let Some(v) = obj.get("expect_body_absent") {
        let path = join(field, "expect_body_absent");
        if let Some(s) = literal(ctx, v, &path) {
            if s.is_empty() || s.len() > EXPECT_BODY_MAX_BYTES {
                ctx.err(
                    &path,
                    format!("expected 1 byte to {} KiB of text", EXPECT_BODY_MAX_BYTES / 1024),
                );
            } else {
                c.body_absent = Some(s);
            }
        }
    }
}

/// A list's items with their field paths; an error (and nothing) when `v` is not a list.
fn list<'v>(ctx: &mut Ctx, v: &'v Value, field: &str) -> Vec<(&'v Value, String)> {
    match v.as_array() {
        Some(a) if a.len() > CONDITION_ITEMS => {
            ctx.err(
                field,
                format!("expected at most {CONDITION_ITEMS} items, got {}", a.len()),
            );
            Vec::new()
        }
        Some(a) => a
            .iter()
            .enumerate()
            .map(|(i, x)| (x, format!("{field}[{i}]")))
            .collect(),
        None => {
            ctx.err(field, format!("expected a list, got {}", kind(v)));
            Vec::new()
        }
    }
}

/// A string that did not come from `${VAR}`: it is quoted in error texts.
fn literal(ctx: &mut Ctx, v: &Value, path: &str) -> Option<String> {
    let (s, secrets) = ctx.string(v, path)?;
    if secrets.is_empty() {
        Some(s)
    } else {
        ctx.err(
            path,
            "expected literal text, not ${VAR}: a failed condition quotes it on the page and in /status",
        );
        None
    }
}

/// A value to compare with: strings are read like every string (refusing `${VAR}`), others as is.
fn json_value(ctx: &mut Ctx, v: &Value, path: &str) -> Option<Value> {
    match v {
        Value::String(_) => literal(ctx, v, path).map(Value::String),
        other => Some(other.clone()),
    }
}

const OPERATORS: [&str; 4] = ["equals", "not_equals", "exists", "one_of"];

fn json_check(ctx: &mut Ctx, item: &Value, field: &str) -> Option<JsonCheck> {
    let allowed: Vec<&str> = std::iter::once("pointer").chain(OPERATORS).collect();
    let obj = ctx.object(item, field, &allowed)?;
    let pointer = match obj.get("pointer") {
        None => {
            ctx.err(
                field,
                "missing field \"pointer\" (an RFC 6901 JSON pointer such as \"/status\")",
            );
            None
        }
        Some(v) => pointer(ctx, v, &join(field, "pointer")),
    };
    let given: Vec<&str> = OPERATORS.into_iter().filter(|k| obj.contains_key(*k)).collect();
    let op = match given.as_slice() {
        [one] => *one,
        [] => {
            ctx.err(field, format!("expected one of {}", OPERATORS.join(", ")));
            return None;
        }
        many => {
            ctx.err(
                field,
                format!(
                    "give only one of {} (one test per item; list another item for another test)",
                    many.join(", ")
                ),
            );
            return None;
        }
    };
    let path = join(field, op);
    let v = &obj[op];
    let test = match op {
        "equals" => JsonTest::Equals(json_value(ctx, v, &path)?),
        "not_equals" => JsonTest::NotEquals(json_value(ctx, v, &path)?),
        "exists" => JsonTest::Exists(ctx.bool(v, &path)?),
        _ => match v.as_array() {
            Some(a) if !a.is_empty() => {
                let values: Vec<Value> = a
                    .iter()
                    .enumerate()
                    .filter_map(|(i, x)| json_value(ctx, x, &format!("{path}[{i}]")))
                    .collect();
                (values.len() == a.len()).then_some(JsonTest::OneOf(values))?
            }
            _ => {
                ctx.err(&path, format!("expected a non-empty list of values, got {}", show(v)));
                return None;
            }
        },
    };
    Some(JsonCheck {
        pointer: pointer?,
        test,
    })
}

/// An RFC 6901 pointer: empty is the whole document; otherwise `/` then tokens, `~` only as
/// `~0` (`~`) or `~1` (`/`).
fn pointer(ctx: &mut Ctx, v: &Value, path: &str) -> Option<String> {
    let p = literal(ctx, v, path)?;
    let bad_escape = p
        .split('~')
        .skip(1)
        .any(|after| !after.starts_with('0') && !after.starts_with('1'));
    if !p.starts_with('/') {
        ctx.err(
            path,
            format!("expected a JSON pointer starting with \"/\" (such as \"/status\"), got {p:?}"),
        );
        None
    } else if bad_escape {
        ctx.err(
            path,
            format!("\"~\" must be written \"~0\" and \"/\" inside a key \"~1\" (RFC 6901), got {p:?}"),
        );
        None
    } else {
        Some(p)
    }
}

/// `{"content-type": "application/json"}`: names and values lowercased for a case-insensitive
/// comparison.
fn headers(ctx: &mut Ctx, v: &Value, field: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    each_header(
        ctx,
        v,
        field,
        "text their value must contain",
        |ctx, path, name, value| {
            if let Some(want) = literal(ctx, value, &path) {
                out.push((name.to_ascii_lowercase(), want.to_ascii_lowercase()));
            }
        },
    );
    out
}

const WINDOW_FIELDS: &[&str] = &["start", "every", "at", "timezone", "duration"];

/// A `maintenance` list (at `field`): one-off and repeating windows.
pub fn maintenance(ctx: &mut Ctx, v: &Value, field: &str) -> Vec<Window> {
    list(ctx, v, field)
        .iter()
        .filter_map(|(item, path)| window(ctx, item, path))
        .collect()
}

fn window(ctx: &mut Ctx, item: &Value, field: &str) -> Option<Window> {
    let obj = ctx.object(item, field, WINDOW_FIELDS)?;
    let text = |ctx: &mut Ctx, key: &str| obj.get(key).and_then(|v| literal(ctx, v, &join(field, key)));
    let forms = "a one-off window {\"start\": \"2026-12-24T22:00:00Z\", \"duration\": \"2h\"} \
                 or a repeating one {\"every\": \"day\", \"at\": \"03:00\", \"duration\": \"30m\"}";
    if !obj.contains_key("duration") {
        ctx.err(field, format!("missing field \"duration\": expected {forms}"));
    }
    match (obj.contains_key("start"), obj.contains_key("every")) {
        (true, true) | (false, false) => {
            ctx.err(
                field,
                format!("give \"start\" or \"every\", not both or neither: expected {forms}"),
            );
            None
        }
        (true, false) => {
            for key in ["at", "timezone"].into_iter().filter(|k| obj.contains_key(*k)) {
                ctx.err(
                    &join(field, key),
                    "only a repeating window (\"every\") takes this; a one-off \"start\" carries its own offset",
                );
            }
            let start = text(ctx, "start").and_then(|s| {
                maintenance::parse_rfc3339(&s)
                    .map_err(|m| ctx.err(&join(field, "start"), m))
                    .ok()
            });
            let duration = ctx.duration_in(obj, field, "duration", MAINTENANCE_ONCE)?;
            Some(Window {
                when: When::Once { start_ms: start? },
                duration,
            })
        }
        (false, true) => {
            let read = |ctx: &mut Ctx, key: &str, f: fn(&str) -> Result<i64, String>| {
                text(ctx, key).and_then(|s| f(&s).map_err(|m| ctx.err(&join(field, key), m)).ok())
            };
            let days = read(ctx, "every", |s| maintenance::parse_every(s).map(i64::from));
            let at = match obj.contains_key("at") {
                true => read(ctx, "at", |s| maintenance::parse_at(s).map(i64::from)),
                false => {
                    ctx.err(
                        field,
                        "missing field \"at\": the local time the window starts, such as \"03:00\"",
                    );
                    None
                }
            };
            let offset = match obj.contains_key("timezone") {
                true => read(ctx, "timezone", |s| maintenance::parse_timezone(s).map(i64::from)),
                false => Some(0),
            };
            let duration = ctx.duration_in(obj, field, "duration", MAINTENANCE_EVERY)?;
            Some(Window {
                when: When::Every {
                    days: days? as u8,
                    at_min: at? as u32,
                    offset_min: offset? as i32,
                },
                duration,
            })
        }
    }
}
