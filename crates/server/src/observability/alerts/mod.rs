//! Alert rules evaluated inside the process, their state, and the webhook
//! that hears about every change.
//!
//! The rules are the seed's CloudWatch alarms plus two more (CONTRACT.md
//! section 3): the DLQ holds more than `alerts.dlq_depth_threshold` messages;
//! the share of fulfillment attempts that failed over the window is above a
//! ratio; the API answered 5XX; workflow executions failed; the oldest message
//! on the orders queue is older than a bound; the store cannot take writes
//! (`dofs_storage_writable` is 0, e.g. a full disk). Windowed rules compare counters
//! with their value one window ago (or zero when the process is younger than
//! the window: the counters started with it).
//!
//! [`Alerts::evaluate`] is pure bookkeeping on a [`Sample`] and returns the
//! changes; the evaluator (in the parent module) gathers samples and hands the
//! changes to a [`Notifier`], which POSTs them as JSON on its own task with
//! retries and backoff, so a slow or dead receiver never holds anything up.
//!
//! Layout: the rules and their evaluation here; the webhook delivery in
//! [`notify`].

mod notify;
#[cfg(test)]
mod tests;

pub use notify::{deliver, Notifier, RetryPolicy, NOTIFICATION_BACKLOG};

use crate::observability::metrics::{names, Registry};
use dofs_core::Timestamp;
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Rule name: the DLQ depth is above the threshold.
pub const DLQ_DEPTH: &str = "dlq_depth";
/// Rule name: too many fulfillment attempts failed over the window.
pub const FAILURE_RATIO: &str = "fulfillment_failure_ratio";
/// Rule name: the API answered 5XX over the window.
pub const API_5XX: &str = "api_5xx";
/// Rule name: workflow executions failed over the window.
pub const WORKFLOW_FAILURES: &str = "workflow_failures";
/// Rule name: the oldest message on the orders queue is too old.
pub const QUEUE_AGE: &str = "queue_message_age";

/// Rule name: the store cannot take writes (a full disk, a read-only file).
pub const STORAGE_NOT_WRITABLE: &str = "storage_not_writable";

/// Every rule, in the order `/alerts` lists them.
pub const RULES: [&str; 6] = [
    DLQ_DEPTH,
    FAILURE_RATIO,
    API_5XX,
    WORKFLOW_FAILURES,
    QUEUE_AGE,
    STORAGE_NOT_WRITABLE,
];

/// The rules' thresholds and where changes are sent (the `alerts.*` keys).
#[derive(Clone, Debug, PartialEq)]
pub struct AlertConfig {
    /// How often the rules are evaluated.
    pub evaluation_interval: Duration,
    /// The window of the failure-ratio, 5XX and workflow-failure rules.
    pub window: Duration,
    /// Fires when the DLQ holds more than this many messages.
    pub dlq_depth_threshold: u64,
    /// Fires when the failed share of attempts in the window is above this (0 to 1)...
    pub failure_ratio_threshold: f64,
    /// ...and the window holds at least this many attempts.
    pub failure_ratio_min_attempts: u64,
    /// Fires when the window holds more 5XX responses than this.
    pub http_5xx_threshold: u64,
    /// Fires when more workflow executions than this failed in the window.
    pub workflow_failures_threshold: u64,
    /// Fires when the oldest message on the orders queue is older than this.
    pub queue_age_threshold: Duration,
    /// Where firing and resolved notifications are POSTed.
    pub webhook_url: Option<String>,
    /// Named in every notification.
    pub environment: String,
}

impl Default for AlertConfig {
    fn default() -> Self {
        AlertConfig {
            evaluation_interval: Duration::from_secs(1),
            window: Duration::from_secs(300),
            dlq_depth_threshold: 5,
            failure_ratio_threshold: 0.5,
            failure_ratio_min_attempts: 10,
            http_5xx_threshold: 0,
            workflow_failures_threshold: 0,
            queue_age_threshold: Duration::from_secs(300),
            webhook_url: None,
            environment: "dev".into(),
        }
    }
}

/// A rule's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AlertState {
    Ok,
    Firing,
}

impl AlertState {
    /// `ok` or `firing`.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertState::Ok => "ok",
            AlertState::Firing => "firing",
        }
    }
}

/// One rule as `/alerts` shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct RuleStatus {
    pub name: &'static str,
    /// What the rule watches, with its threshold.
    pub description: String,
    pub state: AlertState,
    /// When the rule entered its state (start-up for a rule that never fired).
    pub since: Timestamp,
    /// The last value measured; `None` before the first evaluation or when
    /// there was too little data.
    pub value: Option<f64>,
    pub threshold: f64,
    /// The last evaluation, in words.
    pub message: String,
}

