//! The OpenAPI 3.1 description of every route (`GET /openapi.json`),
//! generated with utoipa from the `#[utoipa::path]` annotations on the
//! handlers in [`crate::routes`] and the types of `dofs_wire`, which the handlers
//! answer with.
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
use dofs_wire::*;
use std::sync::OnceLock;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
use utoipa::openapi::OpenApi as Document;
use utoipa::{Modify, OpenApi};

/// The route serving the document.
pub fn routes() -> Router<AppState> {
    Router::new().route("/openapi.json", get(openapi_json))
}

/// The whole document.
pub fn document() -> Document {
    ApiDoc::openapi()
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
        crate::routes::orders::cancel,
        crate::routes::events::events,
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
        CancelRequest, OrderEvent, OrderEventType, EventPage,
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
    fn the_dlq_actions_answer_how_many_and_whether_more_remain() {
        let doc = doc();
        for (schema, count) in [("Redriven", "moved"), ("Purged", "purged")] {
            let s = &doc["components"]["schemas"][schema];
            assert_eq!(s["properties"]["more"]["type"], "boolean", "{schema}");
            assert_eq!(
                s["required"],
                serde_json::json!([count, "more"]),
                "{schema}"
            );
        }
    }

    #[test]
    fn an_executions_history_describes_every_kind_either_shape_answers() {
        let doc = doc();
        let described = &doc["components"]["schemas"]["EventType"]["enum"];
        for kind in dofs_core::history::EventKind::ALL {
            let name = serde_json::to_value(kind).expect("name");
            assert!(
                described.as_array().is_some_and(|v| v.contains(&name)),
                "{name} in {described}"
            );
        }
        let event = &doc["components"]["schemas"]["ExecutionEvent"];
        assert_eq!(
            event["required"],
            serde_json::json!(["type", "timestamp", "details"])
        );
        assert_eq!(
            doc["components"]["schemas"]["Execution"]["properties"]["events"]["items"]["$ref"],
            "#/components/schemas/ExecutionEvent"
        );
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
