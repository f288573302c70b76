//! `fulfill_order`: consumes the orders queue in batches (the SQS event
//! source) and answers which messages failed (`ReportBatchItemFailures`), so
//! only those stay on the queue.
//!
//! Each message is one fulfillment attempt through the shared
//! [`Fulfiller`]: idempotent per order (every status change is conditional,
//! a redelivered message of a terminal order is just deleted). The attempt
//! number is the order's own count plus one, claimed with a conditional
//! write, not the message's `ApproximateReceiveCount`: a delivery that never
//! reached the handler (a throttled invocation) costs no attempt. A failed
//! attempt hides its message for the backoff and reports it as a batch item
//! failure; after the last attempt the fulfiller records the order `FAILED`
//! and moves the message to the DLQ itself. The queue's redrive policy,
//! set above the attempt limit, is only a safety net for messages whose
//! deliveries keep failing before the handler runs.
//!
//! Each finished attempt is counted in `dofs_fulfillment_attempts_total`
//! by outcome, as the embedded workers count it; the binary publishes the
//! batch's counts ([`crate::metrics::Publisher`]).

use aws_lambda_events::event::sqs::{
    BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage, SqsMessageAttribute,
};
use aws_sdk_sqs::primitives::Blob;
use aws_sdk_sqs::types::MessageAttributeValue;
use dofs_aws::settings::HttpSettings;
use dofs_aws::{AwsSettings, FulfillmentMode, SettingsError, SqsQueue};
use dofs_core::fulfillment::Simulated;
use dofs_core::ports::Received;
use dofs_core::service::{Fulfiller, Handled};
use dofs_core::{Fulfillment, Timestamp};
use dofs_fulfillment::http::ConfigError;
use dofs_fulfillment::{HttpConfig, HttpFulfillment};
use dofs_server::observability::metrics::{names, Registry};
use std::collections::HashMap;
use std::sync::Arc;

/// What makes the attempts, as the settings say (`DOFS_FULFILLMENT_MODE`).
/// Built once, at cold start; in `http` mode the signing secret is read
/// here (from SSM on AWS), so a missing or bad secret fails the cold start
/// rather than an attempt.
pub async fn backend(
    settings: &AwsSettings,
    config: &aws_config::SdkConfig,
) -> Result<Arc<dyn Fulfillment>, SettingsError> {
    match &settings.fulfillment {
        FulfillmentMode::Simulated => {
            // Unseeded draws start from the clock, so instances do not repeat each other.
            let salt = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0);
            Ok(Arc::new(Simulated::new(settings.policy, salt)))
        }
        FulfillmentMode::Http(http) => {
            let secret = match &http.secret {
                Some(source) => {
                    let ssm = aws_sdk_ssm::Client::new(config);
                    Some(dofs_aws::secrets::fulfillment_secret(source, &ssm).await?)
                }
                None => None,
            };
            Ok(Arc::new(http_backend(http, secret)?))
        }
    }
}

/// The `http` backend of checked settings and the secret they designate.
pub fn http_backend(
    http: &HttpSettings,
    secret: Option<dofs_fulfillment::Secret>,
) -> Result<HttpFulfillment, SettingsError> {
    HttpFulfillment::new(HttpConfig {
        url: http.url.clone(),
        secret,
        timeout: http.timeout,
        concurrency: http.concurrency,
    })
    .map_err(|e| SettingsError::Invalid {
        name: "DOFS_FULFILLMENT_HTTP_URL",
        value: http.url.clone(),
        why: match e {
            ConfigError::BadUrl { .. } | ConfigError::BadScheme { .. } => {
                "must be an http:// or https:// URL"
            }
            _ => "the HTTP client cannot be built for it",
        },
    })
}

/// A record's message attributes as SQS takes them back (string and binary values).
fn attributes(m: &SqsMessage) -> HashMap<String, MessageAttributeValue> {
    let convert = |a: &SqsMessageAttribute| {
        MessageAttributeValue::builder()
            .set_data_type(a.data_type.clone())
            .set_string_value(a.string_value.clone())
            .set_binary_value(a.binary_value.as_ref().map(|b| Blob::new(b.0.clone())))
            .build()
            .ok()
    };
    m.message_attributes
        .iter()
        .filter_map(|(k, a)| Some((k.clone(), convert(a)?)))
        .collect()
}