impl RuleStatus {
    /// As `/alerts` and the dashboard show it.
    pub fn to_wire(&self) -> dofs_wire::Alert {
        dofs_wire::Alert {
            name: self.name.into(),
            state: self.state.as_str().into(),
            since: self.since.to_string(),
            value: self.value,
            threshold: Some(self.threshold),
            description: Some(self.description.clone()),
            message: Some(self.message.clone()),
        }
    }
}

/// What the evaluator measured at one moment. Counters are process totals.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub at: Timestamp,
    /// `None` when the queue could not be read: queue rules keep their state.
    pub queue: Option<QueueSample>,
    pub attempts_succeeded: u64,
    pub attempts_failed: u64,
    pub http_5xx: u64,
    pub workflow_failed: u64,
    /// `None` when the shape does not report it (the rule keeps its state).
    pub storage_writable: Option<bool>,
}

impl Sample {
    /// Nothing counted yet, queue unknown.
    pub fn zero(at: Timestamp) -> Sample {
        Sample {
            at,
            queue: None,
            attempts_succeeded: 0,
            attempts_failed: 0,
            http_5xx: 0,
            workflow_failed: 0,
            storage_writable: None,
        }
    }
}

/// The queue part of a [`Sample`].
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct QueueSample {
    pub dlq_depth: u64,
    /// `None` when the orders queue is empty.
    pub oldest_age_ms: Option<i64>,
}

/// A rule changed state.
#[derive(Clone, Debug, PartialEq)]
pub struct Change {
    /// The rule after the change.
    pub rule: RuleStatus,
}

impl Change {
    /// `firing` or `resolved`.
    pub fn status(&self) -> &'static str {
        match self.rule.state {
            AlertState::Firing => "firing",
            AlertState::Ok => "resolved",
        }
    }

    /// The webhook's JSON body.
    pub fn payload(&self, environment: &str, sent_at: Timestamp) -> Value {
        json!({
            "source": "dofs",
            "environment": environment,
            "alert": self.rule.name,
            "status": self.status(),
            "since": self.rule.since.to_string(),
            "value": self.rule.value,
            "threshold": self.rule.threshold,
            "description": self.rule.description,
            "message": self.rule.message,
            "sentAt": sent_at.to_string(),
        })
    }
}

/// The rules and their state; shared by the evaluator and `/alerts`.
pub struct Alerts {
    config: AlertConfig,
    state: Mutex<State>,
}

struct State {
    rules: Vec<RuleStatus>,
    /// Samples from the window's start on; the first may be older (the baseline).
    history: VecDeque<Sample>,
    evaluated_at: Option<Timestamp>,
}

/// What a rule measured: its value (if any) and whether it is over the line.
struct Measured {
    value: Option<f64>,
    over: bool,
    message: String,
}

