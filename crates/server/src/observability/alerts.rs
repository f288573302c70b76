//! Alert rules evaluated inside the process, their state, and the webhook
//! that hears about every change.
//!
//! The rules are the seed's CloudWatch alarms plus two more (CONTRACT.md
//! section 3): the DLQ holds more than `alerts.dlq_depth_threshold` messages;
//! the share of fulfillment attempts that failed over the window is above a
//! ratio; the API answered 5XX; workflow executions failed; the oldest message
//! on the orders queue is older than a bound. Windowed rules compare counters
//! with their value one window ago (or zero when the process is younger than
//! the window: the counters started with it).
//!
//! [`Alerts::evaluate`] is pure bookkeeping on a [`Sample`] and returns the
//! changes; the evaluator (in the parent module) gathers samples and hands the
//! changes to a [`Notifier`], which POSTs them as JSON on its own task with
//! retries and backoff, so a slow or dead receiver never holds anything up.

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

/// Every rule, in the order `/alerts` lists them.
pub const RULES: [&str; 5] = [
    DLQ_DEPTH,
    FAILURE_RATIO,
    API_5XX,
    WORKFLOW_FAILURES,
    QUEUE_AGE,
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
    /// The JSON of `/alerts` and of notifications.
    pub fn to_json(&self) -> Value {
        json!({
            "name": self.name,
            "state": self.state.as_str(),
            "since": self.since.to_string(),
            "value": self.value,
            "threshold": self.threshold,
            "description": self.description,
            "message": self.message,
        })
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
        _ => String::new(),
    }
}

/// How a notification is retried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Tries in all, the first included.
    pub attempts: u32,
    /// The wait after the first failed try; doubles each time.
    pub base: Duration,
    /// The longest wait.
    pub max: Duration,
    /// How long one try may take.
    pub timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 6,
            base: Duration::from_millis(500),
            max: Duration::from_secs(30),
            timeout: Duration::from_secs(5),
        }
    }
}

impl RetryPolicy {
    /// The wait after failed try `attempt` (1-based).
    pub fn delay_after(&self, attempt: u32) -> Duration {
        let factor = 1u32
            .checked_shl(attempt.saturating_sub(1))
            .unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.max)
    }
}

/// How many notifications may wait for delivery; more are dropped (and logged).
pub const NOTIFICATION_BACKLOG: usize = 256;

/// Hands notifications to the delivery task; never waits.
#[derive(Clone)]
pub struct Notifier {
    tx: mpsc::Sender<Value>,
    registry: Arc<Registry>,
}

impl Notifier {
    /// Starts the delivery task for `url`. It ends once every `Notifier`
    /// clone is dropped and the backlog is delivered (or given up on).
    pub fn spawn(
        url: String,
        policy: RetryPolicy,
        registry: Arc<Registry>,
    ) -> (Notifier, JoinHandle<()>) {
        let (tx, mut rx) = mpsc::channel::<Value>(NOTIFICATION_BACKLOG);
        let counters = Arc::clone(&registry);
        let task = tokio::spawn(async move {
            let client = webhook_client();
            while let Some(payload) = rx.recv().await {
                let outcome = if deliver(&client, &url, &payload, policy).await {
                    "delivered"
                } else {
                    "failed"
                };
                counters.increment(names::ALERT_NOTIFICATIONS, &[("outcome", outcome)], 1);
            }
        });
        (Notifier { tx, registry }, task)
    }

    /// Queues `payload` for delivery; drops it (with a warning) when the backlog is full.
    pub fn notify(&self, payload: Value) {
        if let Err(e) = self.tx.try_send(payload) {
            self.registry
                .increment(names::ALERT_NOTIFICATIONS, &[("outcome", "dropped")], 1);
            tracing::warn!(error = %e, "alert notification dropped: the webhook backlog is full");
        }
    }
}

/// The webhook's HTTP client: https through rustls, which this crate enables
/// itself (Cargo.toml), so that the binary serving alerts need not.
fn webhook_client() -> reqwest::Client {
    reqwest::Client::builder()
        .use_rustls_tls()
        .build()
        .unwrap_or_else(|e| {
            tracing::warn!(error = %e, "cannot build the webhook's TLS client; using the default one");
            reqwest::Client::new()
        })
}

