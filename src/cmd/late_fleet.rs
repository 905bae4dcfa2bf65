//! The fleet as the HTTP side sees it while the service starts: absent until the workers run,
//! which waits for the remote state copy's start-up read when there is one (see `run`). Until
//! then admin calls get 503, and heartbeat reports are taken into inboxes of their own (the same
//! tokens and rate limits) and handed to the workers once they run, so a job that reports while
//! a slow store is read is not counted as missing.

use crate::config::Config;
use crate::fleet::Fleet;
use crate::heartbeat::Inbox;
use crate::shutdown::Waker;
use crate::web;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

pub struct LateFleet {
    fleet: OnceLock<Arc<Fleet>>,
    /// The push workers' inboxes before the fleet runs, by name.
    early: HashMap<String, Arc<Inbox>>,
}

impl LateFleet {
    pub fn new(cfg: &Config) -> LateFleet {
        let early = cfg
            .workers
            .iter()
            .filter_map(|t| {
                let push = t.push.as_ref()?;
                Some((
                    t.name.clone(),
                    Arc::new(Inbox::new(&push.token, Arc::new(Waker::default()))),
                ))
            })
            .collect();
        LateFleet {
            fleet: OnceLock::new(),
            early,
        }
    }

    /// The fleet runs: from now on everything goes to it, and the reports taken so far go to
    /// their workers.
    pub fn set(&self, fleet: &Arc<Fleet>) {
        let _ = self.fleet.set(Arc::clone(fleet));
        for (name, early) in &self.early {
            if let Some(inbox) = fleet.board().get(name) {
                early.hand_over(&inbox);
            }
        }
    }
}

impl web::Control for LateFleet {
    fn check_now(&self, name: &str) -> Option<bool> {
        self.fleet.get().and_then(|f| f.check_now(name))
    }

    fn set_paused(&self, name: &str, paused: bool) -> bool {
        self.fleet.get().is_some_and(|f| f.set_paused(name, paused))
    }

    fn alert_counts(&self) -> Arc<crate::alert::Counts> {
        self.fleet.get().map_or_else(Arc::default, |f| f.alert_counts())
    }

    fn push_inbox(&self, name: &str) -> Option<Arc<Inbox>> {
        let Some(fleet) = self.fleet.get() else {
            return self.early.get(name).cloned();
        };
        let inbox = fleet.board().get(name)?;
        // A report that reached an early inbox just as the fleet was set is passed on with the
        // next one.
        if let Some(early) = self.early.get(name) {
            early.hand_over(&inbox);
        }
        Some(inbox)
    }

    fn starting(&self) -> bool {
        self.fleet.get().is_none()
    }
}