impl Alerts {
    /// Every rule `ok` since `now`.
    pub fn new(config: AlertConfig, now: Timestamp) -> Alerts {
        let rules = RULES
            .iter()
            .map(|name| RuleStatus {
                name,
                description: describe(name, &config),
                state: AlertState::Ok,
                since: now,
                value: None,
                threshold: threshold(name, &config),
                message: "not evaluated yet".into(),
            })
            .collect();
        Alerts {
            config,
            state: Mutex::new(State {
                rules,
                history: VecDeque::new(),
                evaluated_at: None,
            }),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &AlertConfig {
        &self.config
    }

    /// Every rule's current status, in [`RULES`] order.
    pub fn rules(&self) -> Vec<RuleStatus> {
        self.lock().rules.clone()
    }

    /// When the rules were last evaluated.
    pub fn evaluated_at(&self) -> Option<Timestamp> {
        self.lock().evaluated_at
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Evaluates every rule on `sample` and returns the rules that changed state.
    pub fn evaluate(&self, sample: Sample) -> Vec<Change> {
        let mut state = self.lock();
        let window_ms = self.config.window.as_millis() as i64;
        let window_start = sample.at.millis() - window_ms;
        state.history.push_back(sample.clone());
        while state.history.len() >= 2 && state.history[1].at.millis() <= window_start {
            state.history.pop_front();
        }
        let baseline = match state.history.front() {
            Some(first) if first.at.millis() <= window_start => first.clone(),
            // The process is younger than the window: its counters started at zero.
            _ => Sample::zero(Timestamp(window_start)),
        };
        let seconds = self.config.window.as_secs();
        let mut changes = Vec::new();
        for rule in state.rules.iter_mut() {
            let measured = match rule.name {
                DLQ_DEPTH => sample.queue.map(|q| {
                    let over = q.dlq_depth > self.config.dlq_depth_threshold;
                    Measured {
                        value: Some(q.dlq_depth as f64),
                        over,
                        message: format!(
                            "the DLQ holds {} message(s) (fires above {})",
                            q.dlq_depth, self.config.dlq_depth_threshold
                        ),
                    }
                }),
                FAILURE_RATIO => {
                    let failed = sample
                        .attempts_failed
                        .saturating_sub(baseline.attempts_failed);
                    let succeeded = sample
                        .attempts_succeeded
                        .saturating_sub(baseline.attempts_succeeded);
                    let total = failed + succeeded;
                    let ratio = (total > 0).then(|| failed as f64 / total as f64);
                    Some(if total < self.config.failure_ratio_min_attempts {
                        Measured {
                            value: ratio,
                            over: false,
                            message: format!(
                                "{total} attempt(s) in the last {seconds} s; the rule needs at least {}",
                                self.config.failure_ratio_min_attempts
                            ),
                        }
                    } else {
                        let ratio = ratio.unwrap_or(0.0);
                        Measured {
                            value: Some(ratio),
                            over: ratio > self.config.failure_ratio_threshold,
                            message: format!(
                                "{failed} of {total} fulfillment attempts failed in the last {seconds} s ({:.1}%, fires above {:.1}%)",
                                ratio * 100.0,
                                self.config.failure_ratio_threshold * 100.0
                            ),
                        }
                    })
                }
                API_5XX => {
                    let n = sample.http_5xx.saturating_sub(baseline.http_5xx);
                    Some(Measured {
                        value: Some(n as f64),
                        over: n > self.config.http_5xx_threshold,
                        message: format!(
                            "{n} 5XX response(s) in the last {seconds} s (fires above {})",
                            self.config.http_5xx_threshold
                        ),
                    })
                }
                WORKFLOW_FAILURES => {
                    let n = sample.workflow_failed.saturating_sub(baseline.workflow_failed);
                    Some(Measured {
                        value: Some(n as f64),
                        over: n > self.config.workflow_failures_threshold,
                        message: format!(
                            "{n} workflow execution(s) failed in the last {seconds} s (fires above {})",
                            self.config.workflow_failures_threshold
                        ),
                    })
                }
                QUEUE_AGE => sample.queue.map(|q| {
                    let age = q.oldest_age_ms.unwrap_or(0).max(0) as f64 / 1000.0;
                    let bound = self.config.queue_age_threshold.as_secs_f64();
                    Measured {
                        value: Some(age),
                        over: age > bound,
                        message: match q.oldest_age_ms {
                            Some(_) => format!(
                                "the oldest message on the orders queue is {age:.1} s old (fires above {bound} s)"
                            ),
                            None => "the orders queue is empty".into(),
                        },
                    }
                }),
                STORAGE_NOT_WRITABLE => sample.storage_writable.map(|writable| Measured {
                    value: Some(if writable { 1.0 } else { 0.0 }),
                    over: !writable,
                    message: if writable {
                        "the store takes writes".into()
                    } else {
                        "the store cannot take writes (GET /ready says why, e.g. a full disk)".into()
                    },
                }),
                _ => None,
            };
            let Some(measured) = measured else { continue };
            rule.value = measured.value;
            rule.message = measured.message;
            let next = if measured.over {
                AlertState::Firing
            } else {
                AlertState::Ok
            };
            if next != rule.state {
                rule.state = next;
                rule.since = sample.at;
                changes.push(Change { rule: rule.clone() });
            }
        }
        state.evaluated_at = Some(sample.at);
        changes
    }
}

fn threshold(name: &str, c: &AlertConfig) -> f64 {
    match name {
        DLQ_DEPTH => c.dlq_depth_threshold as f64,
        FAILURE_RATIO => c.failure_ratio_threshold,
        API_5XX => c.http_5xx_threshold as f64,
        WORKFLOW_FAILURES => c.workflow_failures_threshold as f64,
        QUEUE_AGE => c.queue_age_threshold.as_secs_f64(),
        // Fires below: dofs_storage_writable is 1 or 0.
        STORAGE_NOT_WRITABLE => 1.0,
        _ => 0.0,
    }
}

fn describe(name: &str, c: &AlertConfig) -> String {
    let s = c.window.as_secs();
    match name {
        DLQ_DEPTH => format!(
            "Dead letters awaiting an operator: fires when the DLQ holds more than {} (alerts.dlq_depth_threshold).",
            c.dlq_depth_threshold
        ),
        FAILURE_RATIO => format!(
            "Failed share of fulfillment attempts over the last {s} s: fires above {} with at least {} attempts.",
            c.failure_ratio_threshold, c.failure_ratio_min_attempts
        ),
        API_5XX => format!(
            "API responses with a 5XX status over the last {s} s: fires above {}.",
            c.http_5xx_threshold
        ),
        WORKFLOW_FAILURES => format!(
            "Workflow executions that failed over the last {s} s: fires above {}.",
            c.workflow_failures_threshold
        ),
        QUEUE_AGE => format!(
            "Age of the oldest message on the orders queue: fires above {} s.",
            c.queue_age_threshold.as_secs()
        ),
        STORAGE_NOT_WRITABLE => {
            "Whether the store takes writes: fires while dofs_storage_writable is 0 (a full disk, a read-only file).".into()
        }
        _ => String::new(),
    }
}
