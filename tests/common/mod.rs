//! Shared helpers for the integration tests: fake targets on 127.0.0.1 and a handle on the real
//! `master-pinger` binary.
#![allow(dead_code)]

pub mod aged;
pub mod hub;
pub mod providers;
pub mod s3;
pub mod tls;

use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_master-pinger");

/// Test durations are written `5 * SEC`.
pub const SEC: Duration = Duration::from_secs(1);

/// What a fake target does with request number `n` (0-based).
#[derive(Clone, Debug)]
pub enum Action {
    Respond {
        status: u16,
        body: Vec<u8>,
    },
    /// Respond with extra header lines (each ending in `\r\n`).
    RespondWith {
        status: u16,
        headers: String,
        body: Vec<u8>,
    },
    /// Wait, then respond 200 "ok".
    Delay(Duration),
    /// Accept and never answer.
    Hang,
    /// Send a status line and headers, then one body byte every `every`, forever.
    Trickle(Duration),
    /// Send the response head a byte at a time, every `every`.
    TrickleHead(Duration),
    Redirect(String),
    /// Close the connection without answering.
    Close,
}

pub fn ok() -> Action {
    Action::Respond {
        status: 200,
        body: b"ok".to_vec(),
    }
}

/// A 200 with this content type and body.
pub fn typed(content_type: &str, body: &str) -> Action {
    Action::RespondWith {
        status: 200,
        headers: format!("Content-Type: {content_type}\r\n"),
        body: body.as_bytes().to_vec(),
    }
}

pub fn status(code: u16) -> Action {
    Action::Respond {
        status: code,
        body: format!("status {code}").into_bytes(),
    }
}

#[derive(Clone, Debug)]
pub struct Seen {
    pub at: Instant,
    pub method: String,
    pub path: String,
    pub head: String,
    pub body: String,
}

type Behaviour = dyn Fn(usize, &Seen) -> Action + Send + Sync;

/// A tiny threaded HTTP/1.1 server whose every answer is chosen by a closure.
pub struct FakeServer {
    pub port: u16,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    stop: Arc<AtomicBool>,
}

impl FakeServer {
    pub fn start(behaviour: impl Fn(usize, &Seen) -> Action + Send + Sync + 'static) -> FakeServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a fake target");
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let count = Arc::new(AtomicUsize::new(0));
        let behaviour: Arc<Behaviour> = Arc::new(behaviour);
        let (seen2, stop2) = (Arc::clone(&seen), Arc::clone(&stop));
        accept_loop(listener, Arc::clone(&stop), move |stream| {
            serve(stream, &seen2, &stop2, &count, &*behaviour)
        });
        FakeServer { port, seen, stop }
    }

    /// Answers every request the same way.
    pub fn always(action: Action) -> FakeServer {
        FakeServer::start(move |_, _| action.clone())
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    pub fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    /// Waits until `n` requests arrived (or the deadline passes); returns what was seen.
    pub fn wait_for(&self, n: usize, within: Duration) -> Vec<Seen> {
        let end = Instant::now() + within;
        while self.count() < n && Instant::now() < end {
            thread::sleep(Duration::from_millis(10));
        }
        self.seen()
    }
}

/// Serves each connection on a thread of its own until `stop` is set (then one more connection,
/// such as the one a `Drop` makes, ends the loop).
pub fn accept_loop(listener: TcpListener, stop: Arc<AtomicBool>, handle: impl Fn(TcpStream) + Send + Sync + 'static) {
    let handle = Arc::new(handle);
    thread::spawn(move || {
        for stream in listener.incoming() {
            if stop.load(Ordering::SeqCst) {
                break;
            }
            let Ok(stream) = stream else { continue };
            let handle = Arc::clone(&handle);
            thread::spawn(move || handle(stream));
        }
    });
}

/// Reads an HTTP head up to its empty line; `None` when the connection ends first.
pub fn read_head(reader: &mut impl BufRead) -> Option<String> {
    let mut head = String::new();
    loop {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => return None,
            Ok(_) => {}
        }
        let end = line == "\r\n" || line == "\n";
        head.push_str(&line);
        if end {
            return Some(head);
        }
    }
}

