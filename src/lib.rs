//! master-pinger: keeps a fleet of sleepy free-tier web apps awake and shows how each is doing.
//!
//! Data flows one way: config -> worker threads (schedule, check with retries) -> shared state
//! (history, counters) -> web (HTML, JSON, metrics), with alerts and persistence beside the state.

pub mod alert;
pub mod cli;
pub mod conditions;
pub mod config;
pub mod duration;
pub mod fleet;
pub mod heartbeat;
pub mod maintenance;
pub mod net;
pub mod once;
pub mod os;
pub mod persist;
pub mod probe;
pub mod proxy;
pub mod publish;
pub mod reload;
pub mod resolve;
pub mod restart;
pub mod schedule;
pub mod shutdown;
pub mod state;
pub mod target_url;
pub mod timefmt;
pub mod tls;
pub mod web;
pub mod worker;

use config::{Config, Env, Flags, Target};
use shutdown::Shutdown;
use state::{State, TargetInfo};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

pub const EXIT_OK: u8 = 0;
pub const EXIT_FAILURE: u8 = 1;
pub const EXIT_USAGE: u8 = 2;

/// Nice value of the HTTP-serving threads (workers keep 0).
const HTTP_NICE: i32 = 10;

/// The whole program behind `main`: returns the exit status.
pub fn main_with(args: &[String], env: &Env) -> u8 {
    let command = match cli::parse(args) {
        Ok(c) => c,
        Err(message) => {
            eprintln!("error: {message}\n\nRun 'master-pinger --help' for usage.");
            return EXIT_USAGE;
        }
    };
    match command {
        cli::Command::Help => {
            print!("{}", cli::USAGE);
            EXIT_OK
        }
        cli::Command::Version => {
            println!("{}", version_line());
            EXIT_OK
        }
        cli::Command::Healthcheck { url } => healthcheck(url, env),
        cli::Command::Check(flags) => match config::load(&flags, env) {
            Ok(cfg) => {
                print!("{}", describe_schedule(&cfg));
                for w in &cfg.warnings {
                    eprintln!("warning: {w}");
                }
                EXIT_OK
            }
            Err(errors) => report_config_errors(&errors),
        },
        cli::Command::Once { flags, options } => match config::load(&flags, env) {
            Ok(cfg) => {
                for w in &cfg.warnings {
                    eprintln!("warning: {w}");
                }
                once::run(&cfg, &options, env)
            }
            Err(errors) => report_config_errors(&errors),
        },
        cli::Command::NotifyTest(flags) => match config::load(&flags, env) {
            Ok(cfg) => notify_test(&cfg.alerts.channels, &net::Net::from_settings(&cfg.settings)),
            Err(errors) => report_config_errors(&errors),
        },
        cli::Command::Run(flags) => match config::load(&flags, env) {
            Ok(cfg) => match run(cfg, flags, env.clone()) {
                Ok(()) => EXIT_OK,
                Err(message) => {
                    eprintln!("error: {message}");
                    EXIT_FAILURE
                }
            },
            Err(errors) => report_config_errors(&errors),
        },
    }
}

/// What `--version` prints: the version and the target triple the binary was built for.
pub fn version_line() -> String {
    format!(
        "master-pinger {} ({})",
        env!("CARGO_PKG_VERSION"),
        env!("MASTER_PINGER_TARGET")
    )
}

/// The facts about a target that the shared state keeps beside its record.
pub fn target_info(t: &Target) -> TargetInfo {
    TargetInfo {
        name: t.name.clone(),
        display_url: t.display_url.clone(),
        interval: t.interval,
        // Configured workers cannot be named "self" (config rejects it).
        is_self: t.name == config::SELF_NAME,
        restarts_enabled: t.space_id.is_some(),
        maintenance: t.maintenance.clone(),
        push: t.push.as_ref().map(|p| state::PushInfo {
            period: p.period,
            grace: p.grace,
        }),
    }
}

