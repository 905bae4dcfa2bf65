//! `once --publish`: where the static status page goes. A folder is replaced as a whole, so a
//! half-written one is never what a web server (or the Pages upload) sees; a Static Space gets
//! one commit, and a bucket one PUT per file, only when the files changed since the last run.
//! The Hub and S3 clients are the remote state's own (`persist::remote`).

use crate::config::Remote;
use crate::net::Net;
use crate::persist::remote::hub::{self, CommitFile, Repo, RepoKind};
use crate::persist::remote::s3::{self, Condition};
use crate::web::site::File;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
/// Compared with what the destination has: when both are unchanged, every file is (the badges
/// and the page's rows come from the same snapshot as `status.json`, and the page says when).
const CHANGE_MARKERS: [&str; 2] = ["status.json", "index.html"];

/// Where `--publish` puts the files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// A local folder, replaced as a whole.
    Dir(PathBuf),
    /// `hf://spaces/OWNER/NAME`: a Static Space, one commit per run with changes.
    Space { repo: String },
    /// `s3://BUCKET/PREFIX`: objects under the prefix (which may be empty).
    Bucket { bucket: String, prefix: String },
}

impl Destination {
    /// `--publish`'s value. `Err` is a usage message (exit 2).
    pub fn parse(s: &str) -> Result<Destination, String> {
        if let Some(rest) = s.strip_prefix("hf://") {
            let parts: Vec<&str> = rest.split('/').collect();
            let ok = |p: &str| crate::config::valid_name(p);
            return match parts.as_slice() {
                ["spaces", owner, name] if ok(owner) && ok(name) => Ok(Destination::Space {
                    repo: format!("{owner}/{name}"),
                }),
                _ => Err(format!(
                    "--publish {s:?}: expected hf://spaces/OWNER/NAME (a Static Space)"
                )),
            };
        }
        if let Some(rest) = s.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() || prefix.split('/').any(|p| p == "..") {
                return Err(format!("--publish {s:?}: expected s3://BUCKET/PREFIX"));
            }
            return Ok(Destination::Bucket {
                bucket: bucket.to_string(),
                prefix: prefix.trim_matches('/').to_string(),
            });
        }
        if s.contains("://") {
            return Err(format!(
                "--publish {s:?}: expected a folder, hf://spaces/OWNER/NAME or s3://BUCKET/PREFIX"
            ));
        }
        Ok(Destination::Dir(PathBuf::from(s)))
    }
}

/// What a publish did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Published {
    Written,
    /// The destination already had these very files: nothing was sent.
    Unchanged,
}

/// Publishes `files` to `to`.
/// Publishes `files` to `to`. The Hub and the bucket are reached as the remote state reaches
/// them (`remote`: `HF_TOKEN`, `HF_ENDPOINT`; the AWS variables), through `net`.
pub fn publish(
    to: &Destination,
    files: &[File],
    net: &Net,
    remote: &Remote,
    summary: &str,
) -> Result<Published, String> {
    match to {
        Destination::Dir(dir) => to_dir(dir, files).map(|()| Published::Written),
        Destination::Space { repo } => to_space(net, remote, repo, files, summary),
        Destination::Bucket { bucket, prefix } => to_bucket(net, remote, bucket, prefix, files),
    }
}

/// One commit of every file to the Static Space `repo` (`OWNER/NAME`), unless the Space already
/// has them. Not conditional on the parent commit: the files are this run's alone, and a commit
/// someone else made meanwhile (its README, say) is no reason to fail.
fn to_space(net: &Net, remote: &Remote, repo: &str, files: &[File], summary: &str) -> Result<Published, String> {
    let shown = format!("hf://spaces/{repo}");
    if remote.hub.token.is_none() {
        return Err(format!(
            "cannot publish to {shown}: HF_TOKEN is not set (a token with write access to the Space)"
        ));
    }
    let client = hub::Client::new(net, &remote.hub.endpoint, remote.hub.token.clone(), remote.timeout);
    let repo = Repo {
        kind: RepoKind::Space,
        id: repo.to_string(),
    };
    let fail = |e: crate::persist::remote::Error| format!("cannot publish to {shown}: {e}");
    let unchanged = CHANGE_MARKERS.iter().try_fold(true, |same, path| {
        if !same {
            return Ok(false);
        }
        let have = client.download(&repo, path).map_err(fail)?;
        Ok::<bool, String>(have.body.as_deref() == body_of(files, path))
    })?;
    if unchanged {
        return Ok(Published::Unchanged);
    }
    let list: Vec<CommitFile> = files
        .iter()
        .map(|f| CommitFile {
            path: &f.path,
            content: &f.body,
        })
        .collect();
    client.commit(&repo, summary, None, &list).map_err(fail)?;
    Ok(Published::Written)
}