/// Reads a request: its head and its `Content-Length` body.
pub fn read_request(reader: &mut impl BufRead) -> Option<(String, Vec<u8>)> {
    let head = read_head(reader)?;
    let len: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().parse().unwrap_or(0))
        })
        .unwrap_or(0);
    let mut body = vec![0; len];
    reader.read_exact(&mut body).ok()?;
    Some((head, body))
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn serve(
    mut stream: TcpStream,
    seen: &Mutex<Vec<Seen>>,
    stop: &AtomicBool,
    count: &AtomicUsize,
    behaviour: &Behaviour,
) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let mut reader = BufReader::new(match stream.try_clone() {
        Ok(s) => s,
        Err(_) => return,
    });
    loop {
        let Some((head, body)) = read_request(&mut reader) else {
            return;
        };
        let first = head.lines().next().unwrap_or("").to_string();
        let mut parts = first.split_whitespace();
        let method = parts.next().unwrap_or("").to_string();
        let path = parts.next().unwrap_or("").to_string();
        let s = Seen {
            at: Instant::now(),
            method: method.clone(),
            path,
            head,
            body: String::from_utf8_lossy(&body).into_owned(),
        };
        seen.lock().unwrap().push(s.clone());
        let n = count.fetch_add(1, Ordering::SeqCst);
        let action = behaviour(n, &s);
        let write = |stream: &mut TcpStream, status: u16, extra: &str, body: &[u8]| {
            let head = format!("HTTP/1.1 {status} X\r\nContent-Length: {}\r\n{extra}\r\n", body.len());
            let _ = stream.write_all(head.as_bytes());
            if method != "HEAD" {
                let _ = stream.write_all(body);
            }
        };
        match action {
            Action::Respond { status, body } => write(&mut stream, status, "", &body),
            Action::RespondWith { status, headers, body } => write(&mut stream, status, &headers, &body),
            Action::Delay(d) => {
                thread::sleep(d);
                write(&mut stream, 200, "", b"ok");
            }
            Action::Redirect(to) => write(&mut stream, 302, &format!("Location: {to}\r\n"), b""),
            Action::Close => {
                let _ = stream.shutdown(Shutdown::Both);
                return;
            }
            Action::Hang => {
                while !stop.load(Ordering::SeqCst) {
                    thread::sleep(Duration::from_millis(50));
                }
                return;
            }
            Action::Trickle(every) => {
                let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n");
                while !stop.load(Ordering::SeqCst) && stream.write_all(b"o").is_ok() {
                    thread::sleep(every);
                }
                return;
            }
            Action::TrickleHead(every) => {
                for b in b"HTTP/1.1 200 OK\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\nok"
                {
                    if stop.load(Ordering::SeqCst) || stream.write_all(&[*b]).is_err() {
                        return;
                    }
                    thread::sleep(every);
                }
                return;
            }
        }
    }
}

/// The real binary, started with a config file and a clean environment.
pub struct Pinger {
    pub child: Child,
    pub port: u16,
    pub log: Arc<Mutex<String>>,
    pub dir: PathBuf,
}

/// `{"name": "a", "url": TARGET/a, "interval": "1s", "retries": 0}, ...`: workers named `names`,
/// each checking its own path of `target` every second.
pub fn named_workers(target: &FakeServer, names: &[&str]) -> String {
    let list: Vec<String> = names
        .iter()
        .map(|n| {
            format!(
                r#"{{"name": "{n}", "url": "{}", "interval": "1s", "retries": 0}}"#,
                target.url(&format!("/{n}"))
            )
        })
        .collect();
    list.join(", ")
}

