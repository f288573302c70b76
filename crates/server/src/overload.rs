//! Overload protection (CONTRACT.md section 1, "Overload"): what the server
//! refuses so that what it accepts is served in bounded time.
//!
//! - a token bucket per client ([`RateLimiter`]): per API key when keys are
//!   configured and the request carries a valid one, per client IP otherwise;
//! - a global limit on requests being handled at once (a semaphore);
//! - queue back-pressure: `POST /order` is refused while the orders queue
//!   (messages waiting or in flight, that is orders accepted and not yet
//!   terminal) holds `max_backlog` messages or more ([`Backlog`]).
//!
//! While the queue is full, the replay of an order this process accepted
//! (same `Idempotency-Key` and body) is still answered as a replay
//! ([`Overload::while_full`]): a client retrying a request whose answer it
//! lost gets that answer, not a 429.
//!
//! Each refusal is a 429 with `Retry-After` and a contract error body
//! (`RateLimited`, `ServerBusy`, `QueueFull`), counted in
//! `dofs_overload_rejections_total{reason}`. A refused request has done no
//! work: nothing accepted is ever dropped. `/health`, `/ready` and
//! `/metrics` are never limited (their route groups go without [`guard`]),
//! so probes and scrapes see an overloaded server as it is.
//!
//! Slow clients are cut off elsewhere: headers by the connection's header
//! read timeout ([`crate::serve`]), bodies by [`OverloadConfig::body_read_timeout`]
//! (408), whole requests by [`OverloadConfig::request_timeout`] (503 `Timeout`).

use crate::error::ApiError;
use crate::layer::Check;
use crate::observability::metrics::{names, Registry};
use crate::AppState;
use axum::extract::{ConnectInfo, Request};
use dofs_core::ports::{IdempotencyClaim, Queue};
use dofs_core::{Order, OrderId};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The limits. [`OverloadConfig::default`] limits nothing but the time a
/// request and its body may take; `dofs serve` sets the configured values.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OverloadConfig {
    /// Requests per second each client may make on average; 0 turns the rate limit off.
    pub rate_per_second: f64,
    /// How many requests a client may make at once after being idle (bucket size).
    pub burst: u32,
    /// Requests handled at once, all clients together; 0: no limit.
    pub max_in_flight: usize,
    /// Queue depth at which new orders are refused; 0: no limit.
    pub max_backlog: u64,
    /// Longest time one request may take before it is answered 503 `Timeout`.
    pub request_timeout: Duration,
    /// Longest time the body of an order may take to arrive before it is answered 408.
    pub body_read_timeout: Duration,
}

impl Default for OverloadConfig {
    fn default() -> Self {
        OverloadConfig {
            rate_per_second: 0.0,
            burst: 0,
            max_in_flight: 0,
            max_backlog: 0,
            request_timeout: Duration::from_secs(30),
            body_read_timeout: Duration::from_secs(10),
        }
    }
}

/// How old the backlog's reading of the queue depth may get before it is read again.
pub const BACKLOG_REFRESH: Duration = Duration::from_millis(100);

/// Clients remembered before idle buckets (full again) are forgotten.
const MAX_CLIENTS: usize = 10_000;

/// The shared state of the limits, kept in [`AppState`].
pub struct Overload {
    config: OverloadConfig,
    rate: Option<RateLimiter>,
    in_flight: Option<Arc<Semaphore>>,
    backlog: Backlog,
    replays: Replays,
}

impl Overload {
    /// The limits of `config`.
    pub fn new(config: OverloadConfig) -> Overload {
        Overload {
            config,
            rate: (config.rate_per_second > 0.0)
                .then(|| RateLimiter::new(config.rate_per_second, config.burst.max(1))),
            in_flight: (config.max_in_flight > 0)
                .then(|| Arc::new(Semaphore::new(config.max_in_flight))),
            backlog: Backlog::new(config.max_backlog),
            replays: Replays::new(MAX_REMEMBERED_KEYS),
        }
    }

    /// The configured limits.
    pub fn config(&self) -> &OverloadConfig {
        &self.config
    }