/// Every file under `prefix` in `bucket`, with its content type, unless the bucket already has
/// them. The markers go last, so that a run cut short is retried by the next one.
fn to_bucket(net: &Net, remote: &Remote, bucket: &str, prefix: &str, files: &[File]) -> Result<Published, String> {
    let shown = if prefix.is_empty() {
        format!("s3://{bucket}")
    } else {
        format!("s3://{bucket}/{prefix}")
    };
    let client =
        s3::Client::new(net, &remote.s3, remote.timeout).map_err(|e| format!("cannot publish to {shown}: {e}"))?;
    let key = |path: &str| {
        if prefix.is_empty() {
            path.to_string()
        } else {
            format!("{prefix}/{path}")
        }
    };
    let fail = |e: crate::persist::remote::Error| format!("cannot publish to {shown}: {e}");
    let unchanged = CHANGE_MARKERS.iter().try_fold(true, |same, path| {
        if !same {
            return Ok(false);
        }
        let have = client.get(bucket, &key(path)).map_err(fail)?;
        Ok::<bool, String>(have.as_ref().map(|o| o.body.as_slice()) == body_of(files, path))
    })?;
    if unchanged {
        return Ok(Published::Unchanged);
    }
    let (markers, rest): (Vec<&File>, Vec<&File>) =
        files.iter().partition(|f| CHANGE_MARKERS.contains(&f.path.as_str()));
    for f in rest.into_iter().chain(markers) {
        client
            .put(bucket, &key(&f.path), &f.body, f.content_type, &Condition::None)
            .map_err(fail)?;
    }
    Ok(Published::Written)
}

fn body_of<'a>(files: &'a [File], path: &str) -> Option<&'a [u8]> {
    files.iter().find(|f| f.path == path).map(|f| f.body.as_slice())
}

/// Writes `files` as the folder `dir`, replacing what was there in one step.
///
/// The files are written (and fsynced) into a sibling folder `.NAME.new-PID` first. When `dir`
/// does not exist yet, that folder is renamed to it. When it does, the two are exchanged with
/// `renameat2(RENAME_EXCHANGE)` (Linux), one atomic step: every reader sees the whole old folder
/// or the whole new one at `dir`, and the old one, now at the sibling's name, is removed after.
/// Where the exchange is not supported (another OS, some file systems), the old folder is
/// renamed aside and the new one renamed into place: for the instant between the two renames
/// `dir` is missing, but it is never half-written. Leftovers of a run killed halfway are
/// siblings with those names, removed by the next run.
pub fn to_dir(dir: &Path, files: &[File]) -> Result<(), String> {
    let shown = dir.display();
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| format!("--publish {shown}: not a folder name"))?;
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    remove_leftovers(&parent, &name);
    let fresh = parent.join(format!(".{name}.new-{}", std::process::id()));
    let result = write_tree(&fresh, files).and_then(|()| swap_in(&fresh, dir, &parent, &name));
    if result.is_err() {
        let _ = fs::remove_dir_all(&fresh);
    }
    result.map_err(|e| format!("cannot publish to {shown}: {e}"))
}