/// A fresh folder for one test.
pub fn temp_dir(tag: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let d = std::env::temp_dir().join(format!(
        "mp-it-{}-{tag}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A command for the binary with only the given environment (plus PATH), run in `dir`.
pub fn command(dir: &PathBuf, env: &[(&str, &str)]) -> Command {
    let mut c = Command::new(BIN);
    c.env_clear()
        .current_dir(dir)
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    for (k, v) in env {
        c.env(k, v);
    }
    c
}

impl Pinger {
    pub fn start(config: &str, env: &[(&str, &str)]) -> Pinger {
        Pinger::start_in(temp_dir("pinger"), config, env)
    }

    pub fn start_in(dir: PathBuf, config: &str, env: &[(&str, &str)]) -> Pinger {
        std::fs::write(dir.join("pinger.json"), config).unwrap();
        let mut c = command(&dir, env);
        c.args(["--listen", "127.0.0.1:0"]);
        Pinger::spawn(c, dir)
    }

    /// Starts a prepared command (which must listen on 127.0.0.1) and waits for its port.
    pub fn spawn(mut c: Command, dir: PathBuf) -> Pinger {
        let mut child = c
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start master-pinger");
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let log2 = Arc::clone(&log);
        thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(port) = line.split("listening on http://127.0.0.1:").nth(1) {
                    let port: u16 = port.split_whitespace().next().and_then(|p| p.parse().ok()).unwrap_or(0);
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(port);
                    }
                }
                let mut l = log2.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        let port = match rx.recv_timeout(Duration::from_secs(10)) {
            Ok(p) => p,
            Err(_) => {
                let _ = child.kill();
                panic!("master-pinger did not start; log:\n{}", log.lock().unwrap());
            }
        };
        Pinger { child, port, log, dir }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    pub fn get(&self, path: &str) -> Reply {
        request("GET", &self.url(path), None)
    }

    pub fn status(&self) -> serde_json::Value {
        let r = self.get("/status?history=100");
        assert_eq!(r.status, 200, "{}", r.body);
        serde_json::from_str(&r.body).expect("/status is JSON")
    }

    /// The worker named `name` from /status.
    pub fn worker(&self, name: &str) -> serde_json::Value {
        let s = self.status();
        Self::find(&s, name).unwrap_or_else(|| panic!("no worker {name} in {s}"))
    }

    fn find(s: &serde_json::Value, name: &str) -> Option<serde_json::Value> {
        if name == "self" {
            return Some(s["self_ping"].clone());
        }
        s["workers"].as_array()?.iter().find(|w| w["name"] == name).cloned()
    }

    /// Polls /status until `pred` holds for worker `name` (which may appear meanwhile, after
    /// a reload).
    pub fn wait_worker(
        &self,
        name: &str,
        within: Duration,
        pred: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let end = Instant::now() + within;
        loop {
            let s = self.status();
            let w = Self::find(&s, name);
            if let Some(w) = w.as_ref().filter(|w| pred(w)) {
                return w.clone();
            }
            if Instant::now() > end {
                let shown = w.map_or_else(|| format!("absent from {s}"), |w| format!("{w:#}"));
                panic!("timed out waiting on {name}: {shown}\nlog:\n{}", self.log());
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// The value of a per-worker series in /metrics.
    pub fn metric(&self, name: &str, worker: &str) -> Option<f64> {
        let body = self.get("/metrics").body;
        let prefix = format!("{name}{{worker=\"{worker}\"}} ");
        body.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .and_then(|v| v.trim().parse().ok())
    }

    /// Waits until a per-worker series in /metrics has `value` (its body may be cached for a
    /// second); panics with the last value seen.
    pub fn wait_metric(&self, name: &str, worker: &str, value: f64) {
        let end = Instant::now() + 10 * SEC;
        loop {
            let got = self.metric(name, worker);
            if got == Some(value) {
                return;
            }
            assert!(
                Instant::now() < end,
                "{name}{{worker={worker:?}}} is {got:?}, expected {value}"
            );
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Replaces the configuration file as an editor does (written beside, renamed over).
    pub fn rewrite_config(&self, text: &str) {
        let tmp = self.dir.join("pinger.json.tmp");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, self.dir.join("pinger.json")).unwrap();
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{sig}"), &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{sig} failed");
    }

    /// Waits for the process to exit; its status code, or None on timeout.
    pub fn wait_exit(&mut self, within: Duration) -> Option<i32> {
        let end = Instant::now() + within;
        while Instant::now() < end {
            if let Ok(Some(st)) = self.child.try_wait() {
                return Some(st.code().unwrap_or(-1));
            }
            thread::sleep(Duration::from_millis(10));
        }
        None
    }
}

impl Drop for Pinger {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

pub fn request(method: &str, url: &str, auth: Option<&str>) -> Reply {
    let auth: Vec<(&str, &str)> = auth.map(|a| ("Authorization", a)).into_iter().collect();
    let (status, headers, body) = request_with(method, url, &auth);
    Reply {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

/// A request with the given headers; the body is kept as bytes (it may be gzip). Header names
/// come back in lower case.
pub fn request_with(method: &str, url: &str, headers: &[(&str, &str)]) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let (status, headers, body) = try_request(method, url, headers);
    (status.expect("request to the pinger"), headers, body)
}

/// `request_with` that survives a failed request: no status (and nothing else) when the
/// connection failed or timed out (after 10 s).
pub fn try_request(method: &str, url: &str, headers: &[(&str, &str)]) -> (Option<u16>, Vec<(String, String)>, Vec<u8>) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .proxy(None)
        .build()
        .new_agent();
    let mut b = ureq::http::Request::builder().method(method).uri(url);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let Ok(mut resp) = agent.run(b.body(()).unwrap()) else {
        return (None, Vec::new(), Vec::new());
    };
    let headers = resp
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string().to_ascii_lowercase(), v.to_str().unwrap_or("").to_string()))
        .collect();
    let body = resp
        .body_mut()
        .with_config()
        .limit(64 << 20)
        .read_to_vec()
        .unwrap_or_default();
    (Some(resp.status().as_u16()), headers, body)
}

/// Runs the binary to completion: (exit code, stdout, stderr).
pub fn run(dir: &PathBuf, args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let out = command(dir, env)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run master-pinger");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The host's static target (the one the Docker image ships on this machine's architecture).
#[cfg(target_arch = "x86_64")]
pub const MUSL_TARGET: &str = "x86_64-unknown-linux-musl";
#[cfg(target_arch = "aarch64")]
pub const MUSL_TARGET: &str = "aarch64-unknown-linux-musl";
pub const AARCH64_TARGET: &str = "aarch64-unknown-linux-musl";
/// The SPEC's bound on every release binary.
pub const MAX_BINARY_BYTES: u64 = 3 * 1024 * 1024;

/// Says why a test that needs the machine's extras did nothing; under CI that is a failure.
pub fn skip(why: &str) {
    assert!(std::env::var("CI").is_err(), "CI=true but {why}");
    eprintln!("skipping: {why}");
}

/// True when `program` can be started (it is installed).
pub fn have(program: &str, arg: &str) -> bool {
    Command::new(program)
        .arg(arg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// Builds the static release binary the Dockerfile and the release workflow ship for `target`,
/// with nothing but `cargo build --release --target` (the linkers are in .cargo/config.toml).
/// One build per target per test run, shared by every test that asks; `None` (after `skip`)
/// when the target's standard library is not installed.
pub fn release_build(target: &'static str) -> Option<PathBuf> {
    static BUILDS: Mutex<Vec<(&str, Option<PathBuf>)>> = Mutex::new(Vec::new());
    // Held through the build: a second test asking for the same target waits for this one.
    let mut builds = BUILDS.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, built)) = builds.iter().find(|(t, _)| *t == target) {
        return built.clone();
    }
    let built = build_once(target);
    builds.push((target, built.clone()));
    built
}

fn build_once(target: &str) -> Option<PathBuf> {
    let installed = Command::new("rustup").args(["target", "list", "--installed"]).output();
    if !installed
        .map(|o| String::from_utf8_lossy(&o.stdout).lines().any(|l| l.trim() == target))
        .unwrap_or(false)
    {
        skip(&format!(
            "the {target} target is not installed (rustup target add {target})"
        ));
        return None;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    // A target folder of its own: the `cargo test` that runs this holds the lock on target/.
    let target_dir = root.join("target").join("cross");
    let start = Instant::now();
    let out = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["build", "--release", "--locked", "--target", target])
        .arg("--target-dir")
        .arg(&target_dir)
        .current_dir(root)
        .stdin(Stdio::null())
        .output()
        .expect("run cargo build");
    assert!(
        out.status.success(),
        "cargo build --release --target {target} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bin = target_dir.join(target).join("release").join("master-pinger");
    let size = std::fs::metadata(&bin).map(|m| m.len()).unwrap_or(0);
    eprintln!(
        "release build for {target}: {:.1} s, {size} bytes ({:.2} MiB)",
        start.elapsed().as_secs_f64(),
        size as f64 / (1024.0 * 1024.0)
    );
    Some(bin)
}

/// The host's static musl release binary (see `release_build`).
pub fn build_static() -> Option<PathBuf> {
    release_build(MUSL_TARGET)
}

/// True when the ELF file asks for no program interpreter (no dynamic loader, no libc on disk).
/// Reads 32- and 64-bit, little-endian ELF.
pub fn is_static_elf(bytes: &[u8]) -> bool {
    assert_eq!(&bytes[..4], b"\x7fELF", "not an ELF file");
    let wide = bytes[4] == 2;
    let u16_at = |o: usize| u16::from_le_bytes([bytes[o], bytes[o + 1]]) as usize;
    let u32_at = |o: usize| u32::from_le_bytes([bytes[o], bytes[o + 1], bytes[o + 2], bytes[o + 3]]);
    let (phoff, phentsize, phnum) = if wide {
        let phoff = u64::from_le_bytes(bytes[0x20..0x28].try_into().unwrap()) as usize;
        (phoff, u16_at(0x36), u16_at(0x38))
    } else {
        (u32_at(0x1c) as usize, u16_at(0x2a), u16_at(0x2c))
    };
    const PT_INTERP: u32 = 3;
    (0..phnum).all(|i| u32_at(phoff + i * phentsize) != PT_INTERP)
}

/// The ELF machine field: 62 x86-64, 183 aarch64, 40 arm.
pub fn elf_machine(bytes: &[u8]) -> u16 {
    u16::from_le_bytes([bytes[0x12], bytes[0x13]])
}

/// The workers' schedule lateness, from their debug lines ("check N started X ms after its deadline").
pub fn lateness_ms(log: &str) -> Vec<f64> {
    log.lines()
        .filter_map(|l| {
            l.split(" started ")
                .nth(1)?
                .split(" ms after its deadline")
                .next()?
                .parse()
                .ok()
        })
        .collect()
}

/// The first number after `key` (e.g. `"Threads:"`, `"VmRSS:"` in kB) in `/proc/PID/status`, or 0
/// when the process or the line is gone.
pub fn proc_status(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix(key)
                    .map(|v| v.split_whitespace().next().unwrap_or("0").parse().unwrap_or(0))
            })
        })
        .unwrap_or(0)
}
