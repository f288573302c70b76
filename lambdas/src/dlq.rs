//! `dlq_processor`: runs on a schedule (EventBridge, every minute), reads the
//! DLQ without deleting anything, and records every dead letter: a row in
//! failed_orders and its order `FAILED`, once (the shared
//! [`record_dead_letter`] use case is idempotent). Dead letters stay in the
//! DLQ for an operator's redrive or purge (CONTRACT section 2). An order
//! whose last attempt crashed (still `PROCESSING`) is failed the same way.
//!
//! The same scheduled run then sweeps the order events not yet published to
//! the EventBridge bus ([`publish_events`]; see `dofs_aws::events::publish`).
//!
//! Each dead letter is recorded while this run holds it (received with a
//! visibility timeout), and released afterwards, ten at a time: an
//! operator's retry, which holds the order's dead letters while it puts the
//! order back to `PENDING`, can then never be undone by a stale view of the
//! DLQ.

use dofs_aws::queue::SQS_BATCH_MAX;
use dofs_aws::{EventBridgePublisher, SqsQueue};
use dofs_core::ports::{Clock, OrderStore, PortError};
use dofs_core::service::record_dead_letter;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// The most dead letters looked at per run.
pub const MAX_PER_RUN: usize = 1000;

/// What a run keeps of its time to release what it leased and answer.
pub const RELEASE_MARGIN: Duration = Duration::from_secs(5);

/// When a run that must end by the invocation's deadline (`deadline_ms`, ms
/// since the epoch, as the Lambda context gives it) stops recording.
pub fn stop_at(deadline_ms: u64, now_ms: u64) -> Instant {
    let left = Duration::from_millis(deadline_ms.saturating_sub(now_ms));
    Instant::now() + left.saturating_sub(RELEASE_MARGIN)
}

/// One pass over the DLQ; answers how many dead letters it saw and recorded.
pub async fn process_dead_letters(
    queue: &SqsQueue,
    store: &dyn OrderStore,
    clock: &dyn Clock,
) -> Result<Value, PortError> {
    process_dead_letters_until(queue, store, clock, None).await
}

/// [`process_dead_letters`], recording only until `stop` (the invocation's
/// deadline less [`RELEASE_MARGIN`]): what is left is released for the next
/// run instead of the function being killed midway (an EventBridge run that
/// times out is not retried; the next one, a minute later, goes on).
pub async fn process_dead_letters_until(
    queue: &SqsQueue,
    store: &dyn OrderStore,
    clock: &dyn Clock,
    stop: Option<Instant>,
) -> Result<Value, PortError> {
    let leased = queue
        .lease_dead_letters(MAX_PER_RUN, Duration::from_secs(60))
        .await?;
    let mut recorded = 0;
    let mut errors = 0;
    let mut deferred = 0;
    // Released a batch at a time as they are recorded, so that an operator's
    // redrive or purge meanwhile waits for one batch, not for the whole run.
    for chunk in leased.chunks(SQS_BATCH_MAX) {
        for dead in chunk.iter().map(|l| &l.letter) {
            if stop.is_some_and(|s| Instant::now() >= s) {
                deferred += 1;
                continue;
            }
            match record_dead_letter(store, clock, dead).await {
                Ok(true) => recorded += 1,
                Ok(false) => {}
                Err(e) => {
                    errors += 1;
                    tracing::warn!(message = %dead.id, error = %e, "could not record a dead letter; the next run retries");
                }
            }
        }
        queue.release_dead_letters(chunk).await?;
    }
    tracing::info!(
        seen = leased.len(),
        recorded,
        errors,
        deferred,
        "dead letters processed"
    );
    Ok(
        json!({ "seen": leased.len(), "recorded": recorded, "errors": errors, "deferred": deferred }),
    )
}

/// The most events published per run; the next run goes on.
pub const MAX_EVENTS_PER_RUN: usize = 10_000;

/// Publishes the unpublished order events until `stop`; answers how many went.
pub async fn publish_events(
    publisher: &EventBridgePublisher,
    stop: Instant,
) -> Result<Value, PortError> {
    let swept = publisher.sweep(MAX_EVENTS_PER_RUN, Some(stop)).await?;
    tracing::info!(
        published = swept.published,
        failed = swept.failed,
        "events published"
    );
    Ok(json!({ "published": swept.published, "failed": swept.failed }))
}