fn write_tree(root: &Path, files: &[File]) -> std::io::Result<()> {
    fs::create_dir_all(root)?;
    let mut dirs = vec![root.to_path_buf()];
    for f in files {
        let path = root.join(&f.path);
        if let Some(d) = path.parent().filter(|d| !dirs.iter().any(|x| x == d)) {
            fs::create_dir_all(d)?;
            dirs.push(d.to_path_buf());
        }
        fs::File::create(&path)?.write_all(&f.body)?;
    }
    // On disk before the swap, so a crash after it cannot leave empty files in place: one
    // `syncfs` (an fsync per file took 5 s for a thousand badges on a busy disk), else an fsync
    // of every file and then of their folders.
    if crate::os::sync_filesystem(root).is_ok() {
        return Ok(());
    }
    for f in files {
        fs::File::open(root.join(&f.path))?.sync_all()?;
    }
    for d in dirs.iter().rev() {
        fs::File::open(d)?.sync_all()?;
    }
    Ok(())
}

fn swap_in(fresh: &Path, dir: &Path, parent: &Path, name: &str) -> std::io::Result<()> {
    match fs::symlink_metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => fs::rename(fresh, dir)?,
        Err(e) => return Err(e),
        Ok(m) if !m.is_dir() => {
            return Err(std::io::Error::other("it exists and is not a folder"));
        }
        Ok(_) => match crate::os::exchange(fresh, dir) {
            // `fresh` now holds the old folder.
            Ok(()) => fs::remove_dir_all(fresh)?,
            Err(_) => {
                let old = parent.join(format!(".{name}.old-{}", std::process::id()));
                fs::rename(dir, &old)?;
                fs::rename(fresh, dir)?;
                fs::remove_dir_all(&old)?;
            }
        },
    }
    fs::File::open(parent)?.sync_all()
}

/// Removes `.NAME.new-*` and `.NAME.old-*` left in `parent` by a run that was killed halfway.
fn remove_leftovers(parent: &Path, name: &str) {
    let Ok(entries) = fs::read_dir(parent) else { return };
    let (new, old) = (format!(".{name}.new-"), format!(".{name}.old-"));
    for e in entries.flatten() {
        let n = e.file_name().to_string_lossy().into_owned();
        let pid = n.strip_prefix(&new).or_else(|| n.strip_prefix(&old));
        if pid.is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())) {
            let _ = fs::remove_dir_all(e.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, body: &str) -> File {
        File {
            path: path.into(),
            content_type: "text/plain",
            body: body.as_bytes().to_vec(),
        }
    }

    fn temp(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("mp-publish-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn destinations() {
        assert_eq!(Destination::parse("public"), Ok(Destination::Dir("public".into())));
        assert_eq!(
            Destination::parse("hf://spaces/me/status"),
            Ok(Destination::Space {
                repo: "me/status".into()
            })
        );
        assert_eq!(
            Destination::parse("s3://bucket/site/"),
            Ok(Destination::Bucket {
                bucket: "bucket".into(),
                prefix: "site".into()
            })
        );
        assert_eq!(
            Destination::parse("s3://bucket"),
            Ok(Destination::Bucket {
                bucket: "bucket".into(),
                prefix: String::new()
            })
        );
        for bad in [
            "hf://datasets/me/x",
            "hf://spaces/me",
            "s3:///x",
            "https://x/",
            "s3://b/../x",
        ] {
            assert!(Destination::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_folder_is_replaced_as_a_whole() {
        let root = temp("swap");
        let dir = root.join("public");
        to_dir(&dir, &[file("index.html", "one"), file("badge/a.svg", "a")]).unwrap();
        assert_eq!(fs::read_to_string(dir.join("badge/a.svg")).unwrap(), "a");
        to_dir(&dir, &[file("index.html", "two"), file("badge/b.svg", "b")]).unwrap();
        assert_eq!(fs::read_to_string(dir.join("index.html")).unwrap(), "two");
        assert!(!dir.join("badge/a.svg").exists(), "a removed worker's badge goes");
        let names: Vec<String> = fs::read_dir(&root)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["public"], "no temporary folder is left");
        // A leftover of a killed run is cleared; a file in the way is an error, not a crash.
        fs::create_dir_all(root.join(".public.new-1")).unwrap();
        to_dir(&dir, &[file("index.html", "three")]).unwrap();
        assert!(!root.join(".public.new-1").exists());
        let in_the_way = root.join("file");
        fs::write(&in_the_way, "x").unwrap();
        assert!(to_dir(&in_the_way, &[file("index.html", "x")]).is_err());
        assert_eq!(fs::read_to_string(&in_the_way).unwrap(), "x");
    }
}
