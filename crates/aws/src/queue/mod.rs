//! [`SqsQueue`]: the orders queue and its dead-letter queue on SQS.
//!
//! SQS does the hard parts itself: visibility timeouts, receive counts, and
//! the redrive policy that moves a message to the DLQ after
//! `maxReceiveCount` receives. This adapter adds what the port promises
//! beyond plain SQS:
//!
//! - **idempotent send per id**: with a dedup table (the idempotency table), a
//!   send first claims `sqs-send#<queue>#<id>` with a conditional put, so a
//!   repeated send of the same id queues one message. Without one, sends are
//!   at least once (fulfillment is idempotent anyway).
//! - **dead letters listed without removing them**: SQS cannot peek, so the
//!   DLQ is received with a visibility timeout and every message received is
//!   made visible again at once. A dead letter's receive count is the queue's
//!   `maxReceiveCount` (that is how it got there; receiving from the DLQ would
//!   count our own peeks).
//! - **redrive and purge that count**: messages are moved (send, then delete)
//!   or deleted batch by batch. The operator's redrive and purge
//!   ([`crate::AwsOperations`]) go batch by batch too, and stop by a deadline.
//! - **dead-lettering a received message at once** ([`Queue::dead_letter`]):
//!   SQS has no such call, so the message's body and attributes, remembered
//!   from its receive ([`receipts`]), are sent to the DLQ, then the message is
//!   deleted by its receipt.
//!
//! Layout: this file holds the orders-queue side; [`dead_letters`] the DLQ side.

use crate::error::{condition_failed, port_error, sqs_error};
use crate::store::{n, s};
use async_trait::async_trait;
use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, DeleteMessageBatchRequestEntry, Message,
    MessageAttributeValue, MessageSystemAttributeName, QueueAttributeName,
    SendMessageBatchRequestEntry,
};
use aws_sdk_sqs::Client;
use dofs_core::ports::{
    Clock, DeadLetter, ErrorKind, Page, PortError, Queue, QueueDepth, Received,
};
use dofs_core::service::OrderMessage;
use dofs_core::{OrderId, Timestamp};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

mod dead_letters;
pub mod receipts;

pub use dead_letters::lease_until;

use receipts::{Held, Receipts};

/// The most messages one SQS call takes or returns: a receive, and the
/// entries of a batch send, delete or visibility change.
pub const SQS_BATCH_MAX: usize = 10;
/// How long a dead letter stays hidden while it is peeked, moved or purged.
const DEAD_LETTER_LEASE: Duration = Duration::from_secs(30);
/// How long a send claim may stay unconfirmed before another send takes it over.
const SEND_CLAIM_TIMEOUT_MS: i64 = 30_000;
/// How long a send claim is kept (the DLQ's retention: 14 days).
const SEND_CLAIM_TTL_SECS: i64 = 14 * 24 * 3600;

/// Where send claims live: a DynamoDB table with hash key `idempotencyKey`.
#[derive(Clone, Debug)]
pub struct SendDedup {
    pub client: aws_sdk_dynamodb::Client,
    pub table: String,
}

/// The orders queue and its DLQ.
#[derive(Clone)]
pub struct SqsQueue {
    client: Client,
    queue_url: String,
    dlq_url: String,
    max_receive_count: u32,
    dedup: Option<SendDedup>,
    clock: Arc<dyn Clock>,
    /// Received messages by receipt (shared by clones).
    receipts: Arc<Receipts>,
}

/// A dead letter received with a lease: hidden until released or deleted.
#[derive(Clone, Debug)]
pub struct LeasedDeadLetter {
    pub letter: DeadLetter,
    pub receipt: String,
}

fn secs(d: Duration) -> i32 {
    let s = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    s.min(43_200) as i32
}

fn attr_i64(m: &Message, name: MessageSystemAttributeName) -> Option<i64> {
    m.attributes
        .as_ref()
        .and_then(|a| a.get(&name))
        .and_then(|v| v.parse().ok())
}

impl SqsQueue {
    /// The queue at `queue_url` whose redrive policy sends to `dlq_url` after
    /// `max_receive_count` receives.
    pub fn new(
        client: Client,
        queue_url: impl Into<String>,
        dlq_url: impl Into<String>,
        max_receive_count: u32,
        dedup: Option<SendDedup>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        SqsQueue {
            client,
            queue_url: queue_url.into(),
            dlq_url: dlq_url.into(),
            max_receive_count,
            dedup,
            clock,
            receipts: Arc::new(Receipts::default()),
        }
    }

    /// Remembers a message received by someone else (the Lambda event source)
    /// so that [`Queue::dead_letter`] can move it by its receipt.
    pub fn remember(
        &self,
        receipt: &str,
        body: &str,
        attributes: HashMap<String, MessageAttributeValue>,
    ) {
        self.receipts.hold(
            receipt,
            Held {
                body: body.to_owned(),
                attributes,
            },
        );
    }

