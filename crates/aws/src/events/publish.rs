//! [`EventBridgePublisher`]: sends the outbox's unpublished events to an
//! EventBridge bus (source `dofs`, detail-type the event type, detail the
//! event JSON) and marks each one published.
//!
//! Who runs it: the scheduled `dlq_processor` (every minute) sweeps every
//! unpublished event on each run, so an event reaches the bus within about
//! a minute of its change. Nothing is lost between the write and the
//! publication: the event is durable in the outbox from the change's own
//! transaction on, and stays in the [`UNPUBLISHED_INDEX`] until a
//! `PutEvents` accepted it; a crash after `PutEvents` and before the mark
//! publishes it again on the next run. Delivery is therefore at least once;
//! consumers de-duplicate by `eventId` (EventBridge does not keep order
//! either, so they order an order's events by `eventId`).

use super::{event_from_item, EVENT_SHARDS, UNPUBLISHED_INDEX};
use crate::error::{condition_failed, port_error};
use crate::store::{n, s};
use aws_sdk_eventbridge::primitives::DateTime;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use dofs_core::ports::{Clock, ErrorKind, PortError};
use dofs_core::OrderEvent;
use std::sync::Arc;
use std::time::Instant;

/// The `source` of every DOFS event on the bus.
pub const SOURCE: &str = "dofs";
/// The most entries `PutEvents` takes at once.
const BATCH: usize = 10;

/// What one sweep did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Swept {
    /// Accepted by EventBridge and marked published.
    pub published: u64,
    /// Refused by EventBridge; left for the next sweep.
    pub failed: u64,
}

/// Publishes the outbox of one events table to one bus.
#[derive(Clone)]
pub struct EventBridgePublisher {
    dynamodb: aws_sdk_dynamodb::Client,
    table: String,
    eventbridge: aws_sdk_eventbridge::Client,
    bus: String,
    clock: Arc<dyn Clock>,
}

impl EventBridgePublisher {
    pub fn new(
        dynamodb: aws_sdk_dynamodb::Client,
        table: impl Into<String>,
        eventbridge: aws_sdk_eventbridge::Client,
        bus: impl Into<String>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        EventBridgePublisher {
            dynamodb,
            table: table.into(),
            eventbridge,
            bus: bus.into(),
            clock,
        }
    }

    /// Publishes up to `max` unpublished events, oldest first in each shard,
    /// stopping early at `stop`.
    pub async fn sweep(&self, max: usize, stop: Option<Instant>) -> Result<Swept, PortError> {
        let mut swept = Swept::default();
        for shard in 0..EVENT_SHARDS {
            let mut start = None;
            loop {
                let done = (swept.published + swept.failed) as usize;
                if done >= max || stop.is_some_and(|s| Instant::now() >= s) {
                    return Ok(swept);
                }
                let out = self
                    .dynamodb
                    .query()
                    .table_name(&self.table)
                    .index_name(UNPUBLISHED_INDEX)
                    .key_condition_expression("publishShard = :p")
                    .expression_attribute_values(":p", s(format!("p#{shard}")))
                    .scan_index_forward(true)
                    .limit((max - done).min(100) as i32)
                    .set_exclusive_start_key(start.take())
                    .send()
                    .await
                    .map_err(|e| port_error("Query unpublished events", e))?;
                let events = out
                    .items
                    .unwrap_or_default()
                    .iter()
                    .map(event_from_item)
                    .collect::<Result<Vec<_>, _>>()?;
                for chunk in events.chunks(BATCH) {
                    let (ok, failed) = self.publish(chunk).await?;
                    swept.published += ok;
                    swept.failed += failed;
                }
                match out.last_evaluated_key {
                    Some(k) => start = Some(k),
                    None => break,
                }
            }
        }
        Ok(swept)
    }

    /// Sends up to ten events and marks those accepted; answers (accepted, refused).
    async fn publish(&self, events: &[OrderEvent]) -> Result<(u64, u64), PortError> {
        let mut entries = Vec::with_capacity(events.len());
        for e in events {
            let detail = serde_json::to_string(&dofs_wire::OrderEvent::from(e)).map_err(|err| {
                PortError::new(
                    ErrorKind::Internal,
                    format!("order event {} as JSON: {err}", e.id),
                )
            })?;
            entries.push(
                PutEventsRequestEntry::builder()
                    .event_bus_name(&self.bus)
                    .source(SOURCE)
                    .detail_type(e.kind.as_str())
                    .detail(detail)
                    .time(DateTime::from_millis(e.occurred_at.millis()))
                    .build(),
            );
        }
        let out = self
            .eventbridge
            .put_events()
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| port_error("PutEvents", e))?;
        let results = out.entries.unwrap_or_default();
        let (mut ok, mut failed) = (0, 0);
        for (i, event) in events.iter().enumerate() {
            let accepted = results
                .get(i)
                .is_some_and(|r| r.error_code.is_none() && r.event_id.is_some());
            if !accepted {
                failed += 1;
                tracing::warn!(eventId = %event.id, "EventBridge refused an event; the next sweep retries");
                continue;
            }
            self.mark_published(event).await?;
            ok += 1;
        }
        Ok((ok, failed))
    }

    async fn mark_published(&self, event: &OrderEvent) -> Result<(), PortError> {
        let Some(key) = super::key_of(&event.id) else {
            return Err(PortError::new(
                ErrorKind::Internal,
                "an event id without its key",
            ));
        };
        let result = self
            .dynamodb
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key))
            .update_expression("REMOVE publishShard SET publishedAtMs = :now")
            .condition_expression("attribute_exists(eventId)")
            .expression_attribute_values(":now", n(self.clock.now().millis()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            // Expired and deleted meanwhile: nothing left to mark.
            Err(e) if condition_failed(&e) => Ok(()),
            Err(e) => Err(port_error("UpdateItem event published", e)),
        }
    }
}
