//! The HTTP edge's share of observability, as one middleware ([`observe`]):
//!
//! - `x-request-id`: taken from the request when it is 1 to 128 visible ASCII
//!   characters, generated otherwise, and returned on the response;
//! - a `request` span carrying `requestId`, the method and the route template,
//!   so every line logged while serving the request carries them; an accepted
//!   order's line adds its `orderId` and `executionId`; at `DEBUG`, a line for
//!   every answer with its status and time;
//! - `dofs_http_requests_total` and `dofs_http_request_duration_seconds` by
//!   method and route template (never the raw path: ids stay out of labels);
//! - `dofs_orders_accepted_total` and `dofs_orders_rejected_total{reason}`
//!   for the submit routes, the reason being the answer's error code. The
//!   handler and [`crate::error::ApiError`] say what an answer was in the
//!   response's extensions ([`AcceptedOrder`], [`ErrorName`]): the body is
//!   never read back.

use crate::observability::metrics::{names, Registry};
use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderName, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::Response;
use std::time::Instant;
use tracing::Instrument;

/// The request id header.
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The longest request id taken from a client.
pub const MAX_REQUEST_ID: usize = 128;

/// Put on a 202 for an order (in the response's extensions).
#[derive(Clone, Debug)]
pub struct AcceptedOrder {
    pub order_id: String,
    pub execution_id: String,
    /// The answer replays an earlier submission (`Idempotency-Key`).
    pub replayed: bool,
}

/// Put on an error answer (in the response's extensions): its `error` code.
#[derive(Clone, Copy, Debug)]
pub struct ErrorName(pub &'static str);

/// The client's request id when acceptable, else a new UUID.
pub fn request_id(request: &Request) -> HeaderValue {
    request
        .headers()
        .get(&X_REQUEST_ID)
        .filter(|v| {
            let v = v.as_bytes();
            !v.is_empty() && v.len() <= MAX_REQUEST_ID && v.iter().all(u8::is_ascii_graphic)
        })
        .cloned()
        .unwrap_or_else(new_request_id)
}

/// A new time-ordered UUID, written straight into the header value.
fn new_request_id() -> HeaderValue {
    let mut text = [0; 36];
    uuid::Uuid::now_v7().hyphenated().encode_lower(&mut text);
    // Hex digits and hyphens are always a valid header value.
    HeaderValue::from_bytes(&text).unwrap_or(HeaderValue::from_static("-"))
}

fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

fn is_submit(method: &Method, route: &str) -> bool {
    method == Method::POST && (route == "/order" || route == "/orders")
}

/// The middleware; add it outermost so it sees every answer, timeouts and
/// refusals by other layers included.
pub async fn observe(mut request: Request, next: Next) -> Response {
    let started = Instant::now();
    let id = request_id(&request);
    request
        .headers_mut()
        .insert(X_REQUEST_ID.clone(), id.clone());
    let method = method_label(request.method());
    let matched = request.extensions().get::<MatchedPath>().cloned();
    let route = matched.as_ref().map_or("unmatched", MatchedPath::as_str);
    let span = tracing::info_span!(
        "request",
        requestId = %id.to_str().unwrap_or_default(),
        method,
        route = %route
    );
    let submit = is_submit(request.method(), route);
    // The path only for the DEBUG line (an unmatched route has no template).
    let uri = tracing::enabled!(tracing::Level::DEBUG).then(|| request.uri().clone());

    let mut response = next.run(request).instrument(span.clone()).await;

    response.headers_mut().insert(X_REQUEST_ID.clone(), id);
    let registry = Registry::global();
    let status = response.status();
    registry.increment(
        names::HTTP_REQUESTS,
        &[
            ("method", method),
            ("route", route),
            ("status", status.as_str()),
        ],
        1,
    );
    let elapsed = started.elapsed();
    registry.observe(
        names::HTTP_DURATION,
        &[("method", method), ("route", route)],
        elapsed.as_secs_f64(),
    );
    tracing::debug!(
        parent: &span,
        path = uri.as_ref().map(|u| u.path()),
        status = status.as_u16(),
        elapsed_ms = elapsed.as_secs_f64() * 1000.0,
        "request answered"
    );
    if submit {
        span.in_scope(|| count_submission(&registry, &response));
    }
    response
}

/// Counts a submit answer as accepted or rejected and logs it with the
/// order's ids, from what the answer's extensions say it was.
fn count_submission(registry: &Registry, response: &Response) {
    let extensions = response.extensions();
    if let Some(accepted) = extensions.get::<AcceptedOrder>() {
        let (order_id, execution_id) = (&accepted.order_id, &accepted.execution_id);
        if accepted.replayed {
            tracing::info!(
                orderId = %order_id,
                executionId = %execution_id,
                "order submission replayed"
            );
        } else {
            registry.increment(names::ORDERS_ACCEPTED, &[], 1);
            tracing::info!(
                orderId = %order_id,
                executionId = %execution_id,
                "order accepted"
            );
        }
        return;
    }
    // Every refusal is an ApiError; "Other" would name one that is not.
    let reason = extensions.get::<ErrorName>().map_or("Other", |n| n.0);
    registry.increment(names::ORDERS_REJECTED, &[("reason", reason)], 1);
    let status = response.status().as_u16();
    tracing::info!(reason, status, "order rejected");
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;

    fn with_header(value: &str) -> Request {
        Request::builder()
            .header("x-request-id", value)
            .body(Body::empty())
            .expect("request")
    }

    #[test]
    fn a_clients_request_id_is_kept_when_it_is_reasonable() {
        assert_eq!(request_id(&with_header("abc-123")), "abc-123");
    }

    #[test]
    fn a_missing_long_or_odd_request_id_is_replaced_by_a_new_one() {
        let fresh = request_id(&Request::new(Body::empty()));
        assert_eq!(fresh.len(), 36, "{fresh:?}");
        assert_ne!(request_id(&with_header(&"x".repeat(129))).len(), 129);
        assert_ne!(request_id(&with_header("has space")), "has space");
        assert_ne!(
            request_id(&Request::new(Body::empty())),
            fresh,
            "each generated id is new"
        );
    }
}