    /// The queue back-pressure state.
    pub fn backlog(&self) -> &Backlog {
        &self.backlog
    }

    /// Notes that `claim` was answered with `order`, so that its replay can
    /// be answered while the queue is full.
    pub fn remember(&self, claim: &IdempotencyClaim, order: OrderId) {
        if self.backlog.max > 0 {
            self.replays.remember(claim, order, Instant::now());
        }
    }

    /// What a submission gets while the queue is full: the order it replays
    /// (same `Idempotency-Key` and body as an order accepted earlier), 422
    /// for a known key with another body, else 429 `QueueFull`. Only keys
    /// this process answered are known; the others are refused like any
    /// new order until the queue drains.
    pub async fn while_full(
        &self,
        state: &AppState,
        key: Option<&str>,
        body: &[u8],
    ) -> Result<Order, ApiError> {
        let known = key.and_then(|key| self.replays.find(key, Instant::now()));
        match known {
            Some((fingerprint, id)) if fingerprint == crate::extract::fingerprint(body) => {
                if let Some(order) = state.backend().orders.get(id).await? {
                    return Ok(order);
                }
            }
            Some(_) => return Err(ApiError::IdempotencyKeyReused),
            None => {}
        }
        count_rejection("backlog");
        Err(ApiError::QueueFull)
    }
}

/// Idempotency keys remembered for replays while the queue is full.
const MAX_REMEMBERED_KEYS: usize = 10_000;

/// How long an idempotency key is kept (CONTRACT.md: 24 hours).
const KEY_RETENTION: Duration = Duration::from_secs(24 * 60 * 60);

/// The idempotency keys this process answered, newest `capacity` of them:
/// key -> (body fingerprint, order, when).
struct Replays {
    capacity: usize,
    keys: Mutex<HashMap<String, (String, OrderId, Instant)>>,
}

impl Replays {
    fn new(capacity: usize) -> Replays {
        Replays {
            capacity,
            keys: Mutex::new(HashMap::new()),
        }
    }

    fn remember(&self, claim: &IdempotencyClaim, order: OrderId, now: Instant) {
        let mut keys = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
        if keys.len() >= self.capacity && !keys.contains_key(&claim.key) {
            keys.retain(|_, (_, _, at)| now.saturating_duration_since(*at) < KEY_RETENTION);
            if keys.len() >= self.capacity {
                let oldest = keys
                    .iter()
                    .min_by_key(|(_, (_, _, at))| *at)
                    .map(|(key, _)| key.clone());
                if let Some(oldest) = oldest {
                    keys.remove(&oldest);
                }
            }
        }
        keys.insert(claim.key.clone(), (claim.fingerprint.clone(), order, now));
    }

    fn find(&self, key: &str, now: Instant) -> Option<(String, OrderId)> {
        let keys = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
        keys.get(key)
            .filter(|(_, _, at)| now.saturating_duration_since(*at) < KEY_RETENTION)
            .map(|(fingerprint, order, _)| (fingerprint.clone(), *order))
    }
}

/// Token buckets, one per client.
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    buckets: Mutex<Buckets>,
}

struct Buckets {
    map: HashMap<String, Bucket>,
    prune_at: usize,
}

#[derive(Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl RateLimiter {
    /// `rate` tokens a second, at most `burst` saved up.
    pub fn new(rate: f64, burst: u32) -> RateLimiter {
        RateLimiter {
            rate,
            burst: f64::from(burst),
            buckets: Mutex::new(Buckets {
                map: HashMap::new(),
                prune_at: MAX_CLIENTS,
            }),
        }
    }

    /// Takes a token from `client`'s bucket, or says how long until one is there.
    pub fn check(&self, client: &str, now: Instant) -> Result<(), Duration> {
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        if buckets.map.len() >= buckets.prune_at {
            let (rate, burst) = (self.rate, self.burst);
            buckets.map.retain(|_, b| {
                b.tokens + now.saturating_duration_since(b.at).as_secs_f64() * rate < burst
            });
            // Every client still active: prune again only after the map doubles.
            buckets.prune_at = (buckets.map.len() * 2).max(MAX_CLIENTS);
        }
        let bucket = buckets.map.entry(client.to_owned()).or_insert(Bucket {
            tokens: self.burst,
            at: now,
        });
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.rate).min(self.burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) / self.rate))
        }
    }
}

