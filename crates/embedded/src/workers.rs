//! Fulfillment workers and the dead-letter recorder.
//!
//! A worker takes a batch from the orders queue and starts an attempt for
//! each message in one transaction ([`receive_and_begin`]), runs the
//! attempts, and finishes them all in a second one ([`finish_attempts`]).
//! An attempt whose outcome the backend knows at once (the simulated one,
//! with no delay) is finished in the first transaction.
//! What each step does to an order and its message is decided by the shared
//! [`Fulfiller`] (the same decisions as on AWS, where each runs through the
//! ports). The recorder watches the dead-letter queue and records each new
//! dead letter (failed-orders row and order `FAILED`) in the same
//! transaction that reads it.

use crate::db::{sql_err, Db, Tx};
use crate::queue::{
    change_visibility_in, dead_letter_in, dead_letters_after, delete_held_in, delete_in,
    mark_received_in, receivable_in, SqliteQueue, Visible,
};
use crate::store::{
    apply_transition_from, apply_transition_to, get_order, get_order_and_request,
    insert_failed_row, record_failure_in, write_steps,
};
use dofs_core::metric_names as names;
use dofs_core::ports::{DeadLetter, ErrorKind, PortError, Transition};
use dofs_core::service::{
    failure_for, AfterAttempt, Attempt, Begin, Fulfiller, Handled, OrderMessage, Settle,
};
use dofs_core::{Clock, Order, Outcome, Timestamp};
use futures_util::{stream, StreamExt};
use rusqlite::params;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tracing::Instrument;

/// Messages a worker takes per batch.
pub const BATCH: usize = 128;

/// How long a worker waits after a part batch before it takes the next.
/// It delays fulfillment by at most this much and bounds the workers'
/// transactions at a few hundred a second, whatever the intake rate.
pub const LINGER: Duration = Duration::from_millis(10);

/// One fulfillment worker: runs until `stop` turns true, finishing the batch
/// in hand. It takes up to `batch` messages at a time (at most [`BATCH`]),
/// runs their attempts at once through the fulfiller's backend, and
/// finishes them in as few transactions as their results arrive in.
pub async fn run_worker(
    fulfiller: Fulfiller,
    db: Db,
    queue: SqliteQueue,
    visibility: Duration,
    delay: Duration,
    batch: usize,
    mut stop: watch::Receiver<bool>,
) {
    let batch = batch.clamp(1, BATCH);
    let at_once = delay.is_zero();
    while !*stop.borrow() {
        let begun = match receive_and_begin(&db, &fulfiller, batch, visibility, at_once).await {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(error = %e, "receive failed; retrying");
                pause(&mut stop, Duration::from_millis(200)).await;
                continue;
            }
        };
        if begun.dead > 0 {
            crate::failpoint::hit(crate::failpoint::AFTER_DLQ_MOVE);
            queue.dead.notify_waiters();
        }
        if begun.received == 0 {
            tokio::select! {
                _ = queue.wait_ready(Duration::from_millis(50)) => {}
                _ = stop.changed() => {}
            }
            continue;
        }
        if !begun.finished.is_empty() {
            let (finished, spans): (Vec<_>, Vec<_>) = begun
                .finished
                .into_iter()
                .map(|(a, handled)| ((handled, a.order.created_at), attempt_span(&a)))
                .unzip();
            report_finished(&fulfiller, &queue, &finished, &spans);
        }
        crate::failpoint::hit(crate::failpoint::AFTER_RECEIVE);
        if begun.attempts.is_empty() {
            if begun.received < batch {
                pause(&mut stop, LINGER).await;
            }
            continue;
        }
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let backend = fulfiller.backend.clone();
        let mut results = stream::iter(begun.attempts)
            .map(|attempt| {
                let backend = backend.clone();
                let span = attempt_span(&attempt);
                async move {
                    let outcome = backend
                        .attempt(&attempt.order, attempt.number)
                        .instrument(span.clone())
                        .await;
                    (attempt, outcome, span)
                }
            })
            .buffer_unordered(batch)
            .ready_chunks(batch);
        while let Some(done) = results.next().await {
            finish_and_count(&db, &fulfiller, &queue, done).await;
        }
        if begun.received < batch {
            // A part batch: let more messages gather before the next one,
            // rather than spend a transaction (and its fsync) on each order.
            pause(&mut stop, LINGER).await;
        }
    }
}

