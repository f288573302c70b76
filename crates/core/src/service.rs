//! The use cases both shapes share: one fulfillment attempt for one queue
//! message, and recording a dead letter. They drive the ports only, and are
//! safe to repeat: every status change is conditional, so a redelivered
//! message never fulfills twice and never moves a terminal order.

use crate::fulfillment::{Fulfillment, Outcome};
use crate::ports::{DeadLetter, ErrorKind, OrderStore, PortError, Queue, Received, Transition};
use crate::{Clock, FailedOrder, Order, OrderId, OrderStatus, Timestamp};
use std::sync::Arc;
use std::time::Duration;

/// The body of an orders-queue message.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OrderMessage {
    pub order_id: OrderId,
}

/// What [`OrderMessage::to_body`] writes before and after the order id.
const BODY_BEFORE_ID: &str = r#"{"orderId":""#;
const BODY_AFTER_ID: &str = r#""}"#;

impl OrderMessage {
    /// The JSON body.
    pub fn to_body(&self) -> String {
        [BODY_BEFORE_ID, self.order_id.text().as_str(), BODY_AFTER_ID].concat()
    }

    /// Parses a body; `None` when it is not an order message. A body as
    /// [`OrderMessage::to_body`] writes it (every body DOFS sends) is read
    /// without the JSON parser; any other is parsed as JSON.
    pub fn parse(body: &str) -> Option<OrderMessage> {
        let written = body
            .strip_prefix(BODY_BEFORE_ID)
            .and_then(|rest| rest.strip_suffix(BODY_AFTER_ID))
            .and_then(|id| OrderId::parse(id).ok());
        match written {
            Some(order_id) => Some(OrderMessage { order_id }),
            None => serde_json::from_str(body).ok(),
        }
    }
}

/// Exponential backoff between attempts: `base × 2^(attempt − 1)`, at most `max`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    pub base: Duration,
    pub max: Duration,
}

impl Backoff {
    /// The delay after failed attempt `attempt` (1-based).
    pub fn after(&self, attempt: u32) -> Duration {
        let factor = 1u32
            .checked_shl(attempt.saturating_sub(1))
            .unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.max)
    }
}

/// What one message's handling did.
#[derive(Clone, Debug, PartialEq)]
pub enum Handled {
    /// The order is now `FULFILLED` and the message deleted.
    Fulfilled(OrderId),
    /// The attempt failed; the message returns after the delay.
    Failed {
        order: OrderId,
        attempt: u32,
        delay: Duration,
    },
    /// The fulfillment service refused the order for good: it is `FAILED`
    /// and recorded, its message in the dead-letter queue.
    Rejected { order: OrderId, attempt: u32 },
    /// The order was already terminal (a redelivery); the message was deleted.
    AlreadyTerminal(OrderId),
    /// Another attempt at the same order (a redelivery that overtook this
    /// one) changed it meanwhile and it is not terminal: the message was kept
    /// and made visible again, so the order still gets its next attempt.
    Superseded(OrderId),
    /// The message names no order that exists; it was deleted.
    Discarded,
    /// The order had its last attempt: it is `FAILED` and recorded in
    /// failed-orders, and its message moved to the dead-letter queue. Either
    /// this attempt was the last and failed, or the last one began earlier
    /// and never finished (its worker stopped or timed out).
    DeadLettered { order: OrderId, attempts: u32 },
    /// Another delivery of the same message claimed the order's next attempt
    /// first (SQS delivers at least once): this delivery starts nothing, and
    /// its message is left to come back after its visibility timeout.
    Claimed(OrderId),
}

/// An attempt under way: the order is `PROCESSING`.
#[derive(Clone, Debug)]
pub struct Attempt {
    pub order: Order,
    pub number: u32,
    /// The receipt of the message that started it.
    pub receipt: String,
    /// The id of the request that accepted the order, where the shape keeps
    /// it (see [`crate::ports::WorkflowStarter::start`]): logs of the attempt
    /// name it.
    pub request: Option<String>,
}

/// How an attempt ends, decided before anything is written: the order's
/// status change, and what becomes of the message if that change applies.
#[derive(Clone, Debug, PartialEq)]
pub struct Finish {
    pub change: Transition,
    pub message: AfterAttempt,
    /// The failed-orders row, when the attempt fails the order at once
    /// (recorded instead of `change`, as a dead letter is).
    pub failed: Option<FailedOrder>,
    /// What was handled, once the change and the message's fate are written.
    pub handled: Handled,
}

