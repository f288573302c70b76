//! Creating the tables and queues (and the events table), the way Terraform's `dynamodb` and `sqs`
//! modules do (same names, keys, indexes, TTL and redrive policy). Used by
//! the local AWS stack and by the tests on the emulator; in a real account
//! Terraform owns these resources.
//!
//! Creation is idempotent: a table or queue that exists is kept.

use crate::error::{port_error, table_exists, ttl_unchanged};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, TimeToLiveSpecification,
};
use aws_sdk_sqs::types::QueueAttributeName;
use dofs_core::ports::{ErrorKind, PortError};
use std::time::Duration;

/// The names of one environment's tables and queues (`<prefix>-orders`, ...),
/// as Terraform names them with `name_prefix`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResourceNames {
    pub orders_table: String,
    pub failed_orders_table: String,
    pub idempotency_table: String,
    pub events_table: String,
    pub orders_queue: String,
    pub dlq: String,
}

impl ResourceNames {
    /// The names under `prefix` (for example `dofs-dev`).
    pub fn with_prefix(prefix: &str) -> Self {
        ResourceNames {
            orders_table: format!("{prefix}-orders"),
            failed_orders_table: format!("{prefix}-failed-orders"),
            idempotency_table: format!("{prefix}-idempotency"),
            events_table: format!("{prefix}-order-events"),
            orders_queue: format!("{prefix}-orders"),
            dlq: format!("{prefix}-orders-dlq"),
        }
    }
}

/// What [`create_all`] made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Created {
    pub names: ResourceNames,
    pub orders_queue_url: String,
    pub dlq_url: String,
}

/// Queue settings.
#[derive(Clone, Copy, Debug)]
pub struct QueueOptions {
    /// The orders queue's default visibility timeout.
    pub visibility_timeout: Duration,
    /// Receives before SQS moves a message to the DLQ (the redrive policy's
    /// `maxReceiveCount`): [`redrive_receive_count`] of the attempt limit.
    pub max_receive_count: u32,
}

/// How many receives more than the attempt limit the redrive policy allows
/// (Terraform's `redrive_margin`).
///
/// The fulfiller counts attempts on the order and dead-letters a message
/// itself after the last attempt that ran. SQS counts every receive,
/// including deliveries that never reached the handler (a throttled or
/// failed invocation of `fulfill_order`): were `maxReceiveCount` the attempt
/// limit, a few throttled deliveries would dead-letter an order that had
/// fewer real attempts. Above it, the redrive policy only catches messages
/// whose deliveries keep failing before the handler runs (AWS recommends a
/// `maxReceiveCount` of at least 5 for a Lambda event source).
pub const REDRIVE_MARGIN: u32 = 5;

/// The redrive policy's `maxReceiveCount` for an attempt limit of `max_attempts`.
pub fn redrive_receive_count(max_attempts: u32, margin: u32) -> u32 {
    max_attempts.saturating_add(margin)
}

fn key(name: &str, t: KeyType) -> Result<KeySchemaElement, PortError> {
    KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(t)
        .build()
        .map_err(|e| PortError::with_source(ErrorKind::Internal, "key schema", e))
}

fn string_attr(name: &str) -> Result<AttributeDefinition, PortError> {
    AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(ScalarAttributeType::S)
        .build()
        .map_err(|e| PortError::with_source(ErrorKind::Internal, "attribute definition", e))
}

fn gsi(name: &str, hash: &str, range: &str) -> Result<GlobalSecondaryIndex, PortError> {
    GlobalSecondaryIndex::builder()
        .index_name(name)
        .key_schema(key(hash, KeyType::Hash)?)
        .key_schema(key(range, KeyType::Range)?)
        .projection(
            Projection::builder()
                .projection_type(ProjectionType::All)
                .build(),
        )
        .build()
        .map_err(|e| PortError::with_source(ErrorKind::Internal, "index", e))
}

async fn create_table(
    client: &aws_sdk_dynamodb::Client,
    name: &str,
    hash: &str,
    attrs: &[&str],
    indexes: Vec<GlobalSecondaryIndex>,
) -> Result<(), PortError> {
    create_keyed_table(client, name, (hash, None), attrs, indexes).await
}

async fn create_keyed_table(
    client: &aws_sdk_dynamodb::Client,
    name: &str,
    (hash, range): (&str, Option<&str>),
    attrs: &[&str],
    indexes: Vec<GlobalSecondaryIndex>,
) -> Result<(), PortError> {
    let mut req = client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(key(hash, KeyType::Hash)?);
    if let Some(range) = range {
        req = req.key_schema(key(range, KeyType::Range)?);
    }
    for a in attrs {
        req = req.attribute_definitions(string_attr(a)?);
    }
    if !indexes.is_empty() {
        req = req.set_global_secondary_indexes(Some(indexes));
    }
    match req.send().await {
        Ok(_) => Ok(()),
        Err(e) if table_exists(&e) => Ok(()),
        Err(e) => Err(port_error("CreateTable", e)),
    }
}

