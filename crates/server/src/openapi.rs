//! The contract's shapes as Rust types, for the OpenAPI 3.1 description
//! (`GET /openapi.json`, assembled in [`crate::api_doc`]), and the list of
//! the contract's routes ([`CONTRACT_ROUTES`]).
//!
//! The handlers build their JSON with `serde_json::json!`, so the schema
//! types here are the contract's shapes written once as Rust types: they
//! exist to be described, and the black-box tests (`dofs test-system`, and
//! `crates/cli/tests/commands.rs`) check every real response against them,
//! field by field, so a handler and its description cannot drift apart.
//!
//! This module depends on no route: the handlers' `#[utoipa::path]`
//! annotations name its types, and [`crate::api_doc`] names the handlers,
//! so there is no import circle between the two.

use serde::Serialize;
use std::collections::BTreeMap;
use utoipa::ToSchema;

/// A new order. Every broken rule is reported, not only the first. The
/// limits shown are the defaults (`validation.max_quantity`, `validation.max_price`).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OrderRequest {
    #[schema(pattern = "^CUST-[0-9]{4,12}$", example = "CUST-1001")]
    pub customer_id: String,
    #[schema(pattern = "^PROD-[0-9]{4,12}$", example = "PROD-2001")]
    pub product_id: String,
    /// A JSON number with no fraction.
    #[schema(minimum = 1, maximum = 100, example = 2)]
    pub quantity: u32,
    /// A JSON number (not a string) greater than 0 with at most 2 decimal places.
    #[schema(
        exclusive_minimum = 0,
        maximum = 10000,
        multiple_of = 0.01,
        example = 29.99
    )]
    pub price: f64,
    /// At most 16 keys of 1 to 64 characters; values are strings (at most
    /// 256 characters), numbers or booleans.
    #[schema(schema_with = metadata_schema, example = json!({"source": "manual-test"}))]
    pub metadata: Option<BTreeMap<String, serde_json::Value>>,
}

/// An order's `metadata` as the decoder checks it: an object (not null) of
/// at most 16 keys of 1 to 64 characters, each a string of at most 256
/// characters, a number that fits a double, or a boolean.
fn metadata_schema() -> utoipa::openapi::Object {
    use utoipa::openapi::schema::{
        AdditionalProperties, ObjectBuilder, OneOfBuilder, Schema, Type,
    };
    use utoipa::openapi::RefOr;
    let value = OneOfBuilder::new()
        .item(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .max_length(Some(256)),
        )
        .item(
            ObjectBuilder::new()
                .schema_type(Type::Number)
                .minimum(Some(-f64::MAX))
                .maximum(Some(f64::MAX)),
        )
        .item(ObjectBuilder::new().schema_type(Type::Boolean));
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .max_properties(Some(16))
        .property_names(Some(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .min_length(Some(1))
                .max_length(Some(64)),
        ))
        .additional_properties(Some(AdditionalProperties::RefOr(RefOr::T(Schema::OneOf(
            value.build(),
        )))))
        .build()
}

/// The answer to an accepted order: it is durably recorded and will reach a terminal status.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Accepted {
    #[schema(pattern = "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")]
    pub order_id: String,
    #[schema(pattern = "^ACCEPTED$", example = "ACCEPTED")]
    pub status: String,
    pub execution_arn: String,
    #[schema(example = "Order received and processing started")]
    pub message: String,
}

/// Where an order is in its lifecycle.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum OrderStatus {
    Pending,
    Processing,
    Fulfilled,
    Failed,
    Cancelled,
}

/// A stored order.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Order {
    #[schema(pattern = "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")]
    pub order_id: String,
    pub customer_id: String,
    pub product_id: String,
    pub quantity: u32,
    pub price: f64,
    #[schema(value_type = Option<Object>, required = true)]
    pub metadata: Option<serde_json::Value>,
    pub status: OrderStatus,
    /// Fulfillment attempts made so far.
    pub attempts: u32,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub updated_at: String,
    pub execution_arn: String,
    /// Why the last attempt failed; null unless the order failed.
    #[schema(required = true)]
    pub failure_reason: Option<String>,
    /// The fulfillment service's reference (`http` mode), once FULFILLED.
    #[schema(required = true)]
    pub fulfillment_reference: Option<String>,
    /// Why the order was cancelled, once CANCELLED with a reason.
    #[schema(required = true)]
    pub cancel_reason: Option<String>,
}

