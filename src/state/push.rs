//! What the state keeps about a heartbeat (push) worker beyond its checks: when it last reported,
//! how many reports of each kind arrived, and the message of the last one. Each success or
//! failure report is also a check in the worker's history (so uptime and streaks count it like
//! a pulled check); a start report is not, it only begins the timing of a run.

use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

/// How a heartbeat worker is configured, for the renderers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PushInfo {
    pub period: Duration,
    pub grace: Duration,
}

/// The kinds of report, as the `result` label of `pinger_push_reports_total` names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportKind {
    Success,
    Failure,
    Start,
}

impl ReportKind {
    pub const ALL: [ReportKind; 3] = [ReportKind::Success, ReportKind::Failure, ReportKind::Start];

    pub fn as_str(self) -> &'static str {
        match self {
            ReportKind::Success => "success",
            ReportKind::Failure => "failure",
            ReportKind::Start => "start",
        }
    }
}

/// Saved with the record's counters (a restart does not forget when the worker last reported),
/// as `"push": {"last_report": 1795860000123, "success": 12, "failure": 1, "start": 13}`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PushCounts {
    /// Unix milliseconds of the last report of any kind.
    #[serde(rename = "last_report", skip_serializing_if = "Option::is_none")]
    pub last_report_at_ms: Option<u64>,
    pub success: u64,
    pub failure: u64,
    pub start: u64,
}

impl PushCounts {
    pub fn count(&self, kind: ReportKind) -> u64 {
        match kind {
            ReportKind::Success => self.success,
            ReportKind::Failure => self.failure,
            ReportKind::Start => self.start,
        }
    }

    pub fn add(&mut self, kind: ReportKind, at_ms: u64) {
        let n = match kind {
            ReportKind::Success => &mut self.success,
            ReportKind::Failure => &mut self.failure,
            ReportKind::Start => &mut self.start,
        };
        *n = n.saturating_add(1);
        self.last_report_at_ms = Some(at_ms);
    }

    pub fn is_empty(&self) -> bool {
        *self == PushCounts::default()
    }
}

/// A heartbeat worker as the renderers see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushView {
    pub info: PushInfo,
    pub counts: PushCounts,
    /// The body of the last report that had one (at most `MESSAGE_MAX` bytes). Not saved.
    pub message: Option<Arc<str>>,
}

/// The most of a report's body kept as its message.
pub const MESSAGE_MAX: usize = 10 * 1024;
