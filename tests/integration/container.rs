//! The Docker image, proven without a Docker engine: the static musl binary alone in an empty root
//! (what `FROM scratch` gives it), run as uid 1000 with chroot. Needs root and the musl target;
//! CI has both (`.ci/run` installs them), elsewhere the test says why it skips.

use crate::common::{FakeServer, Pinger, build_static, ok, skip, temp_dir};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// True when the ELF file asks for no program interpreter (no dynamic loader, no libc on disk).
fn is_static_elf(bytes: &[u8]) -> bool {
    assert_eq!(&bytes[..4], b"\x7fELF", "not an ELF file");
    let u16_at = |o: usize| u16::from_le_bytes([bytes[o], bytes[o + 1]]) as usize;
    let phoff = u64::from_le_bytes(bytes[0x20..0x28].try_into().unwrap()) as usize;
    let (phentsize, phnum) = (u16_at(0x36), u16_at(0x38));
    const PT_INTERP: u32 = 3;
    (0..phnum).all(|i| {
        let o = phoff + i * phentsize;
        u32::from_le_bytes(bytes[o..o + 4].try_into().unwrap()) != PT_INTERP
    })
}

fn chroot(root: &Path, args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut c = Command::new("chroot");
    c.env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .arg("--userspec=1000:1000")
        .arg(root)
        .arg("/master-pinger")
        .args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    c
}

#[test]
fn the_static_binary_runs_alone_in_an_empty_root_as_uid_1000() {
    if !is_root() {
        return skip("chroot needs root");
    }
    let Some(binary) = build_static() else { return };
    let bytes = std::fs::read(&binary).expect("the musl binary");
    assert!(is_static_elf(&bytes), "the binary must be statically linked");
    eprintln!("static binary: {} bytes", bytes.len());

    let root = temp_dir("scratch-root");
    std::fs::copy(&binary, root.join("master-pinger")).unwrap();
    let listing: Vec<_> = std::fs::read_dir(&root).unwrap().collect();
    assert_eq!(listing.len(), 1, "the root holds the binary alone");

    let target = FakeServer::always(ok());
    // Answers every connection with plain HTTP at once: a TLS client must fail on it as TLS.
    let plain = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let plain_port = plain.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut s in plain.incoming().flatten() {
            use std::io::Write;
            let _ = s.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
            std::thread::sleep(Duration::from_millis(200));
        }
    });
    // No /etc/hosts in an empty root: 127.0.0.1, never localhost. The https worker proves the TLS
    // stack starts with no CA files on disk (it fails on the plain-HTTP server with a tls error).
    let workers = format!(
        r#"[{{"name": "t", "url": "{}", "interval": "1s"}}, {{"name": "tls", "url": "https://127.0.0.1:{plain_port}/", "interval": "1h", "retries": 0}}]"#,
        target.url("/")
    );
    let c = chroot(&root, &["--listen", "127.0.0.1:0"], &[("PINGER_WORKERS", &workers)]);
    let p = Pinger::spawn(c, root.clone());
    assert_eq!(p.get("/health").body, r#"{"status":"alive"}"#);
    p.wait_worker("t", Duration::from_secs(10), |w| {
        w["checks"].as_u64() >= Some(2) && w["state"] == "up"
    });
    let tls = p.wait_worker("tls", Duration::from_secs(15), |w| w["checks"] == 1);
    assert!(
        tls["last_check"]["error"].as_str().unwrap().starts_with("tls: "),
        "{tls}"
    );

    let port = p.port.to_string();
    let health = chroot(&root, &["healthcheck"], &[("PORT", &port)]).output().unwrap();
    assert_eq!(
        health.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&health.stderr)
    );
    drop(p);
    let dead = chroot(
        &root,
        &["healthcheck", "--url", &format!("http://127.0.0.1:{port}/health")],
        &[],
    )
    .output()
    .unwrap();
    assert_eq!(dead.status.code(), Some(1), "nothing listens any more");
}
