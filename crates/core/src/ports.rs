//! The ports: narrow traits the adapters implement, one set per shape
//! (SQLite for the embedded binary; DynamoDB, SQS and Step Functions on AWS).
//!
//! Every method documents what it promises. Errors carry an [`ErrorKind`] so
//! callers branch on the kind (retry a `Transient`, report a `Conflict`),
//! never on message text.

use crate::history::ExecutionEvent;
use crate::{FailedOrder, NewOrder, Order, OrderId, OrderStatus, Timestamp};
use async_trait::async_trait;
use std::time::{Duration, Instant};

/// What kind of failure an adapter met.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The thing asked for does not exist.
    NotFound,
    /// A condition did not hold (wrong current status, stale receipt, key reused).
    Conflict,
    /// Worth retrying: busy, throttled, shutting down, timed out.
    Transient,
    /// A bug or a broken dependency; not worth retrying as is.
    Internal,
}

/// The source of a readiness error when the store answers but cannot take
/// writes (a full disk, a read-only file system). Unlike a [`PortError`]'s
/// message, its text is written for the operator: `/ready` shows it.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StoreNotWritable(pub String);

/// The source of a `Transient` error when an operator action could not be
/// done by its deadline and changed nothing. Unlike a [`PortError`]'s
/// message, its text is written for the operator: the API answers it.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct OutOfTime(pub String);

/// An adapter's error: a kind, a message fit for logs (never for clients), and the source.
#[derive(Debug, thiserror::Error)]
#[error("{kind:?}: {message}")]
pub struct PortError {
    pub kind: ErrorKind,
    pub message: String,
    #[source]
    pub source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl PortError {
    /// An error of `kind` with a message.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        PortError {
            kind,
            message: message.into(),
            source: None,
        }
    }

    /// An error of `kind` caused by `source`.
    pub fn with_source(
        kind: ErrorKind,
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        PortError {
            kind,
            message: message.into(),
            source: Some(Box::new(source)),
        }
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        PortError::new(ErrorKind::NotFound, message)
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        PortError::new(ErrorKind::Conflict, message)
    }
}

/// The current time. Injected so tests and simulations control it.
pub trait Clock: Send + Sync {
    fn now(&self) -> Timestamp;
}

/// The system clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        let ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        Timestamp(ms)
    }
}

/// One page of a newest-first listing.
#[derive(Clone, Debug, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Opaque; pass it back to get the next page. `None` on the last page.
    pub next_cursor: Option<String>,
}

/// A status change, applied only if the order's current status allows it.
#[derive(Clone, Debug, PartialEq)]
pub struct Transition {
    /// Statuses the order must be in now.
    pub from: Vec<OrderStatus>,
    pub to: OrderStatus,
    /// New attempt count, when it changes.
    pub attempts: Option<u32>,
    /// New failure reason (`Some(None)` clears it).
    pub failure_reason: Option<Option<String>>,
    /// The fulfillment service's reference, recorded with `FULFILLED`.
    pub reference: Option<String>,
    /// The cancel's reason, recorded with `CANCELLED`.
    pub cancel_reason: Option<String>,
    /// The attempt this change ends: it applies only while the order's
    /// attempt count is this one, so an attempt overtaken by a newer one
    /// (its lease ran out and the message was received again) changes nothing.
    pub ends_attempt: Option<u32>,
    pub at: Timestamp,
}

impl Transition {
    /// A change to `to` from one of `from` at `at`, touching nothing else.
    pub fn new(from: &[OrderStatus], to: OrderStatus, at: Timestamp) -> Transition {
        Transition {
            from: from.to_vec(),
            to,
            attempts: None,
            failure_reason: None,
            reference: None,
            cancel_reason: None,
            ends_attempt: None,
            at,
        }
    }

