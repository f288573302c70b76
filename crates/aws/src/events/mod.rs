//! Order events on AWS: the outbox items the order store writes in the same
//! DynamoDB transaction as each status change, the feed over them
//! ([`DynamoDbEventLog`], `GET /events`), and their publication to
//! EventBridge ([`publish::EventBridgePublisher`]).
//!
//! ## Keys
//!
//! The events table (`<prefix>-order-events`) has hash key `feed` and range
//! key `eventId`:
//! - `eventId` is `{ms}-{orderId}-{seq}`: the change's time in milliseconds
//!   (13 digits), the order, and the order's change number (`version`, 6
//!   digits). It sorts by time, then order, then change; an order's events
//!   sort in the order they happened, because the store never stamps a
//!   change earlier than the order's last one ([`event_time`]).
//! - `feed` is `{UTC day}#{shard}`, the shard a hash of the order id
//!   ([`EVENT_SHARDS`] of them): a partition key takes about 1,000 writes a
//!   second, so one key per day would cap the whole system there. The feed
//!   reads the shards of each day and merges them by `eventId`; an event id
//!   names its own key, so a cursor is checked with one read.
//!
//! ## How good the order is
//!
//! The feed's order is the writers' clocks' order, not the commit order: an
//! event stamped at `t` and committed later could land behind a reader that
//! already passed `t`. The feed therefore serves only events at least
//! [`FEED_SETTLE`] old, which covers the time between stamping a change and
//! committing it (one read and one transaction) and the clock skew between
//! Lambda hosts (NTP keeps it to milliseconds). A write delayed longer than
//! that (the SDK retrying a throttled transaction for over a second) can be
//! skipped by a reader that is following the feed's head; it is still
//! published to EventBridge and still listed by a reader starting earlier.
//!
//! ## Retention
//!
//! Each item carries `expiresAt` (DynamoDB TTL, `events.max_age_s` after the
//! change); TTL deletes lazily, so the feed also hides expired items itself.
//!
//! ## Publication
//!
//! An item is written with `publishShard` set; the sparse index
//! [`UNPUBLISHED_INDEX`] holds exactly the items not yet published, oldest
//! first. The publisher sends them and removes the attribute. See
//! [`publish`] for who runs it and what it guarantees.

pub mod publish;

use crate::error::{corrupt, port_error};
use crate::store::item::{order_from_item, order_item};
use crate::store::{n, num_attr, s, str_attr};
use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use dofs_core::ports::{Clock, EventLog, Page, PortError};
use dofs_core::{EventType, OrderEvent, OrderId, Timestamp};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

type Item = HashMap<String, AttributeValue>;

/// How many `feed` shards a day's events spread over.
pub const EVENT_SHARDS: u32 = 4;
/// The events index of items not yet published (sparse: hash `publishShard`, range `eventId`).
pub const UNPUBLISHED_INDEX: &str = "unpublished-eventId";
/// The events index by order (hash `orderId`, range `eventId`).
pub const ORDER_INDEX: &str = "order-eventId";
/// How old an event must be before the feed serves it (see the module doc).
pub const FEED_SETTLE: Duration = Duration::from_millis(1000);
/// The contract's default `events.max_age_s`.
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(86_400);

const DAY_MS: i64 = 86_400_000;

/// Where events are written and how long they are kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventsTable {
    pub name: String,
    /// `events.max_age_s`: the TTL of each item, and the feed's horizon.
    pub max_age: Duration,
}

fn shard_of(order: &OrderId) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in order.to_string().bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h % EVENT_SHARDS
}

/// The UTC day of `ms`, as `2026-12-04`.
fn day_text(day: i64) -> String {
    let text = Timestamp(day * DAY_MS).to_string();
    text.get(..10).unwrap_or(&text).to_owned()
}

/// The `feed` key of an order's events on a day (days since the epoch).
pub fn feed_key(day: i64, order: &OrderId) -> String {
    format!("{}#{}", day_text(day), shard_of(order))
}

/// The `publishShard` of an unpublished event of `order`.
pub fn publish_shard(order: &OrderId) -> String {
    format!("p#{}", shard_of(order))
}

/// The time an event's id carries: the change's, but never earlier than the
/// order's previous change, so an order's events sort in order even when
/// two hosts' clocks disagree.
pub fn event_time(change_at: Timestamp, previous_change: Timestamp) -> Timestamp {
    change_at.max(previous_change)
}

/// `{ms}-{orderId}-{seq}`.
pub fn event_id(at: Timestamp, order: &OrderId, seq: u64) -> String {
    format!("{:013}-{order}-{seq:06}", at.millis().max(0))
}

/// The parts of an event id, or `None` for anything else.
pub fn parse_event_id(id: &str) -> Option<(Timestamp, OrderId, u64)> {
    let (ms, rest) = id.split_once('-')?;
    if ms.len() != 13 || rest.len() < 38 {
        return None;
    }
    let (order, seq) = rest.split_at(36);
    let seq = seq.strip_prefix('-')?;
    if seq.len() < 6 || !seq.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((
        Timestamp(ms.parse().ok()?),
        OrderId::parse(order).ok()?,
        seq.parse().ok()?,
    ))
}

/// The primary key of the event `id`.
pub(crate) fn key_of(id: &str) -> Option<Item> {
    let (at, order, _) = parse_event_id(id)?;
    let mut key = Item::new();
    key.insert("feed".into(), s(feed_key(at.millis() / DAY_MS, &order)));
    key.insert("eventId".into(), s(id));
    Some(key)
}