/// Creates the three tables (if missing) with Terraform's keys, indexes and TTL.
pub async fn create_tables(
    client: &aws_sdk_dynamodb::Client,
    names: &ResourceNames,
) -> Result<(), PortError> {
    create_table(
        client,
        &names.orders_table,
        "orderId",
        &["orderId", "status", "createdAt", "listPartition"],
        vec![
            gsi(crate::store::STATUS_INDEX, "status", "createdAt")?,
            gsi(crate::store::ALL_ORDERS_INDEX, "listPartition", "createdAt")?,
        ],
    )
    .await?;
    create_table(
        client,
        &names.failed_orders_table,
        "orderId",
        &["orderId", "listPartition", "failedAt"],
        vec![gsi(
            crate::store::ALL_FAILED_INDEX,
            "listPartition",
            "failedAt",
        )?],
    )
    .await?;
    create_table(
        client,
        &names.idempotency_table,
        "idempotencyKey",
        &["idempotencyKey"],
        Vec::new(),
    )
    .await?;
    create_keyed_table(
        client,
        &names.events_table,
        ("feed", Some("eventId")),
        &["feed", "eventId", "publishShard", "orderId"],
        vec![
            gsi(crate::events::UNPUBLISHED_INDEX, "publishShard", "eventId")?,
            gsi(crate::events::ORDER_INDEX, "orderId", "eventId")?,
        ],
    )
    .await?;
    enable_ttl(client, &names.idempotency_table).await?;
    enable_ttl(client, &names.events_table).await
}

/// Turns on the TTL attribute `expiresAt` of `table`.
async fn enable_ttl(client: &aws_sdk_dynamodb::Client, table: &str) -> Result<(), PortError> {
    let ttl = TimeToLiveSpecification::builder()
        .enabled(true)
        .attribute_name("expiresAt")
        .build()
        .map_err(|e| PortError::with_source(ErrorKind::Internal, "ttl", e))?;
    match client
        .update_time_to_live()
        .table_name(table)
        .time_to_live_specification(ttl)
        .send()
        .await
    {
        Ok(_) => Ok(()),
        // Already enabled.
        Err(e) if ttl_unchanged(&e) => Ok(()),
        Err(e) => Err(port_error("UpdateTimeToLive", e)),
    }
}

async fn create_queue(
    client: &aws_sdk_sqs::Client,
    name: &str,
    attrs: Vec<(QueueAttributeName, String)>,
) -> Result<String, PortError> {
    let mut req = client.create_queue().queue_name(name);
    for (k, v) in attrs {
        req = req.attributes(k, v);
    }
    let out = req.send().await.map_err(|e| port_error("CreateQueue", e))?;
    out.queue_url
        .ok_or_else(|| PortError::new(ErrorKind::Internal, "CreateQueue returned no URL"))
}

/// Creates the DLQ and the orders queue with its redrive policy; returns their URLs.
pub async fn create_queues(
    client: &aws_sdk_sqs::Client,
    names: &ResourceNames,
    options: QueueOptions,
) -> Result<(String, String), PortError> {
    let dlq_url = create_queue(
        client,
        &names.dlq,
        vec![(
            QueueAttributeName::MessageRetentionPeriod,
            (14 * 24 * 3600).to_string(),
        )],
    )
    .await?;
    let dlq_arn = client
        .get_queue_attributes()
        .queue_url(&dlq_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(|e| port_error("GetQueueAttributes", e))?
        .attributes
        .and_then(|mut a| a.remove(&QueueAttributeName::QueueArn))
        .ok_or_else(|| PortError::new(ErrorKind::Internal, "the DLQ has no ARN"))?;
    let redrive = serde_json::json!({
        "deadLetterTargetArn": dlq_arn,
        "maxReceiveCount": options.max_receive_count,
    });
    let queue_url = create_queue(
        client,
        &names.orders_queue,
        vec![
            (
                QueueAttributeName::VisibilityTimeout,
                options.visibility_timeout.as_secs().max(1).to_string(),
            ),
            (QueueAttributeName::RedrivePolicy, redrive.to_string()),
        ],
    )
    .await?;
    Ok((queue_url, dlq_url))
}

/// Creates every table and queue of `names`.
pub async fn create_all(
    dynamodb: &aws_sdk_dynamodb::Client,
    sqs: &aws_sdk_sqs::Client,
    names: ResourceNames,
    options: QueueOptions,
) -> Result<Created, PortError> {
    create_tables(dynamodb, &names).await?;
    let (orders_queue_url, dlq_url) = create_queues(sqs, &names, options).await?;
    Ok(Created {
        names,
        orders_queue_url,
        dlq_url,
    })
}

/// Deletes the tables and queues of `created` (test clean-up). Errors are ignored:
/// the emulator goes away anyway.
pub async fn delete_all(
    dynamodb: &aws_sdk_dynamodb::Client,
    sqs: &aws_sdk_sqs::Client,
    created: &Created,
) {
    for t in [
        &created.names.orders_table,
        &created.names.failed_orders_table,
        &created.names.idempotency_table,
        &created.names.events_table,
    ] {
        let _ = dynamodb.delete_table().table_name(t).send().await;
    }
    for q in [&created.orders_queue_url, &created.dlq_url] {
        let _ = sqs.delete_queue().queue_url(q).send().await;
    }
}
