//! DOFS's black-box API tests, written once and run against every shape of
//! the system: `dofs serve` (`crates/cli/tests/api.rs`) and the local AWS
//! stack (`crates/aws-local/tests/blackbox.rs`).
//!
//! A shape provides a [`Target`]: a running system reached over HTTP that can
//! be restarted on the same data with other [`Settings`]. The tests in
//! [`tests`] talk to it like a user, through [`Sut`]; [`suite!`] turns them
//! into `#[tokio::test]` functions in the shape's test crate, so both shapes
//! run exactly the same set.
//!
//! ```ignore
//! fn start(settings: &dofs_blackbox::Settings) -> Option<MyTarget> { ... }
//! dofs_blackbox::suite!(start);
//! ```
//!
//! It is also the project's test kit, shared by the black-box suites, the
//! `dofs-cli` integration tests and the kill campaign (`dofs-chaos`): the
//! seed order ([`seed_order`]), starting a server and reading where it
//! listens ([`spawn_listening`]), an HTTP client for it ([`http_client`]),
//! waiting for orders to be terminal ([`wait_all_terminal`]), a seedable
//! random generator ([`Rng`]) and a real browser for the dashboard tests
//! ([`browser::Browser`]).

pub mod browser;
mod process;
pub mod receiver;
mod rng;

pub use process::{spawn_listening, try_spawn_listening};
pub use rng::Rng;

use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// The settings a test may choose; each shape maps them to its own
/// configuration, and adds its fast test timings (short backoff).
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    /// `fulfillment.success_rate`.
    pub success_rate: f64,
    /// `fulfillment.seed`.
    pub seed: Option<u64>,
    /// `fulfillment.mode = http` with these settings, when set.
    pub http: Option<HttpSettings>,
    /// `events.webhook_urls`.
    pub webhook_urls: Vec<String>,
    /// `events.secret`.
    pub events_secret: Option<String>,
}

/// The `http` fulfillment mode's settings.
#[derive(Clone, Debug, PartialEq)]
pub struct HttpSettings {
    /// `fulfillment.http.url`.
    pub url: String,
    /// `fulfillment.http.secret` (`whsec_...`).
    pub secret: Option<String>,
    /// `fulfillment.http.timeout_ms`.
    pub timeout_ms: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            success_rate: 0.7,
            seed: None,
            http: None,
            webhook_urls: Vec::new(),
            events_secret: None,
        }
    }
}

impl Settings {
    /// Every attempt fails (`success_rate` 0).
    pub fn failing() -> Self {
        Settings {
            success_rate: 0.0,
            ..Settings::default()
        }
    }

    /// Every attempt succeeds (`success_rate` 1).
    pub fn succeeding() -> Self {
        Settings {
            success_rate: 1.0,
            ..Settings::default()
        }
    }

    /// The variables `dofs serve` reads for these settings (the AWS stack
    /// maps the same names onto its functions' environment).
    pub fn env(&self) -> Vec<(&'static str, String)> {
        let mut env = vec![(
            "DOFS_FULFILLMENT_SUCCESS_RATE",
            self.success_rate.to_string(),
        )];
        if let Some(seed) = self.seed {
            env.push(("DOFS_FULFILLMENT_SEED", seed.to_string()));
        }
        if let Some(http) = &self.http {
            env.push(("DOFS_FULFILLMENT_MODE", "http".into()));
            env.push(("DOFS_FULFILLMENT_HTTP_URL", http.url.clone()));
            env.push((
                "DOFS_FULFILLMENT_HTTP_TIMEOUT_MS",
                http.timeout_ms.to_string(),
            ));
            // An attempt must end before its message may be delivered again.
            env.push((
                "DOFS_QUEUE_VISIBILITY_TIMEOUT_MS",
                (http.timeout_ms + 5_000).to_string(),
            ));
            if let Some(secret) = &http.secret {
                env.push(("DOFS_FULFILLMENT_HTTP_SECRET", secret.clone()));
            }
        }
        if !self.webhook_urls.is_empty() {
            env.push(("DOFS_EVENTS_WEBHOOK_URLS", self.webhook_urls.join(",")));
        }
        if let Some(secret) = &self.events_secret {
            env.push(("DOFS_EVENTS_SECRET", secret.clone()));
        }
        env
    }
}

/// A running system under test.
pub trait Target {
    /// Its base URL, `http://host:port` (it may change on restart).
    fn base(&self) -> String;
    /// Stops it (gracefully) and starts it again on the same data.
    fn restart(&mut self, settings: &Settings);
    /// How long a handful of orders may take to reach a terminal status.
    fn patience(&self) -> Duration;
    /// How many orders the bulk test sends (its time budget differs per shape).
    fn bulk_orders(&self) -> usize;
    /// The lines its logs hold about order `id`, for a failing assertion to
    /// show what happened; none where the logs are not at hand.
    fn logged_about(&self, _id: &str) -> Vec<String> {
        Vec::new()
    }
}

