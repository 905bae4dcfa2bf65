//! The state file: history and counters that survive restarts. Writes go to a temporary file in
//! the same folder, are fsynced, then renamed over the old file (and the folder fsynced), so a
//! crash at any instant leaves the old file or the new one, never a torn one. A save copies one
//! target at a time out of the state and streams it to the file, so it never holds a second copy
//! of the whole state. Loading streams too. Files of format 1 (0.1) are migrated; a file that
//! cannot be read or parsed is set aside, never a reason to refuse to start.

pub mod remote;
mod v1;
mod v2;

use crate::state::{Record, State};
use crate::timefmt::{rfc3339, unix_secs};
use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use std::collections::HashMap;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

/// The format this build writes; it reads this one and every earlier one.
pub const FORMAT_VERSION: u32 = 2;

/// 64-bit FNV-1a: stable across builds and platforms, unlike std's hasher.
pub fn url_hash(url: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in url.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

pub struct Persister {
    /// `None`: no state file, only the format (for the remote copy).
    path: Option<PathBuf>,
    /// The path as messages show it (parts that came from `${VAR}` are secrets).
    shown: String,
    /// The hash of each target's real URL, by its id in the state (a reload replaces them). A
    /// worker whose URL changed starts fresh, and the URL itself (which may hold tokens) never
    /// reaches the disk.
    hashes: Mutex<HashMap<usize, String>>,
    /// One save at a time (the periodic saver and the final save at shutdown may meet).
    saving: Mutex<()>,
}

impl Persister {
    /// `urls`: the real URL of the state's targets 0, 1, ... as they are at start-up.
    pub fn new(path: PathBuf, urls: &[&str]) -> Persister {
        let p = Persister {
            shown: path.display().to_string(),
            path: Some(path),
            hashes: Mutex::new(HashMap::new()),
            saving: Mutex::new(()),
        };
        p.set_targets(&urls.iter().copied().enumerate().collect::<Vec<_>>());
        p
    }

    /// Reads and writes the format only (for a remote copy of the state without a state file).
    pub fn without_file(urls: &[&str]) -> Persister {
        let p = Persister {
            shown: String::new(),
            path: None,
            hashes: Mutex::new(HashMap::new()),
            saving: Mutex::new(()),
        };
        p.set_targets(&urls.iter().copied().enumerate().collect::<Vec<_>>());
        p
    }

    /// Whether there is a state file to load (a remote copy is then only the fallback).
    pub fn file_exists(&self) -> bool {
        self.path.as_ref().is_some_and(|p| p.exists())
    }

    /// Shows the path as `shown` in every message and error, in place of the real one.
    pub fn shown_as(mut self, shown: String) -> Persister {
        self.shown = shown;
        self
    }

    /// The targets now configured (after a reload): each one's id in the state and real URL.
    pub fn set_targets(&self, targets: &[(usize, &str)]) {
        let hashes = targets.iter().map(|(id, url)| (*id, url_hash(url))).collect();
        *self.hashes.lock().unwrap_or_else(|e| e.into_inner()) = hashes;
    }

    fn hash_of(&self, id: usize) -> Option<String> {
        self.hashes.lock().unwrap_or_else(|e| e.into_inner()).get(&id).cloned()
    }

    /// Loads the file into `state`. Missing: nothing to do. Unreadable or corrupt: renamed to
    /// `<file>.corrupt-<unix time>` with a warning. Returns how many targets were restored.
    pub fn load(&self, state: &State) -> usize {
        let Some(path) = &self.path else { return 0 };
        let file = match File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return 0,
            Err(e) => {
                self.set_aside(&format!("cannot read it: {e}"));
                return 0;
            }
        };
        match self.restore(&mut BufReader::new(file), state, Restore::Replace) {
            Ok(loaded) => {
                log::info!("state file {}: {}", self.shown, loaded.summary());
                loaded.count
            }
            Err(why) => {
                self.set_aside(&why);
                0
            }
        }
    }

    /// Reads a saved state from `reader` into `state`: each saved target whose worker is still
    /// configured with the same URL replaces (or, with `Restore::Merge`, goes before) what the
    /// state holds for it. `Err`: the text is not a state file (nothing was changed).
    ///
    /// One reader type for the file and the remote copy alike: this is compiled once, not twice.
    pub fn restore(&self, reader: &mut dyn BufRead, state: &State, how: Restore) -> Result<Loaded, String> {
        let cap = state.history_cap();
        let mut restored: Vec<(usize, Record)> = Vec::new();
        let (mut dropped, mut fresh) = (Vec::new(), Vec::new());
        let mut sink = |name: String, saved: Saved| -> Result<(), String> {
            let Some(slot) = state.slot_of(&name) else {
                dropped.push(name);
                return Ok(());
            };
            if self.hash_of(slot).as_deref() != Some(saved.url_hash()) {
                fresh.push(name);
                return Ok(());
            }
            let record = saved.into_record(cap).map_err(|e| format!("worker {name:?}: {e}"))?;
            restored.push((slot, record));
            Ok(())
        };
        let mut de = serde_json::Deserializer::from_reader(reader);
        let header = de
            .deserialize_map(FileVisitor { sink: &mut sink })
            .and_then(|h| de.end().map(|()| h))
            .map_err(|e| format!("it is not a valid state file: {e}"))?;
        for name in dropped {
            log::info!("state: dropping {name:?}, which is no longer configured");
        }
        for name in fresh {
            log::info!("state: {name:?} has a new URL; its history starts fresh");
        }
        let count = restored.len();
        for (slot, record) in restored {
            match how {
                Restore::Replace => state.import(slot, record),
                Restore::Merge => state.merge_older(slot, record),
            }
        }
        Ok(Loaded {
            count,
            saved_at: header.saved_at,
            version: header.version,
        })
    }

    fn set_aside(&self, why: &str) {
        let Some(path) = &self.path else { return };
        let suffix = format!(".corrupt-{}", unix_secs(SystemTime::now()));
        let aside = PathBuf::from(format!("{}{suffix}", path.display()));
        match fs::rename(path, &aside) {
            Ok(()) => log::warn!(
                "state file {}: {why}; moved it to {}{suffix} and starting fresh",
                self.shown,
                self.shown
            ),
            Err(e) => log::warn!(
                "state file {}: {why}; could not move it aside ({e}); starting fresh",
                self.shown
            ),
        }
    }

    /// Whether a file can be created in the state file's folder (a wrong path shows at once).
    pub fn probe_writable(&self) -> Result<(), String> {
        let probe = self.temp_path();
        let result = File::create(&probe).and_then(|f| f.sync_all());
        let _ = fs::remove_file(&probe);
        result.map_err(|e| format!("cannot write {}: {e}", self.shown))
    }

    fn temp_path(&self) -> PathBuf {
        let path = self.path.clone().unwrap_or_default();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "state".into());
        path.with_file_name(format!(".{name}.tmp-{}", std::process::id()))
    }

    /// Writes the state to the file, one target at a time: each is copied under the state's
    /// lock (a few KB), then serialized and written after it is released.
    pub fn save(&self, state: &State) -> Result<(), String> {
        let Some(path) = &self.path else { return Ok(()) };
        let _guard = self.saving.lock().unwrap_or_else(|e| e.into_inner());
        let tmp = self.temp_path();
        let result = self.write_to(&tmp, state).and_then(|()| {
            fs::rename(&tmp, path)?;
            // The rename is durable only once the folder's entry is on disk.
            let dir = path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            if let Ok(d) = File::open(dir) {
                let _ = d.sync_all();
            }
            Ok(())
        });
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result.map_err(|e| format!("cannot write {}: {e}", self.shown))
    }

    fn write_to(&self, tmp: &Path, state: &State) -> std::io::Result<()> {
        let file = OpenOptions::new().write(true).create(true).truncate(true).open(tmp)?;
        let mut w = BufWriter::with_capacity(64 * 1024, file);
        self.encode(&mut w, state)?;
        let file = w.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()
    }

    /// Writes the state in the file's format, one target at a time: each is copied under the
    /// state's lock (a few KB), then serialized after it is released.
    pub fn encode(&self, mut w: impl Write, state: &State) -> std::io::Result<()> {
        write!(w, "{{\"version\":{FORMAT_VERSION},\"saved_at\":")?;
        serde_json::to_writer(&mut w, &rfc3339(SystemTime::now()))?;
        w.write_all(b",\"workers\":{")?;
        let mut first = true;
        for id in state.ids() {
            let Some((name, record)) = state.export_one(id) else {
                continue;
            };
            let hash = self.hash_of(id).unwrap_or_default();
            let saved = v2::Target::from_record(hash, &record);
            if !first {
                w.write_all(b",")?;
            }
            first = false;
            serde_json::to_writer(&mut w, &name)?;
            w.write_all(b":")?;
            serde_json::to_writer(&mut w, &saved)?;
        }
        w.write_all(b"}}")
    }
}