/// The span of one attempt: every line logged while it runs, and the line
/// that says how it ended, name the order and the request that accepted it.
fn attempt_span(attempt: &Attempt) -> tracing::Span {
    let order = attempt.order.id;
    tracing::info_span!(
        "attempt",
        requestId = attempt.request.as_deref(),
        orderId = %order,
        executionId = %order,
        attempt = attempt.number,
    )
}

/// Finishes attempts whose outcomes are in, and counts them.
async fn finish_and_count(
    db: &Db,
    fulfiller: &Fulfiller,
    queue: &SqliteQueue,
    done: Vec<(Attempt, Outcome, tracing::Span)>,
) {
    let (done, spans): (Vec<_>, Vec<_>) = done
        .into_iter()
        .map(|(attempt, outcome, span)| ((attempt, outcome), span))
        .unzip();
    match finish_attempts(db, fulfiller, done).await {
        Ok(finished) => report_finished(fulfiller, queue, &finished, &spans),
        Err(err) => {
            tracing::warn!(error = %err, "could not finish a batch of attempts; its messages return after their timeout")
        }
    }
}

/// Counts and logs attempts whose finish has committed (each with its span,
/// and when its order was accepted), and wakes whoever their messages concern.
fn report_finished(
    fulfiller: &Fulfiller,
    queue: &SqliteQueue,
    finished: &[(Handled, Timestamp)],
    spans: &[tracing::Span],
) {
    let now = fulfiller.clock.now();
    let mut visible_now = false;
    for ((handled, accepted_at), span) in finished.iter().zip(spans) {
        record_attempt(handled, *accepted_at, now);
        visible_now |= matches!(
            handled,
            Handled::Superseded(_)
                | Handled::Failed {
                    delay: Duration::ZERO,
                    ..
                }
        );
        if let Some(id) = order_of(handled) {
            span.in_scope(|| {
                tracing::debug!(orderId = %id, executionId = %id, ?handled, "fulfillment attempt")
            });
        }
    }
    if visible_now {
        queue.ready.notify_waiters();
    }
    // A last failed attempt, or a refusal for good, moved its message to the
    // DLQ in the transaction that just committed.
    if finished.iter().any(|(handled, _)| {
        matches!(
            handled,
            Handled::DeadLettered { .. } | Handled::Rejected { .. }
        )
    }) {
        crate::failpoint::hit(crate::failpoint::AFTER_DLQ_MOVE);
    }
}

/// What [`receive_and_begin`] did.
#[derive(Debug, Default)]
pub struct Begun {
    /// Messages received.
    pub received: usize,
    /// Messages moved to the dead-letter queue instead (their receive limit reached).
    pub dead: usize,
    /// Attempts started: their orders are `PROCESSING`.
    pub attempts: Vec<Attempt>,
    /// Attempts begun and finished in this same transaction (the backend
    /// knew their outcomes at once), with what each did.
    pub finished: Vec<(Attempt, Handled)>,
    /// Messages with nothing to attempt (deleted): redeliveries of terminal
    /// orders, and bodies that name no order.
    pub skipped: Vec<Handled>,
}

