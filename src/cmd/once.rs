//! `once`: the whole monitor for places where no service can run (a cron job, a GitHub Actions
//! schedule, a systemd timer). With a state file it loads the state, checks every unpaused worker
//! one time (in parallel, bounded, with the service's own retries and timeouts), records each
//! result exactly as the service does (`worker::take_result`: history, uptime, counters, alert
//! streaks), so alerts go out on transitions counted across runs, saves, publishes the page if
//! asked, waits (bounded) for the alerts to be delivered and exits 0 when all are up, 1 when any
//! is down. SIGTERM or SIGINT (a scheduler's timeout) ends the wait for checks still running:
//! what has finished is recorded and saved.

use super::{EXIT_FAILURE, EXIT_OK, EXIT_USAGE};
use crate::alert::Alerter;
use crate::cli::OnceOptions;
use crate::config::{Config, Remote, Target};
use crate::net::Net;
use crate::persist::Persister;
use crate::persist::remote::store::RemoteStore;
use crate::probe::{self, Outcome};
use crate::publish::{self, Destination, Published};
use crate::remote_saver::{RemoteSaver, Running};
use crate::shutdown::{Shutdown, Waker};
use crate::state::{CertInfo, Health, SavePlace, Snapshot, State};
use crate::timefmt::from_unix_millis;
use crate::tls::expiry::Watch;
use crate::web;
use crate::worker::{self, Alerting};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// At most this many checks run at the same time; a fleet of thousands then costs this many
/// threads, not thousands, and takes a few timeouts longer.
pub const MAX_PARALLEL: usize = 32;
/// How long the alerts of a run may take to be delivered before it exits (each delivery is
/// bounded by its channel's `timeout` and retries too).
const ALERT_GRACE: Duration = Duration::from_secs(30);
/// `once` writes the remote copy only at its end, through the saver's final save.
const NO_PERIODIC_SAVE: Duration = Duration::from_secs(365 * 86_400);
/// After SIGTERM: the alerts already queued get this long, as the service's shutdown does.
const ALERT_GRACE_STOPPING: Duration = Duration::from_secs(2);

/// One check to run: a worker's target and its id in the state.
struct Job {
    slot: usize,
    target: Target,
}

enum Msg {
    Done {
        job: usize,
        outcome: Outcome,
        cert: Option<CertInfo>,
    },
    /// SIGTERM or SIGINT.
    Stop,
}

/// Runs `once` for a loaded configuration: prints the result, returns the exit status.
pub fn run(cfg: &Config, opts: &OnceOptions) -> u8 {
    let (cfg, push) = &without_push_workers(cfg);
    let publish_to = match opts.publish.as_deref().map(Destination::parse).transpose() {
        Ok(d) => d,
        Err(message) => {
            eprintln!("error: {message}");
            return EXIT_USAGE;
        }
    };
    quiet_logging(cfg.settings.log_level);
    let stored = Stored::open(cfg);
    let mut failed = stored.failed;
    // Stops the alert senders once the alerts are out (or the wait for them is over).
    let alert_stop = Shutdown::default();
    let alerter = start_alerts(cfg, stored.persister.is_some(), &stored.net, &alert_stop);
    let (jobs, mut alerting) = plan(cfg, &stored.state, alerter.as_deref());

    let checks = Arc::new(Waker::default());
    let (tx, rx) = mpsc::channel();
    let signals = watch_signals(Arc::clone(&checks), tx.clone());
    let jobs = Arc::new(jobs);
    let cert_every = cfg.settings.cert_check_interval;
    let for_checks = Arc::clone(&stored.net);
    let running = start_checks(&jobs, &checks, &tx, move |t, waker| {
        check(&for_checks, t, cert_every, waker)
    });
    drop(tx);
    let recorder = Recorder {
        state: &stored.state,
        jobs: &jobs,
        alerter: alerter.as_deref(),
    };
    let (outcomes, interrupted) = recorder.collect(&rx, &running, &mut alerting);

    failed |= !stored.save();
    if let (Some(to), false) = (&publish_to, interrupted) {
        failed |= !publish_and_say(&stored, to, &cfg.settings.remote);
    }
    if let Some(a) = &alerter {
        let grace = if interrupted { ALERT_GRACE_STOPPING } else { ALERT_GRACE };
        if !wait_for_alerts(a, &checks, Instant::now() + grace) {
            eprintln!("warning: some alerts were not delivered in time; see the log above");
        }
    }
    alert_stop.trigger();
    if let Some(handle) = signals {
        handle.close();
    }

    let snap = stored.state.snapshot(web::DEFAULT_STATUS_HISTORY, SystemTime::now());
    print_workers(&snap, opts.json, &jobs, &outcomes, push);
    let up = outcomes.iter().flatten().filter(|o| o.ok).count();
    summary(up, jobs.len(), cfg.workers.len() - jobs.len(), push.len());
    if up == jobs.len() && !failed && !interrupted {
        EXIT_OK
    } else {
        EXIT_FAILURE
    }
}

