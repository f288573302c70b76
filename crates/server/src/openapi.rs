//! The OpenAPI 3.1 description of every route (`GET /openapi.json`),
//! generated with utoipa from the `#[utoipa::path]` annotations on the
//! handlers in [`crate::routes`] and the schema types below.
//!
//! The handlers build their JSON with `serde_json::json!`, so the schema
//! types here are the contract's shapes written once as Rust types: they
//! exist to be described, and the black-box tests (`dofs test-system`, and
//! `crates/cli/tests/commands.rs`) check every real response against them,
//! field by field, so a handler and its description cannot drift apart.
//!
//! Routes served by other modules without annotations of their own (metrics,
//! alerts, the dashboard) are described by the documentation-only functions
//! at the end of this file. The alias `POST /orders` is the same operation
//! as `POST /order` and is copied in by [`Aliases`].

use crate::state::AppState;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::OnceLock;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
use utoipa::openapi::OpenApi as Document;
use utoipa::{Modify, OpenApi, ToSchema};

/// The route serving the document.
pub fn routes() -> Router<AppState> {
    Router::new().route("/openapi.json", get(openapi_json))
}

/// The whole document.
pub fn document() -> Document {
    ApiDoc::openapi()
}

/// `GET /openapi.json`: rendered once, then served from memory.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "operations",
    operation_id = "getOpenApi",
    responses(
        (status = 200, description = "This document (OpenAPI 3.1).", content_type = "application/json", body = Object),
        (status = 401, description = "A key is required.", body = Error),
    )
)]
async fn openapi_json() -> impl IntoResponse {
    static JSON: OnceLock<String> = OnceLock::new();
    let body = JSON.get_or_init(|| {
        document()
            .to_pretty_json()
            .unwrap_or_else(|e| format!(r#"{{"error":"InternalError","message":"{e}"}}"#))
    });
    ([(header::CONTENT_TYPE, "application/json")], body.as_str())
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "DOFS order API",
        description = "Distributed order fulfillment: submit orders, follow them to FULFILLED or FAILED, and operate the dead-letter queue. The same API is served by `dofs serve` and by the AWS deployment (API Gateway stage URL).",
        license(name = "Apache-2.0"),
    ),
    paths(
        crate::routes::orders::submit,
        crate::routes::orders::get_one,
        crate::routes::orders::list,
        crate::routes::orders::retry,
        crate::routes::ops::failed_orders,
        crate::routes::ops::dead_letters,
        crate::routes::ops::redrive,
        crate::routes::ops::purge,
        crate::routes::ops::execution,
        crate::routes::ops::health,
        crate::routes::ops::ready,
        openapi_json,
        metrics_doc,
        alerts_doc,
        dashboard_doc,
    ),
    components(schemas(
        OrderRequest, Accepted, Order, OrderStatus, OrderPage, FailedOrder, FailedOrderPage,
        DeadLetter, DeadLetterPage, Redriven, Purged, Execution, ExecutionStatus,
        ExecutionEvent, EventType, Health, Readiness, Error, FieldError, AlertList, Alert,
    )),
    modifiers(&CommonResponses, &Aliases, &Security),
    tags(
        (name = "orders", description = "Submit and follow orders."),
        (name = "operator", description = "Failed orders, the dead-letter queue, retries."),
        (name = "operations", description = "Workflow executions, health, metrics, alerts."),
    ),
)]
struct ApiDoc;

/// The answers any route but `/health` may give: 500 `InternalError`, and
/// 503 (`ServiceUnavailable`, `ShuttingDown`, `Timeout`) with `Retry-After`;
/// and but on `/ready` and `/metrics` (never limited), 429 with `Retry-After`.
struct CommonResponses;

impl Modify for CommonResponses {
    fn modify(&self, doc: &mut Document) {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
        let error = |description: &str| {
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("Error")))
                        .build(),
                )
                .build()
        };
        let too_many = |description: &str| {
            let mut response = error(description);
            response.headers.insert(
                "Retry-After".into(),
                utoipa::openapi::HeaderBuilder::new()
                    .schema(ObjectBuilder::new().schema_type(Type::String))
                    .description(Some("Seconds to wait before sending again."))
                    .build(),
            );
            response
        };
        for (path, item) in doc.paths.paths.iter_mut() {
            if path == "/health" {
                continue;
            }
            for op in [&mut item.get, &mut item.post].into_iter().flatten() {
                let responses = &mut op.responses.responses;
                responses.entry("500".into()).or_insert_with(|| {
                    error("Internal error; the details are logged, never sent.").into()
                });
                responses.entry("503".into()).or_insert_with(|| {
                    error("A dependency is busy or unreachable, the server is shutting down, or the request took too long; see Retry-After.").into()
                });
                if !matches!(path.as_str(), "/ready" | "/metrics") {
                    responses.entry("429".into()).or_insert_with(|| {
                        too_many("A rate limit (`RateLimited`) or the in-flight limit (`ServerBusy`) was hit; see Retry-After.").into()
                    });
                }
            }
        }
    }
}