/// Sends the test message through every channel at once, prints one line per channel in
/// configuration order (`ok`, or why not) and says whether all were delivered.
fn notify_test(channels: &[config::Channel], net: &net::Net) -> u8 {
    if channels.is_empty() {
        eprintln!("error: no alert channel is configured (set \"alerts\" in the configuration or PINGER_WEBHOOK_URL)");
        return EXIT_USAGE;
    }
    let results: Vec<Result<(), String>> = std::thread::scope(|s| {
        let handles: Vec<_> = channels
            .iter()
            .map(|ch| s.spawn(|| alert::test_channel(ch, &net.agent_for(alert::base_url(&ch.kind)))))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err("internal error".to_string())))
            .collect()
    });
    for (ch, result) in channels.iter().zip(&results) {
        match result {
            Ok(()) => println!("{}: ok", ch.name),
            Err(why) => println!("{}: failed: {why}", ch.name),
        }
    }
    if results.iter().all(Result::is_ok) {
        EXIT_OK
    } else {
        EXIT_FAILURE
    }
}

fn report_config_errors(errors: &[config::ConfigError]) -> u8 {
    for e in errors {
        eprintln!("error: {e}");
    }
    eprintln!(
        "master-pinger: {} configuration problem{} found; not started",
        errors.len(),
        if errors.len() == 1 { "" } else { "s" }
    );
    EXIT_USAGE
}

/// `healthcheck`: GET the local /health; 0 when it answers alive.
fn healthcheck(url: Option<String>, env: &Env) -> u8 {
    let url = url.unwrap_or_else(|| {
        let port = env
            .get("PORT")
            .and_then(|p| p.trim().parse::<u16>().ok())
            .unwrap_or(config::DEFAULT_PORT);
        format!("http://127.0.0.1:{port}/health")
    });
    let timeout = Duration::from_secs(5);
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(timeout))
        .proxy(None)
        .build()
        .new_agent();
    let shown = target_url::redact(&url, &[]);
    match agent.get(&url).call() {
        Ok(mut resp) => {
            let status = resp.status().as_u16();
            let body = resp
                .body_mut()
                .with_config()
                .limit(64 * 1024)
                .read_to_string()
                .unwrap_or_default();
            if status == 200 && body.contains("alive") {
                println!("{shown}: alive");
                EXIT_OK
            } else {
                eprintln!("{shown}: not alive (status {status})");
                EXIT_FAILURE
            }
        }
        Err(e) => {
            eprintln!("{shown}: not alive ({})", probe::describe(&e, timeout));
            EXIT_FAILURE
        }
    }
}

/// What `check` prints: each target's schedule and check settings.
/// `off`, or each channel as `name (type)`; never a destination (they carry credentials).
fn describe_channels(channels: &[config::Channel]) -> String {
    if channels.is_empty() {
        return "off".to_string();
    }
    let list: Vec<String> = channels
        .iter()
        .map(|c| format!("{} ({})", c.name, c.kind.type_name()))
        .collect();
    format!("{} channel(s): {}", channels.len(), list.join(", "))
}

