//! The store's status changes, each one DynamoDB transaction with its event.
//!
//! A change reads the order (consistently), checks the lifecycle, computes
//! the order after the change, and writes it in a `TransactWriteItems` with
//! the change's event (the outbox, [`crate::events`]) and any other item
//! the change needs (the failed-orders row). The order's write is
//! conditional on its `version` (the number of its changes so far; absent on
//! items written before versions, which counts as 0): if anything changed
//! the order since the read, the transaction is cancelled and the change is
//! decided again on a fresh read. So the condition on the status that every
//! change had before still holds, the event carries exactly the order the
//! change wrote, and an event exists for every change that happened and for
//! no other. The same transaction moves the order counts ([`super::counts`]),
//! so they are exact for the same reason.
//!
//! A transaction cancelled for another reason than a failed condition (a
//! concurrent transaction on one of its items, such as a busy counter shard,
//! or throttling) is sent again as it is, a few times, with a short pause.

use super::*;
use crate::error::{cancellation_reasons, CONDITION_FAILED_REASON};
use crate::events::{event_id, event_item, event_time};
use dofs_core::{EventType, OrderEvent};

/// How often a change is decided again when the order keeps changing under it.
const MAX_TRIES: usize = 8;
/// How often a transaction cancelled by a conflict (not a condition) is sent again.
const MAX_CONFLICT_TRIES: u32 = 6;

fn built<T, E: std::error::Error + Send + Sync + 'static>(
    what: &'static str,
    r: Result<T, E>,
) -> Result<T, PortError> {
    r.map_err(|e| PortError::with_source(ErrorKind::Internal, what, e))
}

