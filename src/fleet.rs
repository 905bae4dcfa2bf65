//! The set of running workers: the only owner of their threads' `JoinHandle`s. It starts them,
//! applies a reloaded configuration (workers matched by name: unchanged ones keep their thread
//! and deadlines, changed ones get new settings and a new schedule on the same thread, removed
//! ones are stopped, added ones started), and pauses and resumes them. Stopping or changing one
//! worker touches only that worker's `Waker` and `PlanCell`, so the others never wait on it.

use crate::alert::{self, Alerter};
use crate::config::{Alerts, Config, Target};
use crate::heartbeat::{Beat, Board, Inbox};
use crate::net::Net;
use crate::persist::Persister;
use crate::restart::Restarter;
use crate::schedule;
use crate::shutdown::{self, Shutdown, Thread, Waker};
use crate::state::{Counters, Record, State, TargetInfo};
use crate::streak::Thresholds;
use crate::worker::{Plan, PlanCell, Settings, Worker};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// One running worker.
struct Member {
    name: String,
    /// Its id in the state.
    id: usize,
    target: Target,
    waker: Arc<Waker>,
    plan: Arc<PlanCell>,
    handle: Thread,
    /// A push worker's reports go here (it is on the `Board` under its name).
    inbox: Option<Arc<Inbox>>,
}

/// What every worker shares and a reload may replace: the alert and restart senders.
struct Shared {
    alerts: Alerts,
    /// The status page the alerts link to (told from the self-ping URL).
    page: Option<String>,
    alerter: Option<Arc<Alerter>>,
    restarter: Option<(Arc<Restarter>, Arc<Waker>)>,
    hf_api_url: String,
    restart_cooldown: Duration,
    cert_every: Duration,
}

struct Inner {
    /// Configuration order, self-ping last.
    members: Vec<Member>,
    shared: Shared,
    /// Threads told to stop (workers, alert channels, restart queues a reload replaced), joined
    /// once they have ended (no handle is dropped unjoined).
    retired: Vec<Thread>,
}

/// What a reload did, for its log line.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Changes {
    pub added: usize,
    pub removed: usize,
    pub changed: usize,
    pub unchanged: usize,
}

impl std::fmt::Display for Changes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} added, {} removed, {} changed, {} unchanged",
            self.added, self.removed, self.changed, self.unchanged
        )
    }
}

pub struct Fleet {
    state: Arc<State>,
    shutdown: Arc<Shutdown>,
    /// Stops the alert and restart senders. Not the process's: at shutdown they stop after the
    /// workers, once the alerts already queued have had their time (`stop`).
    senders: Shutdown,
    /// Trust and proxies for every outbound request (from the environment: fixed).
    net: Net,
    persister: Option<Arc<Persister>>,
    inner: Mutex<Inner>,
    /// The push workers' inboxes by name, kept in step with the members.
    board: Arc<Board>,
}

/// Every target of a configuration: the workers, then the self-ping.
fn targets(cfg: &Config) -> Vec<Target> {
    cfg.workers.iter().chain(cfg.self_ping.iter()).cloned().collect()
}

/// The state's targets for a configuration, before any thread runs (ids 0, 1, ... in order).
pub fn infos(cfg: &Config) -> Vec<TargetInfo> {
    targets(cfg).iter().map(crate::state::target_info).collect()
}

/// `Err` saying which of the host's thread limits (read now) a fleet running `cfg` would pass,
/// and what to do about it.
pub fn fits(cfg: &Config) -> Result<(), String> {
    let restarts = cfg.workers.iter().any(|w| w.space_id.is_some());
    let needed = crate::host::threads_needed(targets(cfg).len(), cfg.alerts.channels.len(), restarts);
    crate::host::check(needed, &crate::host::limits())
}

/// The same check against the same URL: whether `paused` differs does not make a change.
fn same_target(a: &Target, b: &Target) -> bool {
    a == &Target {
        paused: a.paused,
        ..b.clone()
    }
}