/// The orders queue's depth as last read, plus the orders accepted since.
pub struct Backlog {
    max: u64,
    depth: AtomicU64,
    read_at: Mutex<Option<Instant>>,
    reading: AtomicBool,
}

impl Backlog {
    fn new(max: u64) -> Backlog {
        Backlog {
            max,
            depth: AtomicU64::new(0),
            read_at: Mutex::new(None),
            reading: AtomicBool::new(false),
        }
    }

    /// Whether a new order must be refused: the queue holds `max` messages or
    /// more. The depth is read again when older than [`BACKLOG_REFRESH`]
    /// (by one request at a time; the others use the last reading); orders
    /// accepted since are added as they are accepted, so the limit is not
    /// overshot between readings. An unreadable queue is not a reason to refuse.
    pub async fn is_full(&self, queue: &dyn Queue) -> bool {
        if self.max == 0 {
            return false;
        }
        let stale = match *self.read_at.lock().unwrap_or_else(PoisonError::into_inner) {
            None => true,
            Some(at) => at.elapsed() >= BACKLOG_REFRESH,
        };
        if stale && !self.reading.swap(true, Ordering::AcqRel) {
            // Cleared however this ends, also when the request is dropped mid-read.
            let _reading = ClearOnDrop(&self.reading);
            match queue.depth().await {
                Ok(d) => {
                    self.depth.store(d.waiting + d.in_flight, Ordering::Release);
                    *self.read_at.lock().unwrap_or_else(PoisonError::into_inner) =
                        Some(Instant::now());
                }
                Err(e) => tracing::warn!(error = %e, "cannot read the queue depth"),
            }
        }
        self.depth.load(Ordering::Acquire) >= self.max
    }

    /// Counts an order just accepted into the depth until the next reading.
    pub fn accepted(&self) {
        if self.max > 0 {
            self.depth.fetch_add(1, Ordering::AcqRel);
        }
    }
}

/// Sets the flag back to false when dropped.
struct ClearOnDrop<'a>(&'a AtomicBool);

impl Drop for ClearOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

/// Who a request counts against: the API key's digest when keys are on and
/// the key is valid, else the client's IP (or `unknown` without one).
fn client_of(state: &AppState, request: &Request) -> String {
    let keys = state.keys();
    if keys.enabled() {
        if let Some(id) = request
            .headers()
            .get("x-api-key")
            .and_then(|v| v.to_str().ok())
            .and_then(|k| keys.client_id(k))
        {
            return id;
        }
    }
    match request.extensions().get::<ConnectInfo<SocketAddr>>() {
        Some(ConnectInfo(addr)) => format!("ip:{}", addr.ip()),
        None => "ip:unknown".into(),
    }
}

/// Counts a refusal by reason (`rate_limit`, `in_flight`, `backlog`).
pub fn count_rejection(reason: &'static str) {
    Registry::global().increment(names::OVERLOAD_REJECTIONS, &[("reason", reason)], 1);
}

/// The layer: the rate limit, then the in-flight limit, whose permit the
/// request holds until it is answered. Add it outside authentication, so
/// that guessing keys is rate limited too. Route groups that are never
/// limited (probes, the metrics scrape) are mounted without it
/// ([`crate::router_with`]).
pub fn guard(
    state: AppState,
) -> Check<
    impl Fn(&Request) -> Result<Option<OwnedSemaphorePermit>, ApiError> + Clone + Send + Sync + 'static,
> {
    Check::new(move |request: &Request| admit(&state, request))
}

