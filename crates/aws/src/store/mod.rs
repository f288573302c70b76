//! [`DynamoDbOrderStore`]: orders and failed orders in DynamoDB.
//!
//! Item layout of the orders table (hash key `orderId`):
//! `customerId`, `productId`, `quantity` (N), `priceCents` (N, exact),
//! `metadata` (S, a JSON list of `[key, type, exact text]` so numbers keep
//! their text), `status`, `attempts` (N), `createdAt` (S, RFC 3339 with
//! milliseconds, so it sorts as text), `createdAtMs`/`updatedAtMs` (N),
//! `executionArn`, `failureReason`, `fulfillmentReference` and `cancelReason`
//! (each absent when none) and `listPartition`
//! (the hash key of the `all-createdAt` index: one of [`LIST_SHARDS`] values
//! chosen by the order id, see [`list_partition`]; `all` on items written
//! before the key was sharded).
//!
//! Every write is conditional and writes the change's event in the same
//! transaction (the outbox, [`crate::events`]): a new order with
//! `attribute_not_exists`, every status change on the order's `version` (its
//! number of changes, checked against the lifecycle on a fresh read), and a
//! dead letter's failed-orders row with the order's change to `FAILED`.
//! See [`write`].
//!
//! The same table holds the order counts by status, as sharded counter items
//! moved in each change's transaction ([`counts`]).
//!
//! The failed-orders table is keyed by `orderId` alone (as Terraform creates
//! it): when an order fails again after an operator's retry, its row holds the
//! latest failure and `previousFailures` keeps the earlier ones.

use crate::error::{corrupt, port_error};
use crate::events::EventsTable;
use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem};
use aws_sdk_dynamodb::Client;
use dofs_core::ports::{ErrorKind, OrderStore, Page, PortError, Transition};
use dofs_core::{
    CustomerId, FailedOrder, Metadata, MetadataValue, Order, OrderId, OrderStatus, Price,
    ProductId, Timestamp,
};
use std::collections::HashMap;

type Item = HashMap<String, AttributeValue>;

/// The orders index by status, newest first.
pub const STATUS_INDEX: &str = "status-createdAt";
/// The orders index over every order, newest first.
pub const ALL_ORDERS_INDEX: &str = "all-createdAt";
/// The failed-orders index over every row, newest first.
pub const ALL_FAILED_INDEX: &str = "all-failedAt";
/// The `listPartition` of items written before the listing key was sharded;
/// still read, never written.
pub const LIST_PARTITION: &str = "all";
/// How many `listPartition` values new items spread over (`all#0` ..).
///
/// A single value made each listing index one hot partition, which takes
/// about 1,000 writes per second; eight shards raise the ceiling eightfold.
/// A listing reads every shard and merges them newest first.
pub const LIST_SHARDS: u32 = 8;

/// FNV-1a of a text: a stable hash, the same in every process and version.
fn fnv1a(text: &str) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in text.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

/// The `listPartition` of an order (or its failed-orders row): a stable hash
/// (FNV-1a) of its id, so the same order always lands in the same shard.
pub fn list_partition(order_id: &str) -> String {
    format!("{LIST_PARTITION}#{}", fnv1a(order_id) % LIST_SHARDS)
}

/// Every `listPartition` value a listing reads: the shards and the legacy one.
pub fn list_partitions() -> Vec<String> {
    std::iter::once(LIST_PARTITION.to_owned())
        .chain((0..LIST_SHARDS).map(|i| format!("{LIST_PARTITION}#{i}")))
        .collect()
}

/// Orders and failed orders in two DynamoDB tables.
#[derive(Clone, Debug)]
pub struct DynamoDbOrderStore {
    client: Client,
    orders_table: String,
    failed_table: String,
    /// Where every change writes its event (the outbox).
    events: EventsTable,
}

impl DynamoDbOrderStore {
    /// A store over existing tables (see [`crate::setup`] to create them).
    pub fn new(
        client: Client,
        orders_table: impl Into<String>,
        failed_table: impl Into<String>,
        events: EventsTable,
    ) -> Self {
        DynamoDbOrderStore {
            client,
            orders_table: orders_table.into(),
            failed_table: failed_table.into(),
            events,
        }
    }

    /// The DynamoDB client (shared with the other adapters).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The orders table's name.
    pub fn orders_table(&self) -> &str {
        &self.orders_table
    }

