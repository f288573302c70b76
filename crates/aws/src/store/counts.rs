//! The order counts by status (`count_by_status`, `GET /metrics`), kept as
//! counters rather than counted by queries.
//!
//! Each status has [`COUNT_SHARDS`] counter items in the orders table, keyed
//! `count#<STATUS>#<shard>` (never an order id, which is a UUID), with the
//! count in `orders` (N). They hold no `status`, `createdAt` or
//! `listPartition`, so no index sees them. Every status change moves them in
//! the same `TransactWriteItems` as the order's conditional write ([`super::write`]):
//! `ADD orders -1` on the old status's shard and `+1` on the new one (a new
//! order: `+1` on `PENDING`). A change whose condition fails cancels the
//! whole transaction, counters included, and a retried transaction that had
//! in fact committed fails its condition (the order's `version` moved): the
//! counts never drift. The shard is chosen by the order id, so an order's
//! `-1` and `+1` land on the same shard number and no shard goes negative.
//!
//! Reading the counts is one `BatchGetItem` of the 5 × 16 = 80 items (the
//! limit is 100), whatever the number of orders. Writes are what the shards
//! are for: one item takes about 1,000 write units a second, and an update
//! inside a transaction costs 2, so each shard takes about 500 changes a
//! second; README's AWS section gives the resulting ceiling.

use super::*;
use aws_sdk_dynamodb::types::{KeysAndAttributes, Update};

/// Counter items per status.
pub const COUNT_SHARDS: u32 = 16;
/// The key prefix of counter items (IAM allows `UpdateItem` on these keys only).
pub const COUNT_PREFIX: &str = "count#";
/// How often a read of the counts asks again for unprocessed keys.
const MAX_BATCH_TRIES: u32 = 8;

/// The key of a status's counter shard.
pub fn count_key(status: OrderStatus, shard: u32) -> String {
    format!("{COUNT_PREFIX}{}#{shard}", status.as_str())
}

/// The counter shard of an order: a stable hash of its id.
pub fn count_shard(id: OrderId) -> u32 {
    fnv1a(&id.to_string()) % COUNT_SHARDS
}

impl DynamoDbOrderStore {
    /// `ADD orders :delta` on `status`'s shard for order `id`.
    fn count_update(
        &self,
        status: OrderStatus,
        id: OrderId,
        delta: i64,
    ) -> Result<TransactWriteItem, PortError> {
        let update = Update::builder()
            .table_name(&self.orders_table)
            .key("orderId", s(count_key(status, count_shard(id))))
            .update_expression("ADD #n :d")
            .expression_attribute_names("#n", "orders")
            .expression_attribute_values(":d", n(delta))
            .build()
            .map_err(|e| PortError::with_source(ErrorKind::Internal, "build Update count", e))?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    /// The counter updates of a change of order `after` from status `before`
    /// (`None`: a new order). None when the status stays.
    pub(super) fn count_changes(
        &self,
        before: Option<OrderStatus>,
        after: &Order,
    ) -> Result<Vec<TransactWriteItem>, PortError> {
        match before {
            Some(b) if b == after.status => Ok(Vec::new()),
            Some(b) => Ok(vec![
                self.count_update(b, after.id, -1)?,
                self.count_update(after.status, after.id, 1)?,
            ]),
            None => Ok(vec![self.count_update(after.status, after.id, 1)?]),
        }
    }

    /// The counts, summed over the shards: one consistent `BatchGetItem`
    /// (again for any keys DynamoDB left unprocessed).
    pub(super) async fn counts(&self) -> Result<Vec<(OrderStatus, u64)>, PortError> {
        let keys: Vec<Item> = OrderStatus::ALL
            .iter()
            .flat_map(|st| (0..COUNT_SHARDS).map(move |i| count_key(*st, i)))
            .map(|k| Item::from([("orderId".to_owned(), s(k))]))
            .collect();
        let mut request = Some(
            KeysAndAttributes::builder()
                .set_keys(Some(keys))
                .consistent_read(true)
                .projection_expression("orderId, #n")
                .expression_attribute_names("#n", "orders")
                .build()
                .map_err(|e| PortError::with_source(ErrorKind::Internal, "build keys", e))?,
        );
        let mut totals: HashMap<String, i64> = HashMap::new();
        let mut tries = 0;
        while let Some(keys) = request.take() {
            tries += 1;
            let out = self
                .client
                .batch_get_item()
                .request_items(&self.orders_table, keys)
                .send()
                .await
                .map_err(|e| port_error("BatchGetItem counts", e))?;
            let items = out
                .responses
                .and_then(|mut r| r.remove(&self.orders_table))
                .unwrap_or_default();
            for item in &items {
                let key = str_attr(item, "orderId")?;
                let status = key
                    .strip_prefix(COUNT_PREFIX)
                    .and_then(|rest| rest.split('#').next())
                    .unwrap_or_default();
                *totals.entry(status.to_owned()).or_default() += num_attr::<i64>(item, "orders")?;
            }
            request = out
                .unprocessed_keys
                .and_then(|mut u| u.remove(&self.orders_table))
                .filter(|k| !k.keys().is_empty());
            if request.is_some() {
                if tries >= MAX_BATCH_TRIES {
                    return Err(PortError::new(
                        ErrorKind::Transient,
                        "the order counts could not all be read; try again",
                    ));
                }
                tokio::time::sleep(std::time::Duration::from_millis(25 << tries)).await;
            }
        }
        Ok(OrderStatus::ALL
            .iter()
            .map(|st| {
                let n = totals.get(st.as_str()).copied().unwrap_or(0);
                (*st, n.max(0) as u64)
            })
            .collect())
    }
}
