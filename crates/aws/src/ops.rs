//! [`AwsOperations`]: the operator actions (retry, redrive, purge, cancel) and the
//! readiness check, over DynamoDB and SQS.
//!
//! There is no transaction across DynamoDB and SQS, so the order of steps is
//! what keeps them consistent:
//! - an order's dead letters are leased (hidden) *before* the order goes back
//!   to `PENDING`, so the dlq_processor, which records only the dead letters
//!   it holds, cannot fail the order again from a stale dead letter;
//! - an order goes back to `PENDING` *before* its message returns to the
//!   orders queue, so a worker never receives a message for an order that is
//!   still `FAILED` (it would drop it as already terminal).
//!
//! Every action ends by the deadline its caller gives (the request's, less a
//! margin), however large the DLQ: a redrive or purge goes step by step and
//! answers how many it handled and whether more remain; a retry or cancel of a
//! `FAILED` order that could not search the whole DLQ for the order's dead
//! letters by then changes nothing and says so (`Transient`, with a
//! [`dofs_core::ports::OutOfTime`] source).
//! An action run past its deadline would be cut off by the request's timeout
//! midway, its caller learning nothing.

use crate::queue::{lease_until, LeasedDeadLetter, SqsQueue};
use crate::store::DynamoDbOrderStore;
use crate::workflow::AcceptedOrderStore;
use async_trait::async_trait;
use dofs_core::ports::{
    Clock, DlqProgress, ErrorKind, Operations, OrderStore, OutOfTime, PortError, Queue, Transition,
};
use dofs_core::service::{record_dead_letter, OrderMessage};
use dofs_core::{Order, OrderId, OrderStatus, Timestamp};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The most dead letters a redrive or purge leases and handles in one step
/// (one SQS batch call), between two looks at its deadline.
const STEP: usize = 10;

/// How long a redrive or purge waits before it looks again for dead letters
/// another reader holds.
const HELD_WAIT: Duration = Duration::from_millis(250);

/// What a redrive or purge does to each dead letter.
#[derive(Clone, Copy, Debug)]
enum Drain {
    /// Its order back to `PENDING`, the message back on the orders queue.
    Redrive,
    /// Its order recorded `FAILED` if it was not yet, the message deleted.
    Purge,
}

/// Operator actions on the AWS shape.
#[derive(Clone)]
pub struct AwsOperations {
    store: DynamoDbOrderStore,
    queue: SqsQueue,
    clock: Arc<dyn Clock>,
    accepted: Option<AcceptedOrderStore>,
}

impl AwsOperations {
    pub fn new(store: DynamoDbOrderStore, queue: SqsQueue, clock: Arc<dyn Clock>) -> Self {
        AwsOperations {
            store,
            queue,
            clock,
            accepted: None,
        }
    }

    /// Lets a cancel reach orders accepted (their execution started, the
    /// 202 sent) that `Store Order` has not stored yet.
    pub fn with_accepted_orders(mut self, accepted: AcceptedOrderStore) -> Self {
        self.accepted = Some(accepted);
        self
    }

    /// The order as stored; for an order only accepted so far, it is stored
    /// first, `PENDING`, exactly as `Store Order` would store it (the same
    /// conditional, idempotent write with its `order.accepted` event). The
    /// workflow's own `Store Order` then finds it and queues it, and the
    /// fulfiller drops the message of a cancelled order.
    async fn stored(&self, id: OrderId) -> Result<Option<Order>, PortError> {
        if let Some(order) = self.store.get(id).await? {
            return Ok(Some(order));
        }
        let Some(accepted) = &self.accepted else {
            return Ok(None);
        };
        match accepted.get(id).await? {
            Some(order) if order.status == OrderStatus::Pending => {
                self.store.put_new(&order).await.map(Some)
            }
            other => Ok(other),
        }
    }