/// What becomes of an attempt's message once the order's change applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AfterAttempt {
    /// Fulfilled: the message is deleted.
    Delete,
    /// Failed: the message is hidden for this long, then delivered again
    /// for the next attempt.
    Hide(Duration),
    /// The last attempt failed, or the order was rejected for good: the
    /// message moves to the dead-letter queue now.
    DeadLetter,
}

/// How a received message's attempt begins, decided from its stored order.
#[derive(Clone, Debug, PartialEq)]
pub enum Begin {
    /// Claim attempt `number`, the order's attempt count plus one: `change`
    /// makes the order `PROCESSING` with that count, and applies only while
    /// the count is still `number − 1`, so two deliveries of one message
    /// never claim the same attempt.
    Start { number: u32, change: Transition },
    /// Nothing to attempt (the order is terminal, or there is none): the
    /// message is deleted.
    Skip(Handled),
    /// The order has had its last attempt (it began and never finished): the
    /// failure is recorded and the message moves to the dead-letter queue.
    Exhausted(FailedOrder),
}

/// The longest a service's `Retry-After` may hold back the next attempt.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(15 * 60);

/// What to do with a message whose order changed under an attempt (the
/// order's status change found it no longer `PROCESSING`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Settle {
    /// The order is not terminal (a stale attempt put it back): the message
    /// is made visible again, so the order still gets its next attempt.
    KeepVisible,
    /// The order is terminal or gone: the message is deleted.
    Delete,
}

impl Settle {
    /// The decision for an order now in `status` (`None`: no such order).
    pub fn for_status(status: Option<OrderStatus>) -> Settle {
        match status {
            Some(s) if !s.is_terminal() => Settle::KeepVisible,
            _ => Settle::Delete,
        }
    }
}

/// Runs fulfillment attempts for orders-queue messages.
#[derive(Clone)]
pub struct Fulfiller {
    pub store: Arc<dyn OrderStore>,
    pub queue: Arc<dyn Queue>,
    pub clock: Arc<dyn Clock>,
    /// What an attempt does.
    pub backend: Arc<dyn Fulfillment>,
    /// The attempt limit (`queue.max_receive_count`): the attempt with this
    /// number is the last. Attempts are counted on the order (attempts that
    /// ran), not by the queue's receive count, which also counts deliveries
    /// that never reached a worker (a throttled Lambda's).
    pub max_receive_count: u32,
    pub backoff: Backoff,
}

impl Fulfiller {
    /// Starts an attempt: claims the order's next attempt (see
    /// [`Fulfiller::plan_begin`]) and marks it `PROCESSING`. Returns
    /// `Err(handled)` when there is nothing to attempt: the message was
    /// deleted, dead-lettered, or (claimed by another delivery) left alone.
    pub async fn begin(&self, msg: &Received) -> Result<Result<Attempt, Handled>, PortError> {
        let Some(OrderMessage { order_id }) = OrderMessage::parse(&msg.body) else {
            self.delete_quietly(&msg.receipt).await?;
            return Ok(Err(Handled::Discarded));
        };
        let order = self.store.get(order_id).await?;
        let (number, change) = match self.plan_begin(order_id, order.as_ref()) {
            Begin::Start { number, change } => (number, change),
            Begin::Skip(handled) => {
                self.delete_quietly(&msg.receipt).await?;
                return Ok(Err(handled));
            }
            Begin::Exhausted(failed) => {
                if !self.store.record_failure(&failed).await? {
                    // Terminal meanwhile (or gone): nothing to record.
                    self.delete_quietly(&msg.receipt).await?;
                    return Ok(Err(Handled::AlreadyTerminal(order_id)));
                }
                self.dead_letter_quietly(&msg.receipt).await?;
                return Ok(Err(Handled::DeadLettered {
                    order: order_id,
                    attempts: failed.attempts,
                }));
            }
        };
        match self.store.transition(order_id, &change).await {
            Ok(order) => Ok(Ok(Attempt {
                order,
                number,
                receipt: msg.receipt.clone(),
                request: None,
            })),
            Err(e) if e.kind == ErrorKind::NotFound => {
                self.delete_quietly(&msg.receipt).await?;
                Ok(Err(Handled::Discarded))
            }
            Err(e) if e.kind == ErrorKind::Conflict => {
                let status = self.store.get(order_id).await?.map(|o| o.status);
                match Settle::for_status(status) {
                    // Terminal already: a redelivery, or a dead letter recorded meanwhile.
                    Settle::Delete => {
                        self.delete_quietly(&msg.receipt).await?;
                        Ok(Err(Handled::AlreadyTerminal(order_id)))
                    }
                    // Another delivery claimed this attempt: it owns the order now.
                    Settle::KeepVisible => Ok(Err(Handled::Claimed(order_id))),
                }
            }
            Err(e) => Err(e),
        }
    }