/// What `check` says of a worker's conditions and maintenance windows, and its next window.
fn conditions_lines(t: &Target, now: SystemTime) -> Vec<String> {
    let c = &t.conditions;
    let mut parts: Vec<String> = Vec::new();
    if let Some(l) = c.latency {
        parts.push(format!("degraded when slower than {}", duration::format(l)));
    }
    for j in &c.json {
        use conditions::JsonTest as T;
        parts.push(match &j.test {
            T::Equals(v) => format!("JSON {} equals {v}", j.pointer),
            T::NotEquals(v) => format!("JSON {} not equal to {v}", j.pointer),
            T::Exists(true) => format!("JSON {} exists", j.pointer),
            T::Exists(false) => format!("JSON {} absent", j.pointer),
            T::OneOf(list) => format!("JSON {} one of {}", j.pointer, serde_json::Value::from(list.clone())),
        });
    }
    for (name, want) in &c.headers {
        parts.push(format!("header {name} contains {want:?}"));
    }
    if let Some(text) = &c.body_absent {
        parts.push(format!("body must not contain {text:?}"));
    }
    let mut lines = Vec::new();
    if !parts.is_empty() {
        lines.push(format!("conditions: {}", parts.join("; ")));
    }
    if !t.maintenance.is_empty() {
        let windows: Vec<String> = t.maintenance.iter().map(maintenance::describe).collect();
        lines.push(format!("maintenance: {}", windows.join("; ")));
        let now_ms = i64::try_from(timefmt::unix_millis(now)).unwrap_or(i64::MAX);
        let next = match maintenance::active_until(&t.maintenance, now_ms) {
            Some(end) => format!("now, until {}", maintenance::rfc3339_ms(end)),
            None => match maintenance::next_window(&t.maintenance, now_ms) {
                Some((start, end)) => format!("{} to {}", maintenance::rfc3339_ms(start), maintenance::rfc3339_ms(end)),
                None => "none to come".to_string(),
            },
        };
        lines.push(format!("next maintenance window: {next}"));
    }
    lines
}

pub fn describe_schedule(cfg: &Config) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(out, "configuration: {} (ok)", cfg.source);
    let _ = writeln!(out, "listen: {}", cfg.settings.scrub(&cfg.settings.listen));
    let targets: Vec<&Target> = cfg.workers.iter().chain(cfg.self_ping.iter()).collect();
    match cfg.shard {
        Some(shard) => {
            let _ = writeln!(
                out,
                "shard: {shard} (the workers whose name hashes to {} modulo {}; the self-ping is not sharded)",
                shard.index - 1,
                shard.count
            );
            let _ = writeln!(
                out,
                "workers: {} of {} configured",
                cfg.workers.len(),
                cfg.configured_workers
            );
        }
        None => {
            let _ = writeln!(out, "workers: {}", cfg.workers.len());
        }
    }
    for (i, t) in targets.iter().enumerate() {
        if let Some(push) = &t.push {
            let _ = writeln!(out, "{}", config::push::describe(&t.name, push, t.paused));
            continue;
        }
        let first = schedule::stagger(i, targets.len(), t.interval);
        let delays: Vec<String> = (1..=t.retries)
            .map(|a| duration::format(probe::backoff_delay(t.backoff, a)))
            .collect();
        let _ = writeln!(
            out,
            "  {}  {} {}\n    every {}, first check {} after start; timeout {}; {} retr{}{}; expect status {}{}",
            t.name,
            t.shown_method(),
            t.display_url,
            duration::format(t.interval),
            duration::format(first),
            duration::format(t.timeout),
            t.retries,
            if t.retries == 1 { "y" } else { "ies" },
            if delays.is_empty() {
                String::new()
            } else {
                format!(" (waits {})", delays.join(", "))
            },
            t.shown_expect_status(),
            t.expect_body
                .as_ref()
                .map_or(String::new(), |_| ", body must contain the expected text".to_string()),
        );
        if let Some(line) = tls_line(t) {
            let _ = writeln!(out, "    {line}");
        }
        for line in conditions_lines(t, SystemTime::now()) {
            let _ = writeln!(out, "    {line}");
        }
        if t.paused {
            let _ = writeln!(
                out,
                "    starts paused (\"paused\": true): not checked until POST /api/workers/{}/resume",
                t.name
            );
        }
    }
    let _ = writeln!(
        out,
        "reload: on SIGHUP{}",
        match cfg.settings.watch_config {
            Some(every) if cfg.source != "built-in defaults" => {
                format!(
                    ", and when the file changes (looked at every {})",
                    duration::format(every)
                )
            }
            _ => String::new(),
        }
    );
    for line in cfg.settings.proxies.describe() {
        let _ = writeln!(out, "{line}");
    }
    if cfg.self_ping.is_none() {
        let _ = writeln!(out, "self-ping: off");
    }
    let _ = writeln!(
        out,
        "alerts: {}; state file: {}; history: {} checks",
        describe_channels(&cfg.alerts.channels),
        cfg.settings
            .state_file
            .as_ref()
            .map_or("none (memory only)".to_string(), |p| {
                cfg.settings.scrub(&p.display().to_string())
            }),
        cfg.settings.history
    );
    out
}