/// How a restored target meets what the state already holds for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restore {
    /// At start-up: the saved record is the target's record.
    Replace,
    /// Later (a remote copy that could not be read at start-up): the saved record is older than
    /// what was recorded since, and both are kept.
    Merge,
}

/// What a restore found.
#[derive(Debug)]
pub struct Loaded {
    pub count: usize,
    pub saved_at: Option<String>,
    pub version: u32,
}

impl Loaded {
    /// `restored 3 target(s) saved at ...` for the log.
    pub fn summary(&self) -> String {
        format!(
            "restored {} target(s) saved at {}{}",
            self.count,
            self.saved_at.as_deref().unwrap_or("an unknown time"),
            if self.version < FORMAT_VERSION {
                format!(
                    " (format {}, migrated; the next save writes format {FORMAT_VERSION})",
                    self.version
                )
            } else {
                String::new()
            }
        )
    }
}

/// One target as some format saved it.
enum Saved {
    V1(v1::Target),
    V2(v2::Target),
}

impl Saved {
    fn url_hash(&self) -> &str {
        match self {
            Saved::V1(t) => &t.url_hash,
            Saved::V2(t) => &t.url_hash,
        }
    }

    fn into_record(self, cap: usize) -> Result<Record, String> {
        match self {
            Saved::V1(t) => Ok(t.into_record(cap)),
            Saved::V2(t) => t.into_record(cap),
        }
    }