    /// `order` after this change, or `Conflict` when its status is not one
    /// of `from`, the lifecycle forbids the move, or a newer attempt than the
    /// one this change ends has started. The time never goes back:
    /// `updatedAt` is the later of the order's and the change's.
    pub fn apply(&self, order: &Order) -> Result<Order, PortError> {
        if !self.from.contains(&order.status) || !order.status.can_become(self.to) {
            return Err(PortError::conflict(format!(
                "order {} is {}, cannot become {}",
                order.id, order.status, self.to
            )));
        }
        if let Some(n) = self.ends_attempt.filter(|n| *n != order.attempts) {
            return Err(PortError::conflict(format!(
                "attempt {n} of order {} was overtaken by attempt {}",
                order.id, order.attempts
            )));
        }
        let mut o = order.clone();
        o.status = self.to;
        if let Some(a) = self.attempts {
            o.attempts = a;
        }
        if let Some(r) = &self.failure_reason {
            o.failure_reason = r.clone();
        }
        if let Some(r) = &self.reference {
            o.fulfillment_reference = Some(r.clone());
        }
        if let Some(r) = &self.cancel_reason {
            o.cancel_reason = Some(r.clone());
        }
        o.updated_at = self.at.max(order.updated_at);
        Ok(o)
    }

    /// The change that records `failed` on an order now in `from`:
    /// `FAILED`, with the failure's attempts and reason.
    pub fn failure(failed: &FailedOrder, from: OrderStatus) -> Transition {
        Transition {
            attempts: Some(failed.attempts),
            failure_reason: Some(Some(failed.reason.clone())),
            ..Transition::new(&[from], OrderStatus::Failed, failed.failed_at)
        }
    }

    /// The cancel of an order (`PENDING` or `FAILED` → `CANCELLED`).
    pub fn cancel(reason: Option<String>, at: Timestamp) -> Transition {
        Transition {
            cancel_reason: reason,
            ..Transition::new(
                &[OrderStatus::Pending, OrderStatus::Failed],
                OrderStatus::Cancelled,
                at,
            )
        }
    }
}

/// Where orders and failed orders live.
#[async_trait]
pub trait OrderStore: Send + Sync {
    /// Stores a new `PENDING` order. Idempotent: if an order with this id
    /// exists with the same content, returns it unchanged; if it exists with
    /// other content, `Conflict`.
    async fn put_new(&self, order: &Order) -> Result<Order, PortError>;

    /// The order, or `None` when no order has this id.
    async fn get(&self, id: OrderId) -> Result<Option<Order>, PortError>;

    /// Orders newest first, optionally of one status; `limit` is 1 to 500.
    async fn list(
        &self,
        status: Option<OrderStatus>,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<Page<Order>, PortError>;

    /// Applies `change` atomically if the order's status is one of `change.from`
    /// and the lifecycle allows it. `NotFound` if there is no such order;
    /// `Conflict` (the message names the current status) otherwise. Moving to
    /// `FULFILLED` records exactly one fulfillment.
    async fn transition(&self, id: OrderId, change: &Transition) -> Result<Order, PortError>;

    /// Records a dead letter in failed-orders and marks its order `FAILED`,
    /// unless the order is `FULFILLED`. Idempotent per order and failure: a
    /// second call for an order already `FAILED` and recorded changes nothing.
    /// Returns whether anything changed.
    async fn record_failure(&self, failed: &FailedOrder) -> Result<bool, PortError>;

    /// Failed orders, newest first.
    async fn list_failed(
        &self,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<Page<FailedOrder>, PortError>;

    /// How many orders are in each status.
    async fn count_by_status(&self) -> Result<Vec<(OrderStatus, u64)>, PortError>;
}

/// A message as received: its lease is the receipt.
#[derive(Clone, Debug, PartialEq)]
pub struct Received {
    pub id: String,
    pub body: String,
    /// Proves this receive; valid until the message is received again.
    pub receipt: String,
    /// How many times the message has been received, this receive included.
    pub receive_count: u32,
    pub sent_at: Timestamp,
}

/// A message waiting in the dead-letter queue for an operator.
#[derive(Clone, Debug, PartialEq)]
pub struct DeadLetter {
    pub id: String,
    pub body: String,
    pub receive_count: u32,
    pub sent_at: Timestamp,
    pub dead_at: Timestamp,
}

/// Queue depths.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct QueueDepth {
    /// Receivable now or after a delay.
    pub waiting: u64,
    /// Received and not yet deleted or timed out.
    pub in_flight: u64,
    /// Dead letters awaiting an operator.
    pub dead: u64,
    /// Age of the oldest message on the main queue, in milliseconds.
    pub oldest_age_ms: Option<i64>,
}

/// A queue with SQS semantics and a dead-letter queue.
#[async_trait]
pub trait Queue: Send + Sync {
    /// Sends a message with `id`. Idempotent per id: while a message with this
    /// id is on the queue or in the DLQ, sending it again changes nothing.
    async fn send(&self, id: &str, body: &str) -> Result<(), PortError>;

