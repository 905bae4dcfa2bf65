//! `run`: the service. Loads the state (the file, else its remote copy), starts the workers, the
//! savers and the reload thread, serves HTTP on this thread until SIGTERM or SIGINT, then saves
//! once more.

use crate::config::{Config, Env, Flags};
use crate::shutdown::{self, Shutdown};
use crate::state::{SavePlace, State};
use crate::{fleet, net, os, persist, reload, remote_saver, web};
use std::sync::Arc;
use std::time::SystemTime;

/// Nice value of the HTTP-serving threads (workers keep 0).
const HTTP_NICE: i32 = 10;

pub(crate) fn init_logging(level: log::LevelFilter) {
    // Panics (ours are caught and recorded; tiny_http's threads can panic when out of
    // resources) go to the log as one line instead of a backtrace on stderr.
    std::panic::set_hook(Box::new(|info| {
        let thread = std::thread::current();
        log::error!("panic in thread {}: {info}", thread.name().unwrap_or("unnamed"));
    }));
    super::logging::init(level);
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

    // The state's format and the targets' URL hashes, for the file and the remote copy alike.
    let urls: Vec<&str> = cfg
        .workers
        .iter()
        .chain(cfg.self_ping.iter())
        .map(|t| t.url.as_str())
        .collect();
    let persister = match (&cfg.settings.state_file, &cfg.settings.remote.state_url) {
        (Some(path), _) => {
            let shown = cfg.settings.scrub(&path.display().to_string());
            Some(Arc::new(persist::Persister::new(path.clone(), &urls).shown_as(shown)))
        }
        (None, Some(_)) => Some(Arc::new(persist::Persister::without_file(&urls))),
        (None, None) => None,
    };
    // The file saver's: only with a state file.
    let file = persister.clone().filter(|_| cfg.settings.state_file.is_some());
    if let Some(p) = &file {
        p.load(&state);
        if let Err(e) = p.probe_writable() {
            log::warn!("state file: {e}; history will not survive a restart until this is fixed");
            state.set_persistence_error(Some(e));
        }
    }
    // A corrupt file was set aside by `load`: then the remote copy is the fallback.
    let local_loaded = file.as_ref().is_some_and(|p| p.file_exists());

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
    // Before the first check: the remote copy is read now (unless the state file was loaded).
    let remote = match (&cfg.settings.remote.state_url, &persister) {
        (Some(url), Some(p)) => {
            let store = persist::remote::store::RemoteStore::new(&net, &cfg.settings.remote, url)?;
            let settings = cfg.settings.clone();
            let saver = remote_saver::RemoteSaver {
                store,
                persister: Arc::clone(p),
                state: Arc::clone(&state),
                shown: cfg.settings.scrub(&url.to_string()),
                interval: cfg.settings.remote.save_interval,
                timeout: cfg.settings.remote.timeout,
                scrub: Box::new(move |text| settings.scrub(text)),
            };
            Some(saver.start(local_loaded, shutdown.waker())?)
        }
        _ => None,
    };
    let fleet = fleet::Fleet::start(&cfg, Arc::clone(&state), Arc::clone(&shutdown), net, persister.clone())?;

    if let Some(p) = &file {
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
    if let Some(p) = &file {
        save_now(p, &state);
    }
    // The remote saver was woken by the same trigger and makes its last save (at most 5 s more).
    if let Some(r) = &remote {
        r.wait();
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
    let result = p.save(state);
    state.record_save(SavePlace::File, result.is_ok(), SystemTime::now());
    match result {
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