    async fn get_failed_item(&self, id: OrderId) -> Result<Option<Item>, PortError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.failed_table)
            .key("orderId", s(id.to_string()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| port_error("GetItem failed_orders", e))?;
        Ok(out.item)
    }

    async fn query_page(
        &self,
        listing: Listing<'_>,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<(Vec<Item>, Option<String>), PortError> {
        let Listing {
            table,
            index,
            key_attr,
            key_values,
            sort_attr,
        } = listing;
        let limit = limit.clamp(1, 500);
        let position = match cursor {
            Some(c) => Some(
                decode_cursor(c).ok_or_else(|| PortError::not_found("the cursor is not valid"))?,
            ),
            None => None,
        };
        // Each partition is read from the position on, newest first, for at
        // most `limit + 1` items; with several partitions the pages are merged
        // newest first (ties by order id), the order the cursor continues in.
        let mut items: Vec<Item> = Vec::new();
        for key_value in key_values {
            let from = position.as_ref().map(|(sort, id)| {
                let mut key = Item::new();
                key.insert(key_attr.to_owned(), s(key_value.as_str()));
                key.insert(sort_attr.to_owned(), s(sort.as_str()));
                key.insert("orderId".to_owned(), s(id.as_str()));
                key
            });
            items.extend(
                self.query_partition(table, index, key_attr, key_value, limit, from)
                    .await?,
            );
        }
        if key_values.len() > 1 {
            let key = |item: &Item| {
                (
                    str_attr(item, sort_attr).unwrap_or_default().to_owned(),
                    str_attr(item, "orderId").unwrap_or_default().to_owned(),
                )
            };
            items.sort_by_key(|item| std::cmp::Reverse(key(item)));
        }
        let next = if items.len() > limit {
            items.truncate(limit);
            match items.last() {
                Some(last) => Some(encode_cursor(
                    str_attr(last, sort_attr)?,
                    str_attr(last, "orderId")?,
                )),
                None => None,
            }
        } else {
            None
        };
        Ok((items, next))
    }

    /// Up to `limit + 1` items of one index partition, newest first, after `start`.
    async fn query_partition(
        &self,
        table: &str,
        index: &str,
        key_attr: &str,
        key_value: &str,
        limit: usize,
        mut start: Option<Item>,
    ) -> Result<Vec<Item>, PortError> {
        let mut items: Vec<Item> = Vec::new();
        loop {
            let out = self
                .client
                .query()
                .table_name(table)
                .index_name(index)
                .key_condition_expression("#k = :k")
                .expression_attribute_names("#k", key_attr)
                .expression_attribute_values(":k", s(key_value))
                .scan_index_forward(false)
                .limit((limit + 1 - items.len()) as i32)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| port_error("Query", e))?;
            items.extend(out.items.unwrap_or_default());
            match out.last_evaluated_key {
                Some(k) if items.len() <= limit => start = Some(k),
                _ => break,
            }
        }
        Ok(items)
    }
}

/// A newest-first listing: an index, its partition and its sort attribute.
struct Listing<'a> {
    table: &'a str,
    index: &'a str,
    key_attr: &'a str,
    key_values: &'a [String],
    sort_attr: &'a str,
}

pub mod counts;
pub(crate) mod item;
#[cfg(test)]
mod tests;
mod write;

use item::*;
pub(crate) use item::{n, num_attr, s, str_attr};

#[async_trait]
impl OrderStore for DynamoDbOrderStore {
    async fn put_new(&self, order: &Order) -> Result<Order, PortError> {
        if self.commit_new(order).await? {
            return Ok(order.clone());
        }
        match self.get(order.id).await? {
            Some(existing) if same_content(&existing, order) => Ok(existing),
            Some(_) => Err(PortError::conflict(format!(
                "order {} exists with other content",
                order.id
            ))),
            None => Err(PortError::new(
                ErrorKind::Transient,
                "the order vanished while being created",
            )),
        }
    }

    async fn get(&self, id: OrderId) -> Result<Option<Order>, PortError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.orders_table)
            .key("orderId", s(id.to_string()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| port_error("GetItem orders", e))?;
        out.item.as_ref().map(order_from_item).transpose()
    }

    async fn list(
        &self,
        status: Option<OrderStatus>,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<Page<Order>, PortError> {
        let (index, attr, values) = match status {
            Some(st) => (STATUS_INDEX, "status", vec![st.as_str().to_owned()]),
            None => (ALL_ORDERS_INDEX, "listPartition", list_partitions()),
        };
        // The API's order cursors are order ids: the page continues after that
        // order's position (its createdAt) in the index.
        let position = match cursor {
            Some(c) => {
                let id = OrderId::parse(c)
                    .map_err(|_| PortError::not_found("the cursor is not an order id"))?;
                let order = self
                    .get(id)
                    .await?
                    .ok_or_else(|| PortError::not_found("the cursor names no order"))?;
                Some(encode_cursor(
                    &order.created_at.to_string(),
                    &id.to_string(),
                ))
            }
            None => None,
        };
        let (items, next_cursor) = self
            .query_page(
                Listing {
                    table: &self.orders_table,
                    index,
                    key_attr: attr,
                    key_values: &values,
                    sort_attr: "createdAt",
                },
                limit,
                position.as_deref(),
            )
            .await?;
        let items: Vec<Order> = items
            .iter()
            .map(order_from_item)
            .collect::<Result<_, _>>()?;
        let next_cursor = next_cursor.and(items.last().map(|o| o.id.to_string()));
        Ok(Page { items, next_cursor })
    }

    async fn transition(&self, id: OrderId, change: &Transition) -> Result<Order, PortError> {
        self.change(id, change).await
    }

    async fn record_failure(&self, failed: &FailedOrder) -> Result<bool, PortError> {
        self.fail(failed).await
    }

    async fn list_failed(
        &self,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<Page<FailedOrder>, PortError> {
        let (items, next_cursor) = self
            .query_page(
                Listing {
                    table: &self.failed_table,
                    index: ALL_FAILED_INDEX,
                    key_attr: "listPartition",
                    key_values: &list_partitions(),
                    sort_attr: "failedAt",
                },
                limit,
                cursor,
            )
            .await?;
        Ok(Page {
            items: items
                .iter()
                .map(failed_from_item)
                .collect::<Result<_, _>>()?,
            next_cursor,
        })
    }

    async fn count_by_status(&self) -> Result<Vec<(OrderStatus, u64)>, PortError> {
        self.counts().await
    }
}