impl Fleet {
    /// Starts a thread for every target of `cfg`; the state already holds them as ids 0, 1, ...
    /// (and whatever the state file restored, pauses included).
    pub fn start(
        cfg: &Config,
        state: Arc<State>,
        shutdown: Arc<Shutdown>,
        net: Net,
        persister: Option<Arc<Persister>>,
    ) -> Result<Arc<Fleet>, String> {
        let fleet = Arc::new(Fleet {
            state,
            shutdown,
            senders: Shutdown::default(),
            net,
            persister,
            board: Arc::default(),
            inner: Mutex::new(Inner {
                members: Vec::new(),
                shared: Shared {
                    alerts: cfg.alerts.clone(),
                    page: None,
                    alerter: None,
                    restarter: None,
                    hf_api_url: cfg.settings.hf_api_url.clone(),
                    restart_cooldown: cfg.settings.restart_cooldown,
                    cert_every: cfg.settings.cert_check_interval,
                },
                retired: Vec::new(),
            }),
        });
        let mut guard = fleet.lock();
        let inner = &mut *guard;
        fleet.refresh_senders(&mut inner.shared, &mut inner.retired, cfg, true)?;
        let all = targets(cfg);
        let start = Instant::now();
        for (i, target) in all.iter().enumerate() {
            let saved = fleet.state.record_of(i).map(|r| r.counters).unwrap_or_default();
            let paused = saved.paused_now(target.paused);
            fleet.state.set_paused(i, paused, target.paused);
            let first = start + schedule::stagger(i, all.len(), target.interval);
            let member = fleet.spawn(i, target.clone(), first, paused, &inner.shared)?;
            inner.members.push(member);
        }
        drop(guard);
        Ok(fleet)
    }

    /// The lock guards the member list only; it is never held across a check or a join.
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A worker's settings. `same` is its previous settings when its target did not change:
    /// their agent (TLS configuration, proxy, certificate capture) is kept.
    fn settings(&self, target: Target, shared: &Shared, same: Option<&Settings>) -> Arc<Settings> {
        let (agent, capture) = match same {
            Some(old) => (old.agent.clone(), old.capture.clone()),
            None => {
                let check = self.net.check_agent(&target.url, &target.tls);
                (check.agent, check.capture)
            }
        };
        Arc::new(Settings {
            target,
            thresholds: Thresholds::from(&shared.alerts),
            alerter: shared.alerter.clone(),
            restarter: shared.restarter.as_ref().map(|(r, _)| Arc::clone(r)),
            restart_cooldown: shared.restart_cooldown,
            agent,
            capture,
            cert_every: shared.cert_every,
        })
    }

    fn spawn(
        &self,
        id: usize,
        target: Target,
        first: Instant,
        paused: bool,
        shared: &Shared,
    ) -> Result<Member, String> {
        let waker = self.shutdown.waker();
        waker.set_paused(paused);
        let plan = Arc::new(PlanCell::new(Plan {
            settings: self.settings(target.clone(), shared, None),
            first,
            schedule: 0,
        }));
        let inbox = target
            .push
            .as_ref()
            .map(|p| Arc::new(Inbox::new(&p.token, Arc::clone(&waker))));
        let spawned = match &inbox {
            Some(inbox) => Beat {
                slot: id,
                state: Arc::clone(&self.state),
                waker: Arc::clone(&waker),
                plan: Arc::clone(&plan),
                inbox: Arc::clone(inbox),
            }
            .spawn(),
            None => Worker {
                slot: id,
                state: Arc::clone(&self.state),
                waker: Arc::clone(&waker),
                plan: Arc::clone(&plan),
            }
            .spawn(),
        };
        let handle = spawned.map_err(|e| {
            self.shutdown.forget(&waker);
            format!("cannot start a worker thread: {e}")
        })?;
        if let Some(inbox) = &inbox {
            self.board.insert(&target.name, Arc::clone(inbox));
        }
        Ok(Member {
            name: target.name.clone(),
            id,
            target,
            waker,
            plan,
            handle,
            inbox,
        })
    }

