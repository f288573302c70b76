//! The SQS event source mapping and the EventBridge schedule, played locally.
//!
//! [`poll_queue`] is what Lambda's SQS poller does for `fulfill_order`: long
//! polls the orders queue on the emulator, hands each batch (up to 10
//! messages, the real SQS event JSON) to the function, and deletes the
//! messages the function did not report in `batchItemFailures`. A failed
//! invocation deletes nothing; its messages return after their visibility
//! timeout. Moving a message to the DLQ after `maxReceiveCount` receives is
//! the emulator's own redrive policy, not ours.
//!
//! With `--drop-first-deliveries K`, each message's first K deliveries (its
//! receive count at most K) reach no function, as when Lambda throttles the
//! invocation: they are received, so SQS counts them, and then released.
//!
//! [`schedule`] invokes `dlq_processor` at a fixed rate with a scheduled event,
//! as the EventBridge rule does.

use crate::lambda::Invoker;
use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, DeleteMessageBatchRequestEntry, Message,
    MessageSystemAttributeName,
};
use serde_json::{json, Map, Value};
use std::collections::HashSet;
use std::time::Duration;
use tokio::sync::watch;

/// The poller's settings.
#[derive(Clone)]
pub struct Poller {
    pub sqs: aws_sdk_sqs::Client,
    pub invoker: Invoker,
    pub function: String,
    pub queue_url: String,
    pub queue_arn: String,
    pub batch_size: i32,
    /// Deliveries of each message dropped before the function runs.
    pub drop_first: u32,
}

/// A message's `ApproximateReceiveCount` (exact on the emulator).
fn receive_count(m: &Message) -> u32 {
    m.attributes
        .as_ref()
        .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
}

/// Releases the deliveries a throttled invocation would have dropped: they
/// become visible again at once (SQS would wait out the visibility timeout;
/// only the time differs, the receive count is the same).
async fn drop_deliveries(p: &Poller, dropped: &[Message]) {
    let entries: Vec<ChangeMessageVisibilityBatchRequestEntry> = dropped
        .iter()
        .enumerate()
        .filter_map(|(i, m)| {
            tracing::info!(
                messageId = m.message_id.as_deref().unwrap_or_default(),
                receiveCount = receive_count(m),
                "delivery dropped before fulfill_order ran (--drop-first-deliveries)"
            );
            ChangeMessageVisibilityBatchRequestEntry::builder()
                .id(i.to_string())
                .set_receipt_handle(m.receipt_handle.clone())
                .visibility_timeout(0)
                .build()
                .ok()
        })
        .collect();
    if entries.is_empty() {
        return;
    }
    if let Err(e) = p
        .sqs
        .change_message_visibility_batch()
        .queue_url(&p.queue_url)
        .set_entries(Some(entries))
        .send()
        .await
    {
        tracing::warn!(error = ?e, "could not release dropped deliveries; they return after their visibility timeout");
    }
}

/// The SQS event record of a received message.
pub fn sqs_record(m: &Message, queue_arn: &str) -> Value {
    let mut attributes = Map::new();
    for (k, v) in m.attributes.iter().flatten() {
        attributes.insert(k.as_str().to_owned(), json!(v));
    }
    json!({
        "messageId": m.message_id,
        "receiptHandle": m.receipt_handle,
        "body": m.body,
        "attributes": attributes,
        "messageAttributes": {},
        "md5OfBody": m.md5_of_body,
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": "us-east-1",
    })
}

/// Polls until `stop` turns true.
pub async fn poll_queue(p: Poller, mut stop: watch::Receiver<bool>) {
    while !*stop.borrow() {
        let received = tokio::select! {
            r = p.sqs
                .receive_message()
                .queue_url(&p.queue_url)
                .max_number_of_messages(p.batch_size)
                .wait_time_seconds(1)
                .message_system_attribute_names(MessageSystemAttributeName::All)
                .send() => r,
            _ = stop.changed() => break,
        };
        let received = match received {
            Ok(out) => out.messages.unwrap_or_default(),
            Err(e) => {
                tracing::warn!(error = ?e, "SQS poll failed; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        let (dropped, messages): (Vec<Message>, Vec<Message>) = received
            .into_iter()
            .partition(|m| receive_count(m) <= p.drop_first);
        drop_deliveries(&p, &dropped).await;
        if messages.is_empty() {
            continue;
        }
        let event = json!({
            "Records": messages.iter().map(|m| sqs_record(m, &p.queue_arn)).collect::<Vec<_>>()
        });
        let failed: HashSet<String> = match p.invoker.invoke(&p.function, &event).await {
            Ok(bytes) => match serde_json::from_slice::<Value>(&bytes) {
                Ok(v) => v["batchItemFailures"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|f| f["itemIdentifier"].as_str().map(str::to_owned))
                    .collect(),
                // Not a batch response: every message succeeded.
                Err(_) => HashSet::new(),
            },
            Err(e) => {
                tracing::warn!(error = %e.error_message, kind = %e.error_type, "fulfill_order failed; the batch returns after its visibility timeout");
                continue;
            }
        };
        let done: Vec<DeleteMessageBatchRequestEntry> = messages
            .iter()
            .enumerate()
            .filter(|(_, m)| !m.message_id.as_ref().is_some_and(|id| failed.contains(id)))
            .filter_map(|(i, m)| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .set_receipt_handle(m.receipt_handle.clone())
                    .build()
                    .ok()
            })
            .collect();
        if !done.is_empty() {
            if let Err(e) = p
                .sqs
                .delete_message_batch()
                .queue_url(&p.queue_url)
                .set_entries(Some(done))
                .send()
                .await
            {
                tracing::warn!(error = ?e, "could not delete a finished batch");
            }
        }
    }
}

/// Invokes `function` every `every` until `stop` turns true.
pub async fn schedule(
    invoker: Invoker,
    function: String,
    rule_arn: String,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.changed() => return,
        }
        let event = json!({
            "version": "0",
            "id": uuid::Uuid::new_v4().to_string(),
            "detail-type": "Scheduled Event",
            "source": "aws.events",
            "account": "123456789012",
            "time": dofs_core::Timestamp(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_millis() as i64)
                    .unwrap_or(0)
            ).to_string(),
            "region": "us-east-1",
            "resources": [rule_arn],
            "detail": {}
        });
        if let Err(e) = invoker.invoke(&function, &event).await {
            tracing::warn!(error = %e.error_message, kind = %e.error_type, "{function} failed; the next run retries");
        }
    }
}