/// An HTTP client for a system under test. Its pooled connections idle out
/// well before the server closes them (`dofs serve` closes a kept-alive
/// connection after 5 s of silence): a request sent on a connection the server
/// is closing at that moment fails with an incomplete message, and a test that
/// pauses between requests would meet that race.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_idle_timeout(Duration::from_secs(1))
        .build()
        .expect("an HTTP client with default TLS settings")
}

/// The seed's valid order.
pub fn seed_order() -> Value {
    json!({"customerId": "CUST-1001", "productId": "PROD-2001", "quantity": 2, "price": 29.99,
           "metadata": {"source": "manual-test"}})
}

/// Waits until every order of `ids` is `FULFILLED`, `FAILED` or `CANCELLED` on the
/// system at `base` (each must read back with 200, or with a 503 that says
/// to ask again later); answers them in the order of `ids`. Panics after
/// `limit`, naming how many are left.
pub async fn wait_all_terminal(
    client: &reqwest::Client,
    base: &str,
    ids: &[String],
    limit: Duration,
) -> Vec<Value> {
    let started = Instant::now();
    let mut done: Vec<Option<Value>> = vec![None; ids.len()];
    loop {
        for (i, id) in ids.iter().enumerate() {
            if done[i].is_some() {
                continue;
            }
            let url = format!("{base}/orders/{id}");
            let r = client
                .get(&url)
                .send()
                .await
                .unwrap_or_else(|e| panic!("GET {url}: {e}"));
            let status = r.status().as_u16();
            let order: Value = r.json().await.unwrap_or(Value::Null);
            // 503 says "retry later" (CONTRACT §1): the next round asks again.
            if status == 503 {
                continue;
            }
            assert_eq!(status, 200, "order {id} reads back: {order}");
            if matches!(
                order["status"].as_str(),
                Some("FULFILLED" | "FAILED" | "CANCELLED")
            ) {
                done[i] = Some(order);
            }
        }
        let left = done.iter().filter(|d| d.is_none()).count();
        if left == 0 {
            return done.into_iter().flatten().collect();
        }
        assert!(
            started.elapsed() < limit,
            "{left} of {} orders still not terminal after {limit:?}",
            ids.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The system under test, with an HTTP client.
pub struct Sut<T: Target> {
    pub target: T,
    pub client: reqwest::Client,
}

impl<T: Target> Sut<T> {
    pub fn new(target: T) -> Self {
        Sut {
            target,
            client: http_client(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.target.base(), path)
    }

    pub fn restart(&mut self, settings: &Settings) {
        self.target.restart(settings);
    }

    pub async fn post_order(&self, body: &Value) -> reqwest::Response {
        self.client
            .post(self.url("/order"))
            .json(body)
            .send()
            .await
            .expect("POST /order")
    }

    /// Posts `body` and answers the new order's id (the answer must be 202).
    pub async fn submit(&self, body: &Value) -> String {
        let r = self.post_order(body).await;
        assert_eq!(r.status().as_u16(), 202, "POST /order");
        let v: Value = r.json().await.expect("json");
        v["orderId"].as_str().expect("orderId").to_owned()
    }

    pub async fn get_json(&self, path: &str) -> (u16, Value) {
        let r = self
            .client
            .get(self.url(path))
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn post_json(&self, path: &str) -> (u16, Value) {
        let r = self
            .client
            .post(self.url(path))
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST {path}: {e}"));
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// Waits until every order is `FULFILLED` or `FAILED` (see
    /// [`wait_all_terminal`]).
    pub async fn wait_all_terminal(&self, ids: &[String], limit: Duration) -> Vec<Value> {
        wait_all_terminal(&self.client, &self.target.base(), ids, limit).await
    }

    /// Every item of a listing, following `nextCursor` with pages of `limit`.
    /// Answers the items and the number of pages.
    pub async fn pages(&self, path: &str, limit: usize) -> (Vec<Value>, usize) {
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        let sep = if path.contains('?') { '&' } else { '?' };
        for pages in 1.. {
            let url = match &cursor {
                Some(c) => format!("{path}{sep}limit={limit}&cursor={c}"),
                None => format!("{path}{sep}limit={limit}"),
            };
            let (status, page) = self.get_json(&url).await;
            assert_eq!(status, 200, "{url}: {page}");
            let got = page["items"].as_array().cloned().unwrap_or_default();
            assert!(got.len() <= limit, "{url}: more than {limit} items");
            items.extend(got);
            match page["nextCursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => return (items, pages),
            }
            assert!(pages < 10_000, "{path}: the cursors never end");
        }
        unreachable!("the loop returns")
    }

    /// Every item of a listing.
    pub async fn all_pages(&self, path: &str) -> Vec<Value> {
        self.pages(path, 500).await.0
    }

    /// Whether the DLQ holds a dead letter of order `id` now.
    pub async fn in_dlq(&self, id: &str) -> bool {
        let (_, dlq) = self.get_json("/dlq?limit=500").await;
        dlq["items"]
            .as_array()
            .is_some_and(|items| items.iter().any(|d| d["orderId"] == id))
    }

    /// Waits until the DLQ holds a dead letter of order `id`.
    pub async fn wait_in_dlq(&self, id: &str) {
        let started = Instant::now();
        while !self.in_dlq(id).await {
            assert!(
                started.elapsed() < self.target.patience(),
                "no dead letter of {id} in the DLQ"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until `path`'s `items` has `n` entries; answers the listing.
    pub async fn wait_items(&self, path: &str, n: usize, limit: Duration) -> Value {
        let started = Instant::now();
        loop {
            let (status, v) = self.get_json(path).await;
            if status == 200 && v["items"].as_array().map(Vec::len) == Some(n) {
                return v;
            }
            assert!(
                started.elapsed() < limit,
                "{path} never had {n} items in {limit:?}: {v}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// Expands to one `#[tokio::test]` per test of [`tests`], each starting its
/// system with `$start`, a `fn(&Settings) -> Option<T>` (`None`: the shape's
/// prerequisites are missing and the test is skipped). Attributes after the
/// path (for example `#[ignore = "..."]`) are put on every test.
#[macro_export]
macro_rules! suite {
    ($start:path $(, #[$attr:meta])* $(,)?) => {
        #[tokio::test]
        $(#[$attr])*
        async fn the_seed_valid_order_is_accepted_with_every_field_and_reaches_a_terminal_status(
        ) {
            $crate::tests::the_seed_valid_order_is_accepted_with_every_field_and_reaches_a_terminal_status($start).await
        }

        #[tokio::test]
        $(#[$attr])*
        async fn the_seed_invalid_order_gets_400_listing_all_three_fields() {
            $crate::tests::the_seed_invalid_order_gets_400_listing_all_three_fields($start).await
        }

        #[tokio::test]
        $(#[$attr])*
        async fn an_idempotency_key_replays_the_first_response_and_rejects_another_body() {
            $crate::tests::an_idempotency_key_replays_the_first_response_and_rejects_another_body($start).await
        }

        #[tokio::test]
        $(#[$attr])*
        async fn orders_page_newest_first_with_order_id_cursors() {
            $crate::tests::orders_page_newest_first_with_order_id_cursors($start).await
        }

        #[tokio::test]
        $(#[$attr])*
        async fn bulk_orders_with_a_fixed_seed_end_exactly_as_the_seed_predicts() {
            $crate::tests::bulk_orders_with_a_fixed_seed_end_exactly_as_the_seed_predicts($start)
                .await
        }

        #[tokio::test]
        $(#[$attr])*
        async fn failed_orders_can_be_purged_retried_and_redriven_by_an_operator() {
            $crate::tests::failed_orders_can_be_purged_retried_and_redriven_by_an_operator($start)
                .await
        }

        #[tokio::test]
        $(#[$attr])*
        async fn http_mode_posts_each_attempt_signed_and_follows_the_answers() {
            $crate::tests::http_mode_posts_each_attempt_signed_and_follows_the_answers($start).await
        }

        #[tokio::test]
        $(#[$attr])*
        async fn cancel_ends_pending_and_failed_orders_and_refuses_the_others() {
            $crate::tests::cancel_ends_pending_and_failed_orders_and_refuses_the_others($start)
                .await
        }

        #[tokio::test]
        $(#[$attr])*
        async fn a_cancel_racing_an_attempt_never_leaves_an_order_both_cancelled_and_fulfilled() {
            $crate::tests::a_cancel_racing_an_attempt_never_leaves_an_order_both_cancelled_and_fulfilled($start)
                .await
        }

        #[tokio::test]
        $(#[$attr])*
        async fn every_status_change_is_an_event_in_the_feed() {
            $crate::tests::every_status_change_is_an_event_in_the_feed($start).await
        }
    };
}

/// Expands to the tests of the shapes that deliver events to webhooks
/// (`dofs serve`; on AWS the events go to EventBridge instead).
#[macro_export]
macro_rules! webhook_suite {
    ($start:path $(, #[$attr:meta])* $(,)?) => {
        #[tokio::test]
        $(#[$attr])*
        async fn webhooks_receive_every_event_signed_in_order_through_an_outage() {
            $crate::tests::webhooks_receive_every_event_signed_in_order_through_an_outage($start)
                .await
        }
    };
}

/// The test bodies. Each takes the shape's start function.
pub mod tests;