    /// Redrives or purges the dead letters the DLQ holds now, a step at a
    /// time, until none is left or `until` would pass during the next step.
    ///
    /// A step leases the dead letters it handles and no more, so nothing is
    /// left to release when time runs out. The first step takes one dead
    /// letter (every call makes progress); each next one twice as many, up to
    /// [`STEP`], and no more than fit in the time left at the slowest pace per
    /// dead letter seen so far. Dead letters another reader holds (the
    /// dlq_processor records and releases them within seconds) are waited for
    /// in [`HELD_WAIT`]s, while a wait and the look after it fit too.
    async fn drain(&self, how: Drain, until: Instant) -> Result<DlqProgress, PortError> {
        // Only the dead letters there now: one redriven and dead again meanwhile waits.
        let present = self.queue.dead_count().await?;
        let mut done = 0u64;
        let mut size = 1u32;
        // The slowest step so far, per dead letter.
        let mut pace: Option<Duration> = None;
        let stop = |done: u64| {
            tracing::info!(
                ?how,
                done,
                "DLQ action stopped by its deadline; more remain"
            );
            Ok(DlqProgress {
                count: done,
                more: true,
            })
        };
        while done < present {
            let want = match pace {
                None => 1,
                Some(pace) => {
                    let left = until.saturating_duration_since(Instant::now());
                    let fit = (left.as_nanos() / pace.as_nanos().max(1)) as u64;
                    match fit.min(u64::from(size)).min(present - done) {
                        0 => return stop(done),
                        want => want as usize,
                    }
                }
            };
            let began = Instant::now();
            let step = self
                .queue
                .lease_dead_letters_until(want, lease_until(until), Some(until))
                .await?;
            if step.is_empty() {
                if self.queue.dead_count().await? == 0 {
                    break;
                }
                // Held by another reader: wait, if the wait and another look fit.
                if Instant::now() + HELD_WAIT + began.elapsed() >= until {
                    return stop(done);
                }
                tokio::time::sleep(HELD_WAIT).await;
                continue;
            }
            // The step's letters come back when their lease ends if this fails.
            self.handle(how, &step).await?;
            done += step.len() as u64;
            size = (size * 2).min(STEP as u32);
            let per_letter = began.elapsed() / step.len() as u32;
            pace = Some(pace.map_or(per_letter, |p| p.max(per_letter)));
        }
        Ok(DlqProgress {
            count: done,
            more: false,
        })
    }

    /// Redrives or purges `step`, dead letters this call holds.
    async fn handle(&self, how: Drain, step: &[LeasedDeadLetter]) -> Result<(), PortError> {
        match how {
            Drain::Redrive => {
                let now = self.clock.now();
                for l in step {
                    let Some(OrderMessage { order_id }) = OrderMessage::parse(&l.letter.body)
                    else {
                        continue;
                    };
                    match self.store.transition(order_id, &back_to_pending(now)).await {
                        Ok(_) => {}
                        Err(e) if matches!(e.kind, ErrorKind::Conflict | ErrorKind::NotFound) => {}
                        Err(e) => return Err(e),
                    }
                }
                self.queue.requeue_dead_letters(step).await
            }
            Drain::Purge => {
                // One the dlq_processor has not recorded yet is recorded first
                // (its order FAILED with its failed-orders row), as the
                // embedded purge does: a purge never leaves an order waiting
                // for a message that is gone.
                for l in step {
                    record_dead_letter(&self.store, self.clock.as_ref(), &l.letter).await?;
                }
                self.queue.delete_dead_letters(step).await
            }
        }
    }
}

fn back_to_pending(at: Timestamp) -> Transition {
    Transition {
        attempts: Some(0),
        failure_reason: Some(None),
        ..Transition::new(&[OrderStatus::Failed], OrderStatus::Pending, at)
    }
}

#[async_trait]
impl Operations for AwsOperations {
    async fn retry(&self, id: OrderId, until: Instant) -> Result<Order, PortError> {
        // An order that is not FAILED is refused before the DLQ is searched
        // (the transition below stays conditional, for a race).
        match self.store.get(id).await? {
            None => return Err(PortError::not_found(format!("no order {id}"))),
            Some(o) if o.status != OrderStatus::Failed => {
                return Err(PortError::conflict(format!(
                    "order {id} is {}, not FAILED",
                    o.status
                )))
            }
            Some(_) => {}
        }
        // Hold the order's dead letters first, so that the dlq_processor cannot
        // record one of them again after the order is back to PENDING. A DLQ
        // too large to search by `until` is an error here, before any change.
        let mine = self.queue.lease_dead_letters_of(id, until).await?;
        let now = self.clock.now();
        let order = match self.store.transition(id, &back_to_pending(now)).await {
            Ok(order) => order,
            Err(e) => {
                self.queue.release_dead_letters(&mine).await?;
                return Err(e);
            }
        };
        self.queue.delete_dead_letters(&mine).await?;
        let message_id = format!("{id}.retry-{}", now.millis());
        self.queue
            .send(&message_id, &OrderMessage { order_id: id }.to_body())
            .await?;
        Ok(order)
    }