    /// Receives up to `max` visible messages and hides each for `visibility`.
    /// A message that has already been received the queue's maximum number of
    /// times moves to the dead-letter queue instead of being delivered.
    async fn receive(&self, max: usize, visibility: Duration) -> Result<Vec<Received>, PortError>;

    /// Deletes the received message. Idempotent; a stale receipt of a message
    /// since received again is `Conflict`.
    async fn delete(&self, receipt: &str) -> Result<(), PortError>;

    /// Makes the received message visible again after `timeout`. A stale
    /// receipt is `Conflict`; a deleted message is `NotFound`.
    async fn change_visibility(&self, receipt: &str, timeout: Duration) -> Result<(), PortError>;

    /// Moves the received message to the dead-letter queue now, whatever its
    /// receive count (an attempt that can never succeed). A stale receipt is
    /// `Conflict`; a deleted message is `NotFound`.
    async fn dead_letter(&self, receipt: &str) -> Result<(), PortError>;

    /// Current depths.
    async fn depth(&self) -> Result<QueueDepth, PortError>;

    /// Dead letters, oldest first, without removing them; pass the returned
    /// cursor back to continue after the last one seen.
    async fn dead_letters(
        &self,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<Page<DeadLetter>, PortError>;

    /// Moves every dead letter back to the main queue with its receive count
    /// reset. Returns how many moved.
    async fn redrive(&self) -> Result<u64, PortError>;

    /// Deletes every dead letter. Returns how many.
    async fn purge_dead_letters(&self) -> Result<u64, PortError>;
}

/// What an idempotent submission found.
#[derive(Clone, Debug, PartialEq)]
pub enum Submitted {
    /// A new order and its execution were durably recorded.
    Started { order: Order },
    /// The key was used before with the same body: the first order.
    Replayed { order: Order },
    /// The key was used before with a different body.
    KeyReused,
}

/// An `Idempotency-Key` and the fingerprint of the body it came with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdempotencyClaim {
    pub key: String,
    pub fingerprint: String,
}

/// Starts the order workflow.
#[async_trait]
pub trait WorkflowStarter: Send + Sync {
    /// Durably records the order and starts its workflow execution before
    /// returning (a 202 is a promise). With a claim, a key seen within 24 hours
    /// returns the first order (same body) or `KeyReused` (other body).
    /// `request` is the id of the request that sent the order: a shape that
    /// keeps it with the order names it in every later log line about the
    /// order (the embedded shape does; on AWS each function's logs carry their
    /// own invocation's id).
    async fn start(
        &self,
        id: OrderId,
        order: NewOrder,
        claim: Option<IdempotencyClaim>,
        request: Option<String>,
    ) -> Result<Submitted, PortError>;
}

/// A workflow execution and its history.
#[derive(Clone, Debug, PartialEq)]
pub struct Execution {
    pub arn: String,
    /// `RUNNING`, `SUCCEEDED` or `FAILED`.
    pub status: String,
    pub input: serde_json::Value,
    pub output: Option<serde_json::Value>,
    pub started_at: Timestamp,
    pub stopped_at: Option<Timestamp>,
    /// State-by-state events, oldest first; a cancelled order's ends with
    /// [`ExecutionEvent::order_cancelled`].
    pub events: Vec<ExecutionEvent>,
}

/// Reads workflow executions.
#[async_trait]
pub trait ExecutionLog: Send + Sync {
    /// The execution whose id (the last `:`-separated part of its ARN) is `id`.
    async fn get(&self, id: &str) -> Result<Option<Execution>, PortError>;
}

/// How far a redrive or a purge got by its deadline.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DlqProgress {
    /// Dead letters this call moved back to the queue (redrive) or acknowledged (purge).
    pub count: u64,
    /// Whether the call stopped at its deadline with dead letters left that were
    /// in the DLQ when it began: calling again goes on where it stopped.
    pub more: bool,
}