    fn deserialize<'de, D: Deserializer<'de>>(version: u32, d: D) -> Result<Saved, D::Error> {
        Ok(if version == 1 {
            Saved::V1(v1::Target::deserialize(d)?)
        } else {
            Saved::V2(v2::Target::deserialize(d)?)
        })
    }
}

type Sink<'a> = &'a mut dyn FnMut(String, Saved) -> Result<(), String>;

struct Header {
    version: u32,
    saved_at: Option<String>,
}

fn check_version(v: u32) -> Result<u32, String> {
    if (1..=FORMAT_VERSION).contains(&v) {
        Ok(v)
    } else {
        Err(format!(
            "it has format version {v}, this build reads 1 to {FORMAT_VERSION}"
        ))
    }
}

/// The top-level object. `workers` is streamed to the sink one target at a time when `version`
/// came first (as every master-pinger writes it), else held until the version is known.
struct FileVisitor<'a> {
    sink: Sink<'a>,
}

impl<'de> Visitor<'de> for FileVisitor<'_> {
    type Value = Header;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a master-pinger state file (a JSON object)")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Header, A::Error> {
        let sink = self.sink;
        let (mut version, mut saved_at, mut early) = (None, None, None);
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "version" => version = Some(check_version(map.next_value()?).map_err(de::Error::custom)?),
                "saved_at" => saved_at = map.next_value()?,
                "workers" => match version {
                    Some(version) => map.next_value_seed(Workers {
                        version,
                        sink: &mut *sink,
                    })?,
                    None => early = Some(map.next_value::<serde_json::Map<String, serde_json::Value>>()?),
                },
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        let version = version.ok_or_else(|| de::Error::missing_field("version"))?;
        for (name, value) in early.into_iter().flatten() {
            let saved = reread(version, &value).map_err(de::Error::custom)?;
            sink(name, saved).map_err(de::Error::custom)?;
        }
        Ok(Header { version, saved_at })
    }
}

/// A target held back as a `Value` (its `workers` came before `version`), read again from its
/// text with the reader type of the file itself: the formats' readers are then compiled for one
/// reader, not two (the second was about 25 KiB of the binary). The error is worded as the
/// `Value`'s own would be, without a position inside the re-written text.
fn reread(version: u32, value: &serde_json::Value) -> Result<Saved, String> {
    let text = value.to_string();
    let mut bytes = text.as_bytes();
    let reader: &mut dyn BufRead = &mut bytes;
    let mut de = serde_json::Deserializer::from_reader(reader);
    Saved::deserialize(version, &mut de).map_err(|e| {
        let message = e.to_string();
        let at = format!(" at line {} column {}", e.line(), e.column());
        message.strip_suffix(&at).unwrap_or(&message).to_string()
    })
}

struct Workers<'a> {
    version: u32,
    sink: Sink<'a>,
}

impl<'de> DeserializeSeed<'de> for Workers<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Workers<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object of targets by name")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(name) = map.next_key::<String>()? {
            let saved = map.next_value_seed(TargetSeed(self.version))?;
            (self.sink)(name, saved).map_err(de::Error::custom)?;
        }
        Ok(())
    }
}

struct TargetSeed(u32);

impl<'de> DeserializeSeed<'de> for TargetSeed {
    type Value = Saved;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Saved, D::Error> {
        Saved::deserialize(self.0, d)
    }
}

#[cfg(test)]
mod tests;