    async fn redrive(&self, until: Instant) -> Result<DlqProgress, PortError> {
        self.drain(Drain::Redrive, until).await
    }

    async fn purge(&self, until: Instant) -> Result<DlqProgress, PortError> {
        self.drain(Drain::Purge, until).await
    }

    /// The cancel is one conditional write (`PENDING` or `FAILED` →
    /// `CANCELLED`); it alone decides a race with an attempt, whose start
    /// (`PENDING` → `PROCESSING`) is conditional too.
    ///
    /// An order accepted but not yet stored by its workflow is stored first
    /// (see [`AwsOperations::with_accepted_orders`]), so a cancel right after
    /// the 202 finds it, as `GET /orders/{id}` does.
    ///
    /// The order's message: a `FAILED` order's dead letters are held before
    /// the write (as a retry holds them) and deleted after it. A `PENDING`
    /// order's message on the orders queue cannot be deleted by id in SQS: it
    /// stays until it is next received, and the fulfiller then deletes it
    /// unattempted, the order being terminal. Likewise a message that reaches
    /// the DLQ after the cancel read the order (its last attempt had just
    /// failed) waits there until a redrive (the fulfiller then deletes it) or
    /// a purge; the dlq_processor never records it, the order being terminal.
    ///
    /// An attempt can run between the read and the write (PENDING, then
    /// PROCESSING, then PENDING again): when the write is refused but the
    /// order reads back cancellable, the cancel starts over, while time is
    /// left, rather than answer 409 for an order that is PENDING. Out of
    /// time, it is `Transient` with an [`OutOfTime`] source (503 `Timeout`,
    /// nothing changed).
    async fn cancel(
        &self,
        id: OrderId,
        reason: Option<String>,
        until: Instant,
    ) -> Result<Order, PortError> {
        let mut current = self
            .stored(id)
            .await?
            .ok_or_else(|| PortError::not_found(format!("no order {id}")))?;
        loop {
            if current.status == OrderStatus::Cancelled {
                return Ok(current);
            }
            let held = match current.status {
                OrderStatus::Failed => self.queue.lease_dead_letters_of(id, until).await?,
                _ => Vec::new(),
            };
            let change = Transition::cancel(reason.clone(), self.clock.now());
            let refused = match self.store.transition(id, &change).await {
                Ok(order) => {
                    self.queue.delete_dead_letters(&held).await?;
                    return Ok(order);
                }
                Err(e) => e,
            };
            self.queue.release_dead_letters(&held).await?;
            let Some(now) = self.store.get(id).await? else {
                return Err(refused);
            };
            current = now;
            // Cancelled meanwhile (another cancel won): the same answer as a repeat.
            if current.status == OrderStatus::Cancelled {
                return Ok(current);
            }
            let cancellable = matches!(current.status, OrderStatus::Pending | OrderStatus::Failed);
            if !cancellable || refused.kind != ErrorKind::Conflict {
                return Err(refused);
            }
            if Instant::now() >= until {
                return Err(PortError::with_source(
                    ErrorKind::Transient,
                    format!("order {id} kept changing under the cancel until its deadline"),
                    OutOfTime(
                        "the order's attempts kept changing it while it was being cancelled; \
                         nothing changed. Retry later"
                            .into(),
                    ),
                ));
            }
        }
    }

    async fn ready(&self) -> Result<(), PortError> {
        self.store
            .client()
            .describe_table()
            .table_name(self.store.orders_table())
            .send()
            .await
            .map_err(|e| crate::error::port_error("DescribeTable", e))?;
        self.queue.ready().await?;
        // The store answers reads too (a GetItem of an id that cannot exist).
        self.store.get(OrderId::generate()).await.map(|_| ())
    }
}