/// The optional body of a cancel.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CancelRequest {
    /// Why the order is cancelled.
    #[schema(min_length = 1, max_length = 256)]
    pub reason: Option<String>,
}

/// What happened to an order.
#[derive(Serialize, ToSchema)]
pub enum OrderEventType {
    #[serde(rename = "order.accepted")]
    Accepted,
    #[serde(rename = "order.processing")]
    Processing,
    #[serde(rename = "order.fulfilled")]
    Fulfilled,
    #[serde(rename = "order.failed")]
    Failed,
    #[serde(rename = "order.cancelled")]
    Cancelled,
    /// Back to PENDING for another attempt (after a failed attempt, or an operator's retry or redrive).
    #[serde(rename = "order.retried")]
    Retried,
}

/// One status change of an order, with the order as it was right after it.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrderEvent {
    /// Unique in the feed and the same on every delivery (webhook-id); pass it as `after`.
    pub event_id: String,
    #[serde(rename = "type")]
    pub kind: OrderEventType,
    pub order_id: String,
    pub status: OrderStatus,
    pub attempts: u32,
    #[schema(format = DateTime)]
    pub occurred_at: String,
    pub order: Order,
}

/// A page of the event feed, oldest first.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventPage {
    pub items: Vec<OrderEvent>,
    /// Pass it as `after` to go on; null only when the feed is empty and no `after` was given.
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

/// A page of orders, newest first.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrderPage {
    pub items: Vec<Order>,
    /// Pass it as `cursor` for the next page; null on the last page.
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

/// A row of the failed-orders table, recorded once per dead letter.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FailedOrder {
    #[schema(pattern = "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")]
    pub order_id: String,
    pub reason: String,
    pub attempts: u32,
    #[schema(format = DateTime)]
    pub failed_at: String,
    /// The order as submitted.
    #[schema(value_type = Object)]
    pub order: serde_json::Value,
}

/// A page of the failed-orders table, newest first.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FailedOrderPage {
    pub items: Vec<FailedOrder>,
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

/// A message in the dead-letter queue, awaiting an operator.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetter {
    pub message_id: String,
    /// Null when the message names no order.
    #[schema(required = true)]
    pub order_id: Option<String>,
    /// How many times the message was received.
    pub attempts: u32,
    #[schema(format = DateTime)]
    pub sent_at: String,
    #[schema(format = DateTime)]
    pub dead_at: String,
    /// The order's last failure, when known.
    #[schema(required = true)]
    pub last_error: Option<String>,
}

/// A page of dead letters, oldest first, and the DLQ depth.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetterPage {
    pub items: Vec<DeadLetter>,
    #[schema(required = true)]
    pub next_cursor: Option<String>,
    /// Dead letters awaiting an operator.
    pub depth: u64,
}

/// How many dead letters went back on the orders queue.
#[derive(Serialize, ToSchema)]
pub struct Redriven {
    pub moved: u64,
}

/// How many dead letters were acknowledged.
#[derive(Serialize, ToSchema)]
pub struct Purged {
    pub purged: u64,
}

/// Where a workflow execution is.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum ExecutionStatus {
    Running,
    Succeeded,
    Failed,
}

/// A workflow execution and its state-by-state history.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Execution {
    pub execution_arn: String,
    pub status: ExecutionStatus,
    #[schema(value_type = Object)]
    pub input: serde_json::Value,
    /// Null until the execution succeeded.
    #[schema(value_type = Option<Object>, required = true)]
    pub output: Option<serde_json::Value>,
    #[schema(format = DateTime)]
    pub started_at: String,
    #[schema(format = DateTime, required = true)]
    pub stopped_at: Option<String>,
    pub events: Vec<ExecutionEvent>,
}

