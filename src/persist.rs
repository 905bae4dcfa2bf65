//! The state file: history and counters that survive restarts. Writes go to a temporary file in
//! the same folder, are fsynced, then renamed over the old file (and the folder fsynced), so a
//! crash at any instant leaves the old file or the new one, never a torn one. A file that cannot
//! be read or parsed is set aside, never a reason to refuse to start.

use crate::state::{Record, State};
use crate::timefmt::{rfc3339, unix_secs};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

pub const FORMAT_VERSION: u32 = 1;

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileDoc {
    version: u32,
    saved_at: String,
    workers: BTreeMap<String, SavedTarget>,
}

#[derive(Serialize, Deserialize)]
struct SavedTarget {
    /// A hash of the target's URL: a worker whose URL changed starts fresh, and the URL itself
    /// (which may hold tokens) never reaches the disk.
    url_hash: String,
    #[serde(flatten)]
    record: Record,
}

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
    path: PathBuf,
    /// Slot order matches the state's; the hash of each target's real URL.
    hashes: Vec<String>,
    /// One save at a time (the periodic saver and the final save at shutdown may meet).
    saving: Mutex<()>,
}

impl Persister {
    pub fn new(path: PathBuf, urls: &[&str]) -> Persister {
        Persister {
            path,
            hashes: urls.iter().map(|u| url_hash(u)).collect(),
            saving: Mutex::new(()),
        }
    }

    /// Loads the file into `state`. Missing: nothing to do. Unreadable or corrupt: renamed to
    /// `<file>.corrupt-<unix time>` with a warning. Returns how many targets were restored.
    pub fn load(&self, state: &State) -> usize {
        let text = match fs::read(&self.path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return 0,
            Err(e) => {
                self.set_aside(&format!("cannot read it: {e}"));
                return 0;
            }
        };
        let doc: FileDoc = match serde_json::from_slice(&text) {
            Ok(d) => d,
            Err(e) => {
                self.set_aside(&format!("it is not a valid state file: {e}"));
                return 0;
            }
        };
        if doc.version != FORMAT_VERSION {
            self.set_aside(&format!(
                "it has format version {}, this build reads {FORMAT_VERSION}",
                doc.version
            ));
            return 0;
        }
        let mut restored = 0;
        for (name, saved) in doc.workers {
            let Some(slot) = state.slot_of(&name) else {
                log::info!("state file: dropping {name:?}, which is no longer configured");
                continue;
            };
            if self.hashes.get(slot) != Some(&saved.url_hash) {
                log::info!("state file: {name:?} has a new URL; its history starts fresh");
                continue;
            }
            state.import(slot, saved.record);
            restored += 1;
        }
        log::info!(
            "state file {}: restored {restored} target(s) saved at {}",
            self.path.display(),
            doc.saved_at
        );
        restored
    }

    fn set_aside(&self, why: &str) {
        let aside = PathBuf::from(format!(
            "{}.corrupt-{}",
            self.path.display(),
            unix_secs(SystemTime::now())
        ));
        match fs::rename(&self.path, &aside) {
            Ok(()) => log::warn!(
                "state file {}: {why}; moved it to {} and starting fresh",
                self.path.display(),
                aside.display()
            ),
            Err(e) => log::warn!(
                "state file {}: {why}; could not move it aside ({e}); starting fresh",
                self.path.display()
            ),
        }
    }

    /// Whether a file can be created in the state file's folder (a wrong path shows at once).
    pub fn probe_writable(&self) -> Result<(), String> {
        let probe = self.temp_path();
        let result = File::create(&probe).and_then(|f| f.sync_all());
        let _ = fs::remove_file(&probe);
        result.map_err(|e| format!("cannot write {}: {e}", self.path.display()))
    }