/// The configuration without its heartbeat (push) workers, and their names. They report to a
/// running service; there is nothing here to check. They are listed, and left out of the state
/// and the page.
fn without_push_workers(cfg: &Config) -> (Config, Vec<String>) {
    let push = cfg
        .workers
        .iter()
        .filter(|t| t.is_push())
        .map(|t| t.name.clone())
        .collect();
    let cfg = Config {
        workers: cfg.workers.iter().filter(|t| !t.is_push()).cloned().collect(),
        ..cfg.clone()
    };
    (cfg, push)
}

/// Warnings and errors only (a corrupt state file, an alert that failed), unless debugging.
fn quiet_logging(level: log::LevelFilter) {
    super::run::init_logging(if level >= log::LevelFilter::Debug {
        level
    } else {
        log::LevelFilter::Warn
    });
}

/// The state a run records into, and where it is kept: a file, a remote copy (`state_url`), or
/// both, in the same format as the service keeps it; the file wins when both exist.
struct Stored {
    state: Arc<State>,
    net: Arc<Net>,
    persister: Option<Arc<Persister>>,
    /// The persister, when it has a file.
    file: Option<Arc<Persister>>,
    /// The service's remote saver, stopped as at a shutdown: its final save is the one write.
    remote: Option<Running>,
    remote_stop: Arc<Waker>,
    /// The remote copy could not be set up.
    failed: bool,
}

impl Stored {
    /// Loads the state from the file, or reads the remote copy (unless the file was loaded),
    /// before any check.
    fn open(cfg: &Config) -> Stored {
        let infos = cfg.workers.iter().map(crate::state::target_info).collect();
        let state = Arc::new(State::new(infos, cfg.settings.history, SystemTime::now()));
        let persister = persister(cfg);
        let file = persister.clone().filter(|_| cfg.settings.state_file.is_some());
        if let Some(p) = &file {
            p.load(&state);
            if let Err(e) = p.probe_writable() {
                eprintln!("warning: state file: {e}; this run's results will not be kept");
                state.set_persistence_error(Some(e));
            }
        }
        let net = Arc::new(Net::from_settings(&cfg.settings));
        let local_loaded = file.as_ref().is_some_and(|p| p.file_exists());
        let remote_stop = Arc::new(Waker::default());
        let (remote, failed) = match start_remote(cfg, &state, &net, persister.as_ref(), local_loaded, &remote_stop) {
            Ok(remote) => (remote, false),
            Err(e) => {
                eprintln!("error: remote state: {e}");
                (None, true)
            }
        };
        // As at the service's start: a pause or resume saved by the service stands until the
        // configuration's `paused` changes.
        for (slot, t) in cfg.workers.iter().enumerate() {
            let saved = state.record_of(slot).map(|r| r.counters).unwrap_or_default();
            state.set_paused(slot, saved.paused_now(t.paused), t.paused);
        }
        Stored {
            state,
            net,
            persister,
            file,
            remote,
            remote_stop,
            failed,
        }
    }

    /// Saves to the file, then the remote saver's final save, bounded as at the service's
    /// shutdown. False when the state could not be kept.
    fn save(&self) -> bool {
        if let Some(p) = &self.file {
            let result = p.save(&self.state);
            self.state
                .record_save(SavePlace::File, result.is_ok(), SystemTime::now());
            self.state.set_persistence_error(result.err());
        }
        if let Some(running) = &self.remote {
            self.remote_stop.stop();
            running.wait();
        }
        match self.state.snapshot(0, SystemTime::now()).persistence_error {
            Some(e) => {
                eprintln!("error: {e}");
                false
            }
            None => true,
        }
    }
}