    /// (Re)starts the alert and restart threads when their settings changed, or all of them when
    /// `rebuild` (at start-up, and when the trusted certificates changed).
    fn refresh_senders(
        &self,
        shared: &mut Shared,
        retired: &mut Vec<Thread>,
        cfg: &Config,
        rebuild: bool,
    ) -> Result<(), String> {
        let page = cfg
            .self_ping
            .as_ref()
            .map(|s| alert::message::status_page_from(&s.display_url));
        if rebuild || cfg.alerts.channels != shared.alerts.channels || page != shared.page {
            // Only the channels that changed start again (see `Alerter::reload`).
            let next = match (&shared.alerter, cfg.alerts.channels.is_empty()) {
                (Some(old), true) => {
                    old.stop(&self.senders, retired);
                    None
                }
                (None, true) => None,
                (Some(old), false) => Some(old.reload(
                    &cfg.alerts.channels,
                    page.clone(),
                    &self.net,
                    &self.senders,
                    rebuild,
                    retired,
                )),
                (None, false) => Some(Alerter::start(
                    &cfg.alerts.channels,
                    page.clone(),
                    &self.net,
                    &self.senders,
                )),
            };
            shared.alerter = next
                .transpose()
                .map_err(|e| format!("cannot start the alert threads: {e}"))?;
        }
        shared.alerts = cfg.alerts.clone();
        shared.page = page;
        let wants_restarter = cfg.workers.iter().any(|w| w.space_id.is_some());
        let api = &cfg.settings.hf_api_url;
        if rebuild || wants_restarter != shared.restarter.is_some() || *api != shared.hf_api_url {
            if let Some((r, waker)) = shared.restarter.take() {
                waker.stop();
                self.senders.forget(&waker);
                retired.extend(r.thread());
            }
            shared.hf_api_url = api.clone();
            if wants_restarter {
                let waker = self.senders.waker();
                let r = Restarter::start(
                    api.clone(),
                    self.net.agent_for(api),
                    Arc::clone(&self.state),
                    Arc::clone(&waker),
                )
                .map_err(|e| format!("cannot start the restart thread: {e}"))?;
                shared.restarter = Some((r, waker));
            }
        }
        shared.restart_cooldown = cfg.settings.restart_cooldown;
        shared.cert_every = cfg.settings.cert_check_interval;
        Ok(())
    }

    /// Applies a new, valid configuration. Never blocks on a worker: removed ones are told to
    /// stop and joined later, once they have ended.
    pub fn apply(&self, cfg: &Config) -> Result<Changes, String> {
        // Refused before anything changes: the running fleet is kept whole.
        fits(cfg)?;
        let mut inner = self.lock();
        let inner = &mut *inner;
        // SSL_CERT_FILE is read again by every reload: when its certificates changed, every
        // agent (checks, alerts, restarts) is built again to trust them.
        let trust_changed = self.net.set_ssl_cert_file(cfg.settings.ssl_cert_file.as_ref());
        self.refresh_senders(&mut inner.shared, &mut inner.retired, cfg, trust_changed)?;
        let wanted = targets(cfg);
        let mut changes = Changes::default();
        let mut kept: Vec<Member> = Vec::with_capacity(wanted.len());
        let mut old: Vec<Member> = std::mem::take(&mut inner.members);
        let start = Instant::now();
        for (i, target) in wanted.iter().enumerate() {
            let first = start + schedule::stagger(i, wanted.len(), target.interval);
            let found = old.iter().position(|m| m.name == target.name);
            let other_kind = found.filter(|&pos| old[pos].target.is_push() != target.is_push());
            if let Some(pos) = other_kind {
                // Pulled became push or the other way: another kind of thread, and another
                // target (its history starts over, as for a new URL).
                let m = old.swap_remove(pos);
                self.retire(m, &mut inner.retired);
            }
            match old.iter().position(|m| m.name == target.name) {
                Some(pos) => {
                    let mut m = old.swap_remove(pos);
                    let changed = self.update(&mut m, target, first, &inner.shared, trust_changed);
                    if changed {
                        changes.changed += 1;
                    } else {
                        changes.unchanged += 1;
                    }
                    kept.push(m);
                }
                None => {
                    let id = self.state.add(crate::state::target_info(target), Record::default());
                    self.state.set_paused(id, target.paused, target.paused);
                    match self.spawn(id, target.clone(), first, target.paused, &inner.shared) {
                        Ok(m) => kept.push(m),
                        Err(e) => {
                            // Out of threads: keep what runs, report the rest.
                            self.state.remove(id);
                            inner.members = kept;
                            inner.members.append(&mut old);
                            return Err(e);
                        }
                    }
                    if other_kind.is_some() {
                        changes.changed += 1;
                    } else {
                        changes.added += 1;
                    }
                }
            }
        }
        for m in old {
            changes.removed += 1;
            self.retire(m, &mut inner.retired);
        }
        let order: Vec<usize> = kept.iter().map(|m| m.id).collect();
        self.state.arrange(&order);
        if let Some(p) = &self.persister {
            let urls: Vec<(usize, &str)> = kept.iter().map(|m| (m.id, m.target.url.as_str())).collect();
            p.set_targets(&urls);
        }
        inner.members = kept;
        reap(&mut inner.retired);
        Ok(changes)
    }

