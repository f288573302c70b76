//! Operator and operations routes: failed orders, the dead-letter queue and
//! its two actions, workflow executions, liveness and readiness.

use crate::deadline::WorkUntil;
use crate::error::ApiError;
use crate::extract::{self, CursorRule};
use crate::routes::{cursor_error, query_pairs};
use crate::state::AppState;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use dofs_core::ports::{execution_id, DeadLetter, StoreNotWritable};
use dofs_core::service::OrderMessage;

/// The longest execution id accepted, in bytes.
const MAX_EXECUTION_ID_BYTES: usize = 256;

/// The operations routes any API key may use (the reader group).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/failed-orders", get(failed_orders))
        .route("/dlq", get(dead_letters))
        .route("/executions/{executionId}", get(execution))
}

/// The dead-letter actions, which need an operator key (the operator group).
pub fn operator_routes() -> Router<AppState> {
    Router::new()
        .route("/dlq/redrive", post(redrive))
        .route("/dlq/purge", post(purge))
}

/// Liveness and readiness: open, and never limited (the probe group).
pub fn probe_routes() -> Router<AppState> {
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
}

/// `GET /failed-orders?limit&cursor`: the failed-orders table, newest first.
#[utoipa::path(
    get,
    path = "/failed-orders",
    tag = "operator",
    operation_id = "listFailedOrders",
    summary = "List the failed-orders table, newest first",
    params(
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 500, description = "Page size, 1 to 500 (default 50)."),
        ("cursor" = Option<String>, Query, pattern = "^[!-~]+$", max_length = 4096, description = "The previous page's nextCursor."),
    ),
    responses(
        (status = 200, description = "One page.", body = dofs_wire::FailedOrderPage),
        (status = 400, description = "A bad or unknown query parameter.", body = dofs_wire::Error),
        (status = 401, description = "A key is required and missing or wrong.", body = dofs_wire::Error),
    )
)]
async fn failed_orders(
    State(state): State<AppState>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Json<dofs_wire::FailedOrderPage>, ApiError> {
    let q = extract::list_query(&query_pairs(query)?, false, CursorRule::Opaque)?;
    let page = state
        .backend()
        .orders
        .list_failed(q.limit, q.cursor.as_deref())
        .await
        .map_err(|e| cursor_error(e, q.cursor.is_some()))?;
    Ok(Json(dofs_wire::FailedOrderPage {
        items: page
            .items
            .iter()
            .map(dofs_wire::FailedOrder::from)
            .collect(),
        next_cursor: page.next_cursor,
    }))
}

/// `GET /dlq?limit&cursor`: dead letters awaiting an operator, oldest first,
/// each with its order's last failure, and the DLQ depth.
#[utoipa::path(
    get,
    path = "/dlq",
    tag = "operator",
    operation_id = "listDeadLetters",
    summary = "List the dead letters awaiting an operator, oldest first",
    params(
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 500, description = "Page size, 1 to 500 (default 50)."),
        ("cursor" = Option<String>, Query, pattern = "^[!-~]+$", max_length = 4096, description = "The previous page's nextCursor."),
    ),
    responses(
        (status = 200, description = "One page, and the DLQ depth.", body = dofs_wire::DeadLetterPage),
        (status = 400, description = "A bad or unknown query parameter.", body = dofs_wire::Error),
        (status = 401, description = "A key is required and missing or wrong.", body = dofs_wire::Error),
    )
)]
async fn dead_letters(
    State(state): State<AppState>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Json<dofs_wire::DeadLetterPage>, ApiError> {
    let q = extract::list_query(&query_pairs(query)?, false, CursorRule::Opaque)?;
    let backend = state.backend();
    let page = backend
        .queue
        .dead_letters(q.limit, q.cursor.as_deref())
        .await
        .map_err(|e| cursor_error(e, q.cursor.is_some()))?;
    let mut items = Vec::with_capacity(page.items.len());
    for dead in &page.items {
        items.push(dead_letter(&state, dead).await?);
    }
    let depth = backend.queue.depth().await?.dead;
    Ok(Json(dofs_wire::DeadLetterPage {
        items,
        next_cursor: page.next_cursor,
        depth,
    }))
}

/// One dead letter; `orderId` and `lastError` are null when the message
/// names no order or the order is gone.
async fn dead_letter(
    state: &AppState,
    dead: &DeadLetter,
) -> Result<dofs_wire::DeadLetter, ApiError> {
    let order_id = OrderMessage::parse(&dead.body).map(|m| m.order_id);
    let last_error = match order_id {
        Some(id) => state
            .backend()
            .orders
            .get(id)
            .await?
            .and_then(|order| order.failure_reason),
        None => None,
    };
    Ok(dofs_wire::DeadLetter {
        message_id: dead.id.clone(),
        order_id: order_id.map(|id| id.to_string()),
        attempts: dead.receive_count,
        sent_at: dead.sent_at.to_string(),
        dead_at: dead.dead_at.to_string(),
        last_error,
    })
}

/// `POST /dlq/redrive`: the dead letters back on the queue, as many as the
/// request's time allows (`more` says whether to send it again).
#[utoipa::path(
    post,
    path = "/dlq/redrive",
    tag = "operator",
    operation_id = "redriveDeadLetters",
    summary = "Put every dead letter back on the orders queue",
    description = "Moves the dead letters there when the request begins. On a DLQ too large for one request's time (on AWS), it stops before its timeout and answers `more: true`: send it again until `more` is false. Each dead letter is moved by exactly one request.",
    responses(
        (status = 200, description = "How many moved, and whether more remain; their orders are PENDING with attempts reset.", body = dofs_wire::Redriven),
        (status = 401, description = "A key is required and missing or wrong.", body = dofs_wire::Error),
        (status = 403, description = "This route needs an operator key.", body = dofs_wire::Error),
    )
)]
async fn redrive(
    State(state): State<AppState>,
    WorkUntil(until): WorkUntil,
) -> Result<Json<dofs_wire::Redriven>, ApiError> {
    let done = state.backend().operations.redrive(until).await?;
    Ok(Json(dofs_wire::Redriven::from(done)))
}