/// The port's view of an SQS record.
pub fn received(m: &SqsMessage) -> Option<Received> {
    let attr = |k: &str| m.attributes.get(k).and_then(|v| v.parse::<i64>().ok());
    Some(Received {
        id: m.message_id.clone()?,
        body: m.body.clone().unwrap_or_default(),
        receipt: m.receipt_handle.clone()?,
        receive_count: attr("ApproximateReceiveCount").unwrap_or(1).max(1) as u32,
        sent_at: Timestamp(attr("SentTimestamp").unwrap_or(0)),
    })
}

/// Counts a finished attempt: a fulfilled order is a success; a failed
/// attempt, a service's refusal or a last attempt that ended the order
/// (failed now, or begun earlier and never finished) a failure; a message that
/// made no attempt (an order already terminal, an overtaken or claimed
/// attempt) is not counted. The embedded workers count the same way.
fn count_attempt(handled: &Handled) {
    let outcome = match handled {
        Handled::Fulfilled(_) => "success",
        Handled::Failed { .. } | Handled::Rejected { .. } | Handled::DeadLettered { .. } => {
            "failure"
        }
        Handled::AlreadyTerminal(_)
        | Handled::Superseded(_)
        | Handled::Claimed(_)
        | Handled::Discarded => return,
    };
    Registry::global().increment(names::FULFILLMENT_ATTEMPTS, &[("outcome", outcome)], 1);
}

/// Runs one attempt per record, concurrently; returns the records to retry.
/// Each record is remembered by `queue` (the fulfiller's queue), so that a
/// rejected attempt can move its message to the DLQ by receipt.
pub async fn fulfill_batch(
    event: SqsEvent,
    fulfiller: &Fulfiller,
    queue: &SqsQueue,
) -> SqsBatchResponse {
    let mut attempts = tokio::task::JoinSet::new();
    for record in event.records {
        let f = fulfiller.clone();
        let id = record.message_id.clone().unwrap_or_default();
        let Some(msg) = received(&record) else {
            tracing::warn!(messageId = %id, "a record without a receipt handle; left to the queue");
            attempts.spawn(async move { Some(id) });
            continue;
        };
        queue.remember(&msg.receipt, &msg.body, attributes(&record));
        attempts.spawn(async move {
            let handled = f.handle(&msg).await;
            if let Ok(h) = &handled {
                count_attempt(h);
            }
            match handled {
                Ok(Handled::Failed { order, attempt, .. }) => {
                    tracing::info!(orderId = %order, attempt, "fulfillment attempt failed");
                    Some(id)
                }
                // The message was kept for the order's next attempt: not a success.
                Ok(Handled::Rejected { order, attempt }) => {
                    tracing::info!(orderId = %order, attempt, "the fulfillment service rejected the order; it is FAILED");
                    None
                }
                Ok(Handled::Superseded(order)) => {
                    tracing::info!(orderId = %order, "attempt overtaken by a redelivery; the message stays");
                    Some(id)
                }
                Ok(Handled::DeadLettered { order, attempts }) => {
                    tracing::info!(orderId = %order, attempts, "attempts exhausted; the order is FAILED and its message in the DLQ");
                    None
                }
                // Another delivery of the message runs the attempt; this one
                // leaves the message to its visibility timeout.
                Ok(Handled::Claimed(order)) => {
                    tracing::info!(orderId = %order, "another delivery claimed the attempt; the message stays");
                    Some(id)
                }
                Ok(handled) => {
                    tracing::info!(?handled, "message handled");
                    None
                }
                Err(e) => {
                    tracing::warn!(messageId = %id, error = %e, "could not handle the message; it returns after its timeout");
                    Some(id)
                }
            }
        });
    }
    let mut failures = Vec::new();
    while let Some(done) = attempts.join_next().await {
        match done {
            Ok(Some(id)) => failures.push(id),
            Ok(None) => {}
            Err(e) => tracing::error!(error = %e, "an attempt panicked"),
        }
    }
    failures.sort();
    let mut response = SqsBatchResponse::default();
    response.batch_item_failures = failures
        .into_iter()
        .map(|item_identifier| {
            let mut f = BatchItemFailure::default();
            f.item_identifier = item_identifier;
            f
        })
        .collect();
    response
}