    /// The orders queue's URL.
    pub fn queue_url(&self) -> &str {
        &self.queue_url
    }

    /// The DLQ's URL.
    pub fn dlq_url(&self) -> &str {
        &self.dlq_url
    }

    /// Claims `id` for sending. `Ok(false)` when a message with this id was sent already.
    async fn claim_send(&self, d: &SendDedup, key: &str) -> Result<bool, PortError> {
        let now = self.clock.now().millis();
        let result = d
            .client
            .put_item()
            .table_name(&d.table)
            .item("idempotencyKey", s(key))
            .item("state", s("sending"))
            .item("claimedAtMs", n(now))
            .item("expiresAt", n(now / 1000 + SEND_CLAIM_TTL_SECS))
            .condition_expression(
                "attribute_not_exists(idempotencyKey) OR (#st = :sending AND claimedAtMs < :stale)",
            )
            .expression_attribute_names("#st", "state")
            .expression_attribute_values(":sending", s("sending"))
            .expression_attribute_values(":stale", n(now - SEND_CLAIM_TIMEOUT_MS))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if condition_failed(&e) => {
                let item = d
                    .client
                    .get_item()
                    .table_name(&d.table)
                    .key("idempotencyKey", s(key))
                    .consistent_read(true)
                    .send()
                    .await
                    .map_err(|e| port_error("GetItem send claim", e))?
                    .item;
                match item.as_ref().and_then(|i| i.get("state")) {
                    Some(aws_sdk_dynamodb::types::AttributeValue::S(st)) if st == "sent" => {
                        Ok(false)
                    }
                    _ => Err(PortError::new(
                        ErrorKind::Transient,
                        format!("another send of {key} is in progress"),
                    )),
                }
            }
            Err(e) => Err(port_error("PutItem send claim", e)),
        }
    }

    async fn confirm_send(&self, d: &SendDedup, key: &str) -> Result<(), PortError> {
        d.client
            .update_item()
            .table_name(&d.table)
            .key("idempotencyKey", s(key))
            .update_expression("SET #st = :sent")
            .expression_attribute_names("#st", "state")
            .expression_attribute_values(":sent", s("sent"))
            .send()
            .await
            .map_err(|e| port_error("UpdateItem send claim", e))?;
        Ok(())
    }

    /// Sends `body` to the orders queue, without an idempotency claim.
    pub async fn send_unclaimed(&self, body: &str) -> Result<(), PortError> {
        self.client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(body)
            .send()
            .await
            .map_err(|e| sqs_error("SendMessage", e))?;
        Ok(())
    }

    async fn queue_attrs(&self, url: &str) -> Result<(u64, u64, u64), PortError> {
        let out = self
            .client
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesDelayed)
            .send()
            .await
            .map_err(|e| sqs_error("GetQueueAttributes", e))?;
        let get = |name: QueueAttributeName| -> u64 {
            out.attributes
                .as_ref()
                .and_then(|a| a.get(&name))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        Ok((
            get(QueueAttributeName::ApproximateNumberOfMessages),
            get(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
            get(QueueAttributeName::ApproximateNumberOfMessagesDelayed),
        ))
    }

    /// How many dead letters the DLQ holds now (visible or leased).
    pub async fn dead_count(&self) -> Result<u64, PortError> {
        let (visible, in_flight, _) = self.queue_attrs(&self.dlq_url).await?;
        Ok(visible + in_flight)
    }

    /// Changes a received message's visibility; a stale receipt is
    /// `Conflict`, a deleted message `NotFound`.
    async fn hide(&self, receipt: &str, timeout: Duration) -> Result<(), PortError> {
        match self
            .client
            .change_message_visibility()
            .queue_url(&self.queue_url)
            .receipt_handle(receipt)
            .visibility_timeout(secs(timeout))
            .send()
            .await
        {
            Ok(_) => Ok(()),
            // Typed checks: the SDK's code is AWS.SimpleQueueService.MessageNotInflight.
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_message_not_inflight()) =>
            {
                Err(PortError::conflict(
                    "the message is not in flight under this receipt",
                ))
            }
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_receipt_handle_is_invalid()) =>
            {
                Err(PortError::not_found("no message has this receipt"))
            }
            Err(e) => Err(sqs_error("ChangeMessageVisibility", e)),
        }
    }

    /// Whether both queues answer.
    pub async fn ready(&self) -> Result<(), PortError> {
        self.queue_attrs(&self.queue_url).await?;
        self.queue_attrs(&self.dlq_url).await?;
        Ok(())
    }
}

