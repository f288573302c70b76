//! The DOFS HTTP API (CONTRACT.md section 1): one axum [`Router`] that both
//! shapes serve, `dofs serve` over the embedded backend and the API Lambda
//! over the AWS one. It owns the HTTP edge only: reading requests by the
//! contract's rules and turning domain and port results into its JSON. The
//! work itself happens behind [`dofs_core::ports::Backend`].
//!
//! Layout:
//! - [`state`]: [`AppState`], the backend, the limits, the shutdown flag and
//!   the idempotency keys in flight.
//! - [`error`]: [`ApiError`], the one `IntoResponse` for every failure.
//! - [`extract`]: `Content-Type`, `Idempotency-Key`, the 64 KiB body limit and
//!   listing queries, each rejected as contract JSON.
//! - [`routes`]: the handlers: `orders` (submit, get, list, retry) and `ops`
//!   (failed orders, DLQ, executions, health, readiness).
//! - [`observability`]: `/metrics`, `/alerts`, the dashboard (`/`, `/stats`,
//!   `/workflow`), the alert evaluator, and the request-id and request-metrics
//!   middleware.
//! - [`openapi`]: the OpenAPI 3.1 document of every route, `GET /openapi.json`.
//! - [`overload`]: rate limits, the in-flight limit and queue back-pressure (429).
//! - [`serve`]: the HTTP/1 server loop with slow-client protection.
//!
//! [`router`] assembles the routes, the JSON 404 and 405 fallbacks, and the
//! cross-cutting layers (applied in one place, [`with_layers`]).

pub mod auth;
pub mod error;
pub mod extract;
pub mod observability;
pub mod openapi;
pub mod overload;
pub mod routes;
pub mod serve;
pub mod state;

pub use error::ApiError;
pub use state::AppState;

use axum::extract::Request;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use std::time::Duration;
use tower_http::trace::{
    DefaultMakeSpan, DefaultOnFailure, DefaultOnRequest, DefaultOnResponse, TraceLayer,
};
use tracing::Level;

/// The whole API: every route, JSON fallbacks for unknown routes (404) and
/// wrong methods (405), and the layers.
pub fn router(state: AppState) -> Router {
    let obs = observability::Observability::detached(state.backend().clock.now());
    router_with(state, obs)
}

/// [`router`] with the observability state that `dofs serve` evaluates
/// alerts in and serves the workflow graph from.
pub fn router_with(state: AppState, obs: observability::Observability) -> Router {
    // Further route groups (metrics, alerts, OpenAPI, dashboard) merge here,
    // before the fallbacks, so that they get the JSON 405 too.
    let routes = Router::new()
        .merge(api_routes())
        .merge(observability::routes(obs))
        .merge(openapi::routes());
    let request_timeout = state.overload().config().request_timeout;
    let routes = routes
        .fallback(unknown_route)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_key,
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            overload::guard,
        ))
        .with_state(state);
    with_layers(routes, request_timeout)
}

/// The contract's order and operations routes, without fallbacks or layers.
pub fn api_routes() -> Router<AppState> {
    Router::new()
        .merge(routes::orders::routes())
        .merge(routes::ops::routes())
}

/// The cross-cutting layers, outermost last: the per-request timeout
/// (`request_timeout`), then request tracing, then the request id, request
/// span and request metrics ([`observability::http::observe`]) around
/// everything, so they also see answers given by the other layers. The
/// overload limits and authentication sit inside, in [`router_with`].
pub fn with_layers(router: Router, request_timeout: Duration) -> Router {
    router
        .layer(middleware::from_fn(move |request: Request, next: Next| {
            timeout(request_timeout, request, next)
        }))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(DefaultMakeSpan::new().level(Level::DEBUG))
                .on_request(DefaultOnRequest::new().level(Level::DEBUG))
                .on_response(DefaultOnResponse::new().level(Level::DEBUG))
                .on_failure(DefaultOnFailure::new().level(Level::DEBUG)),
        )
        .layer(middleware::from_fn(observability::http::observe))
}

/// Answers 503 `Timeout` when the request takes longer than `limit`.
async fn timeout(limit: Duration, request: Request, next: Next) -> Response {
    let path = request.uri().path().to_owned();
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            tracing::warn!(%path, "request timed out");
            ApiError::Timeout.into_response()
        }
    }
}

async fn unknown_route() -> ApiError {
    ApiError::NotFound("no such route".into())
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::StatusCode;
    use axum::routing::get;
    use tower::ServiceExt;

    #[tokio::test(start_paused = true)]
    async fn a_request_that_takes_too_long_is_answered_503_json() {
        let app = with_layers(
            Router::new().route("/slow", get(std::future::pending::<()>)),
            Duration::from_secs(30),
        );
        let response = app
            .oneshot(Request::get("/slow").body(Body::empty()).expect("request"))
            .await
            .expect("infallible");
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(response.headers().contains_key("retry-after"));
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("body");
        let body: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
        assert_eq!(body["error"], "Timeout");
    }
}