fn persister(cfg: &Config) -> Option<Arc<Persister>> {
    let urls: Vec<&str> = cfg.workers.iter().map(|t| t.url.as_str()).collect();
    match (&cfg.settings.state_file, &cfg.settings.remote.state_url) {
        (Some(path), _) => {
            let shown = cfg.settings.scrub(&path.display().to_string());
            Some(Arc::new(Persister::new(path.clone(), &urls).shown_as(shown)))
        }
        (None, Some(_)) => Some(Arc::new(Persister::without_file(&urls))),
        (None, None) => None,
    }
}

/// The remote saver, when there is a `state_url`: it reads the remote copy now, and writes it
/// never on a timer, only when `stop` stops it.
fn start_remote(
    cfg: &Config,
    state: &Arc<State>,
    net: &Arc<Net>,
    persister: Option<&Arc<Persister>>,
    local_loaded: bool,
    stop: &Arc<Waker>,
) -> Result<Option<Running>, String> {
    let (Some(url), Some(p)) = (&cfg.settings.remote.state_url, persister) else {
        return Ok(None);
    };
    let settings = cfg.settings.clone();
    let store = RemoteStore::new(net, &cfg.settings.remote, url)?;
    RemoteSaver {
        store,
        persister: Arc::clone(p),
        state: Arc::clone(state),
        shown: cfg.settings.scrub(&url.to_string()),
        interval: NO_PERIODIC_SAVE,
        timeout: cfg.settings.remote.timeout,
        scrub: Box::new(move |text| settings.scrub(text)),
    }
    .start(local_loaded, Arc::clone(stop))
    .map(Some)
}

/// The alert senders, when there are channels and a state. Alerts announce transitions, which
/// only a state carried from the last run can show: without one, a worker that stays down would
/// alert at every run.
fn start_alerts(cfg: &Config, has_state: bool, net: &Net, stop: &Shutdown) -> Option<Arc<Alerter>> {
    if cfg.alerts.channels.is_empty() {
        return None;
    }
    if !has_state {
        eprintln!(
            "warning: alerts are off: once sends them on transitions, which need a state (--state-file or state_url) to count across runs"
        );
        return None;
    }
    match Alerter::start(&cfg.alerts.channels, None, net, stop) {
        Ok(a) => Some(a),
        Err(e) => {
            eprintln!("warning: cannot start the alert senders ({e}); no alerts this run");
            None
        }
    }
}

/// The checks to run (every worker not paused) and each one's alert streaks, carried on from
/// the saved state.
fn plan(cfg: &Config, state: &State, alerter: Option<&Alerter>) -> (Vec<Job>, Vec<Alerting>) {
    let jobs: Vec<Job> = cfg
        .workers
        .iter()
        .enumerate()
        .filter(|(slot, _)| !state.record_of(*slot).is_some_and(|r| r.counters.paused))
        .map(|(slot, t)| Job {
            slot,
            target: t.clone(),
        })
        .collect();
    let alerting = jobs
        .iter()
        .map(|j| {
            let saved = state.record_of(j.slot).unwrap_or_default();
            Alerting::resumed(alerter, &j.target, saved.counters.consecutive_failures, &saved)
        })
        .collect();
    (jobs, alerting)
}

/// Records each result as it comes in, exactly as the service does.
struct Recorder<'a> {
    state: &'a State,
    jobs: &'a [Job],
    alerter: Option<&'a Alerter>,
}

