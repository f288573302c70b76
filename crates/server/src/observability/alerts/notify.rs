//! The webhook: a [`Notifier`] hands alert changes to a task that POSTs each
//! as JSON with retries and backoff ([`deliver`]).

use super::*;

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
    pub(super) tx: mpsc::Sender<Value>,
    pub(super) registry: Arc<Registry>,
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