    /// Stops a member that a reload removed: its thread ends (joined later), its slot and
    /// endpoint go at once.
    fn retire(&self, m: Member, retired: &mut Vec<Thread>) {
        m.waker.stop();
        self.shutdown.forget(&m.waker);
        self.state.remove(m.id);
        if m.inbox.is_some() {
            self.board.remove(&m.name);
        }
        retired.push(m.handle);
    }

    /// Gives a kept worker its new settings; true when its configuration changed. `new_trust`:
    /// its agent is built again even when its target did not change.
    fn update(&self, m: &mut Member, target: &Target, first: Instant, shared: &Shared, new_trust: bool) -> bool {
        let same = same_target(&m.target, target);
        let mut plan = m.plan.get();
        let old = Arc::clone(&plan.settings);
        let keep_agent = same && !new_trust;
        plan.settings = self.settings(target.clone(), shared, keep_agent.then_some(&*old));
        if !same {
            plan.first = first;
            plan.schedule += 1;
            if target.url != m.target.url {
                // Another URL is another target: its history starts over (a pause stays).
                let (paused, paused_config) = self
                    .state
                    .record_of(m.id)
                    .map_or((false, None), |r| (r.counters.paused, r.counters.paused_config));
                self.state.import(
                    m.id,
                    Record {
                        counters: Counters {
                            paused,
                            paused_config,
                            ..Counters::default()
                        },
                        ..Record::default()
                    },
                );
            }
            self.state.set_info(m.id, crate::state::target_info(target));
        }
        m.plan.set(plan);
        if let (Some(inbox), Some(push)) = (&m.inbox, &target.push) {
            inbox.set_token(&push.token);
        }
        if !same {
            m.waker.reschedule();
        }
        let pause_changed = target.paused != m.target.paused;
        m.target = target.clone();
        if pause_changed {
            // The configuration's `paused` changed: it wins over an earlier pause or resume.
            self.set_paused_member(m, target.paused);
        }
        !same || pause_changed
    }

    /// Pauses or resumes a member under its configuration as it is now (`m.target`).
    fn set_paused_member(&self, m: &Member, paused: bool) {
        self.state.set_paused(m.id, paused, m.target.paused);
        m.waker.set_paused(paused);
    }

    /// Pauses or resumes a worker by name; false when there is none.
    pub fn set_paused(&self, name: &str, paused: bool) -> bool {
        let inner = self.lock();
        match inner.members.iter().find(|m| m.name == name) {
            Some(m) => {
                self.set_paused_member(m, paused);
                true
            }
            None => false,
        }
    }

    /// Asks a worker for a check now; `None` when there is no such worker, `Some(false)` when
    /// it is paused.
    pub fn check_now(&self, name: &str) -> Option<bool> {
        let inner = self.lock();
        let m = inner.members.iter().find(|m| m.name == name)?;
        if m.waker.is_paused() {
            return Some(false);
        }
        m.waker.check_now();
        Some(true)
    }

    /// The push workers' inboxes, by name (what `/push/NAME` looks up).
    pub fn board(&self) -> Arc<Board> {
        Arc::clone(&self.board)
    }

    /// Deliveries per alert channel of the channels running now.
    pub fn alert_counts(&self) -> Arc<alert::Counts> {
        self.lock()
            .shared
            .alerter
            .as_ref()
            .map(|a| a.counts())
            .unwrap_or_default()
    }

    /// Ends every thread of the fleet (the process's shutdown has been triggered), in an order
    /// that loses nothing: the workers end (a check still running is abandoned; those still in
    /// one at `workers_by` are left running), then the alerts they queued get until `alerts_by`
    /// to go out, then the alert and restart senders stop and are joined by `end_by`.
    pub fn stop(&self, workers_by: Instant, alerts_by: Instant, end_by: Instant) {
        let mut inner = self.lock();
        let members = std::mem::take(&mut inner.members);
        let mut retired = std::mem::take(&mut inner.retired);
        let alerter = inner.shared.alerter.take();
        let restarter = inner.shared.restarter.take();
        drop(inner);
        shutdown::join_all(members.into_iter().map(|m| m.handle), workers_by);
        if let Some(a) = &alerter {
            if !a.wait_delivered(alerts_by) {
                log::warn!("shutting down with alerts not yet delivered");
            }
            retired.extend(a.threads());
        }
        retired.extend(restarter.and_then(|(r, _)| r.thread()));
        self.senders.trigger();
        shutdown::join_all(retired, end_by);
    }

    /// How many worker threads run now (stopped ones that have not ended included).
    pub fn threads(&self) -> usize {
        let mut inner = self.lock();
        reap(&mut inner.retired);
        inner.members.len() + inner.retired.len()
    }
}