impl Recorder<'_> {
    /// Every job's outcome (none for a check that did not finish), and whether SIGTERM or SIGINT
    /// cut the wait short.
    fn collect(
        &self,
        rx: &mpsc::Receiver<Msg>,
        running: &AtomicUsize,
        alerting: &mut [Alerting],
    ) -> (Vec<Option<Outcome>>, bool) {
        let mut outcomes: Vec<Option<Outcome>> = (0..self.jobs.len()).map(|_| None).collect();
        let mut left = self.jobs.len();
        let mut interrupted = false;
        while left > 0 {
            match rx.recv_timeout(Duration::from_millis(200)) {
                Ok(Msg::Done { job, outcome, cert }) => {
                    left -= 1;
                    let (Some(j), Some(a)) = (self.jobs.get(job), alerting.get_mut(job)) else {
                        continue;
                    };
                    let now = SystemTime::now();
                    worker::take_result(self.state, j.slot, &j.target, self.alerter, a, &outcome, cert, now);
                    outcomes[job] = Some(outcome);
                }
                Ok(Msg::Stop) => {
                    interrupted = true;
                    break;
                }
                // A thread that ended without sending (it cannot, short of a bug) leaves its check
                // missing rather than this loop waiting forever.
                Err(mpsc::RecvTimeoutError::Timeout) if running.load(Ordering::Acquire) > 0 => {}
                Err(_) => break,
            }
        }
        if interrupted {
            eprintln!(
                "interrupted: {} of {} check(s) finished; saving those",
                self.jobs.len() - left,
                self.jobs.len()
            );
        }
        (outcomes, interrupted)
    }
}

/// Publishes the site and says when nothing changed. False when it failed.
fn publish_and_say(stored: &Stored, to: &Destination, remote: &Remote) -> bool {
    match publish_site(&stored.state, to, &stored.net, remote) {
        Ok(Published::Unchanged) => eprintln!("published: nothing changed since the last run"),
        Ok(Published::Written) => {}
        Err(e) => {
            eprintln!("error: {e}");
            return false;
        }
    }
    true
}

/// The result on stdout: the `/status` document, or a line per worker and one per push worker.
fn print_workers(snap: &Snapshot, json: bool, jobs: &[Job], outcomes: &[Option<Outcome>], push: &[String]) {
    if json {
        println!("{}", web::json::render(snap));
        return;
    }
    print!("{}", lines(snap, jobs, outcomes));
    let width = snap.workers.iter().map(|w| w.name.chars().count()).max().unwrap_or(0);
    for name in push {
        println!("{name:<width$}  push  not checked: heartbeats report to the service");
    }
}

/// The count on stderr: `2 of 3 worker(s) up, 1 paused, 1 push (not checked)`.
fn summary(up: usize, checked: usize, paused: usize, push: usize) {
    if checked + paused == 0 && push == 0 {
        eprintln!("no workers configured: nothing to check");
        return;
    }
    let aside = match (paused, push) {
        (0, 0) => String::new(),
        (p, 0) => format!(", {p} paused"),
        (0, h) => format!(", {h} push (not checked)"),
        (p, h) => format!(", {p} paused, {h} push (not checked)"),
    };
    eprintln!("{up} of {checked} worker(s) up{aside}");
}

/// One worker's check as the service makes it: its own agent (trust settings, proxy), retries
/// and timeouts, and the server's certificate read from the same handshake.
fn check(net: &Net, t: &Target, cert_every: Duration, waker: &Waker) -> (Outcome, Option<CertInfo>) {
    let agent = net.check_agent(&t.url, &t.tls);
    let mut watch = agent.capture.map(|c| (c, Watch::new(cert_every, !t.tls.insecure)));
    if let Some((capture, _)) = &watch {
        capture.request();
    }
    let outcome = probe::check(&agent.agent, t, waker);
    let cert = watch.as_mut().and_then(|(c, w)| worker::read_cert(&t.name, c, w));
    (outcome, cert)
}

/// Starts the checking threads (at most `MAX_PARALLEL`), each taking the next job when it is
/// free and sending its result on `tx`; returns how many are still running. The whole of a
/// check, its agent's setup included, runs guarded: a panic is that worker's failed check,
/// never the end of the run.
fn start_checks(
    jobs: &Arc<Vec<Job>>,
    waker: &Arc<Waker>,
    tx: &mpsc::Sender<Msg>,
    check: impl Fn(&Target, &Waker) -> (Outcome, Option<CertInfo>) + Send + Sync + 'static,
) -> Arc<AtomicUsize> {
    let next = Arc::new(AtomicUsize::new(0));
    let running = Arc::new(AtomicUsize::new(0));
    let work = {
        let (jobs, waker, next) = (Arc::clone(jobs), Arc::clone(waker), Arc::clone(&next));
        move |tx: &mpsc::Sender<Msg>| loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(job) = jobs.get(i) else { break };
            if waker.is_stopped() {
                break;
            }
            let mut cert = None;
            let outcome = worker::guarded(|| {
                let (outcome, read) = check(&job.target, &waker);
                cert = read;
                outcome
            });
            if tx.send(Msg::Done { job: i, outcome, cert }).is_err() {
                break;
            }
        }
    };
    let work = Arc::new(work);
    let threads = MAX_PARALLEL.min(jobs.len());
    for i in 0..threads {
        let (work, tx, counted) = (Arc::clone(&work), tx.clone(), Arc::clone(&running));
        running.fetch_add(1, Ordering::AcqRel);
        let spawned = crate::shutdown::start_unlisted(
            format!("once-{i}"),
            worker::STACK_SIZE,
            Box::new(move || {
                let _done = Ending(&counted);
                work(&tx);
            }),
        );
        if spawned.is_err() {
            running.fetch_sub(1, Ordering::AcqRel);
        }
    }
    if threads > 0 && running.load(Ordering::Acquire) == 0 {
        // Not one thread could be started: the checks run here, one after another.
        work(tx);
    }
    running
}