    /// How the attempt of a message for order `id` begins, given the order
    /// as stored (`None`: there is none). The attempt number is the order's
    /// attempt count plus one, claimed by the change's condition: a
    /// redelivery that never reached a worker (a throttled or failed
    /// invocation, which SQS counts as a receive) costs no attempt. Both
    /// shapes decide here: the embedded one inside the transaction that
    /// received the message, the AWS one with the change's conditional write.
    pub fn plan_begin(&self, id: OrderId, order: Option<&Order>) -> Begin {
        let Some(order) = order else {
            return Begin::Skip(Handled::Discarded);
        };
        if order.status.is_terminal() {
            return Begin::Skip(Handled::AlreadyTerminal(id));
        }
        let now = self.clock.now();
        if order.attempts >= self.max_receive_count {
            if let Some(failed) = failure_after_attempts(order, now) {
                return Begin::Exhausted(failed);
            }
        }
        let number = order.attempts + 1;
        Begin::Start {
            number,
            change: Transition {
                attempts: Some(number),
                // The claim of attempt n ends attempt n − 1, whether it
                // finished or was overtaken (its lease ran out).
                ends_attempt: Some(order.attempts),
                ..Transition::new(
                    &[OrderStatus::Pending, OrderStatus::Processing],
                    OrderStatus::Processing,
                    now,
                )
            },
        }
    }

    /// How `attempt` ends, given the backend's `outcome`: `FULFILLED` and the
    /// message deleted; back to `PENDING` with the reason and the message
    /// hidden for the backoff; after the last attempt, or when the service
    /// rejected the order, `FAILED` with a failed-orders row and the message
    /// moved to the dead-letter queue at once. The queue's own receive limit
    /// is only a safety net above the attempt limit: it also counts
    /// deliveries that never reached a worker.
    pub fn decide(&self, attempt: &Attempt, outcome: &Outcome) -> Finish {
        let id = attempt.order.id;
        let n = attempt.number;
        let now = self.clock.now();
        match outcome {
            Outcome::Fulfilled { reference } => Finish {
                change: Transition {
                    attempts: Some(n),
                    failure_reason: Some(None),
                    reference: reference.clone(),
                    ends_attempt: Some(n),
                    ..Transition::new(&[OrderStatus::Processing], OrderStatus::Fulfilled, now)
                },
                message: AfterAttempt::Delete,
                failed: None,
                handled: Handled::Fulfilled(id),
            },
            Outcome::Failed {
                detail,
                retry_after,
            } => {
                let max = self.max_receive_count;
                let reason = match detail {
                    Some(d) => format!("fulfillment attempt {n} of {max} failed: {d}"),
                    None => format!("fulfillment attempt {n} of {max} failed"),
                };
                if n >= max {
                    return failed_for_good(
                        attempt,
                        format!("dead-lettered after {n} attempts; last: {reason}"),
                        Handled::DeadLettered {
                            order: id,
                            attempts: n,
                        },
                        now,
                    );
                }
                let asked = retry_after.unwrap_or_default().min(MAX_RETRY_AFTER);
                let delay = self.backoff.after(n).max(asked);
                Finish {
                    change: Transition {
                        attempts: Some(n),
                        failure_reason: Some(Some(reason)),
                        ends_attempt: Some(n),
                        ..Transition::new(&[OrderStatus::Processing], OrderStatus::Pending, now)
                    },
                    message: AfterAttempt::Hide(delay),
                    failed: None,
                    handled: Handled::Failed {
                        order: id,
                        attempt: n,
                        delay,
                    },
                }
            }
            Outcome::Rejected { reason } => failed_for_good(
                attempt,
                reason.clone(),
                Handled::Rejected {
                    order: id,
                    attempt: n,
                },
                now,
            ),
        }
    }