/// Operator actions that change an order and the queue together.
///
/// Each takes `until`: when to stop working so that the caller can still
/// answer in time (the HTTP API derives it from the request's deadline). An
/// action either finishes, or stops at a point where nothing is half done: a
/// redrive or purge answers how far it got ([`DlqProgress::more`]); a retry or
/// cancel that could not find the order's dead letters in time changes nothing
/// and is `Transient` with an [`OutOfTime`] source. An adapter whose actions
/// are one bounded transaction (SQLite) may ignore `until`.
#[async_trait]
pub trait Operations: Send + Sync {
    /// Puts a `FAILED` order back to `PENDING` with attempts reset and queues it
    /// again, removing its dead letters. `Conflict` for any other status.
    async fn retry(&self, id: OrderId, until: Instant) -> Result<Order, PortError>;

    /// Redrives the dead letters in the DLQ when it begins; their orders go
    /// back to `PENDING` with attempts reset. Stops by `until`, each dead
    /// letter either moved or left in the DLQ, never both.
    async fn redrive(&self, until: Instant) -> Result<DlqProgress, PortError>;

    /// Acknowledges the dead letters in the DLQ when it begins; their orders
    /// stay (or become) `FAILED`. Stops by `until`, like [`Operations::redrive`].
    async fn purge(&self, until: Instant) -> Result<DlqProgress, PortError>;

    /// Cancels a `PENDING` or `FAILED` order: it becomes `CANCELLED` (with
    /// the reason) and its message leaves the queue or the dead-letter queue,
    /// so no further attempt starts. An order already `CANCELLED` is returned
    /// unchanged. `Conflict` for `PROCESSING` or `FULFILLED`; `NotFound` for
    /// no such order. The status change is conditional: a cancel racing an
    /// attempt either wins (the attempt never starts, or its end changes
    /// nothing) or gets `Conflict`.
    async fn cancel(
        &self,
        id: OrderId,
        reason: Option<String>,
        until: Instant,
    ) -> Result<Order, PortError>;

    /// Whether the store and the queue answer and the store takes writes.
    /// An error whose source is a [`StoreNotWritable`] when reads work but
    /// writes cannot reach the disk.
    async fn ready(&self) -> Result<(), PortError>;
}

/// The order event feed (the outbox): every status change, in the order recorded.
#[async_trait]
pub trait EventLog: Send + Sync {
    /// Up to `limit` (1 to 1000) events recorded after the event `after`
    /// (from the oldest kept when `None`), oldest first. `next_cursor` is
    /// what to pass as `after` to go on: the last item's id, or `after`
    /// itself when nothing newer exists yet, so a consumer follows the feed
    /// by always passing it back. An `after` that cannot be an event id of
    /// this feed is `NotFound`.
    async fn after(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page<crate::OrderEvent>, PortError>;

    /// The events of one order still kept, oldest first (at most 100).
    async fn of_order(&self, id: OrderId) -> Result<Vec<crate::OrderEvent>, PortError>;
}

/// Everything the HTTP API needs from a shape.
#[derive(Clone)]
pub struct Backend {
    pub orders: std::sync::Arc<dyn OrderStore>,
    pub queue: std::sync::Arc<dyn Queue>,
    pub workflow: std::sync::Arc<dyn WorkflowStarter>,
    pub executions: std::sync::Arc<dyn ExecutionLog>,
    pub operations: std::sync::Arc<dyn Operations>,
    pub events: std::sync::Arc<dyn EventLog>,
    pub clock: std::sync::Arc<dyn Clock>,
}

/// The fixed part of a local execution ARN; the execution id follows the last `:`.
pub fn execution_arn(
    region: &str,
    account: &str,
    state_machine: &str,
    execution_id: &str,
) -> String {
    // Not `format!`, which took three times the instructions (callgrind):
    // every read of an order makes its ARN.
    [
        "arn:aws:states:",
        region,
        ":",
        account,
        ":execution:",
        state_machine,
        ":",
        execution_id,
    ]
    .concat()
}

/// The execution id of an ARN (its last `:`-separated part), or the input when it has no `:`.
pub fn execution_id(arn_or_id: &str) -> &str {
    arn_or_id.rsplit(':').next().unwrap_or(arn_or_id)
}

/// A clock that only moves when told to (tests and simulations).
#[derive(Debug, Default)]
pub struct ManualClock(std::sync::atomic::AtomicI64);

impl ManualClock {
    /// A clock reading `start`.
    pub fn new(start: Timestamp) -> Self {
        ManualClock(std::sync::atomic::AtomicI64::new(start.millis()))
    }