impl DynamoDbOrderStore {
    /// The order and its version (its number of changes), read consistently.
    pub(super) async fn read_versioned(
        &self,
        id: OrderId,
    ) -> Result<Option<(Order, u64)>, PortError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.orders_table)
            .key("orderId", s(id.to_string()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| port_error("GetItem orders", e))?;
        match out.item {
            None => Ok(None),
            Some(item) => {
                let version = match item.get("version") {
                    Some(AttributeValue::N(_)) => num_attr(&item, "version")?,
                    _ => 0,
                };
                Ok(Some((order_from_item(&item)?, version)))
            }
        }
    }

    /// The event of the order's change number `seq`, from `before` (`None`:
    /// a new order) to `after`.
    fn event(&self, before: Option<&Order>, after: &Order, seq: u64) -> Result<Put, PortError> {
        let at = event_time(
            after.updated_at,
            before.map_or(after.updated_at, |b| b.updated_at),
        );
        let event = OrderEvent {
            id: event_id(at, &after.id, seq),
            kind: EventType::for_change(before.map(|b| b.status), after.status),
            order: after.clone(),
            occurred_at: after.updated_at,
        };
        built(
            "build Put event",
            Put::builder()
                .table_name(&self.events.name)
                .set_item(Some(event_item(&event, self.events.max_age)?))
                .condition_expression("attribute_not_exists(eventId)")
                .build(),
        )
    }

    /// Writes a new order (change number 1) with its `order.accepted` event.
    /// `Ok(false)` when an order with this id exists.
    pub(super) async fn commit_new(&self, order: &Order) -> Result<bool, PortError> {
        let mut item = order_item(order);
        item.insert("version".into(), n(1));
        let put = built(
            "build Put order",
            Put::builder()
                .table_name(&self.orders_table)
                .set_item(Some(item))
                .condition_expression("attribute_not_exists(orderId)")
                .build(),
        )?;
        let counts = self.count_changes(None, order)?;
        self.transact(vec![put, self.event(None, order, 1)?], counts)
            .await
    }

    /// Writes `after` over `before` (read at `version`) with the change's
    /// event and `extra` puts, if the order is still at `version`. `Ok(false)`
    /// when it changed meanwhile.
    pub(super) async fn commit(
        &self,
        before: &Order,
        version: u64,
        after: &Order,
        extra: Vec<Put>,
    ) -> Result<bool, PortError> {
        let mut item = order_item(after);
        item.insert("version".into(), n(version + 1));
        let mut put = Put::builder()
            .table_name(&self.orders_table)
            .set_item(Some(item));
        put = if version == 0 {
            put.condition_expression("attribute_exists(orderId) AND attribute_not_exists(version)")
        } else {
            put.condition_expression("version = :v")
                .expression_attribute_values(":v", n(version))
        };
        let mut puts = vec![
            built("build Put order", put.build())?,
            self.event(Some(before), after, version + 1)?,
        ];
        puts.extend(extra);
        let counts = self.count_changes(Some(before.status), after)?;
        self.transact(puts, counts).await
    }

    /// One transaction of puts and counter updates; `Ok(false)` when a
    /// condition failed. A cancel for a conflict or throttling is retried.
    async fn transact(
        &self,
        puts: Vec<Put>,
        counts: Vec<TransactWriteItem>,
    ) -> Result<bool, PortError> {
        let items: Vec<TransactWriteItem> = puts
            .into_iter()
            .map(|p| TransactWriteItem::builder().put(p).build())
            .chain(counts)
            .collect();
        let mut tries = 0;
        loop {
            tries += 1;
            let e = match self
                .client
                .transact_write_items()
                .set_transact_items(Some(items.clone()))
                .send()
                .await
            {
                Ok(_) => return Ok(true),
                Err(e) => e,
            };
            let Some(reasons) = cancellation_reasons(&e) else {
                return Err(port_error("TransactWriteItems", e));
            };
            // No reason given (an emulator), or a condition failed: the order
            // changed since it was read, or the item exists.
            if reasons.is_empty() || reasons.iter().any(|r| r == CONDITION_FAILED_REASON) {
                return Ok(false);
            }
            if tries >= MAX_CONFLICT_TRIES {
                return Err(PortError::new(
                    ErrorKind::Transient,
                    format!("TransactWriteItems cancelled {tries} times: {reasons:?}"),
                ));
            }
            let jitter = u64::from(std::process::id() % 7) + u64::from(tries) * 3;
            tokio::time::sleep(std::time::Duration::from_millis((10 << tries) + jitter)).await;
        }
    }

    /// Applies `change` to order `id` (see the module doc).
    pub(super) async fn change(
        &self,
        id: OrderId,
        change: &Transition,
    ) -> Result<Order, PortError> {
        for _ in 0..MAX_TRIES {
            let Some((before, version)) = self.read_versioned(id).await? else {
                return Err(PortError::not_found(format!("no order {id}")));
            };
            // Conflict for a status the change does not start from, a move
            // the lifecycle forbids, or an attempt overtaken by a newer one.
            let after = change.apply(&before)?;
            if self.commit(&before, version, &after, Vec::new()).await? {
                return Ok(after);
            }
        }
        Err(PortError::new(
            ErrorKind::Transient,
            format!("order {id} kept changing; try again"),
        ))
    }

    /// Records `failed`: the order `FAILED`, its failed-orders row and its
    /// event, in one transaction; `Ok(false)` when the order is terminal or unknown.
    pub(super) async fn fail(&self, failed: &FailedOrder) -> Result<bool, PortError> {
        for _ in 0..MAX_TRIES {
            let Some((order, version)) = self.read_versioned(failed.order_id).await? else {
                return Ok(false);
            };
            if order.status.is_terminal() {
                return Ok(false);
            }
            let after = Transition::failure(failed, order.status).apply(&order)?;
            let row = built(
                "build Put failed order",
                Put::builder()
                    .table_name(&self.failed_table)
                    .set_item(Some(self.failed_row(failed).await?))
                    .build(),
            )?;
            if self.commit(&order, version, &after, vec![row]).await? {
                return Ok(true);
            }
        }
        Err(PortError::new(
            ErrorKind::Transient,
            format!("order {} kept changing while being failed", failed.order_id),
        ))
    }

    /// The failed-orders row of `failed`, keeping the earlier failures of the order.
    async fn failed_row(&self, failed: &FailedOrder) -> Result<Item, PortError> {
        let mut row = Item::new();
        row.insert("orderId".into(), s(failed.order_id.to_string()));
        row.insert(
            "listPartition".into(),
            s(list_partition(&failed.order_id.to_string())),
        );
        row.insert("reason".into(), s(failed.reason.clone()));
        row.insert("attempts".into(), n(failed.attempts));
        row.insert("failedAt".into(), s(failed.failed_at.to_string()));
        row.insert("failedAtMs".into(), n(failed.failed_at.millis()));
        row.insert("order".into(), s(failed.order.to_string()));
        if let Some(previous) = self.get_failed_item(failed.order_id).await? {
            let mut history = match previous.get("previousFailures") {
                Some(AttributeValue::L(l)) => l.clone(),
                _ => Vec::new(),
            };
            let mut earlier = previous.clone();
            earlier.remove("previousFailures");
            earlier.remove("listPartition");
            history.push(AttributeValue::M(earlier));
            row.insert("previousFailures".into(), AttributeValue::L(history));
        }
        Ok(row)
    }
}