/// How an https target's certificate is checked, for `check`.
fn tls_line(t: &Target) -> Option<String> {
    if !t.url.get(..8).is_some_and(|s| s.eq_ignore_ascii_case("https://")) {
        return None;
    }
    Some(match (&t.tls.ca_file, t.tls.insecure) {
        (_, true) => "tls: certificate NOT verified (tls.insecure)".to_string(),
        (Some(f), false) => format!(
            "tls: bundled roots, SSL_CERT_FILE if set, and {} ({} certificate(s))",
            f.path.display(),
            f.certs.len()
        ),
        (None, false) => "tls: bundled roots, and SSL_CERT_FILE if set".to_string(),
    })
}

pub(crate) fn init_logging(level: log::LevelFilter) {
    // Panics (ours are caught and recorded; tiny_http's threads can panic when out of
    // resources) go to the log as one line instead of a backtrace on stderr.
    std::panic::set_hook(Box::new(|info| {
        let thread = std::thread::current();
        log::error!("panic in thread {}: {info}", thread.name().unwrap_or("unnamed"));
    }));
    // A second init (tests calling run twice) fails harmlessly.
    let _ = simple_logger::SimpleLogger::new()
        .with_level(level)
        .with_utc_timestamps()
        .with_module_level("rustls", log::LevelFilter::Warn)
        .with_module_level("ureq", log::LevelFilter::Warn)
        .with_module_level("ureq_proto", log::LevelFilter::Warn)
        .with_module_level("tiny_http", log::LevelFilter::Warn)
        .init();
}

