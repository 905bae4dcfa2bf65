//! The state's remote copy: one object in an S3-compatible bucket or one file in a Hugging Face
//! dataset. It remembers the version it last read or wrote (the object's ETag, the branch's
//! commit) and makes every write conditional on it, so a write over another instance's copy is
//! refused (`ErrorKind::Conflict`) instead of silently replacing that history.

use super::hub::{self, CommitFile, Repo, RepoKind};
use super::s3::{self, Condition};
use super::{Error, ErrorKind, sigv4};
use crate::config::{Remote, StateUrl};
use crate::net::Net;
use crate::timefmt::unix_secs;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

enum Place {
    S3 {
        client: Box<s3::Client>,
        bucket: String,
        key: String,
    },
    Hub {
        client: hub::Client,
        repo: Repo,
        path: String,
    },
}

/// What this process knows of the copy in the store.
#[derive(Default)]
struct Known {
    /// The copy's version was read or written by this process (else a write must learn it first).
    known: bool,
    /// The ETag (S3; `None`: no object yet) or the branch's commit (Hub).
    version: Option<String>,
    /// SHA-256 of the workers part of the last state read or written: an unchanged state is not
    /// written again (each write to a dataset is a commit).
    digest: Option<String>,
}

/// What a read found.
pub enum Fetched {
    /// No copy yet: a fresh start.
    Missing,
    Found(Vec<u8>),
}

/// What a write did.
#[derive(Debug, PartialEq, Eq)]
pub enum Written {
    Saved,
    /// The state had not changed since it was last read or written.
    Unchanged,
}

pub struct RemoteStore {
    place: Place,
    known: Mutex<Known>,
}

impl RemoteStore {
    /// The store for `url`; the error names what is wrong with `AWS_ENDPOINT_URL`.
    pub fn new(net: &Net, remote: &Remote, url: &StateUrl) -> Result<RemoteStore, String> {
        let place = match url {
            StateUrl::S3 { bucket, key } => Place::S3 {
                client: Box::new(s3::Client::new(net, &remote.s3, remote.timeout)?),
                bucket: bucket.clone(),
                key: key.clone(),
            },
            StateUrl::Dataset { repo, path } => Place::Hub {
                client: hub::Client::new(net, &remote.hub.endpoint, remote.hub.token.clone(), remote.timeout),
                repo: Repo {
                    kind: RepoKind::Dataset,
                    id: repo.clone(),
                },
                path: path.clone(),
            },
        };
        Ok(RemoteStore {
            place,
            known: Mutex::new(Known::default()),
        })
    }

    fn known(&self) -> std::sync::MutexGuard<'_, Known> {
        self.known.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether the copy's version is known (a write may go ahead).
    pub fn is_known(&self) -> bool {
        self.known().known
    }

    /// Reads the copy and notes its version.
    pub fn fetch(&self, timeout: Duration) -> Result<Fetched, Error> {
        let (body, version) = match &self.place {
            Place::S3 { client, bucket, key } => match client.with_timeout(timeout).get(bucket, key)? {
                Some(o) => (Some(o.body), o.etag),
                None => (None, None),
            },
            Place::Hub { client, repo, path } => {
                let client = client.with_timeout(timeout);
                let fetched = client.download(repo, path)?;
                let commit = match fetched.commit {
                    Some(c) => c,
                    None => client.head_commit(repo)?,
                };
                (fetched.body, Some(commit))
            }
        };
        *self.known() = Known {
            known: true,
            version,
            digest: body.as_deref().map(digest),
        };
        Ok(body.map_or(Fetched::Missing, Fetched::Found))
    }

    /// Learns the copy's version without reading it (the local state file won at start-up).
    pub fn learn_version(&self, timeout: Duration) -> Result<(), Error> {
        let version = match &self.place {
            Place::S3 { client, bucket, key } => client.with_timeout(timeout).head(bucket, key)?,
            Place::Hub { client, repo, .. } => Some(client.with_timeout(timeout).head_commit(repo)?),
        };
        let mut k = self.known();
        k.known = true;
        k.version = version;
        Ok(())
    }