/// `POST /dlq/purge`: the dead letters acknowledged, as many as the request's
/// time allows; the orders stay `FAILED`.
#[utoipa::path(
    post,
    path = "/dlq/purge",
    tag = "operator",
    operation_id = "purgeDeadLetters",
    summary = "Acknowledge every dead letter; the orders stay FAILED",
    description = "Acknowledges the dead letters there when the request begins. On a DLQ too large for one request's time (on AWS), it stops before its timeout and answers `more: true`: send it again until `more` is false.",
    responses(
        (status = 200, description = "How many were purged, and whether more remain.", body = dofs_wire::Purged),
        (status = 401, description = "A key is required and missing or wrong.", body = dofs_wire::Error),
        (status = 403, description = "This route needs an operator key.", body = dofs_wire::Error),
    )
)]
async fn purge(
    State(state): State<AppState>,
    WorkUntil(until): WorkUntil,
) -> Result<Json<dofs_wire::Purged>, ApiError> {
    let done = state.backend().operations.purge(until).await?;
    Ok(Json(dofs_wire::Purged::from(done)))
}

/// `GET /executions/{executionId}`: the id, or the whole (URL-encoded) ARN.
#[utoipa::path(
    get,
    path = "/executions/{executionId}",
    tag = "operations",
    operation_id = "getExecution",
    summary = "A workflow execution and its state-by-state history",
    params(("executionId" = String, Path, pattern = "^[!-~]*[!-9;-~]$", max_length = 256, description = "The last `:`-separated part of the executionArn, or the URL-encoded whole ARN.")),
    responses(
        (status = 200, description = "The execution.", body = dofs_wire::Execution),
        (status = 400, description = "Not an execution id.", body = dofs_wire::Error),
        (status = 401, description = "A key is required and missing or wrong.", body = dofs_wire::Error),
        (status = 404, description = "No such execution.", body = dofs_wire::Error),
    )
)]
async fn execution(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<dofs_wire::Execution>, ApiError> {
    let invalid = || {
        ApiError::invalid_field(
            "request is invalid",
            "executionId",
            "must be an execution id or an execution ARN",
        )
    };
    let Path(raw) = path.map_err(|_| invalid())?;
    let id = execution_id(&raw);
    if id.is_empty()
        || id.len() > MAX_EXECUTION_ID_BYTES
        || id.chars().any(|c| c.is_control() || c.is_whitespace())
    {
        return Err(invalid());
    }
    let Some(e) = state.backend().executions.get(id).await? else {
        return Err(ApiError::NotFound(format!(
            "execution {} not found",
            extract::excerpt(id)
        )));
    };
    Ok(Json(dofs_wire::Execution::from(e)))
}

/// `GET /health`: the process answers.
#[utoipa::path(
    get,
    path = "/health",
    tag = "operations",
    operation_id = "getHealth",
    summary = "Liveness",
    responses((status = 200, description = "The process answers.", body = dofs_wire::Health))
)]
async fn health() -> Json<dofs_wire::Health> {
    Json(dofs_wire::Health {
        status: "ok".into(),
    })
}

/// `GET /ready`: the store and the queue answer, the store takes writes (a
/// full disk answers 503 with the reason), and the server is not shutting down.
#[utoipa::path(
    get,
    path = "/ready",
    tag = "operations",
    operation_id = "getReadiness",
    summary = "Readiness: the store and the queue answer",
    responses(
        (status = 200, description = "Ready.", body = dofs_wire::Readiness),
        (status = 503, description = "Not ready (the reason says why: the store cannot take writes, e.g. a full disk; it is not reachable), or shutting down.", body = dofs_wire::Readiness),
    )
)]
async fn ready(State(state): State<AppState>) -> Response {
    let not_ready = |reason: &str| {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(dofs_wire::Readiness::not_ready(reason)),
        )
            .into_response()
    };
    if state.is_shutting_down() {
        return not_ready("shutting down");
    }
    match state.backend().operations.ready().await {
        Ok(()) => Json(dofs_wire::Readiness::ready()).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, source = ?e.source, "readiness check failed");
            let unwritable = e
                .source
                .as_deref()
                .and_then(|s| s.downcast_ref::<StoreNotWritable>());
            match unwritable {
                Some(why) => not_ready(&format!("the store cannot take writes: {why}")),
                None => not_ready("the store or the queue is not reachable"),
            }
        }
    }
}