/// Counts a checking thread out when it ends, however it ends.
struct Ending<'a>(&'a AtomicUsize);

impl Drop for Ending<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// SIGTERM and SIGINT stop the checks (a sleeping retry wakes at once) and end the wait for them.
fn watch_signals(checks: Arc<Waker>, tx: mpsc::Sender<Msg>) -> Option<signal_hook::iterator::Handle> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = match signal_hook::iterator::Signals::new([SIGTERM, SIGINT]) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("warning: cannot install signal handlers ({e}); SIGTERM ends the run unsaved");
            return None;
        }
    };
    let handle = signals.handle();
    let tx = Mutex::new(tx);
    crate::shutdown::start_unlisted(
        "signals".into(),
        128 * 1024,
        Box::new(move || {
            if let Some(sig) = signals.forever().next() {
                let name = if sig == SIGTERM { "SIGTERM" } else { "SIGINT" };
                eprintln!("received {name}: recording the checks that finished, saving, exiting");
                checks.stop();
                let _ = tx.lock().unwrap_or_else(|e| e.into_inner()).send(Msg::Stop);
            }
        }),
    )
    .ok()
    .map(|_| handle)
}

/// Waits for the queued alerts until `deadline`, or until SIGTERM (then `ALERT_GRACE_STOPPING`
/// more at most). True when every one was handled.
fn wait_for_alerts(alerter: &Alerter, stop: &Waker, deadline: Instant) -> bool {
    let mut deadline = deadline;
    let mut stopping = false;
    loop {
        let slice = (Instant::now() + Duration::from_millis(100)).min(deadline);
        if alerter.wait_delivered(slice) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        if !stopping && stop.is_stopped() {
            stopping = true;
            deadline = deadline.min(Instant::now() + ALERT_GRACE_STOPPING);
        }
    }
}

/// The page, `status.json` and the badges, as of the newest check recorded (not the wall clock),
/// so that a run which changed nothing publishes the very same files.
fn publish_site(state: &State, to: &Destination, net: &Net, remote: &Remote) -> Result<Published, String> {
    let at = |s: &Snapshot| {
        s.workers
            .iter()
            .filter_map(|w| w.last.as_ref().map(|r| r.at_ms))
            .max()
            .map(from_unix_millis)
    };
    let probe = state.snapshot(0, SystemTime::now());
    let made = at(&probe).unwrap_or(probe.now);
    let pinned = |mut s: Snapshot| {
        s.now = made;
        s.started_at = made;
        s
    };
    let page = pinned(state.snapshot(web::html::BAR_CELLS, made));
    let status = pinned(state.snapshot(web::DEFAULT_STATUS_HISTORY, made));
    let files = web::site::files(&page, &status);
    let summary = format!("master-pinger: status as of {}", crate::timefmt::rfc3339(made));
    publish::publish(to, &files, net, remote, &summary)
}

