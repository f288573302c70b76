//! Order routes: submit (`POST /order`, `POST /orders`), read one, list, and
//! the operator's retry and cancel.

use crate::deadline::WorkUntil;
use crate::error::ApiError;
use crate::extract::{self, CursorRule, MAX_BODY_BYTES};
use crate::routes::{cursor_error, query_pairs};
use crate::state::AppState;
use axum::body::Body;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use dofs_core::ports::{ErrorKind, IdempotencyClaim, Submitted};
use dofs_core::validation::{decode_order, DecodeError};
use dofs_core::{Order, OrderId};
use serde_json::Value;

/// The header that marks a replayed idempotent response.
pub const IDEMPOTENT_REPLAYED: &str = "idempotent-replayed";

/// The order routes any API key may use (the reader group).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/order", post(submit))
        .route("/orders", post(submit).get(list))
        .route("/orders/{orderId}", get(get_one))
}

/// The order route that needs an operator key (the operator group).
pub fn operator_routes() -> Router<AppState> {
    Router::new()
        .route("/orders/{orderId}/retry", post(retry))
        .route("/orders/{orderId}/cancel", post(cancel))
}

/// The longest cancel reason, in characters.
pub const MAX_CANCEL_REASON_CHARS: usize = 256;

/// Accepts an order: checks the request in the contract's order (shutdown,
/// media type, key, the queue's back-pressure limit, size, body), then
/// records it and starts its workflow.
#[utoipa::path(
    post,
    path = "/order",
    tag = "orders",
    operation_id = "submitOrder",
    summary = "Submit an order",
    request_body(content = dofs_wire::OrderRequest, content_type = "application/json", description = "At most 64 KiB. `Content-Type: application/json` (parameters allowed)."),
    params(("Idempotency-Key" = Option<String>, Header, pattern = "^[!-~]{1,255}$", description = "1 to 255 visible ASCII characters. The same key and body within 24 hours return the first response again, with `Idempotent-Replayed: true`.")),
    responses(
        (status = 202, description = "Accepted: durably recorded, and it will reach a terminal status.", body = dofs_wire::Accepted,
            headers(("Location" = String, description = "/orders/{orderId}"), ("Idempotent-Replayed" = String, description = "`true` when this is the first response to the same key, replayed."))),
        (status = 400, description = "Malformed JSON (`MalformedJson`), or rules broken (`ValidationError`, every one listed in `details`).", body = dofs_wire::Error),
        (status = 401, description = "A key is required and missing or wrong.", body = dofs_wire::Error),
        (status = 408, description = "The body did not arrive within the body read timeout; the connection is closed.", body = dofs_wire::Error),
        (status = 409, description = "A request with this Idempotency-Key is still being processed.", body = dofs_wire::Error),
        (status = 413, description = "The body is over 64 KiB.", body = dofs_wire::Error),
        (status = 415, description = "The body is not declared application/json.", body = dofs_wire::Error),
        (status = 422, description = "The Idempotency-Key was used with a different body.", body = dofs_wire::Error),
        (status = 429, description = "A rate limit (`RateLimited`), the in-flight limit (`ServerBusy`) or the queue's back-pressure limit (`QueueFull`) was hit; see Retry-After.", body = dofs_wire::Error,
            headers(("Retry-After" = String, description = "Seconds to wait before sending again."))),
    )
)]
async fn submit(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    if state.is_shutting_down() {
        return Err(ApiError::ShuttingDown);
    }
    if !extract::is_json(&headers) {
        return Err(ApiError::UnsupportedMediaType);
    }
    let key = extract::idempotency_key(&headers)?;
    let overload = state.overload();
    // Back-pressure before the body is read: a refusal costs next to
    // nothing, and a request refused here has done nothing to undo.
    let full = overload
        .backlog()
        .is_full(state.backend().queue.as_ref())
        .await;
    if full && key.is_none() {
        crate::overload::count_rejection("backlog");
        return Err(ApiError::QueueFull);
    }
    let bytes = tokio::time::timeout(
        overload.config().body_read_timeout,
        extract::read_body(&headers, body, MAX_BODY_BYTES),
    )
    .await
    .map_err(|_| ApiError::RequestTimeout)??;
    if full {
        // Only a replay of an order already accepted gets past a full queue.
        let order = overload.while_full(&state, key.as_deref(), &bytes).await?;
        return Ok(accepted(&order, true));
    }
    let order = decode_order(&bytes, state.limits()).map_err(|e| match e {
        DecodeError::Malformed(message) => ApiError::MalformedJson(message),
        DecodeError::Invalid(details) => ApiError::Validation {
            message: "order is invalid",
            details,
        },
    })?;
    // Held until the response is built, or until the request is dropped.
    let mut _in_flight = None;
    let claim = match key {
        Some(key) => {
            _in_flight = Some(
                state
                    .in_flight()
                    .claim(&key)
                    .ok_or(ApiError::IdempotencyKeyInFlight)?,
            );
            Some(IdempotencyClaim {
                key,
                fingerprint: extract::fingerprint(&bytes),
            })
        }
        None => None,
    };
    let id = OrderId::generate();
    let remembered = claim.clone();
    // The observability layer gave every request an id.
    let request = headers
        .get(&crate::observability::http::X_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let submitted = state
        .backend()
        .workflow
        .start(id, order, claim, request)
        .await?;
    if let (Some(claim), Submitted::Started { order } | Submitted::Replayed { order }) =
        (&remembered, &submitted)
    {
        overload.remember(claim, order.id);
    }
    match submitted {
        Submitted::Started { order } => {
            overload.backlog().accepted();
            Ok(accepted(&order, false))
        }
        Submitted::Replayed { order } => Ok(accepted(&order, true)),
        Submitted::KeyReused => Err(ApiError::IdempotencyKeyReused),
    }
}

/// The 202 for an order, first time or replayed.
fn accepted(order: &Order, replayed: bool) -> Response {
    let body = dofs_wire::Accepted::from(order);
    let location = HeaderValue::from_str(&["/orders/", &body.order_id].concat());
    let order_id = body.order_id.clone();
    let mut response = (StatusCode::ACCEPTED, Json(body)).into_response();
    response
        .extensions_mut()
        .insert(crate::observability::http::AcceptedOrder {
            order_id,
            execution_id: dofs_core::ports::execution_id(&order.execution_arn).to_owned(),
            replayed,
        });
    let headers = response.headers_mut();
    if let Ok(location) = location {
        headers.insert(header::LOCATION, location);
    }
    if replayed {
        headers.insert(IDEMPOTENT_REPLAYED, HeaderValue::from_static("true"));
    }
    response
}

/// `GET /orders/{orderId}`.
#[utoipa::path(
    get,
    path = "/orders/{orderId}",
    tag = "orders",
    operation_id = "getOrder",
    summary = "Read one order",
    params(("orderId" = String, Path, pattern = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$", description = "The order id from the 202 answer.")),
    responses(
        (status = 200, description = "The order.", body = dofs_wire::Order),
        (status = 400, description = "The id is not an order id.", body = dofs_wire::Error),
        (status = 401, description = "A key is required and missing or wrong.", body = dofs_wire::Error),
        (status = 404, description = "No such order.", body = dofs_wire::Error),
    )
)]
async fn get_one(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<dofs_wire::Order>, ApiError> {
    let id = order_id(path)?;
    match state.backend().orders.get(id).await? {
        Some(order) => Ok(Json(dofs_wire::Order::from(&order))),
        None => Err(not_found(id)),
    }
}

/// `GET /orders?status&limit&cursor`: newest first.
#[utoipa::path(
    get,
    path = "/orders",
    tag = "orders",
    operation_id = "listOrders",
    summary = "List orders, newest first",
    params(
        ("status" = Option<dofs_wire::OrderStatus>, Query, description = "Only orders of this status."),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 500, description = "Page size, 1 to 500 (default 50)."),
        ("cursor" = Option<String>, Query, pattern = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$", description = "The previous page's nextCursor (an order id)."),
    ),
    responses(
        (status = 200, description = "One page.", body = dofs_wire::OrderPage),
        (status = 400, description = "A bad or unknown query parameter.", body = dofs_wire::Error),
        (status = 401, description = "A key is required and missing or wrong.", body = dofs_wire::Error),
    )
)]
async fn list(
    State(state): State<AppState>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Json<dofs_wire::OrderPage>, ApiError> {
    let q = extract::list_query(&query_pairs(query)?, true, CursorRule::OrderId)?;
    let page = state
        .backend()
        .orders
        .list(q.status, q.limit, q.cursor.as_deref())
        .await
        .map_err(|e| cursor_error(e, q.cursor.is_some()))?;
    Ok(Json(dofs_wire::OrderPage {
        items: page.items.iter().map(dofs_wire::Order::from).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// `POST /orders/{orderId}/retry`: a `FAILED` order back to `PENDING`.
#[utoipa::path(
    post,
    path = "/orders/{orderId}/retry",
    tag = "operator",
    operation_id = "retryOrder",
    summary = "Put a FAILED order back to PENDING and queue it again",
    params(("orderId" = String, Path, pattern = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$", description = "The id of a FAILED order.")),
    responses(
        (status = 200, description = "The order, PENDING with attempts reset.", body = dofs_wire::Order),
        (status = 400, description = "The id is not an order id.", body = dofs_wire::Error),
        (status = 401, description = "A key is required and missing or wrong.", body = dofs_wire::Error),
        (status = 403, description = "This route needs an operator key.", body = dofs_wire::Error),
        (status = 404, description = "No such order.", body = dofs_wire::Error),
        (status = 409, description = "The order is not FAILED.", body = dofs_wire::Error),
        (status = 503, description = "A dependency is busy or unreachable, the server is shutting down, or the request took too long; see Retry-After. `Timeout` also when the order's dead letters could not be searched for within the request's time (on AWS, a very large DLQ): nothing changed; retry later, or redrive or purge the DLQ first.", body = dofs_wire::Error),
    )
)]
async fn retry(
    State(state): State<AppState>,
    WorkUntil(until): WorkUntil,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<dofs_wire::Order>, ApiError> {
    let id = order_id(path)?;
    let backend = state.backend();
    let done = backend.operations.retry(id, until).await;
    operator_answer(backend, id, done, "only FAILED orders can be retried").await
}

/// An operator action's answer: the order, or 404, or a 409 that says what
/// the order is now and which statuses the action needs (`rule`).
async fn operator_answer(
    backend: &dofs_core::ports::Backend,
    id: OrderId,
    done: Result<Order, dofs_core::ports::PortError>,
    rule: &str,
) -> Result<Json<dofs_wire::Order>, ApiError> {
    match done {
        Ok(order) => Ok(Json(dofs_wire::Order::from(&order))),
        Err(e) if e.kind == ErrorKind::NotFound => Err(not_found(id)),
        Err(e) if e.kind == ErrorKind::Conflict => {
            tracing::debug!(error = %e, order = %id, "operator action refused");
            // The port's message is for logs; describe the conflict from the order itself.
            match backend.orders.get(id).await? {
                Some(order) => Err(ApiError::Conflict(format!(
                    "order is {}, {rule}",
                    order.status
                ))),
                None => Err(not_found(id)),
            }
        }
        Err(e) => Err(e.into()),
    }
}

/// `POST /orders/{orderId}/cancel`: a `PENDING` or `FAILED` order to `CANCELLED`.
#[utoipa::path(
    post,
    path = "/orders/{orderId}/cancel",
    tag = "operator",
    operation_id = "cancelOrder",
    summary = "Cancel a PENDING or FAILED order",
    params(("orderId" = String, Path, pattern = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$", description = "The id of the order to cancel.")),
    request_body(content = Option<dofs_wire::CancelRequest>, content_type = "application/json", description = "Optional. `reason`: at most 256 characters."),
    responses(
        (status = 200, description = "The order, CANCELLED (also when it already was); its message has left the queue or the DLQ and no further attempt starts.", body = dofs_wire::Order),
        (status = 400, description = "The id is not an order id, or the body is not a JSON object with at most a `reason` string of 1 to 256 characters.", body = dofs_wire::Error),
        (status = 401, description = "A key is required and missing or wrong.", body = dofs_wire::Error),
        (status = 403, description = "This route needs an operator key.", body = dofs_wire::Error),
        (status = 404, description = "No such order.", body = dofs_wire::Error),
        (status = 409, description = "The order is PROCESSING or FULFILLED and can no longer be cancelled.", body = dofs_wire::Error),
        (status = 413, description = "The body is over 64 KiB.", body = dofs_wire::Error),
        (status = 503, description = "A dependency is busy or unreachable, the server is shutting down, or the request took too long; see Retry-After. `Timeout` also when a FAILED order's dead letters could not be searched for within the request's time (on AWS, a very large DLQ): nothing changed; retry later.", body = dofs_wire::Error),
    )
)]
async fn cancel(
    State(state): State<AppState>,
    WorkUntil(until): WorkUntil,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<dofs_wire::Order>, ApiError> {
    let id = order_id(path)?;
    let bytes = tokio::time::timeout(
        state.overload().config().body_read_timeout,
        extract::read_body(&headers, body, MAX_BODY_BYTES),
    )
    .await
    .map_err(|_| ApiError::RequestTimeout)??;
    let reason = cancel_reason(&bytes)?;
    let backend = state.backend();
    let done = backend.operations.cancel(id, reason, until).await;
    operator_answer(
        backend,
        id,
        done,
        "only PENDING and FAILED orders can be cancelled",
    )
    .await
}

/// The reason of a cancel's body: none for an empty body, `null` or `{}`, else
/// a JSON object whose only field is a `reason` string of 1 to 256 characters.
pub fn cancel_reason(bytes: &[u8]) -> Result<Option<String>, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let value: Value = serde_json::from_slice(bytes).map_err(|e| {
        ApiError::MalformedJson(format!(
            "the body is not valid JSON (line {}, column {})",
            e.line(),
            e.column()
        ))
    })?;
    if value.is_null() {
        return Ok(None);
    }
    let Value::Object(mut fields) = value else {
        return Err(ApiError::MalformedJson(
            "the body must be a JSON object".into(),
        ));
    };
    let mut details = Vec::new();
    for name in fields.keys().filter(|k| k.as_str() != "reason") {
        details.push(dofs_core::FieldError {
            field: extract::excerpt(name),
            message: "is not a known field".into(),
        });
    }
    let reason = match fields.remove("reason") {
        None | Some(Value::Null) => None,
        Some(Value::String(r)) if (1..=MAX_CANCEL_REASON_CHARS).contains(&r.chars().count()) => {
            Some(r)
        }
        Some(_) => {
            details.push(dofs_core::FieldError {
                field: "reason".into(),
                message: format!("must be a string of 1 to {MAX_CANCEL_REASON_CHARS} characters"),
            });
            None
        }
    };
    if details.is_empty() {
        Ok(reason)
    } else {
        Err(ApiError::Validation {
            message: "cancel request is invalid",
            details,
        })
    }
}

/// The order id of the path, or a 400 naming `orderId`.
pub(crate) fn order_id(path: Result<Path<String>, PathRejection>) -> Result<OrderId, ApiError> {
    let invalid = || {
        ApiError::invalid_field(
            "request is invalid",
            "orderId",
            "must be an order id (a UUID such as 0193c1a2-7b3c-7def-8a12-3456789abcde)",
        )
    };
    let Path(raw) = path.map_err(|_| invalid())?;
    OrderId::parse(&raw).map_err(|_| invalid())
}

pub(crate) fn not_found(id: OrderId) -> ApiError {
    ApiError::NotFound(format!("order {id} not found"))
}
