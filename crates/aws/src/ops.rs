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

use crate::queue::{LeasedDeadLetter, SqsQueue};
use crate::store::DynamoDbOrderStore;
use crate::workflow::AcceptedOrderStore;
use async_trait::async_trait;
use dofs_core::ports::{Clock, ErrorKind, Operations, OrderStore, PortError, Queue, Transition};
use dofs_core::service::OrderMessage;
use dofs_core::{Order, OrderId, OrderStatus, Timestamp};
use std::sync::Arc;
use std::time::Duration;

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
    async fn retry(&self, id: OrderId) -> Result<Order, PortError> {
        // Hold the order's dead letters first, so that the dlq_processor cannot
        // record one of them again after the order is back to PENDING.
        let mine = self.queue.lease_dead_letters_of(id).await?;
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

    async fn redrive(&self) -> Result<u64, PortError> {
        // Only the dead letters there now: one redriven and dead again meanwhile waits.
        let present = self.queue.dead_count().await?;
        let mut moved = 0u64;
        loop {
            let want = present.saturating_sub(moved).min(100) as usize;
            let leased: Vec<LeasedDeadLetter> = match want {
                0 => Vec::new(),
                n => {
                    self.queue
                        .lease_every_dead_letter(n, Duration::from_secs(60))
                        .await?
                }
            };
            if leased.is_empty() {
                return Ok(moved);
            }
            let now = self.clock.now();
            for l in &leased {
                if let Some(OrderMessage { order_id }) = OrderMessage::parse(&l.letter.body) {
                    match self.store.transition(order_id, &back_to_pending(now)).await {
                        Ok(_) => {}
                        Err(e) if matches!(e.kind, ErrorKind::Conflict | ErrorKind::NotFound) => {}
                        Err(e) => return Err(e),
                    }
                }
            }
            self.queue.requeue_dead_letters(&leased).await?;
            moved += leased.len() as u64;
        }
    }

    async fn purge(&self) -> Result<u64, PortError> {
        self.queue.purge_dead_letters().await
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
    async fn cancel(&self, id: OrderId, reason: Option<String>) -> Result<Order, PortError> {
        let current = self
            .stored(id)
            .await?
            .ok_or_else(|| PortError::not_found(format!("no order {id}")))?;
        if current.status == OrderStatus::Cancelled {
            return Ok(current);
        }
        let held = match current.status {
            OrderStatus::Failed => self.queue.lease_dead_letters_of(id).await?,
            _ => Vec::new(),
        };
        match self
            .store
            .transition(id, &Transition::cancel(reason, self.clock.now()))
            .await
        {
            Ok(order) => {
                self.queue.delete_dead_letters(&held).await?;
                Ok(order)
            }
            Err(e) => {
                self.queue.release_dead_letters(&held).await?;
                match self.store.get(id).await? {
                    // Another cancel won meanwhile: the same answer as a repeat.
                    Some(o) if o.status == OrderStatus::Cancelled => Ok(o),
                    _ => Err(e),
                }
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