/// Receives up to `max` messages and starts an attempt for each, in one
/// transaction: each order becomes `PROCESSING` with its next attempt
/// number, as [`Fulfiller::plan_begin`] says, or its message is deleted when
/// there is nothing to attempt. Receiving and beginning in one transaction,
/// a message's receive count and its order's attempt count move together
/// here (on AWS they need not: a throttled delivery is received, not run).
///
/// With `at_once`, an attempt whose outcome the backend knows without
/// waiting ([`dofs_core::Fulfillment::outcome_at_once`]) is also finished
/// here, as [`finish_attempts`] would finish it: begun and ended in one
/// commit, nothing of it is left for a crash to cut in two, and its order's
/// `PROCESSING` is seen only in its events.
pub async fn receive_and_begin(
    db: &Db,
    fulfiller: &Fulfiller,
    max: usize,
    visibility: Duration,
    at_once: bool,
) -> Result<Begun, PortError> {
    let f = fulfiller.clone();
    db.write_after(move |conn| {
        // Read in the writer, as the finish does: an attempt finished here
        // waits its backoff from now, not from when the job was queued.
        let now = f.clock.now();
        let hide_until = now.plus_millis(crate::queue::ms(visibility));
        let (receivable, dead) = receivable_in(conn, now, max, f.max_receive_count)?;
        let mut begun = Begun {
            received: receivable.len(),
            dead,
            ..Begun::default()
        };
        for visible in receivable {
            let Some(OrderMessage { order_id }) = OrderMessage::parse(&visible.body) else {
                let msg = mark_received_in(conn, visible, hide_until, now)?;
                delete_in(conn, &msg.receipt)?;
                begun.skipped.push(Handled::Discarded);
                continue;
            };
            let found = get_order_and_request(conn, order_id)?;
            let plan = f.plan_begin(order_id, found.as_ref().map(|(o, _)| o));
            if let (true, Begin::Start { number, change }, Some(found)) = (at_once, &plan, &found) {
                let begin = (*number, change);
                if let Some(done) = begin_and_finish_in(conn, &f, &visible, found, begin, now)? {
                    begun.finished.push(done);
                    continue;
                }
            }
            let msg = mark_received_in(conn, visible, hide_until, now)?;
            let (number, change) = match plan {
                Begin::Start { number, change } => (number, change),
                Begin::Skip(handled) => {
                    delete_in(conn, &msg.receipt)?;
                    begun.skipped.push(handled);
                    continue;
                }
                Begin::Exhausted(failed) => {
                    // Here only if the receive limit is above the attempt
                    // limit: the queue's own limit moves such a message first.
                    if record_failure_in(conn, &failed)? {
                        dead_letter_in(conn, &msg.receipt, now, true)?;
                        begun.dead += 1;
                        begun.skipped.push(Handled::DeadLettered {
                            order: order_id,
                            attempts: failed.attempts,
                        });
                    } else {
                        delete_in(conn, &msg.receipt)?;
                        begun.skipped.push(Handled::AlreadyTerminal(order_id));
                    }
                    continue;
                }
            };
            // The order read above, in this transaction: not read again. A
            // missing order was skipped above (plan_begin discards it).
            let Some((current, request)) = found else {
                delete_in(conn, &msg.receipt)?;
                begun.skipped.push(Handled::Discarded);
                continue;
            };
            match apply_transition_to(conn, &current, &change) {
                Ok(order) => begun.attempts.push(Attempt {
                    order,
                    number,
                    receipt: msg.receipt,
                    request,
                }),
                Err(e) if e.kind == ErrorKind::Conflict => {
                    // Terminal already: a redelivery, or a dead letter recorded meanwhile.
                    delete_in(conn, &msg.receipt)?;
                    begun.skipped.push(Handled::AlreadyTerminal(order_id));
                }
                Err(e) => return Err(e),
            }
        }
        Ok(begun)
    })
    .await
}

/// Begins and finishes, inside the writer's transaction, attempt `number`
/// at `current` (as this transaction read it, with the request that
/// accepted it; `change` the attempt's begin), for the
/// message `visible` (not yet marked received), when the backend knows the
/// outcome at once: the order's row is written once, with both changes'
/// events, and the message is deleted, or received and hidden for the
/// backoff, or received and dead-lettered, as [`finish_attempts`] would
/// have left it. `None`, having changed nothing, when the backend must be
/// called, or when either change does not apply to the order (the
/// two-transaction path then decides).
fn begin_and_finish_in(
    conn: &Tx<'_>,
    f: &Fulfiller,
    visible: &Visible,
    (current, request): &(Order, Option<String>),
    (number, change): (u32, &Transition),
    now: Timestamp,
) -> Result<Option<(Attempt, Handled)>, PortError> {
    let Ok(order) = change.apply(current) else {
        return Ok(None);
    };
    let Some(outcome) = f.backend.outcome_at_once(&order, number) else {
        return Ok(None);
    };
    let attempt = Attempt {
        order,
        number,
        receipt: visible.next_receipt(),
        request: request.clone(),
    };
    let finish = f.decide(&attempt, &outcome);
    let Ok(ended) = finish.change.apply(&attempt.order) else {
        return Ok(None);
    };
    write_steps(conn, current, &[&attempt.order, &ended])?;
    if let Some(failed) = &finish.failed {
        insert_failed_row(conn, failed)?;
    }
    match finish.message {
        // The message as the queue holds it: this attempt never marked it received.
        AfterAttempt::Delete => delete_held_in(conn, &visible.id, visible.receive_count)?,
        AfterAttempt::Hide(delay) => {
            let until = now.plus_millis(crate::queue::ms(delay));
            mark_received_in(conn, visible.clone(), until, now)?;
        }
        AfterAttempt::DeadLetter => {
            mark_received_in(conn, visible.clone(), now, now)?;
            dead_letter_in(conn, &attempt.receipt, now, true)?;
        }
    }
    Ok(Some((attempt, finish.handled)))
}