#[async_trait]
impl Queue for SqsQueue {
    async fn send(&self, id: &str, body: &str) -> Result<(), PortError> {
        let Some(d) = &self.dedup else {
            return self.send_unclaimed(body).await;
        };
        let queue_name = self.queue_url.rsplit('/').next().unwrap_or("queue");
        let key = format!("sqs-send#{queue_name}#{id}");
        if !self.claim_send(d, &key).await? {
            return Ok(());
        }
        self.send_unclaimed(body).await?;
        self.confirm_send(d, &key).await
    }

    async fn receive(&self, max: usize, visibility: Duration) -> Result<Vec<Received>, PortError> {
        let got = self
            .client
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(max.clamp(1, SQS_BATCH_MAX) as i32)
            .visibility_timeout(secs(visibility))
            .wait_time_seconds(0)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .message_attribute_names("All")
            .send()
            .await
            .map_err(|e| sqs_error("ReceiveMessage", e))?
            .messages
            .unwrap_or_default();
        Ok(got
            .into_iter()
            .filter_map(|m| {
                if let Some(receipt) = &m.receipt_handle {
                    self.remember(
                        receipt,
                        m.body.as_deref().unwrap_or_default(),
                        m.message_attributes.clone().unwrap_or_default(),
                    );
                }
                let receive_count =
                    attr_i64(&m, MessageSystemAttributeName::ApproximateReceiveCount).unwrap_or(1)
                        as u32;
                let sent_at =
                    Timestamp(attr_i64(&m, MessageSystemAttributeName::SentTimestamp).unwrap_or(0));
                Some(Received {
                    id: m.message_id?,
                    body: m.body.unwrap_or_default(),
                    receipt: m.receipt_handle?,
                    receive_count,
                    sent_at,
                })
            })
            .collect())
    }

    async fn delete(&self, receipt: &str) -> Result<(), PortError> {
        self.receipts.forget(receipt);
        match self
            .client
            .delete_message()
            .queue_url(&self.queue_url)
            .receipt_handle(receipt)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            // Deleted already (SQS answers a stale receipt the same way).
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_receipt_handle_is_invalid()) =>
            {
                Ok(())
            }
            Err(e) => Err(sqs_error("DeleteMessage", e)),
        }
    }

    async fn change_visibility(&self, receipt: &str, timeout: Duration) -> Result<(), PortError> {
        self.receipts.forget(receipt);
        self.hide(receipt, timeout).await
    }

    async fn dead_letter(&self, receipt: &str) -> Result<(), PortError> {
        self.dead_letter_now(receipt).await
    }

    async fn depth(&self) -> Result<QueueDepth, PortError> {
        let (visible, in_flight, delayed) = self.queue_attrs(&self.queue_url).await?;
        let (dead, dead_in_flight, _) = self.queue_attrs(&self.dlq_url).await?;
        Ok(QueueDepth {
            waiting: visible + delayed,
            in_flight,
            dead: dead + dead_in_flight,
            oldest_age_ms: None,
        })
    }

    async fn dead_letters(
        &self,
        limit: usize,
        _cursor: Option<&str>,
    ) -> Result<Page<DeadLetter>, PortError> {
        let leased = self
            .lease_every_dead_letter(limit.max(1), DEAD_LETTER_LEASE)
            .await?;
        self.release_dead_letters(&leased).await?;
        let mut items: Vec<DeadLetter> = leased.into_iter().map(|l| l.letter).collect();
        items.sort_by_key(|d| d.sent_at);
        // SQS cannot continue a peek where the last one stopped: one page only.
        Ok(Page {
            items,
            next_cursor: None,
        })
    }

    async fn redrive(&self) -> Result<u64, PortError> {
        // Only the dead letters there now: one redriven and dead again meanwhile waits.
        let present = self.dead_count().await?;
        let mut moved = 0;
        loop {
            let want = present.saturating_sub(moved).min(100) as usize;
            let leased = match want {
                0 => Vec::new(),
                n => self.lease_every_dead_letter(n, DEAD_LETTER_LEASE).await?,
            };
            if leased.is_empty() {
                return Ok(moved);
            }
            self.requeue_dead_letters(&leased).await?;
            moved += leased.len() as u64;
        }
    }

    async fn purge_dead_letters(&self) -> Result<u64, PortError> {
        let present = self.dead_count().await?;
        let mut purged = 0;
        loop {
            let want = present.saturating_sub(purged).min(100) as usize;
            let leased = match want {
                0 => Vec::new(),
                n => self.lease_every_dead_letter(n, DEAD_LETTER_LEASE).await?,
            };
            if leased.is_empty() {
                return Ok(purged);
            }
            self.delete_dead_letters(&leased).await?;
            purged += leased.len() as u64;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn visibility_rounds_up_to_whole_seconds_and_keeps_zero() {
        assert_eq!(secs(Duration::ZERO), 0);
        assert_eq!(secs(Duration::from_millis(5)), 1);
        assert_eq!(secs(Duration::from_secs(2)), 2);
        assert_eq!(secs(Duration::from_secs(100_000)), 43_200);
    }
}