/// POSTs `payload` until a 2XX answer or `policy.attempts` tries, waiting
/// between tries. Returns whether it was delivered.
pub async fn deliver(
    client: &reqwest::Client,
    url: &str,
    payload: &Value,
    policy: RetryPolicy,
) -> bool {
    let alert = payload["alert"].as_str().unwrap_or("?");
    let status = payload["status"].as_str().unwrap_or("?");
    for attempt in 1..=policy.attempts.max(1) {
        let sent = client
            .post(url)
            .timeout(policy.timeout)
            .json(payload)
            .send()
            .await;
        let failure = match sent {
            Ok(r) if r.status().is_success() => {
                tracing::info!(alert, status, attempt, "alert notification delivered");
                return true;
            }
            Ok(r) => format!("the webhook answered {}", r.status()),
            Err(e) => format!("the webhook could not be reached: {e}"),
        };
        if attempt == policy.attempts.max(1) {
            tracing::warn!(alert, status, attempt, %failure, "alert notification given up");
            return false;
        }
        let delay = policy.delay_after(attempt);
        tracing::debug!(alert, status, attempt, %failure, retry_in_ms = delay.as_millis() as u64, "alert notification failed; retrying");
        tokio::time::sleep(delay).await;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> AlertConfig {
        AlertConfig {
            window: Duration::from_secs(60),
            ..AlertConfig::default()
        }
    }

    fn at(seconds: i64) -> Timestamp {
        Timestamp(1_000_000 + seconds * 1000)
    }

    fn sample(seconds: i64, dlq: u64) -> Sample {
        Sample {
            at: at(seconds),
            queue: Some(QueueSample {
                dlq_depth: dlq,
                oldest_age_ms: None,
            }),
            ..Sample::zero(at(0))
        }
    }

    fn state_of(alerts: &Alerts, name: &str) -> RuleStatus {
        alerts
            .rules()
            .into_iter()
            .find(|r| r.name == name)
            .expect("rule exists")
    }

    #[test]
    fn the_dlq_rule_fires_above_the_threshold_and_resolves_at_or_below_it() {
        let alerts = Alerts::new(config(), at(0));
        assert!(alerts.evaluate(sample(1, 5)).is_empty(), "5 is not above 5");
        let changes = alerts.evaluate(sample(2, 6));
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].rule.name, DLQ_DEPTH);
        assert_eq!(changes[0].status(), "firing");
        assert_eq!(state_of(&alerts, DLQ_DEPTH).since, at(2));
        assert!(
            alerts.evaluate(sample(3, 9)).is_empty(),
            "still firing: no new change"
        );
        assert_eq!(state_of(&alerts, DLQ_DEPTH).since, at(2));
        let changes = alerts.evaluate(sample(4, 0));
        assert_eq!(changes[0].status(), "resolved");
        assert_eq!(state_of(&alerts, DLQ_DEPTH).state, AlertState::Ok);
    }

    #[test]
    fn a_sample_without_the_queue_keeps_the_queue_rules_as_they_were() {
        let alerts = Alerts::new(config(), at(0));
        alerts.evaluate(sample(1, 7));
        let blind = Sample {
            at: at(2),
            ..Sample::zero(at(0))
        };
        assert!(alerts.evaluate(blind).is_empty());
        assert_eq!(state_of(&alerts, DLQ_DEPTH).state, AlertState::Firing);
    }

    #[test]
    fn the_failure_ratio_counts_only_attempts_inside_the_window() {
        let alerts = Alerts::new(config(), at(0));
        let attempts = |s: i64, ok: u64, failed: u64| Sample {
            at: at(s),
            attempts_succeeded: ok,
            attempts_failed: failed,
            ..Sample::zero(at(0))
        };
        assert!(
            alerts.evaluate(attempts(1, 0, 9)).is_empty(),
            "too few attempts"
        );
        let changes = alerts.evaluate(attempts(2, 0, 12));
        assert_eq!(changes[0].rule.name, FAILURE_RATIO);
        assert_eq!(changes[0].rule.value, Some(1.0));
        alerts.evaluate(attempts(30, 100, 12));
        assert_eq!(state_of(&alerts, FAILURE_RATIO).state, AlertState::Ok);
        // At 95 s the window starts at 35 s: the baseline is the sample of 30 s,
        // so the 140 failures since then are all the attempts in the window.
        let changes = alerts.evaluate(attempts(95, 100, 152));
        assert_eq!(state_of(&alerts, FAILURE_RATIO).state, AlertState::Firing);
        assert_eq!(changes.len(), 1);
        let value = state_of(&alerts, FAILURE_RATIO).value.unwrap_or(0.0);
        assert!((value - 140.0 / 140.0).abs() < 1e-9, "{value}");
    }

    #[test]
    fn a_5xx_fires_the_api_rule_until_the_window_has_passed_without_one() {
        let alerts = Alerts::new(config(), at(0));
        let errors = |s: i64, n: u64| Sample {
            at: at(s),
            http_5xx: n,
            ..Sample::zero(at(0))
        };
        assert_eq!(alerts.evaluate(errors(1, 1))[0].status(), "firing");
        assert!(alerts.evaluate(errors(30, 1)).is_empty());
        assert!(alerts.evaluate(errors(60, 1)).is_empty(), "still inside");
        let changes = alerts.evaluate(errors(61, 1));
        assert_eq!(changes[0].rule.name, API_5XX);
        assert_eq!(changes[0].status(), "resolved");
    }

    #[test]
    fn the_queue_age_rule_compares_seconds_with_the_bound() {
        let alerts = Alerts::new(config(), at(0));
        let aged = |ms: Option<i64>| Sample {
            at: at(1),
            queue: Some(QueueSample {
                dlq_depth: 0,
                oldest_age_ms: ms,
            }),
            ..Sample::zero(at(0))
        };
        assert!(alerts.evaluate(aged(Some(300_000))).is_empty());
        assert_eq!(alerts.evaluate(aged(Some(300_001)))[0].rule.name, QUEUE_AGE);
        assert_eq!(alerts.evaluate(aged(None))[0].status(), "resolved");
    }

    #[test]
    fn a_notification_names_the_rule_its_status_and_since_when() {
        let alerts = Alerts::new(config(), at(0));
        let change = alerts.evaluate(sample(3, 8)).remove(0);
        let body = change.payload("staging", at(4));
        assert_eq!(body["alert"], "dlq_depth");
        assert_eq!(body["status"], "firing");
        assert_eq!(body["since"], at(3).to_string());
        assert_eq!(body["value"], 8.0);
        assert_eq!(body["threshold"], 5.0);
        assert_eq!(body["environment"], "staging");
    }

    #[test]
    fn retries_back_off_exponentially_up_to_the_maximum() {
        let p = RetryPolicy {
            attempts: 10,
            base: Duration::from_millis(500),
            max: Duration::from_secs(3),
            timeout: Duration::from_secs(1),
        };
        let delays: Vec<u128> = (1..=5).map(|a| p.delay_after(a).as_millis()).collect();
        assert_eq!(delays, [500, 1000, 2000, 3000, 3000]);
    }

    #[tokio::test]
    async fn a_notification_is_retried_until_the_receiver_accepts_it() {
        use axum::http::StatusCode;
        use axum::routing::post;
        use std::sync::atomic::{AtomicU32, Ordering};
        let calls = Arc::new(AtomicU32::new(0));
        let seen = Arc::clone(&calls);
        let app = axum::Router::new().route(
            "/hook",
            post(move || {
                let seen = Arc::clone(&seen);
                async move {
                    if seen.fetch_add(1, Ordering::SeqCst) < 2 {
                        StatusCode::SERVICE_UNAVAILABLE
                    } else {
                        StatusCode::NO_CONTENT
                    }
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        let policy = RetryPolicy {
            attempts: 4,
            base: Duration::from_millis(1),
            max: Duration::from_millis(5),
            timeout: Duration::from_secs(5),
        };
        let delivered = deliver(
            &reqwest::Client::new(),
            &url,
            &json!({"alert": "x"}),
            policy,
        )
        .await;
        assert!(delivered);
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_notification_to_a_dead_receiver_is_given_up_after_the_last_try() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
        drop(listener);
        let policy = RetryPolicy {
            attempts: 2,
            base: Duration::from_millis(1),
            max: Duration::from_millis(1),
            timeout: Duration::from_secs(2),
        };
        assert!(!deliver(&reqwest::Client::new(), &url, &json!({}), policy).await);
    }
}