/// The kinds of history events.
#[derive(Serialize, ToSchema)]
pub enum EventType {
    ExecutionStarted,
    StateEntered,
    TaskScheduled,
    TaskSucceeded,
    TaskFailed,
    TaskRetryScheduled,
    StateExited,
    ExecutionSucceeded,
    ExecutionFailed,
}

/// One entry of an execution's history.
#[derive(Serialize, ToSchema)]
pub struct ExecutionEvent {
    #[serde(rename = "type")]
    pub kind: EventType,
    #[schema(format = DateTime)]
    pub timestamp: String,
    /// The state it happened in; absent for execution-level events.
    pub state: Option<String>,
    /// Kind-specific data: inputs, outputs, errors, the attempt or retry number.
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
}

/// Liveness.
#[derive(Serialize, ToSchema)]
pub struct Health {
    #[schema(example = "ok")]
    pub status: String,
}

/// Readiness: `ready`, or `not ready` with the reason.
#[derive(Serialize, ToSchema)]
pub struct Readiness {
    #[schema(example = "ready")]
    pub status: String,
    pub reason: Option<String>,
}

/// Every error body.
#[derive(Serialize, ToSchema)]
pub struct Error {
    /// A stable name clients may branch on: MalformedJson, ValidationError,
    /// NotFound, MethodNotAllowed, Conflict, IdempotencyKeyInFlight,
    /// IdempotencyKeyReused, PayloadTooLarge, UnsupportedMediaType,
    /// Unauthorized, Forbidden, InternalError, ServiceUnavailable,
    /// ShuttingDown, Timeout, RequestTimeout, RateLimited, ServerBusy,
    /// QueueFull, ...
    #[schema(example = "ValidationError")]
    pub error: String,
    pub message: String,
    /// Every broken rule (validation errors only).
    pub details: Option<Vec<FieldError>>,
}

/// One broken rule.
#[derive(Serialize, ToSchema)]
pub struct FieldError {
    /// A JSON field name such as `price` or `metadata.source`, or a header or query parameter.
    #[schema(example = "quantity")]
    pub field: String,
    #[schema(example = "must be an integer from 1 to 100")]
    pub message: String,
}

/// The alert rules.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AlertList {
    pub alerts: Vec<Alert>,
    /// How many rules are firing.
    pub firing: u64,
    /// The last evaluation; null before the first.
    #[schema(format = DateTime, required = true)]
    pub evaluated_at: Option<String>,
}

/// One alert rule and its state.
#[derive(Serialize, ToSchema)]
pub struct Alert {
    #[schema(example = "dlq_depth")]
    pub name: String,
    /// `ok` or `firing`.
    #[schema(pattern = "^(ok|firing)$")]
    pub state: String,
    /// When the rule entered its state.
    #[schema(format = DateTime)]
    pub since: String,
    /// The last value measured; null before the first evaluation.
    pub value: Option<f64>,
    pub threshold: Option<f64>,
    pub description: Option<String>,
    pub message: Option<String>,
}

/// Every route of CONTRACT.md section 1 (method, OpenAPI path template).
pub const CONTRACT_ROUTES: [(&str, &str); 18] = [
    ("post", "/order"),
    ("post", "/orders"),
    ("get", "/orders"),
    ("get", "/orders/{orderId}"),
    ("post", "/orders/{orderId}/retry"),
    ("post", "/orders/{orderId}/cancel"),
    ("get", "/failed-orders"),
    ("get", "/dlq"),
    ("post", "/dlq/redrive"),
    ("post", "/dlq/purge"),
    ("get", "/executions/{executionId}"),
    ("get", "/health"),
    ("get", "/ready"),
    ("get", "/metrics"),
    ("get", "/alerts"),
    ("get", "/openapi.json"),
    ("get", "/"),
    ("get", "/events"),
];
