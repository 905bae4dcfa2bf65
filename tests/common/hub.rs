//! A fake Hugging Face Hub on 127.0.0.1: the download (`resolve`), `revision`, `preupload` and
//! `commit` endpoints of the repositories it holds, answering as the Hub does (status, the
//! `X-Error-Code` header, a JSON `{"error": ...}` body). It checks what the real Hub would refuse
//! (method, path, `Authorization: Bearer`, the commit's NDJSON shape, `parentCommit`) and notes
//! every malformed request in `problems`, which a test expects to stay empty.

use super::{accept_loop, read_request};
use std::collections::BTreeMap;
use std::io::{BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

pub const WRITE_TOKEN: &str = "hf_writeTOKENwriteTOKENwriteTOKEN01";
pub const READ_TOKEN: &str = "hf_readTOKENreadTOKENreadTOKEN00001";
/// The largest file the fake accepts as a regular (non-LFS) one, as the Hub: 10 MB.
pub const REGULAR_MAX: usize = 10_000_000;

#[derive(Default, Clone)]
pub struct Repo {
    pub head: String,
    pub files: BTreeMap<String, Vec<u8>>,
    pub commits: Vec<Commit>,
}

#[derive(Clone, Debug)]
pub struct Commit {
    pub summary: String,
    pub parent: Option<String>,
    pub paths: Vec<String>,
}

#[derive(Default)]
pub struct HubState {
    /// By `datasets/OWNER/NAME` (or `spaces/...`).
    pub repos: BTreeMap<String, Repo>,
    /// Requests the real Hub would refuse for their shape, in words.
    pub problems: Vec<String>,
    /// Every request as `METHOD PATH`.
    pub requests: Vec<String>,
    /// The next this many requests are answered 429.
    pub throttle: usize,
    /// The next this many requests are answered 503 (the Hub down).
    pub down: usize,
}

pub struct FakeHub {
    pub port: u16,
    pub state: Arc<Mutex<HubState>>,
    stop: Arc<AtomicBool>,
}

impl FakeHub {
    /// A Hub holding the empty repository `repo` (`datasets/OWNER/NAME`).
    pub fn with_repo(repo: &str) -> FakeHub {
        let hub = FakeHub::start();
        hub.state.lock().unwrap().repos.insert(
            repo.to_string(),
            Repo {
                head: oid(repo, 0),
                ..Repo::default()
            },
        );
        hub
    }

    pub fn start() -> FakeHub {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the fake Hub");
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(HubState::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let st = Arc::clone(&state);
        accept_loop(listener, Arc::clone(&stop), move |stream| serve(stream, &st));
        FakeHub { port, state, stop }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn repo(&self, repo: &str) -> Repo {
        self.state.lock().unwrap().repos.get(repo).cloned().unwrap_or_default()
    }

    pub fn problems(&self) -> Vec<String> {
        self.state.lock().unwrap().problems.clone()
    }

    pub fn requests(&self) -> Vec<String> {
        self.state.lock().unwrap().requests.clone()
    }

    /// Another writer commits `path` to `repo`: its head moves.
    pub fn commit_elsewhere(&self, repo: &str, path: &str, content: &[u8]) {
        let mut s = self.state.lock().unwrap();
        let r = s.repos.get_mut(repo).expect("the repository");
        r.files.insert(path.to_string(), content.to_vec());
        r.commits.push(Commit {
            summary: "elsewhere".into(),
            parent: Some(r.head.clone()),
            paths: vec![path.to_string()],
        });
        r.head = oid(repo, r.commits.len());
    }
}

impl Drop for FakeHub {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// A 40-hex commit id.
fn oid(repo: &str, n: usize) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in repo.bytes().chain(n.to_le_bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}{h:016x}{:08x}", n as u32)
}

struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

fn json(status: u16, v: serde_json::Value) -> Answer {
    Answer {
        status,
        headers: vec![("Content-Type".into(), "application/json".into())],
        body: v.to_string().into_bytes(),
    }
}

fn error(status: u16, code: Option<&str>, message: &str) -> Answer {
    let mut a = json(status, serde_json::json!({ "error": message }));
    if let Some(c) = code {
        a.headers.push(("X-Error-Code".into(), c.into()));
        a.headers.push(("X-Error-Message".into(), message.into()));
    }
    a
}

fn serve(mut stream: TcpStream, state: &Mutex<HubState>) {
    let mut reader = BufReader::new(match stream.try_clone() {
        Ok(s) => s,
        Err(_) => return,
    });
    while let Some((head, body)) = read_request(&mut reader) {
        let answer = answer(&head, &body, state);
        let mut out = format!(
            "HTTP/1.1 {} X\r\nContent-Length: {}\r\n",
            answer.status,
            answer.body.len()
        );
        for (k, v) in &answer.headers {
            out.push_str(&format!("{k}: {v}\r\n"));
        }
        out.push_str("\r\n");
        let _ = stream.write_all(out.as_bytes());
        let _ = stream.write_all(&answer.body);
    }
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().skip(1).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

fn answer(head: &str, body: &[u8], state: &Mutex<HubState>) -> Answer {
    let first = head.lines().next().unwrap_or("");
    let mut parts = first.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let mut s = state.lock().unwrap();
    s.requests.push(format!("{method} {path}"));
    if s.down > 0 {
        s.down -= 1;
        return error(503, None, "Service Unavailable");
    }
    if s.throttle > 0 {
        s.throttle -= 1;
        let mut a = error(
            429,
            None,
            "You have exceeded our hourly quotas for action 'commit'. We invite you to retry later.",
        );
        a.headers.push(("Retry-After".into(), "1".into()));
        return a;
    }
    let token = match header(head, "authorization") {
        None => None,
        Some(v) => match v.strip_prefix("Bearer ") {
            Some(t) if t == WRITE_TOKEN || t == READ_TOKEN => Some(t.to_string()),
            Some(_) => return error(401, None, "Invalid credentials in Authorization header"),
            None => {
                s.problems
                    .push(format!("{method} {path}: Authorization is not a Bearer token"));
                return error(400, None, "Authorization header is malformed");
            }
        },
    };
    // `/datasets/O/N/resolve/main/PATH` or `/api/datasets/O/N/{revision,preupload,commit}/main`.
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let (api, rest) = match segments.first() {
        Some(&"api") => (true, &segments[1..]),
        _ => (false, &segments[..]),
    };
    if rest.len() < 5 || !matches!(rest[0], "datasets" | "spaces") {
        s.problems.push(format!("{method} {path}: not a Hub route"));
        return error(404, None, "Sorry, we can't find the page you are looking for.");
    }
    let repo_key = format!("{}/{}/{}", rest[0], rest[1], rest[2]);
    let (action, revision, file) = (rest[3], rest[4], rest[5..].join("/"));
    if revision != "main" {
        s.problems
            .push(format!("{method} {path}: revision {revision:?}, expected main"));
    }
    // Private repositories: unknown to a caller without a token, as the Hub answers.
    if token.is_none() || !s.repos.contains_key(&repo_key) {
        return error(404, Some("RepoNotFound"), "Repository not found");
    }
    let writer = token.as_deref() == Some(WRITE_TOKEN);
    let expected = match (api, action) {
        (false, "resolve") => "GET",
        (true, "revision") => "GET",
        (true, "preupload" | "commit") => "POST",
        _ => "",
    };
    if method != expected {
        s.problems.push(format!("{method} {path}: expected {expected:?}"));
        return error(405, None, "Method not allowed");
    }
    match action {
        "resolve" => {
            let r = &s.repos[&repo_key];
            let file = percent_decode(&file);
            match r.files.get(&file) {
                Some(bytes) => Answer {
                    status: 200,
                    headers: vec![
                        ("X-Repo-Commit".into(), r.head.clone()),
                        ("ETag".into(), format!("\"{}\"", bytes.len())),
                    ],
                    body: bytes.clone(),
                },
                None => error(
                    404,
                    Some("EntryNotFound"),
                    &format!("{file} does not exist on \"main\""),
                ),
            }
        }
        "revision" => {
            let r = &s.repos[&repo_key];
            json(
                200,
                serde_json::json!({ "id": format!("{}/{}", rest[1], rest[2]), "sha": r.head }),
            )
        }
        "preupload" => {
            if !writer {
                return error(403, None, "You don't have the rights to upload to this repo");
            }
            let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else {
                s.problems.push("preupload: body is not JSON".into());
                return error(400, None, "Invalid JSON");
            };
            let Some(files) = v["files"].as_array() else {
                s.problems.push(format!("preupload: no files list in {v}"));
                return error(400, None, "files is required");
            };
            let modes: Vec<serde_json::Value> = files
                .iter()
                .map(|f| {
                    let size = f["size"].as_u64().unwrap_or(0) as usize;
                    if f["path"].as_str().is_none() || f["sample"].as_str().is_none() {
                        s.problems.push(format!("preupload: file without path or sample: {f}"));
                    }
                    serde_json::json!({
                        "path": f["path"],
                        "uploadMode": if size > REGULAR_MAX { "lfs" } else { "regular" },
                        "shouldIgnore": false,
                    })
                })
                .collect();
            json(200, serde_json::json!({ "files": modes }))
        }
        "commit" => {
            if !writer {
                return error(403, None, "You don't have the rights to create a commit on this repo");
            }
            if header(head, "content-type") != Some("application/x-ndjson") {
                s.problems
                    .push("commit: Content-Type is not application/x-ndjson".into());
            }
            commit(&mut s, &repo_key, body)
        }
        _ => unreachable!(),
    }
}

fn commit(s: &mut HubState, repo_key: &str, body: &[u8]) -> Answer {
    let text = String::from_utf8_lossy(body);
    let mut lines = text.lines().filter(|l| !l.is_empty());
    let parse = |l: &str| serde_json::from_str::<serde_json::Value>(l).ok();
    let Some(header) = lines.next().and_then(parse) else {
        s.problems.push("commit: the first line is not JSON".into());
        return error(400, None, "Invalid NDJSON");
    };
    if header["key"] != "header" || !header["value"]["summary"].is_string() {
        s.problems.push(format!(
            "commit: the first line is not a header with a summary: {header}"
        ));
        return error(400, None, "The first line must be the header");
    }
    let parent = header["value"]["parentCommit"].as_str().map(str::to_string);
    let mut files = Vec::new();
    for l in lines {
        let Some(v) = parse(l) else {
            s.problems.push("commit: a line is not JSON".into());
            return error(400, None, "Invalid NDJSON");
        };
        let value = &v["value"];
        let decoded = value["content"].as_str().and_then(base64_decode);
        match (
            v["key"].as_str(),
            value["path"].as_str(),
            value["encoding"].as_str(),
            decoded,
        ) {
            (Some("file"), Some(path), Some("base64"), Some(bytes)) => {
                if bytes.len() > REGULAR_MAX {
                    return error(
                        400,
                        None,
                        "Your push was rejected because it contains files larger than 10 MiB. Please use LFS.",
                    );
                }
                files.push((path.to_string(), bytes));
            }
            _ => {
                s.problems.push(format!("commit: not a base64 file line: {l:.200}"));
                return error(400, None, "Invalid file operation");
            }
        }
    }
    let r = s.repos.get_mut(repo_key).unwrap();
    if let Some(p) = &parent {
        if *p != r.head {
            return error(412, None, "A commit has happened since. Please refresh and try again.");
        }
    }
    let paths = files.iter().map(|(p, _)| p.clone()).collect();
    for (p, b) in files {
        r.files.insert(p, b);
    }
    r.commits.push(Commit {
        summary: header["value"]["summary"].as_str().unwrap_or("").to_string(),
        parent,
        paths,
    });
    r.head = oid(repo_key, r.commits.len());
    json(
        200,
        serde_json::json!({
            "success": true,
            "commitOid": r.head,
            "commitUrl": format!("https://huggingface.co/{repo_key}/commit/{}", r.head),
            "hookOutput": "",
        }),
    )
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub fn base64_decode(s: &str) -> Option<Vec<u8>> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    if s.len() % 4 != 0 {
        return None;
    }
    let mut out = Vec::new();
    for chunk in s.as_bytes().chunks(4) {
        let mut n: u32 = 0;
        let mut pad = 0;
        for &c in chunk {
            n <<= 6;
            if c == b'=' {
                pad += 1;
            } else {
                n |= ALPHABET.iter().position(|&a| a == c)? as u32;
            }
        }
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&bytes[..3 - pad]);
    }
    Some(out)
}
