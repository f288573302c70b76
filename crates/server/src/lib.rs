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
//! - [`api_doc`]: the OpenAPI 3.1 document of every route, `GET /openapi.json`,
//!   and the list of the contract's routes. The shapes themselves are `dofs_wire`'s.
//! - [`overload`]: rate limits, the in-flight limit and queue back-pressure (429).
//! - [`layer`]: the middleware shapes the groups are mounted with (a check
//!   before the routes, the request timeout), as plain tower services.
//! - [`deadline`]: the request's deadline, and when work that grows with the
//!   data (the DLQ actions) stops by it.
//! - [`serve`]: the HTTP/1 server loop with slow-client protection.
//!
//! [`router`] assembles the route groups (probes, scrape, public, reader,
//! operator) with their authentication and overload layers, the JSON 404 and
//! 405 fallbacks, and the cross-cutting layers (applied in one place,
//! [`with_layers`]).

pub mod api_doc;
pub mod auth;
pub mod deadline;
pub mod error;
pub mod extract;
pub mod layer;
pub mod observability;
pub mod overload;
pub mod routes;
pub mod serve;
pub mod state;

pub use error::ApiError;
pub use state::AppState;

use auth::Access;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::middleware;
use axum::Router;
use std::time::Duration;

/// The whole API: every route, JSON fallbacks for unknown routes (404) and
/// wrong methods (405), and the layers.
pub fn router(state: AppState) -> Router {
    let obs = observability::Observability::detached(state.backend().clock.now());
    router_with(state, obs)
}

/// [`router`] with the observability state that `dofs serve` evaluates
/// alerts in and serves the workflow graph from.
///
/// Routes are mounted in groups, and a group's layers say who may use its
/// routes and whether they are limited; no layer looks at paths:
///
/// | group | routes | key | overload limits |
/// |---|---|---|---|
/// | probes | `/health`, `/ready` | none | never |
/// | scrape | `/metrics` | any | never |
/// | public | `/`, `/assets/*` (the dashboard's page shell) | none | yes |
/// | reader | orders, listings, executions, `/alerts`, `/stats`, `/workflow`, `/openapi.json` | any | yes |
/// | operator | retry, DLQ redrive and purge | operator | yes |
///
/// Wrong methods (405) and unknown routes (404) need a key too, except on
/// the probes, so that the API's shape is not open to clients without one.
/// The overload limits sit outside authentication, so that guessing keys
/// is rate limited too.
pub fn router_with(state: AppState, obs: observability::Observability) -> Router {
    let request_timeout = state.overload().config().request_timeout;
    let groups = Groups {
        state: state.clone(),
    };
    let reader = Router::new()
        .merge(routes::orders::routes())
        .merge(routes::ops::routes())
        .merge(routes::events::routes())
        .merge(observability::routes(obs.clone()))
        .merge(api_doc::routes());
    let operator = Router::new()
        .merge(routes::orders::operator_routes())
        .merge(routes::ops::operator_routes());
    let unknown = groups
        .limited(
            Router::new()
                .fallback(unknown_route)
                .layer(auth::require(state.clone(), Access::Submit)),
        )
        .with_state(state.clone());
    let routes = Router::new()
        .merge(routes::ops::probe_routes().method_not_allowed_fallback(method_not_allowed))
        .merge(groups.keyed(observability::scrape_routes(obs), Access::Submit))
        .merge(groups.limited(groups.keyed(observability::dashboard::shell_routes(), Access::None)))
        .merge(groups.limited(groups.keyed(reader, Access::Submit)))
        .merge(groups.limited(groups.keyed(operator, Access::Operator)))
        .fallback_service(unknown)
        .with_state(state);
    with_layers(routes, request_timeout)
}

/// The layers a route group is mounted with.
struct Groups {
    state: AppState,
}

impl Groups {
    /// `routes` for clients with a key of level `needed` (any key:
    /// `Access::Submit`; none: `Access::None`); a wrong method on them
    /// answers 405 only to a client with a valid key (401 otherwise).
    fn keyed(&self, routes: Router<AppState>, needed: Access) -> Router<AppState> {
        let routes = routes.method_not_allowed_fallback(method_not_allowed_with_key);
        let state = self.state.clone();
        match needed {
            Access::None => routes,
            Access::Submit | Access::Operator => routes.route_layer(auth::require(state, needed)),
        }
    }

    /// `routes` behind the rate limit and the in-flight limit.
    fn limited(&self, routes: Router<AppState>) -> Router<AppState> {
        routes.layer(overload::guard(self.state.clone()))
    }
}

/// The cross-cutting layers, outermost last: the per-request timeout
/// ([`layer::Timeout`], which marks the request with its
/// [`deadline::RequestDeadline`]), then the request id, request span, request
/// metrics and request log ([`observability::http::observe`]) around
/// everything, so they also see answers given by the other layers. The
/// overload limits and authentication sit inside, in [`router_with`].
pub fn with_layers(router: Router, request_timeout: Duration) -> Router {
    router
        .layer(layer::Timeout::new(request_timeout))
        .layer(middleware::from_fn(observability::http::observe))
}

async fn unknown_route() -> ApiError {
    ApiError::NotFound("no such route".into())
}

/// 405, or the 401 of a client without a valid key.
async fn method_not_allowed_with_key(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> ApiError {
    match auth::check(state.keys(), &headers, Access::Submit) {
        Ok(()) => ApiError::MethodNotAllowed,
        Err(e) => e,
    }
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::extract::Request;
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