/// One line per worker: name, up/down, status, latency, attempts and the error, in columns; a
/// paused worker says so, and one the run was interrupted before says that.
fn lines(snap: &Snapshot, jobs: &[Job], outcomes: &[Option<Outcome>]) -> String {
    use std::fmt::Write;
    let width = snap.workers.iter().map(|w| w.name.chars().count()).max().unwrap_or(0);
    let mut out = String::new();
    for w in &snap.workers {
        let job = jobs.iter().position(|j| j.target.name == w.name);
        let Some(o) = job.and_then(|i| outcomes.get(i)).and_then(Option::as_ref) else {
            let why = match (w.health, job) {
                (Health::Paused, _) => "paused",
                (_, Some(_)) => "-     not checked: the run was interrupted",
                (_, None) => "-     not checked",
            };
            let _ = writeln!(out, "{:<width$}  {why}", w.name);
            continue;
        };
        let status = o.status.map_or("-".to_string(), |s| s.to_string());
        let attempts = if o.attempts == 1 {
            "1 attempt".to_string()
        } else {
            format!("{} attempts", o.attempts)
        };
        let _ = write!(
            out,
            "{:<width$}  {:<4}  {status:<3}  {:>5} ms  {attempts}",
            w.name,
            if o.ok { "up" } else { "down" },
            o.latency.as_millis(),
        );
        if let Some(e) = &o.error {
            let _ = write!(out, "  {e}");
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jobs(names: &[&str]) -> Arc<Vec<Job>> {
        let cfg = crate::config::build(
            Some((
                "t.json",
                &format!(
                    r#"{{"workers": [{}]}}"#,
                    names
                        .iter()
                        .map(|n| format!(r#"{{"name": "{n}", "url": "http://127.0.0.1:9/{n}"}}"#))
                        .collect::<Vec<_>>()
                        .join(",")
                ),
            )),
            &crate::config::Flags::default(),
            &crate::config::Env::new(),
        )
        .unwrap();
        let jobs = cfg
            .workers
            .into_iter()
            .enumerate()
            .map(|(slot, target)| Job { slot, target });
        Arc::new(jobs.collect())
    }

    fn outcome(ok: bool) -> Outcome {
        Outcome {
            ok,
            status: Some(200),
            latency: Duration::ZERO,
            duration: Duration::ZERO,
            attempts: 1,
            error: None,
        }
    }

    /// Every job's result, by job number.
    fn results(rx: &mpsc::Receiver<Msg>, n: usize) -> Vec<Option<Outcome>> {
        let mut out: Vec<Option<Outcome>> = (0..n).map(|_| None).collect();
        while let Ok(msg) = rx.recv_timeout(Duration::from_secs(10)) {
            if let Msg::Done { job, outcome, .. } = msg {
                out[job] = Some(outcome);
            }
            if out.iter().all(Option::is_some) {
                break;
            }
        }
        out
    }

    #[test]
    fn a_panic_in_a_check_or_its_setup_is_that_workers_failed_check() {
        let jobs = jobs(&["a", "b", "c"]);
        let (tx, rx) = mpsc::channel();
        let waker = Arc::new(Waker::default());
        start_checks(&jobs, &waker, &tx, |t, _| {
            // Stands for an agent's setup (or a check path) that panics on some input.
            assert!(t.name != "b", "agent cannot be built");
            (outcome(true), None)
        });
        let got = results(&rx, 3);
        assert!(got[0].as_ref().is_some_and(|o| o.ok));
        let b = got[1].as_ref().expect("b has a result");
        assert_eq!(
            (b.ok, b.error.as_deref()),
            (false, Some("internal error: the check panicked"))
        );
        assert!(got[2].as_ref().is_some_and(|o| o.ok));
    }

    #[test]
    fn checks_run_in_parallel_and_never_more_than_the_bound() {
        let names: Vec<String> = (0..MAX_PARALLEL * 2).map(|i| format!("w{i}")).collect();
        let jobs = jobs(&names.iter().map(String::as_str).collect::<Vec<_>>());
        let (running, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let (r, m) = (Arc::clone(&running), Arc::clone(&most));
        let (tx, rx) = mpsc::channel();
        start_checks(&jobs, &Arc::new(Waker::default()), &tx, move |_, _| {
            let now = r.fetch_add(1, Ordering::SeqCst) + 1;
            m.fetch_max(now, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(50));
            r.fetch_sub(1, Ordering::SeqCst);
            (outcome(true), None)
        });
        assert!(results(&rx, names.len()).iter().all(Option::is_some));
        let most = most.load(Ordering::SeqCst);
        assert!(most <= MAX_PARALLEL, "at most {MAX_PARALLEL} at a time, saw {most}");
        assert!(most >= 2, "in parallel, saw {most}");
    }
}
