//! `run`: the service. Loads the state (the file, else its remote copy), starts the workers, the
//! savers and the reload thread, serves HTTP on this thread until SIGTERM or SIGINT, then ends
//! every thread in order, saving once more on the way.

use crate::config::{Config, Env, Flags};
use crate::shutdown::{self, Shutdown, Thread};
use crate::state::{SavePlace, State};
use crate::{fleet, net, os, persist, reload, remote_saver, web};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

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

/// The shutdown's budget (the SPEC: exit within 2 s, the remote copy's last write aside), each
/// counted from the stop. Threads still busy at their step's end are left running, and named.
/// The workers: a sleeping one ends at once; one in a check is abandoned at this point.
const WORKERS_END: Duration = Duration::from_millis(500);
/// The alerts the workers queued before they ended get until here to go out.
const ALERTS_END: Duration = Duration::from_millis(1000);
/// The alert and restart senders, stopped after the alerts, are joined by here.
const SENDERS_END: Duration = Duration::from_millis(1250);
/// After the last save, the HTTP server's threads get this long to end.
const SERVER_END: Duration = Duration::from_millis(250);

/// Runs the service until SIGTERM or SIGINT; SIGHUP (and a change of the file) reloads the
/// configuration from `flags` and `env`. `Err` is a runtime failure (exit 1). However it ends,
/// every thread it started has ended and been joined when it returns (see `Services::stop`),
/// but for one still reading the remote copy at start-up, which is named in the last warning.
pub fn run(cfg: Config, flags: Flags, env: Env) -> Result<(), String> {
    init_logging(cfg.settings.log_level);
    for w in &cfg.warnings {
        log::warn!("{w}");
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
    let signals = Signals::install(&shutdown, &reload_waker)?;
    let mut services = Services::default();
    let served = start_and_serve(cfg, flags, env, &shutdown, reload_waker, &mut services);
    shutdown.trigger();
    let result = served.and(services.stop(Instant::now()));
    signals.close();
    log_threads_left();
    if result.is_ok() {
        log::info!("stopped");
    }
    result
}

/// What `run` started, ended in this order by `stop`.
#[derive(Default)]
struct Services {
    /// The start-up still reading the remote copy when serving began (see `Starter`).
    starter: Option<Starter>,
    reload: Option<Thread>,
    /// The file saver's thread, and what it saves.
    saver: Option<Thread>,
    file: Option<(Arc<persist::Persister>, Arc<State>)>,
    fleet: Option<Arc<fleet::Fleet>>,
    remote: Option<remote_saver::Running>,
    server: Option<web::server::Stopped>,
}

impl Services {
    /// Ends everything in an order that loses nothing: no reload or periodic save runs on; the
    /// workers end, and the alerts they queued get their time; then the last save (the file,
    /// then the remote copy's, which has at most 5 s); then the HTTP server's threads.
    /// `Err`: the start-up failed after serving began (the fleet could not start).
    fn stop(mut self, stopped_at: Instant) -> Result<(), String> {
        let workers_by = stopped_at + WORKERS_END;
        let mut error = None;
        if let Some(starter) = self.starter.take() {
            let (started, e) = starter.take(workers_by);
            error = e;
            if let Some(s) = started {
                self.absorb(s);
            }
        }
        shutdown::join_all(self.reload.into_iter().chain(self.saver), workers_by);
        if let Some(fleet) = &self.fleet {
            fleet.stop(workers_by, stopped_at + ALERTS_END, stopped_at + SENDERS_END);
        }
        if let Some((p, state)) = &self.file {
            save_now(p, state);
        }
        if let Some(r) = self.remote {
            r.wait();
        }
        if let Some(server) = self.server {
            server.finish(Instant::now() + SERVER_END);
        }
        error.map_or(Ok(()), Err)
    }

    /// Takes over what the starter thread started.
    fn absorb(&mut self, other: Services) {
        self.reload = self.reload.take().or(other.reload);
        self.saver = self.saver.take().or(other.saver);
        self.file = self.file.take().or(other.file);
        self.fleet = self.fleet.take().or(other.fleet);
        self.remote = self.remote.take().or(other.remote);
    }
}

/// The service from its state to its last request; what it starts goes into `services`.
fn start_and_serve(
    cfg: Config,
    flags: Flags,
    env: Env,
    shutdown: &Arc<Shutdown>,
    reload_waker: Arc<shutdown::Waker>,
    services: &mut Services,
) -> Result<(), String> {
    let state = Arc::new(State::new(fleet::infos(&cfg), cfg.settings.history, SystemTime::now()));
    let (persister, local_loaded) = open_state(&cfg, &state);
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
    let late = Arc::new(super::late_fleet::LateFleet::new(&cfg));
    let app = Arc::new(web::App {
        state: Arc::clone(&state),
        fleet: Arc::clone(&late) as Arc<dyn web::Control>,
        admin_token: cfg.settings.admin_token.clone(),
        cache: web::cache::Cache::default(),
    });
    let limits = web::guard::Limits {
        header_timeout: cfg.settings.header_timeout,
        max_connections: cfg.settings.max_connections,
    };
    let rest = Rest {
        loaded: reload::Loaded::now(&flags, &env),
        cfg,
        flags,
        env,
        reload_waker,
        state,
        persister,
        local_loaded,
        net,
        late,
    };
    if rest.reads_remote() {
        // The remote copy is read before the first check, which takes up to `remote_timeout`
        // when the store is slow or down: meanwhile the page and `/health` are served (remote
        // I/O delays no page), the workers listed without checks, admin calls and `/metrics`
        // answered 503 and heartbeat reports kept until the fleet has started (`LateFleet`).
        services.starter = Some(Starter::spawn(rest, shutdown)?);
    } else {
        rest.read_remote(services)?;
        rest.start_threads(shutdown, services)?;
    }
    // From here on this thread only serves HTTP; the tiny_http threads it starts inherit the
    // lower priority, so client load cannot push a worker past its deadline.
    if !os::nice_current_thread(HTTP_NICE) {
        log::debug!("could not lower the HTTP threads' priority");
    }
    services.server = Some(web::server::serve(listener, app, Arc::clone(shutdown), limits));
    Ok(())
}

/// What starts after the state file is loaded and the socket is bound: the remote copy's saver
/// (reading the copy first when the file did not load), then the workers, the file saver and the
/// reload thread.
struct Rest {
    cfg: Config,
    flags: Flags,
    env: Env,
    reload_waker: Arc<shutdown::Waker>,
    state: Arc<State>,
    persister: Option<Arc<persist::Persister>>,
    local_loaded: bool,
    net: net::Net,
    late: Arc<super::late_fleet::LateFleet>,
    /// The configuration file's version when it was loaded, for the reload thread's watch.
    loaded: reload::Loaded,
}

impl Rest {
    /// Whether `read_remote` reads the copy (and so may take `remote_timeout`): a remote state
    /// and no state file loaded.
    fn reads_remote(&self) -> bool {
        self.cfg.settings.remote.state_url.is_some() && self.persister.is_some() && !self.local_loaded
    }

    /// Starts the remote saver, which reads the copy first when the state file was not loaded.
    fn read_remote(&self, services: &mut Services) -> Result<(), String> {
        if let (Some(url), Some(p)) = (&self.cfg.settings.remote.state_url, &self.persister) {
            services.remote = Some(start_remote(
                &self.cfg,
                &self.net,
                url,
                p,
                &self.state,
                self.local_loaded,
            )?);
        }
        Ok(())
    }

    /// Starts the workers, the file saver and the reload thread; the HTTP side sees the fleet
    /// from then on.
    fn start_threads(self, shutdown: &Arc<Shutdown>, services: &mut Services) -> Result<(), String> {
        let cfg = self.cfg;
        let fleet = fleet::Fleet::start(
            &cfg,
            Arc::clone(&self.state),
            Arc::clone(shutdown),
            self.net,
            self.persister.clone(),
        )?;
        services.fleet = Some(Arc::clone(&fleet));
        if let Some(p) = self.persister.filter(|_| cfg.settings.state_file.is_some()) {
            let saved = (Arc::clone(&p), Arc::clone(&self.state));
            services.saver = Some(start_file_saver(
                p,
                Arc::clone(&self.state),
                shutdown.waker(),
                cfg.settings.save_interval,
            )?);
            services.file = Some(saved);
        }
        self.late.set(&fleet);
        let reloader = reload::Reloader {
            fleet,
            state: self.state,
            current: cfg,
            flags: self.flags,
            env: self.env,
            waker: self.reload_waker,
            loaded: self.loaded,
        };
        services.reload = Some(
            reloader
                .spawn()
                .map_err(|e| format!("cannot start the reload thread: {e}"))?,
        );
        Ok(())
    }
}

/// The start-up that waits for the remote copy, on a thread of its own while HTTP is served.
struct Starter {
    thread: Thread,
    handover: Arc<Mutex<Handover>>,
}

/// What the starter thread started, for `Services::stop`. Once `taken`, the thread starts
/// nothing more.
#[derive(Default)]
struct Handover {
    taken: bool,
    started: Option<Services>,
    error: Option<String>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Starter {
    fn spawn(rest: Rest, shutdown: &Arc<Shutdown>) -> Result<Starter, String> {
        let handover = Arc::new(Mutex::new(Handover::default()));
        let (h, stop) = (Arc::clone(&handover), Arc::clone(shutdown));
        // It does the main thread's start-up work (the fleet, the reload thread): more stack than
        // a worker's.
        let thread = shutdown::spawn("starter".into(), 1024 * 1024, move || {
            let run = std::panic::AssertUnwindSafe(|| starter_run(rest, &h, &stop));
            if std::panic::catch_unwind(run).is_err() {
                // Logged by the panic hook; without a fleet the service would only pretend.
                lock(&h).error = Some("the start-up failed (a panic; see the log)".into());
                stop.trigger();
            }
        })
        .map_err(|e| format!("cannot start the start-up thread: {e}"))?;
        Ok(Starter { thread, handover })
    }

    /// What the thread started (waiting for it until `by`), and its error. A thread still
    /// reading the remote copy then is left to end on its own: nothing was checked yet.
    fn take(self, by: Instant) -> (Option<Services>, Option<String>) {
        let _ = self.thread.join_by(by);
        let mut h = lock(&self.handover);
        h.taken = true;
        (h.started.take(), h.error.take())
    }
}

/// The starter thread's work: the remote copy's read, then (unless the service is stopping by
/// then) the fleet and the rest, handed to `Services::stop` through `handover`.
fn starter_run(rest: Rest, handover: &Mutex<Handover>, stop: &Arc<Shutdown>) {
    if stop.is_triggered() {
        return;
    }
    let mut started = Services::default();
    let read = rest.read_remote(&mut started);
    // Held while the threads start, so that a stop waits for them rather than missing them.
    let mut h = lock(handover);
    let result = read.and_then(|()| {
        if h.taken || stop.is_triggered() {
            return Ok(());
        }
        rest.start_threads(stop, &mut started)
    });
    if let Err(e) = result {
        h.error = Some(e);
        stop.trigger();
    }
    if h.taken {
        // The stop went ahead without this thread; all it started is the remote saver, which
        // has nothing new to write: left to the process's exit rather than racing it.
        return;
    }
    h.started = Some(started);
}

/// The state's persister (for the file, the remote copy, or both), with the state file loaded
/// into `state`; and whether it was (a corrupt file was set aside by `load`: then the remote
/// copy is the fallback).
fn open_state(cfg: &Config, state: &State) -> (Option<Arc<persist::Persister>>, bool) {
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
    let Some(p) = persister.as_ref().filter(|_| cfg.settings.state_file.is_some()) else {
        return (persister, false);
    };
    p.load(state);
    if let Err(e) = p.probe_writable() {
        log::warn!("state file: {e}; history will not survive a restart until this is fixed");
        state.set_persistence_error(Some(e));
    }
    let loaded = p.file_exists();
    (persister, loaded)
}

/// Reads the remote copy (unless the state file was loaded) and starts the remote saver.
fn start_remote(
    cfg: &Config,
    net: &net::Net,
    url: &crate::config::remote::StateUrl,
    p: &Arc<persist::Persister>,
    state: &Arc<State>,
    local_loaded: bool,
) -> Result<remote_saver::Running, String> {
    let store = persist::remote::store::RemoteStore::new(net, &cfg.settings.remote, url)?;
    let settings = cfg.settings.clone();
    let saver = remote_saver::RemoteSaver {
        store,
        persister: Arc::clone(p),
        state: Arc::clone(state),
        shown: cfg.settings.scrub(&url.to_string()),
        interval: cfg.settings.remote.save_interval,
        timeout: cfg.settings.remote.timeout,
        scrub: Box::new(move |text| settings.scrub(text)),
    };
    // Not the process's stop: the last save comes after the workers' (`Services::stop`).
    saver.start(local_loaded, Arc::new(shutdown::Waker::default()))
}

/// Saves the state file every `every` until stopped (the last save is `Services::stop`'s).
fn start_file_saver(
    p: Arc<persist::Persister>,
    state: Arc<State>,
    waker: Arc<shutdown::Waker>,
    every: Duration,
) -> Result<Thread, String> {
    shutdown::spawn("saver".into(), 256 * 1024, move || {
        while waker.sleep(every) {
            save_now(&p, &state);
        }
    })
    .map_err(|e| format!("cannot start the saver thread: {e}"))
}

/// At the very end: the threads still alive (the main thread is one), by name, and those
/// started and not joined. More than the main thread is a warning naming them: a check or a
/// delivery that outlasted the shutdown's budget, or a thread nobody ends.
fn log_threads_left() {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return;
    };
    let alive: Vec<String> = tasks
        .flatten()
        .map(|t| {
            let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
            comm.trim_end().to_string()
        })
        .collect();
    let unjoined = shutdown::unjoined();
    let line = format!("threads left at exit: {} ({})", alive.len(), alive.join(", "));
    if alive.len() > 1 || !unjoined.is_empty() {
        log::warn!("{line}; not joined: {}", unjoined.join(", "));
    } else {
        log::debug!("{line}");
    }
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

/// The thread that turns signals into a shutdown or a reload, and the handle that ends it.
struct Signals {
    thread: Thread,
    handle: signal_hook::iterator::Handle,
}

impl Signals {
    /// SIGTERM and SIGINT shut down; SIGHUP wakes the reload thread (through `reload`).
    fn install(shutdown: &Arc<Shutdown>, reload: &Arc<shutdown::Waker>) -> Result<Signals, String> {
        use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
        let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT, SIGHUP])
            .map_err(|e| format!("cannot install signal handlers: {e}"))?;
        let handle = signals.handle();
        let (shutdown, reload) = (Arc::clone(shutdown), Arc::clone(reload));
        let thread = shutdown::spawn("signals".into(), 128 * 1024, move || {
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
                // The handlers go with `signals`: a second SIGTERM or SIGINT ends the process.
                break;
            }
        })
        .map_err(|e| format!("cannot start the signal thread: {e}"))?;
        Ok(Signals { thread, handle })
    }

    /// Ends the thread (it has ended already after SIGTERM or SIGINT).
    fn close(self) {
        self.handle.close();
        let _ = self.thread.join_by(Instant::now() + SERVER_END);
    }
}