/// Runs the service until SIGTERM or SIGINT; SIGHUP (and a change of the file) reloads the
/// configuration from `flags` and `env`. `Err` is a runtime failure (exit 1).
pub fn run(cfg: Config, flags: Flags, env: Env) -> Result<(), String> {
    init_logging(cfg.settings.log_level);
    for w in &cfg.warnings {
        log::warn!("{w}");
    }
    let started = SystemTime::now();
    let state = Arc::new(State::new(fleet::infos(&cfg), cfg.settings.history, started));

    let persister = cfg.settings.state_file.clone().map(|path| {
        let urls: Vec<&str> = cfg
            .workers
            .iter()
            .chain(cfg.self_ping.iter())
            .map(|t| t.url.as_str())
            .collect();
        let shown = cfg.settings.scrub(&path.display().to_string());
        Arc::new(persist::Persister::new(path, &urls).shown_as(shown))
    });
    if let Some(p) = &persister {
        p.load(&state);
        if let Err(e) = p.probe_writable() {
            log::warn!("state file: {e}; history will not survive a restart until this is fixed");
            state.set_persistence_error(Some(e));
        }
    }

    if let Some((old, new)) = os::raise_nofile() {
        if new > old {
            log::debug!("open-files limit raised from {old} to {new}");
        }
    }
    // Before "listening" is logged: a supervisor (or a test) that signals as soon as it reads
    // that line must get a clean shutdown, not the default action of SIGTERM/SIGINT.
    let shutdown = Arc::new(Shutdown::default());
    let reload_waker = shutdown.waker();
    install_signal_handlers(&shutdown, &reload_waker)?;
    let listener = web::server::bind(&cfg.settings.listen).map_err(|e| {
        cfg.settings
            .scrub(&format!("cannot listen on {}: {e}", cfg.settings.listen))
    })?;
    match listener.local_addr() {
        Ok(addr) => log::info!(
            "listening on http://{} ({} worker(s){})",
            cfg.settings.scrub(&addr.to_string()),
            cfg.workers.len(),
            shard_note(&cfg)
        ),
        Err(_) => log::info!("listening on {}", cfg.settings.scrub(&cfg.settings.listen)),
    }

    let net = net::Net::from_settings(&cfg.settings);
    for line in net.proxies().describe() {
        log::info!("{line}");
    }
    let fleet = fleet::Fleet::start(&cfg, Arc::clone(&state), Arc::clone(&shutdown), net, persister.clone())?;

    if let Some(p) = &persister {
        let (p, state, waker, every) = (
            Arc::clone(p),
            Arc::clone(&state),
            shutdown.waker(),
            cfg.settings.save_interval,
        );
        std::thread::Builder::new()
            .name("saver".into())
            .stack_size(256 * 1024)
            .spawn(move || {
                while waker.sleep(every) {
                    save_now(&p, &state);
                }
            })
            .map_err(|e| format!("cannot start the saver thread: {e}"))?;
    }

    let app = Arc::new(web::App {
        state: Arc::clone(&state),
        fleet: Arc::clone(&fleet) as Arc<dyn web::Control>,
        admin_token: cfg.settings.admin_token.clone(),
        cache: web::cache::Cache::default(),
    });
    let limits = web::guard::Limits {
        header_timeout: cfg.settings.header_timeout,
        max_connections: cfg.settings.max_connections,
    };
    reload::Reloader {
        fleet,
        state: Arc::clone(&state),
        current: cfg,
        flags,
        env,
        waker: reload_waker,
    }
    .spawn()
    .map_err(|e| format!("cannot start the reload thread: {e}"))?;

    // From here on this thread only serves HTTP; the tiny_http threads it starts inherit the
    // lower priority, so client load cannot push a worker past its deadline.
    if !os::nice_current_thread(HTTP_NICE) {
        log::debug!("could not lower the HTTP threads' priority");
    }
    web::server::serve(listener, app, Arc::clone(&shutdown), limits);

    // Shutting down: workers are stopped (in-flight checks abandoned); keep what was recorded.
    if let Some(p) = &persister {
        save_now(p, &state);
    }
    log::info!("stopped");
    Ok(())
}

/// For the start-up line: which shard this is and of how many workers, when sharded.
fn shard_note(cfg: &Config) -> String {
    cfg.shard.map_or(String::new(), |s| {
        format!(", shard {s}, {} configured in all", cfg.configured_workers)
    })
}

fn save_now(p: &persist::Persister, state: &State) {
    match p.save(state) {
        Ok(()) => state.set_persistence_error(None),
        Err(e) => {
            log::warn!("state file: {e}");
            state.set_persistence_error(Some(e));
        }
    }
}

/// SIGTERM and SIGINT shut down; SIGHUP wakes the reload thread (through `reload`).
fn install_signal_handlers(shutdown: &Arc<Shutdown>, reload: &Arc<shutdown::Waker>) -> Result<(), String> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT, SIGHUP])
        .map_err(|e| format!("cannot install signal handlers: {e}"))?;
    let (shutdown, reload) = (Arc::clone(shutdown), Arc::clone(reload));
    std::thread::Builder::new()
        .name("signals".into())
        .stack_size(128 * 1024)
        .spawn(move || {
            for sig in signals.forever() {
                if sig == SIGHUP {
                    reload.check_now();
                    continue;
                }
                log::info!(
                    "received {}, shutting down",
                    if sig == SIGTERM { "SIGTERM" } else { "SIGINT" }
                );
                shutdown.trigger();
                break;
            }
        })
        .map(|_| ())
        .map_err(|e| format!("cannot start the signal thread: {e}"))
}