/// The outbox item of `event`, kept for `max_age`.
pub fn event_item(event: &OrderEvent, max_age: Duration) -> Result<Item, PortError> {
    let (at, order, _) = parse_event_id(&event.id).ok_or_else(|| corrupt("eventId"))?;
    let mut item = Item::new();
    item.insert("feed".into(), s(feed_key(at.millis() / DAY_MS, &order)));
    item.insert("eventId".into(), s(event.id.clone()));
    item.insert("type".into(), s(event.kind.as_str()));
    item.insert("orderId".into(), s(order.to_string()));
    item.insert("occurredAtMs".into(), n(event.occurred_at.millis()));
    item.insert("order".into(), AttributeValue::M(order_item(&event.order)));
    let expires = event.occurred_at.millis() / 1000 + max_age.as_secs() as i64;
    item.insert("expiresAt".into(), n(expires));
    item.insert("publishShard".into(), s(publish_shard(&order)));
    Ok(item)
}

/// The event of an outbox item.
pub fn event_from_item(item: &Item) -> Result<OrderEvent, PortError> {
    let order = match item.get("order") {
        Some(AttributeValue::M(m)) => order_from_item(m)?,
        _ => return Err(corrupt("order")),
    };
    Ok(OrderEvent {
        id: str_attr(item, "eventId")?.to_owned(),
        kind: EventType::parse(str_attr(item, "type")?).ok_or_else(|| corrupt("type"))?,
        order,
        occurred_at: Timestamp(num_attr(item, "occurredAtMs")?),
    })
}

/// The order event feed over the events table.
#[derive(Clone)]
pub struct DynamoDbEventLog {
    client: Client,
    table: EventsTable,
    clock: Arc<dyn Clock>,
}

impl DynamoDbEventLog {
    pub fn new(client: Client, table: EventsTable, clock: Arc<dyn Clock>) -> Self {
        DynamoDbEventLog {
            client,
            table,
            clock,
        }
    }

    /// Up to `limit` items of one feed partition after `after`, oldest first.
    async fn query_feed(
        &self,
        feed: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Item>, PortError> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let mut q = self
                .client
                .query()
                .table_name(&self.table.name)
                .expression_attribute_names("#f", "feed")
                .expression_attribute_values(":f", s(feed))
                .scan_index_forward(true)
                .limit((limit - items.len()) as i32)
                .set_exclusive_start_key(start.take());
            q = match after {
                Some(id) => q
                    .key_condition_expression("#f = :f AND eventId > :after")
                    .expression_attribute_values(":after", s(id)),
                None => q.key_condition_expression("#f = :f"),
            };
            let out = q.send().await.map_err(|e| port_error("Query events", e))?;
            items.extend(out.items.unwrap_or_default());
            match out.last_evaluated_key {
                Some(k) if items.len() < limit => start = Some(k),
                _ => return Ok(items),
            }
        }
    }
}

#[async_trait]
impl EventLog for DynamoDbEventLog {
    async fn after(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page<OrderEvent>, PortError> {
        let limit = limit.clamp(1, 1000);
        let now = self.clock.now().millis();
        let newest = now - FEED_SETTLE.as_millis() as i64;
        let oldest = now - self.table.max_age.as_millis() as i64;
        let start = match after {
            Some(id) => match parse_event_id(id) {
                Some((at, _, _)) => at.millis(),
                None => return Err(PortError::not_found("not an event id")),
            },
            None => oldest,
        };
        let mut events: Vec<OrderEvent> = Vec::new();
        for day in start.max(oldest) / DAY_MS..=newest.max(0) / DAY_MS {
            let mut items = Vec::new();
            for shard in 0..EVENT_SHARDS {
                let feed = format!("{}#{shard}", day_text(day));
                items.extend(self.query_feed(&feed, after, limit + 1).await?);
            }
            let mut day_events = items
                .iter()
                .map(event_from_item)
                .collect::<Result<Vec<_>, _>>()?;
            day_events.retain(|e| {
                parse_event_id(&e.id)
                    .is_some_and(|(at, _, _)| (oldest..=newest).contains(&at.millis()))
            });
            day_events.sort_by(|a, b| a.id.cmp(&b.id));
            events.extend(day_events);
            if events.len() > limit {
                break;
            }
        }
        events.truncate(limit);
        let next_cursor = match events.last() {
            Some(e) => Some(e.id.clone()),
            None => after.map(str::to_owned),
        };
        Ok(Page {
            items: events,
            next_cursor,
        })
    }

    async fn of_order(&self, id: OrderId) -> Result<Vec<OrderEvent>, PortError> {
        let oldest = self.clock.now().millis() - self.table.max_age.as_millis() as i64;
        let out = self
            .client
            .query()
            .table_name(&self.table.name)
            .index_name(ORDER_INDEX)
            .key_condition_expression("orderId = :o")
            .expression_attribute_values(":o", s(id.to_string()))
            .scan_index_forward(true)
            .limit(100)
            .send()
            .await
            .map_err(|e| port_error("Query events of an order", e))?;
        let mut events = out
            .items
            .unwrap_or_default()
            .iter()
            .map(event_from_item)
            .collect::<Result<Vec<_>, _>>()?;
        events.retain(|e| e.occurred_at.millis() >= oldest);
        Ok(events)
    }
}

#[cfg(test)]
mod tests;