/// Copies `POST /order` to its alias `POST /orders`.
struct Aliases;

impl Modify for Aliases {
    fn modify(&self, doc: &mut Document) {
        let Some(submit) = doc
            .paths
            .paths
            .get("/order")
            .and_then(|item| item.post.clone())
        else {
            return;
        };
        let mut alias = submit;
        alias.operation_id = Some("submitOrderAlias".into());
        alias.summary = Some("Submit an order (alias of POST /order)".into());
        if let Some(item) = doc.paths.paths.get_mut("/orders") {
            item.post = Some(alias);
        }
    }
}

/// The `x-api-key` scheme, required on every route but `/health` and `/ready`
/// when keys are configured (CONTRACT.md section 4).
struct Security;

impl Modify for Security {
    fn modify(&self, doc: &mut Document) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "apiKey",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "x-api-key",
                "Required when the deployment has API keys configured; retry, redrive and purge need an operator key.",
            ))),
        );
        let open = ["/health", "/ready", "/"];
        for (path, item) in doc.paths.paths.iter_mut() {
            if open.contains(&path.as_str()) {
                continue;
            }
            for op in [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.delete,
                &mut item.patch,
            ]
            .into_iter()
            .flatten()
            {
                op.security = Some(vec![utoipa::openapi::security::SecurityRequirement::new::<
                    &str,
                    [&str; 0],
                    &str,
                >("apiKey", [])]);
            }
        }
    }
}

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

// Documentation-only: these routes are served by modules that describe no
// OpenAPI themselves; the functions are never called.

/// Prometheus metrics.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    operation_id = "getMetrics",
    responses(
        (status = 200, description = "Prometheus text exposition format 0.0.4.", content_type = "text/plain", body = String),
        (status = 401, description = "A key is required.", body = Error),
    )
)]
#[allow(dead_code)]
async fn metrics_doc() {}

/// Alert rules with their state (`ok`, `firing`) and since when.
#[utoipa::path(
    get,
    path = "/alerts",
    tag = "operations",
    operation_id = "listAlerts",
    responses(
        (status = 200, description = "Every rule.", body = AlertList),
        (status = 401, description = "A key is required.", body = Error),
    )
)]
#[allow(dead_code)]
async fn alerts_doc() {}

/// The web dashboard.
#[utoipa::path(
    get,
    path = "/",
    tag = "operations",
    operation_id = "getDashboard",
    responses(
        (status = 200, description = "The dashboard page.", content_type = "text/html", body = String),
    )
)]
#[allow(dead_code)]
async fn dashboard_doc() {}

/// Every route of CONTRACT.md section 1 (method, OpenAPI path template).
pub const CONTRACT_ROUTES: [(&str, &str); 16] = [
    ("post", "/order"),
    ("post", "/orders"),
    ("get", "/orders"),
    ("get", "/orders/{orderId}"),
    ("post", "/orders/{orderId}/retry"),
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
];

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn doc() -> Value {
        serde_json::from_str(&document().to_json().expect("serialises")).expect("JSON")
    }

    #[test]
    fn the_document_is_openapi_3_1_and_describes_every_contract_route() {
        let doc = doc();
        assert!(doc["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1")));
        for (method, path) in CONTRACT_ROUTES {
            assert!(
                doc["paths"][path][method].is_object(),
                "{method} {path} is described"
            );
        }
        assert_eq!(
            doc["paths"]["/orders"]["post"]["requestBody"],
            doc["paths"]["/order"]["post"]["requestBody"],
            "the alias takes the same body"
        );
        let ids: Vec<&str> = CONTRACT_ROUTES
            .iter()
            .filter_map(|(m, p)| doc["paths"][p][m]["operationId"].as_str())
            .collect();
        let mut unique = ids.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(
            unique.len(),
            CONTRACT_ROUTES.len(),
            "operation ids are unique: {ids:?}"
        );
    }

    #[test]
    fn the_order_request_rejects_unknown_fields_and_states_each_rule() {
        let doc = doc();
        let request = &doc["components"]["schemas"]["OrderRequest"];
        assert_eq!(request["additionalProperties"], false);
        assert_eq!(
            request["properties"]["customerId"]["pattern"],
            "^CUST-[0-9]{4,12}$"
        );
        assert_eq!(request["properties"]["quantity"]["maximum"], 100);
        let required: Vec<&str> = request["required"]
            .as_array()
            .expect("required")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert_eq!(required, ["customerId", "productId", "quantity", "price"]);
    }

    #[test]
    fn health_and_readiness_are_open_and_everything_else_takes_the_api_key() {
        let doc = doc();
        assert!(doc["paths"]["/health"]["get"].get("security").is_none());
        assert!(doc["paths"]["/ready"]["get"].get("security").is_none());
        assert_eq!(
            doc["paths"]["/orders/{orderId}"]["get"]["security"][0]["apiKey"],
            serde_json::json!([])
        );
        assert_eq!(
            doc["components"]["securitySchemes"]["apiKey"]["name"],
            "x-api-key"
        );
    }
}
