//! Fulfillment workers and the dead-letter recorder.
//!
//! Each worker receives a batch from the orders queue and runs one attempt per
//! message through the shared [`Fulfiller`] use case. The recorder watches the
//! dead-letter queue and records each new dead letter (failed-orders row and
//! order `FAILED`) in the same transaction that reads it.

use crate::db::{sql_err, Db};
use crate::queue::{dead_letters_after, SqliteQueue};
use crate::store::{get_order, record_failure_in};
use dofs_core::ports::{PortError, Queue};
use dofs_core::service::{failure_for, Fulfiller, Handled, OrderMessage};
use dofs_core::{Clock, Timestamp};
use rusqlite::params;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Messages a worker takes per receive.
pub const BATCH: usize = 32;

/// A small, fast, non-cryptographic random source for unseeded outcomes.
struct Entropy(u64);

impl Entropy {
    fn new(salt: u64) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        Entropy(nanos ^ salt.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// One fulfillment worker: runs until `stop` turns true, finishing the batch in hand.
pub async fn run_worker(
    index: usize,
    fulfiller: Fulfiller,
    queue: SqliteQueue,
    visibility: Duration,
    delay: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut entropy = Entropy::new(index as u64 + 1);
    while !*stop.borrow() {
        let batch = match queue.receive(BATCH, visibility).await {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(error = %e, "receive failed; retrying");
                pause(&mut stop, Duration::from_millis(200)).await;
                continue;
            }
        };
        if !batch.is_empty() {
            crate::failpoint::hit(crate::failpoint::AFTER_RECEIVE);
        }
        if batch.is_empty() {
            tokio::select! {
                _ = queue.wait_ready(Duration::from_millis(50)) => {}
                _ = stop.changed() => {}
            }
            continue;
        }
        let mut attempts = tokio::task::JoinSet::new();
        for msg in batch {
            let f = fulfiller.clone();
            let e = entropy.next();
            attempts.spawn(async move {
                let attempt = match f.begin(&msg).await {
                    Ok(Ok(attempt)) => attempt,
                    Ok(Err(_)) => return,
                    Err(err) => {
                        tracing::warn!(error = %err, message = %msg.id, "could not start an attempt; the message returns after its timeout");
                        return;
                    }
                };
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                let order_id = attempt.order.id;
                let accepted_at = attempt.order.created_at;
                match f.finish(attempt, e).await {
                    Ok(handled) => {
                        record_attempt(&handled, accepted_at, f.clock.now());
                        tracing::debug!(orderId = %order_id, executionId = %order_id, ?handled, "fulfillment attempt");
                    }
                    Err(err) => tracing::warn!(orderId = %order_id, error = %err, "could not finish an attempt; the message returns after its timeout"),
                }
            });
        }
        while attempts.join_next().await.is_some() {}
    }
}

/// Counts a finished attempt through the `metrics` facade (a no-op until
/// `dofs serve` installs its recorder): `dofs_fulfillment_attempts_total` by
/// outcome, and the accept-to-`FULFILLED` time.
fn record_attempt(handled: &Handled, accepted_at: Timestamp, now: Timestamp) {
    match handled {
        Handled::Fulfilled(_) => {
            metrics::counter!("dofs_fulfillment_attempts_total", "outcome" => "success")
                .increment(1);
            record_terminal("FULFILLED", accepted_at, now);
        }
        Handled::Failed { .. } => {
            metrics::counter!("dofs_fulfillment_attempts_total", "outcome" => "failure")
                .increment(1);
        }
        Handled::AlreadyTerminal(_) | Handled::Superseded(_) | Handled::Discarded => {}
    }
}

/// Records `dofs_order_time_to_terminal_seconds{status}` for an order accepted at `accepted_at`.
pub(crate) fn record_terminal(status: &'static str, accepted_at: Timestamp, now: Timestamp) {
    let seconds = (now.millis() - accepted_at.millis()).max(0) as f64 / 1000.0;
    metrics::histogram!("dofs_order_time_to_terminal_seconds", "status" => status).record(seconds);
}

async fn pause(stop: &mut watch::Receiver<bool>, d: Duration) {
    tokio::select! {
        _ = tokio::time::sleep(d) => {}
        _ = stop.changed() => {}
    }
}

/// Records new dead letters until `stop` turns true. Each pass reads the
/// dead letters after the last one seen and records them in one transaction,
/// so a dead letter redriven or purged meanwhile is never recorded late.
pub async fn run_dead_letter_recorder(
    db: Db,
    queue: SqliteQueue,
    clock: Arc<dyn Clock>,
    mut stop: watch::Receiver<bool>,
) {
    let mut after: i64 = 0;
    let mut last_sweep = clock.now();
    while !*stop.borrow() {
        let now = clock.now();
        let pass = record_dead_letters(&db, after, now).await;
        match pass {
            Ok(pass) => {
                for accepted_at in pass.failed_accepted_at {
                    record_terminal("FAILED", accepted_at, now);
                }
                after = pass.last;
                if pass.read == DEAD_LETTER_PASS {
                    continue;
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not record dead letters; retrying"),
        }
        if now.millis() - last_sweep.millis() > 60_000 {
            last_sweep = now;
            let cutoff = now.millis() - crate::submit::IDEMPOTENCY_WINDOW_MS;
            let swept = db
                .write(move |conn| {
                    conn.execute(
                        "DELETE FROM idempotency_keys WHERE created_at < ?1",
                        params![cutoff],
                    )
                    .map_err(sql_err)
                })
                .await;
            if let Err(e) = swept {
                tracing::warn!(error = %e, "could not sweep expired idempotency keys");
            }
        }
        tokio::select! {
            _ = queue.wait_ready(Duration::from_millis(100)) => {}
            _ = stop.changed() => {}
        }
    }
}

/// How many dead letters one recorder pass reads at most.
pub const DEAD_LETTER_PASS: usize = 500;

/// What one pass of the dead-letter recorder did.
#[derive(Clone, Debug, PartialEq)]
pub struct DeadLetterPass {
    /// The sequence number of the last dead letter read (pass it as `after` next time).
    pub last: i64,
    /// Dead letters read.
    pub read: usize,
    /// When each order newly recorded as `FAILED` was accepted.
    pub failed_accepted_at: Vec<Timestamp>,
}

/// One pass of the dead-letter recorder: reads the dead letters after
/// sequence number `after` and, in the same transaction, records each one
/// whose order is not terminal (failed-orders row, order `FAILED`).
pub async fn record_dead_letters(
    db: &Db,
    after: i64,
    now: Timestamp,
) -> Result<DeadLetterPass, PortError> {
    db.write(move |conn| {
        let rows = dead_letters_after(conn, after, DEAD_LETTER_PASS)?;
        let mut last = after;
        let mut failed_accepted_at = Vec::new();
        for (seq, dead) in &rows {
            last = *seq;
            let Some(OrderMessage { order_id }) = OrderMessage::parse(&dead.body) else {
                continue;
            };
            let Some(order) = get_order(conn, order_id)? else {
                continue;
            };
            if let Some(failed) = failure_for(&order, dead, now) {
                if record_failure_in(conn, &failed)? {
                    failed_accepted_at.push(order.created_at);
                }
            }
        }
        Ok(DeadLetterPass {
            last,
            read: rows.len(),
            failed_accepted_at,
        })
    })
    .await
}