    fn temp_path(&self) -> PathBuf {
        let name = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "state".into());
        self.path.with_file_name(format!(".{name}.tmp-{}", std::process::id()))
    }

    /// Serializes a copy of the state (taken under the lock, written after) and replaces the file.
    pub fn save(&self, state: &State) -> Result<(), String> {
        let records = state.export();
        let doc = FileDoc {
            version: FORMAT_VERSION,
            saved_at: rfc3339(SystemTime::now()),
            workers: records
                .into_iter()
                .enumerate()
                .map(|(slot, (name, record))| {
                    (
                        name,
                        SavedTarget {
                            url_hash: self.hashes.get(slot).cloned().unwrap_or_default(),
                            record,
                        },
                    )
                })
                .collect(),
        };
        let bytes = serde_json::to_vec(&doc).map_err(|e| format!("cannot serialize the state: {e}"))?;
        let _guard = self.saving.lock().unwrap_or_else(|e| e.into_inner());
        self.write_atomically(&bytes)
            .map_err(|e| format!("cannot write {}: {e}", self.path.display()))
    }

    fn write_atomically(&self, bytes: &[u8]) -> std::io::Result<()> {
        let tmp = self.temp_path();
        let result = (|| {
            let mut f = OpenOptions::new().write(true).create(true).truncate(true).open(&tmp)?;
            f.write_all(bytes)?;
            f.sync_all()?;
            fs::rename(&tmp, &self.path)?;
            // The rename is durable only once the folder's entry is on disk.
            let dir = self
                .path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            if let Ok(d) = File::open(dir) {
                let _ = d.sync_all();
            }
            Ok(())
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{CheckRecord, TargetInfo};
    use std::time::UNIX_EPOCH;

    fn state(names: &[&str]) -> State {
        let infos = names.iter().map(|n| TargetInfo::test(n)).collect();
        State::new(infos, 10, UNIX_EPOCH)
    }

    fn dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("mp-persist-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    fn rec(ok: bool) -> CheckRecord {
        CheckRecord {
            at_ms: 1000,
            ok,
            status: Some(200),
            latency_ms: 1,
            duration_ms: 1,
            attempts: 1,
            error: None,
        }
    }

    #[test]
    fn round_trip_drops_removed_and_changed_workers() {
        let d = dir("rt");
        let path = d.join("s.json");
        let s = state(&["a", "b", "gone"]);
        s.record_check(0, rec(true));
        s.record_check(1, rec(false));
        s.record_check(2, rec(true));
        Persister::new(path.clone(), &["http://a", "http://b", "http://gone"])
            .save(&s)
            .unwrap();
        let text = fs::read_to_string(&path).unwrap();
        assert!(!text.contains("http://a"), "URLs never reach the disk");

        let s2 = state(&["a", "b"]);
        let n = Persister::new(path, &["http://a", "http://b-moved"]).load(&s2);
        assert_eq!(n, 1);
        assert_eq!(s2.record_of(0).unwrap().checks, 1);
        assert_eq!(s2.record_of(1).unwrap().checks, 0, "a new URL starts fresh");
    }

    #[test]
    fn corrupt_file_is_set_aside() {
        let d = dir("corrupt");
        let path = d.join("s.json");
        fs::write(&path, b"{ not json").unwrap();
        let s = state(&["a"]);
        assert_eq!(Persister::new(path.clone(), &["http://a"]).load(&s), 0);
        assert!(!path.exists());
        let aside: Vec<_> = fs::read_dir(&d)
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert!(aside.iter().any(|n| n.starts_with("s.json.corrupt-")), "{aside:?}");
    }

    #[test]
    fn unwritable_folder_is_an_error_not_a_panic() {
        let p = Persister::new(PathBuf::from("/nonexistent-dir-mp/state.json"), &[]);
        assert!(
            p.probe_writable()
                .unwrap_err()
                .contains("/nonexistent-dir-mp/state.json")
        );
        assert!(p.save(&state(&[])).is_err());
    }

    #[test]
    fn url_hash_is_stable() {
        assert_eq!(url_hash(""), "cbf29ce484222325");
        assert_ne!(url_hash("http://a"), url_hash("http://b"));
    }
}
