//! What a fulfillment attempt does, and how it ends.
//!
//! A [`Fulfillment`] backend runs one attempt and says how it went
//! ([`Outcome`]); the queue, retries, backoff and dead-letter queue around it
//! are the same for every backend ([`crate::service::Fulfiller`]).
//!
//! [`Simulated`] (the default) succeeds with probability `success_rate`.
//! With a seed, the outcome of attempt `n` of order `X` is a pure function
//! of `(seed, X, n)`, so a run can be reproduced exactly. The `http` backend,
//! which calls the user's own service, lives in the `dofs-fulfillment` crate.

use crate::{Order, OrderId};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// How one fulfillment attempt ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Done; with the service's name for the fulfillment, if it gave one.
    Fulfilled { reference: Option<String> },
    /// This attempt failed and another may succeed: retried after the
    /// backoff, lengthened to `retry_after` when the service asked for more.
    Failed {
        /// What went wrong (`HTTP 503`, `timed out after 10000 ms`), if known.
        detail: Option<String>,
        retry_after: Option<Duration>,
    },
    /// The service refused the order for good: no further attempt; the order
    /// fails at once with this reason.
    Rejected { reason: String },
}

/// Runs fulfillment attempts: the seed's coin flip, or a call to the user's service.
#[async_trait::async_trait]
pub trait Fulfillment: Send + Sync {
    /// Attempt number `attempt` (1-based) at `order`. Never panics and never
    /// errors: whatever goes wrong is an [`Outcome`].
    async fn attempt(&self, order: &Order, attempt: u32) -> Outcome;

    /// How many attempts may run at once; the workers keep at most this many
    /// in flight.
    fn concurrency(&self) -> usize;

    /// The outcome of attempt `attempt` at `order` when the backend knows it
    /// without waiting for anything (no I/O, no delay), as [`Simulated`]
    /// does; `None` (the default) when the attempt must be run with
    /// [`Fulfillment::attempt`]. With no simulated delay
    /// (`fulfillment.delay_ms` 0), an attempt answered here begins and ends
    /// in one transaction of the embedded workers.
    fn outcome_at_once(&self, _order: &Order, _attempt: u32) -> Option<Outcome> {
        None
    }
}

/// The simulated backend: succeeds with the policy's probability.
#[derive(Debug)]
pub struct Simulated {
    pub policy: FulfillmentPolicy,
    draws: AtomicU64,
}

impl Simulated {
    /// Unseeded draws start from `salt` (for example the time).
    pub fn new(policy: FulfillmentPolicy, salt: u64) -> Simulated {
        Simulated {
            policy,
            draws: AtomicU64::new(salt),
        }
    }

    /// The outcome of attempt `attempt` at `order`, without waiting.
    pub fn outcome(&self, order: &OrderId, attempt: u32) -> Outcome {
        let entropy = self
            .draws
            .fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed);
        if self.policy.attempt_succeeds(order, attempt, entropy) {
            Outcome::Fulfilled { reference: None }
        } else {
            Outcome::Failed {
                detail: None,
                retry_after: None,
            }
        }
    }
}

#[async_trait::async_trait]
impl Fulfillment for Simulated {
    async fn attempt(&self, order: &Order, attempt: u32) -> Outcome {
        self.outcome(&order.id, attempt)
    }

    /// Simulated attempts cost nothing: a whole batch runs at once.
    fn concurrency(&self) -> usize {
        usize::MAX
    }

    fn outcome_at_once(&self, order: &Order, attempt: u32) -> Option<Outcome> {
        Some(self.outcome(&order.id, attempt))
    }
}

/// The success rate and optional seed of fulfillment attempts.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FulfillmentPolicy {
    /// Probability of success per attempt, from 0 to 1.
    pub success_rate: f64,
    /// When set, outcomes are reproducible.
    pub seed: Option<u64>,
}

impl Default for FulfillmentPolicy {
    fn default() -> Self {
        FulfillmentPolicy {
            success_rate: 0.7,
            seed: None,
        }
    }
}

impl FulfillmentPolicy {
    /// Whether attempt `attempt` (1-based) of `order` succeeds. `entropy` is a
    /// random number from the caller, used only when no seed is set.
    pub fn attempt_succeeds(&self, order: &OrderId, attempt: u32, entropy: u64) -> bool {
        let draw = match self.seed {
            Some(seed) => mix(seed, order, attempt),
            None => splitmix64(entropy),
        };
        unit_interval(draw) < self.success_rate
    }
}

/// A stable 64-bit hash of (seed, order id, attempt): FNV-1a over the bytes,
/// finished with SplitMix64 so nearby inputs give unrelated outputs.
fn mix(seed: u64, order: &OrderId, attempt: u32) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let text = order.to_string();
    let bytes = seed
        .to_le_bytes()
        .into_iter()
        .chain(text.bytes())
        .chain(attempt.to_le_bytes());
    for b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    splitmix64(h)
}

fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The top 53 bits as a number in [0, 1).
fn unit_interval(x: u64) -> f64 {
    (x >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_outcomes_are_a_pure_function_of_seed_order_and_attempt() {
        let p = FulfillmentPolicy {
            success_rate: 0.7,
            seed: Some(42),
        };
        let id = OrderId::generate();
        for attempt in 1..=3 {
            let first = p.attempt_succeeds(&id, attempt, 1);
            assert_eq!(first, p.attempt_succeeds(&id, attempt, 999));
        }
    }

    #[test]
    fn rates_of_zero_and_one_always_fail_and_always_succeed() {
        let id = OrderId::generate();
        let never = FulfillmentPolicy {
            success_rate: 0.0,
            seed: None,
        };
        let always = FulfillmentPolicy {
            success_rate: 1.0,
            seed: Some(7),
        };
        for n in 0..1000u64 {
            assert!(!never.attempt_succeeds(&id, 1, n));
            assert!(always.attempt_succeeds(&id, (n % 5) as u32, n));
        }
    }

    #[test]
    fn the_seeded_success_share_is_close_to_the_rate() {
        let p = FulfillmentPolicy {
            success_rate: 0.7,
            seed: Some(1),
        };
        let n = 20_000;
        let ok = (0..n)
            .filter(|_| p.attempt_succeeds(&OrderId::generate(), 1, 0))
            .count();
        let share = ok as f64 / n as f64;
        // 0.7 ± 5 standard deviations (sd ≈ 0.0032).
        assert!((0.684..0.716).contains(&share), "share {share}");
    }
}