    /// Moves the clock forward by `d`.
    pub fn advance(&self, d: Duration) {
        self.0
            .fetch_add(d.as_millis() as i64, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.0.load(std::sync::atomic::Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CustomerId, NewOrder, Price, ProductId};

    fn order(status: OrderStatus) -> Order {
        let new = NewOrder {
            customer_id: CustomerId::parse("CUST-1001").expect("id"),
            product_id: ProductId::parse("PROD-2001").expect("id"),
            quantity: 1,
            price: Price::from_cents(100),
            metadata: None,
        };
        let mut o = Order::new(OrderId::generate(), new, "arn:x".into(), Timestamp(7));
        o.status = status;
        o.attempts = 1;
        o.failure_reason = Some("attempt 1 failed".into());
        o
    }

    #[test]
    fn a_change_applies_only_from_its_statuses_as_the_lifecycle_permits() {
        let change = Transition::new(
            &[OrderStatus::Fulfilled, OrderStatus::Processing],
            OrderStatus::Fulfilled,
            Timestamp(5),
        );
        assert!(change.apply(&order(OrderStatus::Processing)).is_ok());
        let refused = |o: Order| change.apply(&o).map_err(|e| e.kind).err();
        assert_eq!(
            refused(order(OrderStatus::Fulfilled)),
            Some(ErrorKind::Conflict),
            "FULFILLED cannot change"
        );
        assert_eq!(
            refused(order(OrderStatus::Pending)),
            Some(ErrorKind::Conflict),
            "not a from status"
        );
    }

    #[test]
    fn a_change_sets_what_it_says_keeps_the_rest_and_never_moves_time_back() {
        let before = order(OrderStatus::Pending);
        let cancelled = Transition::cancel(Some("why".into()), Timestamp(9))
            .apply(&before)
            .expect("cancel");
        assert_eq!(
            (
                cancelled.status,
                cancelled.cancel_reason.as_deref(),
                cancelled.updated_at
            ),
            (OrderStatus::Cancelled, Some("why"), Timestamp(9))
        );
        assert_eq!(cancelled.failure_reason, before.failure_reason, "kept");
        let done = Transition {
            attempts: Some(2),
            failure_reason: Some(None),
            reference: Some("r-1".into()),
            ..Transition::new(
                &[OrderStatus::Processing],
                OrderStatus::Fulfilled,
                Timestamp(3),
            )
        }
        .apply(&order(OrderStatus::Processing))
        .expect("fulfil");
        assert_eq!(
            (
                done.attempts,
                done.failure_reason,
                done.fulfillment_reference.as_deref(),
                done.updated_at
            ),
            (2, None, Some("r-1"), Timestamp(7)),
            "an earlier clock does not move updatedAt back"
        );
    }

    #[test]
    fn a_change_that_ends_an_overtaken_attempt_is_a_conflict() {
        let change = Transition {
            ends_attempt: Some(1),
            ..Transition::new(
                &[OrderStatus::Processing],
                OrderStatus::Pending,
                Timestamp(9),
            )
        };
        let mut o = order(OrderStatus::Processing);
        assert!(change.apply(&o).is_ok());
        o.attempts = 2;
        assert_eq!(
            change.apply(&o).map_err(|e| e.kind).err(),
            Some(ErrorKind::Conflict)
        );
    }
}