    /// Writes `bytes` (a state in the file's format) over the version last read or written.
    pub fn write(&self, bytes: &[u8], timeout: Duration) -> Result<Written, Error> {
        let new_digest = digest(bytes);
        let (known, version, old_digest) = {
            let k = self.known();
            (k.known, k.version.clone(), k.digest.clone())
        };
        if !known {
            return Err(Error::new(
                ErrorKind::Unavailable,
                "the copy in the store has not been read yet",
            ));
        }
        if old_digest.as_deref() == Some(new_digest.as_str()) {
            return Ok(Written::Unchanged);
        }
        let version = match &self.place {
            Place::S3 { client, bucket, key } => {
                let condition = version.map_or(Condition::IfNoneMatch, Condition::IfMatch);
                let etag = client
                    .with_timeout(timeout)
                    .put(bucket, key, bytes, "application/json", &condition)?;
                // A store that gives no ETag: the next write learns the version again.
                (!etag.is_empty()).then_some(etag)
            }
            Place::Hub { client, repo, path } => {
                Some(self.commit(&client.with_timeout(timeout), repo, path, bytes, version, old_digest)?)
            }
        };
        *self.known() = Known {
            known: version.is_some(),
            version,
            digest: Some(new_digest),
        };
        Ok(Written::Saved)
    }

    /// A commit on top of `parent`. The branch moves with any commit to the dataset (a README
    /// edited on the Hub too), so on a 412 the file itself is read: unchanged since this process
    /// wrote it, the commit goes again on the new head; changed, it is a real conflict.
    fn commit(
        &self,
        client: &hub::Client,
        repo: &Repo,
        path: &str,
        bytes: &[u8],
        parent: Option<String>,
        last: Option<String>,
    ) -> Result<String, Error> {
        let files = [CommitFile { path, content: bytes }];
        let summary = "master-pinger state";
        match client.commit(repo, summary, parent.as_deref(), &files) {
            Err(e) if e.kind == ErrorKind::Conflict => {
                let now = client.download(repo, path)?;
                if now.body.as_deref().map(digest) != last {
                    return Err(e);
                }
                let head = match now.commit {
                    Some(c) => c,
                    None => client.head_commit(repo)?,
                };
                client.commit(repo, summary, Some(&head), &files)
            }
            other => other,
        }
    }

    /// Keeps an unreadable copy beside the original, as `<key>.corrupt-<unix time>`, as a
    /// corrupt state file is kept; returns that name.
    pub fn keep_aside(&self, bytes: &[u8], timeout: Duration) -> Result<String, Error> {
        let suffix = format!(".corrupt-{}", unix_secs(SystemTime::now()));
        match &self.place {
            Place::S3 { client, bucket, key } => {
                let aside = format!("{key}{suffix}");
                client.with_timeout(timeout).put(
                    bucket,
                    &aside,
                    bytes,
                    "application/octet-stream",
                    &Condition::None,
                )?;
                Ok(format!("s3://{bucket}/{aside}"))
            }
            Place::Hub { client, repo, path } => {
                let aside = format!("{path}{suffix}");
                let parent = self.known().version.clone();
                let files = [CommitFile {
                    path: &aside,
                    content: bytes,
                }];
                let oid = client.with_timeout(timeout).commit(
                    repo,
                    "master-pinger: an unreadable state set aside",
                    parent.as_deref(),
                    &files,
                )?;
                self.known().version = Some(oid);
                Ok(format!("hf://{repo}/{aside}"))
            }
        }
    }
}

/// SHA-256 of a state's `workers` part: the same targets with the same history give the same
/// digest whenever they were saved (`saved_at` comes before it).
fn digest(bytes: &[u8]) -> String {
    let marker = b"\"workers\":";
    let from = bytes.windows(marker.len()).position(|w| w == marker).unwrap_or(0);
    sigv4::sha256_hex(&bytes[from..])
}

#[cfg(test)]
mod tests {
    use super::digest;

    #[test]
    fn the_digest_ignores_the_save_time() {
        let a = br#"{"version":2,"saved_at":"2026-12-04T10:00:00Z","workers":{"a":{}}}"#;
        let b = br#"{"version":2,"saved_at":"2026-12-04T10:05:00Z","workers":{"a":{}}}"#;
        let c = br#"{"version":2,"saved_at":"2026-12-04T10:05:00Z","workers":{"b":{}}}"#;
        assert_eq!(digest(a), digest(b));
        assert_ne!(digest(b), digest(c));
    }
}