    /// Finishes an attempt as [`Fulfiller::decide`] says, through the ports.
    pub async fn finish(&self, attempt: Attempt, outcome: &Outcome) -> Result<Handled, PortError> {
        let id = attempt.order.id;
        let finish = self.decide(&attempt, outcome);
        let applied = match &finish.failed {
            Some(failed) => self.store.record_failure(failed).await,
            None => match self.store.transition(id, &finish.change).await {
                Ok(_) => Ok(true),
                Err(e) if e.kind == ErrorKind::Conflict => Ok(false),
                Err(e) => Err(e),
            },
        }?;
        if !applied {
            return self.settle_conflict(id, &attempt.receipt).await;
        }
        match finish.message {
            AfterAttempt::DeadLetter => self.dead_letter_quietly(&attempt.receipt).await?,
            AfterAttempt::Delete => self.delete_quietly(&attempt.receipt).await?,
            AfterAttempt::Hide(delay) => {
                match self.queue.change_visibility(&attempt.receipt, delay).await {
                    Ok(()) => {}
                    // The lease ran out and another worker has the message: it decides.
                    Err(e) if matches!(e.kind, ErrorKind::Conflict | ErrorKind::NotFound) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(finish.handled)
    }

    /// One whole attempt for one message: begin, the backend's attempt, finish.
    pub async fn handle(&self, msg: &Received) -> Result<Handled, PortError> {
        match self.begin(msg).await? {
            Ok(attempt) => {
                let outcome = self.backend.attempt(&attempt.order, attempt.number).await;
                self.finish(attempt, &outcome).await
            }
            Err(handled) => Ok(handled),
        }
    }

    /// `finish` found the order no longer `PROCESSING`. The message is
    /// deleted only if the order is terminal: when a stale attempt (its lease
    /// ran out and the message was received again) put the order back to
    /// `PENDING`, deleting the message would leave the order `PENDING` forever.
    async fn settle_conflict(&self, id: OrderId, receipt: &str) -> Result<Handled, PortError> {
        let status = self.store.get(id).await?.map(|o| o.status);
        match Settle::for_status(status) {
            Settle::KeepVisible => {
                match self.queue.change_visibility(receipt, Duration::ZERO).await {
                    Ok(()) => {}
                    // Received again meanwhile: the newer receive decides.
                    Err(e) if matches!(e.kind, ErrorKind::Conflict | ErrorKind::NotFound) => {}
                    Err(e) => return Err(e),
                }
                Ok(Handled::Superseded(id))
            }
            Settle::Delete => {
                self.delete_quietly(receipt).await?;
                Ok(Handled::AlreadyTerminal(id))
            }
        }
    }

    /// Moves the message to the dead-letter queue; a stale or deleted
    /// receipt is not an error (the newer receive, or nobody, has it).
    async fn dead_letter_quietly(&self, receipt: &str) -> Result<(), PortError> {
        match self.queue.dead_letter(receipt).await {
            Err(e) if matches!(e.kind, ErrorKind::Conflict | ErrorKind::NotFound) => Ok(()),
            other => other,
        }
    }

    async fn delete_quietly(&self, receipt: &str) -> Result<(), PortError> {
        match self.queue.delete(receipt).await {
            Err(e) if e.kind == ErrorKind::Conflict => Ok(()),
            other => other,
        }
    }
}

/// The failed-orders record for a dead letter of `order`, or `None` when the
/// order needs none (it is `FULFILLED`, or already `FAILED` and recorded).
pub fn failure_for(order: &Order, _dead: &DeadLetter, now: Timestamp) -> Option<FailedOrder> {
    failure_after_attempts(order, now)
}

/// How `attempt` ends when it fails the order for good (the last attempt
/// failed, or the service rejected the order): `FAILED` with `reason`, the
/// failed-orders row recorded instead of the change, the message
/// dead-lettered at once.
fn failed_for_good(attempt: &Attempt, reason: String, handled: Handled, now: Timestamp) -> Finish {
    let n = attempt.number;
    Finish {
        change: Transition {
            attempts: Some(n),
            failure_reason: Some(Some(reason.clone())),
            ends_attempt: Some(n),
            ..Transition::new(&[OrderStatus::Processing], OrderStatus::Failed, now)
        },
        message: AfterAttempt::DeadLetter,
        failed: Some(FailedOrder {
            order_id: attempt.order.id,
            reason,
            attempts: n,
            failed_at: now,
            order: attempt.order.submitted_json(),
        }),
        handled,
    }
}

/// The failed-orders record of `order` whose attempts are over (its message
/// is, or is going, to the dead-letter queue), or `None` when it is terminal.
/// Its `attempts` are the attempts that ran, as the order counts them.
pub fn failure_after_attempts(order: &Order, now: Timestamp) -> Option<FailedOrder> {
    if order.status.is_terminal() {
        return None;
    }
    let n = order.attempts;
    let reason = match (&order.status, &order.failure_reason) {
        _ if n == 0 => {
            "dead-lettered before any attempt ran (no delivery reached a worker)".to_owned()
        }
        (OrderStatus::Processing, _) | (_, None) => format!(
            "attempt {n} did not finish (the worker stopped or timed out); dead-lettered after {n} attempts"
        ),
        (_, Some(last)) => format!("dead-lettered after {n} attempts; last: {last}"),
    };
    Some(FailedOrder {
        order_id: order.id,
        reason,
        attempts: n,
        failed_at: now,
        order: order.submitted_json(),
    })
}

/// Records a dead letter: a failed-orders row and the order `FAILED`, once.
/// Returns whether anything changed (false for a repeat or an unknown order).
pub async fn record_dead_letter(
    store: &dyn OrderStore,
    clock: &dyn Clock,
    dead: &DeadLetter,
) -> Result<bool, PortError> {
    let Some(OrderMessage { order_id }) = OrderMessage::parse(&dead.body) else {
        return Ok(false);
    };
    let Some(order) = store.get(order_id).await? else {
        return Ok(false);
    };
    match failure_for(&order, dead, clock.now()) {
        Some(failed) => store.record_failure(&failed).await,
        None => Ok(false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_maximum() {
        let b = Backoff {
            base: Duration::from_millis(100),
            max: Duration::from_millis(350),
        };
        assert_eq!(b.after(1), Duration::from_millis(100));
        assert_eq!(b.after(2), Duration::from_millis(200));
        assert_eq!(b.after(3), Duration::from_millis(350));
        assert_eq!(b.after(60), Duration::from_millis(350));
    }

    #[test]
    fn order_messages_round_trip_and_reject_other_bodies() {
        let m = OrderMessage {
            order_id: OrderId::generate(),
        };
        assert_eq!(OrderMessage::parse(&m.to_body()), Some(m));
        assert_eq!(OrderMessage::parse("{}"), None);
        assert_eq!(OrderMessage::parse("garbage"), None);
    }

    /// The parse without the JSON parser answers as the JSON parser does,
    /// for bodies that look like the written form and for those that do not.
    #[test]
    fn the_written_form_reads_as_json_would_read_it() {
        let id = "01900000-0000-7000-8000-00000000000a";
        let bodies = [
            format!(r#"{{"orderId":"{id}"}}"#),
            format!(r#"{{"orderId":"{}"}}"#, id.to_uppercase()),
            format!(r#"{{ "orderId": "{id}" }}"#),
            format!(r#"{{"orderId":"{id}","extra":1}}"#),
            format!(r#"{{"orderId":"{id}"}} "#),
            format!(r#"{{"orderId":"{}"}}"#, &id[1..]),
            format!(r#"{{"orderId":"\u0030{}"}}"#, &id[1..]),
            format!(r#"{{"orderId":"{id}"}}{{"orderId":"{id}"}}"#),
            format!(r#"{{"orderId":"{}"}}"#, id.replace('-', "")),
            format!(r#"{{"orderId":"{{{id}}}"}}"#),
            r#"{"orderId":""}"#.to_owned(),
            r#"{"orderId":"x","a":"y"}"#.to_owned(),
        ];
        for body in &bodies {
            let json = serde_json::from_str::<OrderMessage>(body).ok();
            assert_eq!(OrderMessage::parse(body), json, "{body}");
        }
        assert!(OrderMessage::parse(&bodies[0]).is_some());
        assert!(
            OrderMessage::parse(&bodies[6]).is_some(),
            "an escaped id still reads"
        );
        assert!(
            OrderMessage::parse(&bodies[3]).is_none(),
            "unknown fields are refused"
        );
    }
}
