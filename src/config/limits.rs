//! Every default and every bound of the configuration, stated once. Parsers read their limits
//! from here and error messages print them from here, so the documented figure, the check and the
//! message cannot drift apart.

use std::time::Duration;

/// A duration setting: its default and the inclusive range a user may set.
#[derive(Debug, Clone, Copy)]
pub struct DurationLimit {
    pub default: Duration,
    pub min: Duration,
    pub max: Duration,
}

/// A whole-number setting: its default and the inclusive range a user may set.
#[derive(Debug, Clone, Copy)]
pub struct CountLimit {
    pub default: u64,
    pub min: u64,
    pub max: u64,
}

const fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

const fn millis(n: u64) -> Duration {
    Duration::from_millis(n)
}

const DAY: u64 = 86_400;

pub const DEFAULT_PORT: u16 = 7860;
/// The name the self-ping runs under; configured workers may not take it.
pub const SELF_NAME: &str = "self";
pub const DEFAULT_HF_API_URL: &str = "https://huggingface.co";
pub const DEFAULT_METHOD: &str = "GET";
pub const METHODS: &[&str] = &["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];
/// Statuses that count as success unless `expect_status` says otherwise.
pub const DEFAULT_STATUS: (u16, u16) = (200, 399);
/// Codes `expect_status` may name.
pub const STATUS_CODES: (u64, u64) = (100, 599);
pub const EXPECT_BODY_MAX_BYTES: usize = 64 * 1024;
/// Names: 1 to this many characters of `A-Za-z0-9._-`.
pub const NAME_MAX_CHARS: usize = 64;

// A worker's check (also the `defaults` and the self-ping).
pub const INTERVAL: DurationLimit = DurationLimit {
    default: secs(300),
    min: secs(1),
    max: secs(365 * DAY),
};
pub const SELF_PING_INTERVAL: Duration = secs(240);
pub const TIMEOUT: DurationLimit = DurationLimit {
    default: secs(120),
    min: millis(100),
    max: secs(600),
};
pub const RETRIES: CountLimit = CountLimit {
    default: 3,
    min: 0,
    max: 10,
};
pub const BACKOFF: DurationLimit = DurationLimit {
    default: secs(5),
    min: Duration::ZERO,
    max: secs(600),
};

// Heartbeat (push) workers. Tests use periods of a fraction of a second.
pub const PUSH_PERIOD: DurationLimit = DurationLimit {
    default: secs(DAY),
    min: millis(100),
    max: secs(365 * DAY),
};
pub const PUSH_GRACE: DurationLimit = DurationLimit {
    default: secs(3600),
    min: Duration::ZERO,
    max: secs(30 * DAY),
};
pub const PUSH_TOKEN_MAX_BYTES: usize = 256;

// Alerts.
pub const FAILURE_THRESHOLD: CountLimit = CountLimit {
    default: 3,
    min: 1,
    max: 1000,
};
pub const SUCCESS_THRESHOLD: CountLimit = CountLimit {
    default: 1,
    min: 1,
    max: 1000,
};
pub const SEND_ON_RESOLVED: bool = true;
/// Days-left thresholds of certificate warnings.
pub const CERT_EXPIRY_DAYS: [u32; 4] = [14, 7, 3, 1];
/// A `cert_expiry_days` entry may be from 1 to this many days.
pub const CERT_EXPIRY_MAX_DAYS: u64 = 365;
pub const ALERT_TIMEOUT: DurationLimit = DurationLimit {
    default: secs(10),
    min: millis(100),
    max: secs(120),
};
pub const ALERT_RETRY_BACKOFF: DurationLimit = DurationLimit {
    default: secs(2),
    min: Duration::ZERO,
    max: secs(600),
};

// Service settings.
pub const SAVE_INTERVAL: DurationLimit = DurationLimit {
    default: secs(60),
    min: millis(10),
    max: secs(3600),
};
/// How often the remote copy of the state is written (`remote_save_interval`). Each write to a
/// Hugging Face dataset is a commit, and the Hub throttles frequent commits: `check` warns below
/// `HUB_SAVE_WARN`. The low bound is for the tests.
pub const REMOTE_SAVE_INTERVAL: DurationLimit = DurationLimit {
    default: secs(300),
    min: millis(100),
    max: secs(DAY),
};
pub const HUB_SAVE_WARN: Duration = secs(60);
/// The bound on each remote read or write (`remote_timeout`).
pub const REMOTE_TIMEOUT: DurationLimit = DurationLimit {
    default: secs(20),
    min: millis(100),
    max: secs(120),
};
/// What a remote save at shutdown may add to the 2 s budget (the SPEC's figure).
pub const REMOTE_FINAL_SAVE: Duration = secs(5);
pub const HISTORY: CountLimit = CountLimit {
    default: 100,
    min: 10,
    max: 10_000,
};
pub const RESTART_COOLDOWN: DurationLimit = DurationLimit {
    default: secs(1800),
    min: Duration::ZERO,
    max: secs(7 * DAY),
};
pub const HEADER_TIMEOUT: DurationLimit = DurationLimit {
    default: secs(10),
    min: millis(100),
    max: secs(600),
};
/// The SPEC asks for the server's certificate to be read at least hourly; tests read it faster.
pub const CERT_CHECK_INTERVAL: DurationLimit = DurationLimit {
    default: secs(3600),
    min: millis(10),
    max: secs(3600),
};
pub const MAX_CONNECTIONS: CountLimit = CountLimit {
    default: 1024,
    min: 1,
    max: 1_000_000,
};
/// How often the configuration file is looked at for changes (`watch_config`).
pub const WATCH_CONFIG: DurationLimit = DurationLimit {
    default: secs(5),
    min: millis(10),
    max: secs(3600),
};

// Hosting advice (see warnings.rs).
/// Outbound ports a Hugging Face Space can reach.
pub const HF_OPEN_PORTS: &[u16] = &[80, 443, 8080];
/// How long each host lets an app idle before it sleeps: host-name suffix, the host's name in
/// the possessive (for the message), the window.
pub const SLEEP_WINDOWS: &[(&str, &str, Duration)] = &[
    (".hf.space", "Hugging Face Spaces'", secs(48 * 3600)),
    (".onrender.com", "Render's", secs(15 * 60)),
];

// Conditions and maintenance windows (conditions.rs).
/// `expect_latency`: a successful check slower than this is degraded.
pub const EXPECT_LATENCY: DurationLimit = DurationLimit {
    default: secs(0),
    min: millis(1),
    max: secs(600),
};
/// A one-off maintenance window's `duration`.
pub const MAINTENANCE_ONCE: DurationLimit = DurationLimit {
    default: secs(0),
    min: millis(1),
    max: secs(366 * DAY),
};
/// A repeating maintenance window's `duration` (at most a week: see `maintenance::MAX_REPEATING`).
pub const MAINTENANCE_EVERY: DurationLimit = DurationLimit {
    default: secs(0),
    min: millis(1),
    max: secs(7 * DAY),
};
/// Items of `expect_json`, `expect_header` and `maintenance` a worker may list.
pub const CONDITION_ITEMS: usize = 100;