/// Finishes attempts (each with its backend's outcome) in one transaction,
/// as [`Fulfiller::decide`] says: the order's status change, then its
/// message deleted, hidden for the backoff or dead-lettered (a rejected
/// order, recorded in failed-orders at once). When the order
/// changed under an attempt, the message is kept or deleted as [`Settle`]
/// says. Returns what each attempt did and when its order was accepted.
pub async fn finish_attempts(
    db: &Db,
    fulfiller: &Fulfiller,
    attempts: Vec<(Attempt, Outcome)>,
) -> Result<Vec<(Handled, Timestamp)>, PortError> {
    let f = fulfiller.clone();
    db.write_after(move |conn| {
        let now = f.clock.now();
        let mut out = Vec::with_capacity(attempts.len());
        for (attempt, outcome) in attempts {
            let accepted_at = attempt.order.created_at;
            out.push((finish_in(conn, &f, &attempt, &outcome, now)?, accepted_at));
        }
        Ok(out)
    })
    .await
}

fn finish_in(
    conn: &Tx<'_>,
    f: &Fulfiller,
    attempt: &Attempt,
    outcome: &Outcome,
    now: Timestamp,
) -> Result<Handled, PortError> {
    let id = attempt.order.id;
    let finish = f.decide(attempt, outcome);
    // A refusal for good is recorded as a dead letter is: the order's change
    // (conditional on this attempt being its latest) and its failed-orders row.
    let applied = apply_transition_from(conn, &attempt.order, &finish.change).and_then(|_| {
        match &finish.failed {
            Some(failed) => insert_failed_row(conn, failed),
            None => Ok(()),
        }
    });
    match applied {
        Ok(()) => {}
        Err(e) if e.kind == ErrorKind::Conflict => {
            let status = get_order(conn, id)?.map(|o| o.status);
            return match Settle::for_status(status) {
                Settle::KeepVisible => {
                    ignore_stale(change_visibility_in(conn, &attempt.receipt, now))?;
                    Ok(Handled::Superseded(id))
                }
                Settle::Delete => {
                    ignore_stale(delete_in(conn, &attempt.receipt))?;
                    Ok(Handled::AlreadyTerminal(id))
                }
            };
        }
        Err(e) => return Err(e),
    }
    match finish.message {
        AfterAttempt::Delete => ignore_stale(delete_in(conn, &attempt.receipt))?,
        // The order failed for good: its message goes to the DLQ even if a
        // newer receive holds it (that attempt's end then changes nothing).
        AfterAttempt::DeadLetter => {
            ignore_stale(dead_letter_in(conn, &attempt.receipt, now, true))?
        }
        AfterAttempt::Hide(delay) => ignore_stale(change_visibility_in(
            conn,
            &attempt.receipt,
            now.plus_millis(crate::queue::ms(delay)),
        ))?,
    }
    Ok(finish.handled)
}

/// The order an attempt was about.
fn order_of(handled: &Handled) -> Option<dofs_core::OrderId> {
    match handled {
        Handled::Fulfilled(id) | Handled::AlreadyTerminal(id) | Handled::Superseded(id) => {
            Some(*id)
        }
        Handled::Failed { order, .. }
        | Handled::Rejected { order, .. }
        | Handled::DeadLettered { order, .. } => Some(*order),
        Handled::Claimed(id) => Some(*id),
        Handled::Discarded => None,
    }
}

/// A stale receipt (the lease ran out and the message was received again,
/// or it is gone) is not an error here: the newer receive decides.
fn ignore_stale(r: Result<(), PortError>) -> Result<(), PortError> {
    match r {
        Err(e) if matches!(e.kind, ErrorKind::Conflict | ErrorKind::NotFound) => Ok(()),
        other => other,
    }
}