fn admit(state: &AppState, request: &Request) -> Result<Option<OwnedSemaphorePermit>, ApiError> {
    let overload = state.overload();
    if let Some(limiter) = &overload.rate {
        let client = client_of(state, request);
        if let Err(wait) = limiter.check(&client, Instant::now()) {
            count_rejection("rate_limit");
            return Err(ApiError::RateLimited {
                retry_after: wait.as_secs_f64().ceil().max(1.0) as u64,
            });
        }
    }
    match &overload.in_flight {
        Some(semaphore) => match Arc::clone(semaphore).try_acquire_owned() {
            Ok(permit) => Ok(Some(permit)),
            Err(_) => {
                count_rejection("in_flight");
                Err(ApiError::ServerBusy)
            }
        },
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_its_burst_then_its_rate() {
        let limiter = RateLimiter::new(10.0, 3);
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(limiter.check("a", t0).is_ok());
        }
        let wait = limiter.check("a", t0).expect_err("burst spent");
        assert!(
            wait > Duration::from_millis(90) && wait <= Duration::from_millis(100),
            "{wait:?}"
        );
        assert!(limiter.check("b", t0).is_ok(), "clients are independent");
        assert!(limiter.check("a", t0 + Duration::from_millis(100)).is_ok());
        assert!(limiter.check("a", t0 + Duration::from_millis(100)).is_err());
        // Idle for long: the bucket refills to the burst, not beyond.
        let later = t0 + Duration::from_secs(60);
        for _ in 0..3 {
            assert!(limiter.check("a", later).is_ok());
        }
        assert!(limiter.check("a", later).is_err());
    }

    #[tokio::test]
    async fn the_backlog_counts_orders_accepted_between_readings() {
        let dir = tempfile::tempdir().expect("tempdir");
        let embedded =
            dofs_embedded::Embedded::start(dofs_embedded::EmbeddedConfig::new(dir.path()))
                .await
                .expect("embedded");
        let queue = embedded.backend().queue;
        let backlog = Backlog::new(3);
        assert!(!backlog.is_full(queue.as_ref()).await, "empty queue");
        backlog.accepted();
        backlog.accepted();
        assert!(!backlog.is_full(queue.as_ref()).await);
        backlog.accepted();
        assert!(
            backlog.is_full(queue.as_ref()).await,
            "3 accepted since the reading"
        );
        // A reading cancelled midway (the client went away) does not stop
        // later readings: the real depth, 0, is read again.
        tokio::time::sleep(BACKLOG_REFRESH).await;
        let _ = tokio::time::timeout(Duration::ZERO, backlog.is_full(queue.as_ref())).await;
        assert!(!backlog.reading.load(Ordering::Acquire));
        assert!(!backlog.is_full(queue.as_ref()).await);
        assert!(
            !Backlog::new(0).is_full(queue.as_ref()).await,
            "0: no limit"
        );
    }

    #[test]
    fn replays_keep_the_newest_keys_for_a_day() {
        let replays = Replays::new(2);
        let claim = |key: &str| IdempotencyClaim {
            key: key.into(),
            fingerprint: format!("fp-{key}"),
        };
        let (a, b, c) = (
            OrderId::generate(),
            OrderId::generate(),
            OrderId::generate(),
        );
        let t0 = Instant::now();
        replays.remember(&claim("a"), a, t0);
        replays.remember(&claim("b"), b, t0 + Duration::from_secs(1));
        assert_eq!(replays.find("a", t0), Some(("fp-a".into(), a)));
        replays.remember(&claim("c"), c, t0 + Duration::from_secs(2));
        assert_eq!(replays.find("a", t0), None, "the oldest key made room");
        assert_eq!(replays.find("c", t0), Some(("fp-c".into(), c)));
        assert_eq!(
            replays.find("b", t0 + Duration::from_secs(1) + KEY_RETENTION),
            None,
            "expired"
        );
    }

    #[test]
    fn idle_clients_are_forgotten_when_there_are_many() {
        let limiter = RateLimiter::new(1000.0, 1);
        let t0 = Instant::now();
        for i in 0..MAX_CLIENTS {
            assert!(limiter.check(&format!("c{i}"), t0).is_ok());
        }
        // One second later every bucket is full again: all are pruned.
        assert!(limiter.check("new", t0 + Duration::from_secs(1)).is_ok());
        let buckets = limiter.buckets.lock().expect("lock");
        assert_eq!(buckets.map.len(), 1);
    }
}