/// Joins the stopped threads that have ended; the others are looked at again next time.
fn reap(retired: &mut Vec<Thread>) {
    let (done, running): (Vec<_>, Vec<_>) = retired.drain(..).partition(|h| h.is_finished());
    *retired = running;
    shutdown::join_all(done, Instant::now());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Env, Flags, build};
    use std::net::TcpListener;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::thread;

    /// A target that answers 200 to everything and counts requests per path.
    struct Target200 {
        port: u16,
        hits: Arc<Mutex<Vec<String>>>,
    }

    fn target200() -> Target200 {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let hits = Arc::new(Mutex::new(Vec::new()));
        let h2 = Arc::clone(&hits);
        thread::spawn(move || {
            for s in l.incoming() {
                let Ok(mut s) = s else { continue };
                let h3 = Arc::clone(&h2);
                thread::spawn(move || {
                    use std::io::{BufRead, BufReader, Write};
                    let mut r = BufReader::new(s.try_clone().unwrap());
                    let mut line = String::new();
                    if r.read_line(&mut line).is_err() {
                        return;
                    }
                    let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
                    loop {
                        let mut l = String::new();
                        if r.read_line(&mut l).unwrap_or(0) == 0 || l == "\r\n" {
                            break;
                        }
                    }
                    h3.lock().unwrap().push(path);
                    let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
                });
            }
        });
        Target200 { port, hits }
    }

    /// Workers named and configured by `workers` (extra fields after a comma), every `interval`.
    fn config(port: u16, interval: &str, workers: &[(&str, &str)]) -> Config {
        let list: Vec<String> = workers
            .iter()
            .map(|(name, extra)| {
                format!(
                    r#"{{"name": "{name}", "url": "http://127.0.0.1:{port}/{name}", "interval": "{interval}" {extra}}}"#
                )
            })
            .collect();
        let text = format!(r#"{{"self_ping": false, "workers": [{}]}}"#, list.join(","));
        build(Some(("test.json", &text)), &Flags::default(), &Env::new()).unwrap()
    }

    fn start(cfg: &Config) -> (Arc<Fleet>, Arc<State>, Arc<Shutdown>) {
        let state = Arc::new(State::new(infos(cfg), 10, std::time::SystemTime::now()));
        let shutdown = Arc::new(Shutdown::default());
        let fleet = Fleet::start(
            cfg,
            Arc::clone(&state),
            Arc::clone(&shutdown),
            Net::new(None, Default::default()),
            None,
        )
        .unwrap();
        (fleet, state, shutdown)
    }

    fn wait(what: &str, cond: impl Fn() -> bool) {
        let end = Instant::now() + Duration::from_secs(5);
        while !cond() {
            assert!(Instant::now() < end, "timed out waiting for {what}");
            thread::sleep(Duration::from_millis(10));
        }
    }

    fn checks(state: &State, name: &str) -> u64 {
        state
            .slot_of(name)
            .and_then(|id| state.record_of(id))
            .map_or(0, |r| r.counters.checks)
    }

    #[test]
    fn reload_keeps_unchanged_restarts_changed_adds_and_removes() {
        let t = target200();
        // First checks 0, 1.3 and 2.7 s after the start, the next ones 4 s after each: `a`,
        // last, is due again 6.7 s after the start.
        let (fleet, state, shutdown) = start(&config(t.port, "4s", &[("b", ""), ("c", ""), ("a", "")]));
        let a_now = || {
            let snap = state.snapshot(0, std::time::SystemTime::now());
            snap.workers.into_iter().find(|w| w.name == "a").unwrap()
        };
        wait("first checks and a's next deadline", || {
            let a = a_now();
            ["a", "b", "c"].iter().all(|n| checks(&state, n) == 1) && a.next_check_at_ms > a.last.map(|r| r.at_ms)
        });
        let a_id = state.slot_of("a");
        let next_a = a_now().next_check_at_ms.unwrap();

        // `a` moves to the front, where a new schedule would check it at once.
        let changes = fleet
            .apply(&config(
                t.port,
                "4s",
                &[("a", ""), ("d", ""), ("b", r#", "method": "HEAD""#)],
            ))
            .unwrap();
        assert_eq!(
            changes,
            Changes {
                added: 1,
                removed: 1,
                changed: 1,
                unchanged: 1
            }
        );
        assert_eq!(changes.to_string(), "1 added, 1 removed, 1 changed, 1 unchanged");
        // 1.3 and 2.7 s after the reload: before a's deadline unless the machine stalled.
        wait("d's first check and b's new schedule", || {
            checks(&state, "d") == 1 && checks(&state, "b") == 2
        });
        let snap = state.snapshot(10, std::time::SystemTime::now());
        let names: Vec<&str> = snap.workers.iter().map(|w| w.name.as_str()).collect();
        assert_eq!(names, ["a", "d", "b"], "configuration order, c gone");
        assert_eq!(state.slot_of("a"), a_id);
        // Kept, `a` sleeps on to the deadline it had: until it is checked again that deadline
        // stays the same instant, and its check comes no earlier.
        let a = &snap.workers[0];
        match &a.last {
            Some(last) if a.counters.checks > 1 => assert!(
                last.at_ms + 5 >= next_a,
                "a was checked {} ms before the deadline it kept",
                next_a - last.at_ms
            ),
            _ => assert_eq!(a.next_check_at_ms, Some(next_a), "a keeps its deadline"),
        }
        assert_eq!(snap.workers[2].counters.checks, 2, "b kept its history (same URL)");
        wait("c's thread to end", || fleet.threads() == 3);
        shutdown.trigger();
    }

    #[test]
    fn a_new_url_starts_history_over_and_a_pause_stops_checks() {
        let t = target200();
        // `b` is never paused: its checks show that time passed on the same schedule.
        let (fleet, state, shutdown) = start(&config(t.port, "1s", &[("a", ""), ("b", "")]));
        wait("a's first check", || checks(&state, "a") == 1);
        assert!(fleet.set_paused("a", true));
        assert_eq!(
            fleet.check_now("a"),
            Some(false),
            "a paused worker is not checked on demand"
        );
        let mut moved = config(t.port, "1s", &[("a", ""), ("b", "")]);
        moved.workers[0].url = format!("http://127.0.0.1:{}/moved", t.port);
        assert_eq!(fleet.apply(&moved).unwrap().changed, 1);
        let r = state.record_of(state.slot_of("a").unwrap()).unwrap();
        assert_eq!(
            (r.counters.checks, r.counters.paused),
            (0, true),
            "fresh history, still paused"
        );
        // An unpaused `a` would check at once on its new URL, then every second: by the time `b`
        // has been checked twice more, it would have been at least once.
        let b_then = checks(&state, "b");
        wait("two more checks of b", || checks(&state, "b") >= b_then + 2);
        assert!(
            !t.hits.lock().unwrap().iter().any(|p| p == "/moved"),
            "paused: not pinged"
        );
        assert!(fleet.set_paused("a", false));
        wait("the resumed check", || checks(&state, "a") == 1);
        assert!(t.hits.lock().unwrap().iter().any(|p| p == "/moved"));
        assert!(!fleet.set_paused("zzz", true));
        assert_eq!(fleet.check_now("zzz"), None);
        shutdown.trigger();
    }

    #[test]
    fn configured_pause_applies_at_start_and_on_reload() {
        let t = target200();
        let (fleet, state, shutdown) = start(&config(t.port, "2s", &[("a", r#", "paused": true"#), ("b", "")]));
        wait("b's first check", || checks(&state, "b") == 1);
        thread::sleep(Duration::from_millis(100));
        assert_eq!(checks(&state, "a"), 0, "configured paused");
        let c = fleet.apply(&config(t.port, "2s", &[("a", ""), ("b", "")])).unwrap();
        assert_eq!((c.changed, c.unchanged), (1, 1));
        wait("a resumed by the configuration", || checks(&state, "a") == 1);
        shutdown.trigger();
    }

    #[test]
    fn stopped_threads_are_joined_and_none_leak() {
        let t = target200();
        let names: Vec<String> = (0..20).map(|i| format!("w{i}")).collect();
        let all: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "")).collect();
        let (fleet, state, shutdown) = start(&config(t.port, "1h", &all));
        let seed = AtomicUsize::new(7);
        let rand = || {
            let x = seed.fetch_add(0x9e37_79b9, Ordering::Relaxed);
            (x ^ (x >> 7)).wrapping_mul(31) % 1000
        };
        let mut last = Vec::new();
        for _ in 0..30 {
            last = all.iter().filter(|_| rand() % 3 != 0).cloned().collect();
            fleet.apply(&config(t.port, "1h", &last)).unwrap();
        }
        wait("stopped threads to end", || fleet.threads() == last.len());
        assert_eq!(state.ids().len(), last.len());
        shutdown.trigger();
    }
}