/// Counts a finished attempt through the `metrics` facade (a no-op until
/// `dofs serve` installs its recorder): `dofs_fulfillment_attempts_total` by
/// outcome, and the accept-to-`FULFILLED` time.
fn record_attempt(handled: &Handled, accepted_at: Timestamp, now: Timestamp) {
    match handled {
        Handled::Fulfilled(_) => {
            metrics::counter!(names::FULFILLMENT_ATTEMPTS, "outcome" => "success").increment(1);
            record_terminal("FULFILLED", accepted_at, now);
        }
        Handled::Failed { .. } => {
            metrics::counter!(names::FULFILLMENT_ATTEMPTS, "outcome" => "failure").increment(1);
        }
        Handled::Rejected { .. } | Handled::DeadLettered { .. } => {
            metrics::counter!(names::FULFILLMENT_ATTEMPTS, "outcome" => "failure").increment(1);
            record_terminal("FAILED", accepted_at, now);
        }
        Handled::AlreadyTerminal(_)
        | Handled::Superseded(_)
        | Handled::Claimed(_)
        | Handled::Discarded => {}
    }
}

/// Records `dofs_order_time_to_terminal_seconds{status}` for an order accepted at `accepted_at`.
pub(crate) fn record_terminal(status: &'static str, accepted_at: Timestamp, now: Timestamp) {
    let seconds = (now.millis() - accepted_at.millis()).max(0) as f64 / 1000.0;
    metrics::histogram!(names::TIME_TO_TERMINAL, "status" => status).record(seconds);
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
/// It looks when the queue has moved messages to the DLQ, and every 100 ms.
pub async fn run_dead_letter_recorder(
    db: Db,
    queue: SqliteQueue,
    clock: Arc<dyn Clock>,
    events_max_age: Duration,
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
            let cutoff = now.plus_millis(-crate::queue::ms(events_max_age));
            loop {
                let pruned = db
                    .write(move |conn| crate::events::prune_in(conn, cutoff, EVENT_PRUNE_BATCH))
                    .await;
                match pruned {
                    Ok(n) if n == EVENT_PRUNE_BATCH => continue,
                    Ok(_) => break,
                    Err(e) => {
                        tracing::warn!(error = %e, "could not drop expired order events");
                        break;
                    }
                }
            }
        }
        tokio::select! {
            _ = queue.wait_dead(Duration::from_millis(100)) => {}
            _ = stop.changed() => {}
        }
    }
}

/// How many expired order events one transaction drops at most.
const EVENT_PRUNE_BATCH: usize = 5000;

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

/// Records one dead letter inside the writer's transaction: its order
/// `FAILED` with a failed-orders row, unless it is terminal already. Returns
/// when the order was accepted, if it was failed now.
pub(crate) fn record_dead_letter_in(
    conn: &Tx<'_>,
    dead: &DeadLetter,
    now: Timestamp,
) -> Result<Option<Timestamp>, PortError> {
    let Some(OrderMessage { order_id }) = OrderMessage::parse(&dead.body) else {
        return Ok(None);
    };
    let Some(order) = get_order(conn, order_id)? else {
        return Ok(None);
    };
    match failure_for(&order, dead, now) {
        Some(failed) if record_failure_in(conn, &failed)? => Ok(Some(order.created_at)),
        _ => Ok(None),
    }
}

/// One pass of the dead-letter recorder: reads the dead letters after
/// sequence number `after` and, in the same transaction, records each one
/// whose order is not terminal (failed-orders row, order `FAILED`).
pub async fn record_dead_letters(
    db: &Db,
    after: i64,
    now: Timestamp,
) -> Result<DeadLetterPass, PortError> {
    // Most passes find nothing: a read says so without taking the writer.
    let any = db
        .read(move |conn| dead_letters_after(conn, after, 1))
        .await?;
    if any.is_empty() {
        return Ok(DeadLetterPass {
            last: after,
            read: 0,
            failed_accepted_at: Vec::new(),
        });
    }
    db.write(move |conn| {
        let rows = dead_letters_after(conn, after, DEAD_LETTER_PASS)?;
        let mut last = after;
        let mut failed_accepted_at = Vec::new();
        for (seq, dead) in &rows {
            last = *seq;
            if let Some(accepted_at) = record_dead_letter_in(conn, dead, now)? {
                failed_accepted_at.push(accepted_at);
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
