//! [`ApiError`]: the one place where failures become HTTP responses.
//!
//! Every error body is `{"error": <Name>, "message": <text>}`, plus `details`
//! for validation. Port errors are mapped by kind only: their messages are fit
//! for logs, never for clients, so they are logged here and replaced by fixed
//! text in the response.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use dofs_core::ports::{ErrorKind, OutOfTime, PortError};
use dofs_core::FieldError;

/// Seconds a client should wait before retrying after a 503 or a 429 other than a rate limit.
const RETRY_AFTER_SECONDS: &str = "1";

/// A failed request, as the client sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiError {
    /// 400 `MalformedJson`: the body is not a JSON object. The message comes
    /// from the decoder, which names a line and column and never echoes input.
    MalformedJson(String),
    /// 400 `ValidationError`: one or more rules broken, each listed in `details`.
    Validation {
        /// What was invalid as a whole, e.g. "order is invalid".
        message: &'static str,
        /// Every broken rule (never empty).
        details: Vec<FieldError>,
    },
    /// 401 `Unauthorized`: keys are configured and the request carries no `x-api-key`.
    KeyMissing,
    /// 401 `Unauthorized`: the request's `x-api-key` is not a configured key.
    KeyInvalid,
    /// 403 `Forbidden`: the key is valid but this route needs an operator key.
    OperatorKeyRequired,
    /// 404 `NotFound`.
    NotFound(String),
    /// 405 `MethodNotAllowed`.
    MethodNotAllowed,
    /// 409 `Conflict`: the resource's current state forbids the action.
    Conflict(String),
    /// 409 `IdempotencyKeyInFlight`: another request with this key is being processed.
    IdempotencyKeyInFlight,
    /// 413 `PayloadTooLarge`: the body is over the limit, in bytes.
    PayloadTooLarge(usize),
    /// 415 `UnsupportedMediaType`: the body is not declared `application/json`.
    UnsupportedMediaType,
    /// 422 `IdempotencyKeyReused`: the key was used before with another body.
    IdempotencyKeyReused,
    /// 408 `RequestTimeout`: the body did not arrive in time; the connection is closed.
    RequestTimeout,
    /// 429 `RateLimited` with `Retry-After`: the client's rate limit was hit.
    RateLimited {
        /// Seconds until the client may send again.
        retry_after: u64,
    },
    /// 429 `ServerBusy` with `Retry-After`: the server handles as many requests as it may.
    ServerBusy,
    /// 429 `QueueFull` with `Retry-After`: the orders queue is at its back-pressure limit.
    QueueFull,
    /// 500 `InternalError`; the detail has been logged, the client sees none.
    Internal,
    /// 503 `ServiceUnavailable` with `Retry-After`: a dependency is busy or unreachable.
    Unavailable,
    /// 503 `ShuttingDown` with `Retry-After`: the server no longer accepts work.
    ShuttingDown,
    /// 503 `Timeout` with `Retry-After`: the request took longer than the server allows.
    Timeout,
    /// 503 `Timeout` with `Retry-After`: an action could not be done within
    /// the request's time and changed nothing; the message (the port's
    /// [`OutOfTime`], written for the operator) says what to do.
    OutOfTime(String),
}

impl ApiError {
    /// A single broken rule.
    pub fn invalid_field(
        message: &'static str,
        field: impl Into<String>,
        rule: impl Into<String>,
    ) -> Self {
        ApiError::Validation {
            message,
            details: vec![FieldError {
                field: field.into(),
                message: rule.into(),
            }],
        }
    }

    /// The status code.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::MalformedJson(_) | ApiError::Validation { .. } => StatusCode::BAD_REQUEST,
            ApiError::KeyMissing | ApiError::KeyInvalid => StatusCode::UNAUTHORIZED,
            ApiError::OperatorKeyRequired => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict(_) | ApiError::IdempotencyKeyInFlight => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::IdempotencyKeyReused => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            ApiError::RateLimited { .. } | ApiError::ServerBusy | ApiError::QueueFull => {
                StatusCode::TOO_MANY_REQUESTS
            }
            ApiError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Unavailable
            | ApiError::ShuttingDown
            | ApiError::Timeout
            | ApiError::OutOfTime(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The `error` field: a stable name clients may branch on.
    pub fn name(&self) -> &'static str {
        match self {
            ApiError::MalformedJson(_) => "MalformedJson",
            ApiError::Validation { .. } => "ValidationError",
            ApiError::KeyMissing | ApiError::KeyInvalid => "Unauthorized",
            ApiError::OperatorKeyRequired => "Forbidden",
            ApiError::NotFound(_) => "NotFound",
            ApiError::MethodNotAllowed => "MethodNotAllowed",
            ApiError::Conflict(_) => "Conflict",
            ApiError::IdempotencyKeyInFlight => "IdempotencyKeyInFlight",
            ApiError::PayloadTooLarge(_) => "PayloadTooLarge",
            ApiError::UnsupportedMediaType => "UnsupportedMediaType",
            ApiError::IdempotencyKeyReused => "IdempotencyKeyReused",
            ApiError::RequestTimeout => "RequestTimeout",
            ApiError::RateLimited { .. } => "RateLimited",
            ApiError::ServerBusy => "ServerBusy",
            ApiError::QueueFull => "QueueFull",
            ApiError::Internal => "InternalError",
            ApiError::Unavailable => "ServiceUnavailable",
            ApiError::ShuttingDown => "ShuttingDown",
            ApiError::Timeout | ApiError::OutOfTime(_) => "Timeout",
        }
    }

    /// The `message` field.
    pub fn message(&self) -> String {
        match self {
            ApiError::MalformedJson(m)
            | ApiError::NotFound(m)
            | ApiError::Conflict(m)
            | ApiError::OutOfTime(m) => m.clone(),
            ApiError::Validation { message, .. } => (*message).to_owned(),
            ApiError::KeyMissing => "an x-api-key header is required".into(),
            ApiError::KeyInvalid => "the x-api-key is not valid".into(),
            ApiError::OperatorKeyRequired => "this route needs an operator key".into(),
            ApiError::MethodNotAllowed => "this method is not allowed on this route".into(),
            ApiError::IdempotencyKeyInFlight => {
                "a request with this Idempotency-Key is still being processed".into()
            }
            ApiError::PayloadTooLarge(limit) => {
                format!("the body must be at most {limit} bytes")
            }
            ApiError::UnsupportedMediaType => "Content-Type must be application/json".into(),
            ApiError::IdempotencyKeyReused => {
                "this Idempotency-Key was used with a different body".into()
            }
            ApiError::RequestTimeout => "the request body took too long to arrive".into(),
            ApiError::RateLimited { .. } => {
                "too many requests from this client, retry later".into()
            }
            ApiError::ServerBusy => {
                "the server is at its limit of requests in flight, retry later".into()
            }
            ApiError::QueueFull => {
                "too many orders are waiting to be fulfilled, retry later".into()
            }
            ApiError::Internal => "internal error".into(),
            ApiError::Unavailable => "the service is temporarily unavailable, retry later".into(),
            ApiError::ShuttingDown => "the server is shutting down, retry later".into(),
            ApiError::Timeout => "the request took too long, retry later".into(),
        }
    }

    /// The JSON body.
    pub fn body(&self) -> dofs_wire::Error {
        dofs_wire::Error {
            error: self.name().into(),
            message: self.message(),
            details: match self {
                ApiError::Validation { details, .. } => {
                    Some(details.iter().map(dofs_wire::FieldError::from).collect())
                }
                _ => None,
            },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let mut response = (status, Json(self.body())).into_response();
        response
            .extensions_mut()
            .insert(crate::observability::http::ErrorName(self.name()));
        let headers = response.headers_mut();
        match self {
            ApiError::RateLimited { retry_after } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
            }
            _ if status == StatusCode::SERVICE_UNAVAILABLE
                || status == StatusCode::TOO_MANY_REQUESTS =>
            {
                headers.insert(
                    header::RETRY_AFTER,
                    HeaderValue::from_static(RETRY_AFTER_SECONDS),
                );
            }
            ApiError::RequestTimeout => {
                // The rest of the body may still be on its way: do not wait for it.
                headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            _ => {}
        }
        response
    }
}

impl From<PortError> for ApiError {
    /// Maps by kind. The port's message is logged, never sent: it may name
    /// tables, files or SQL. A `NotFound` or `Conflict` that a handler can
    /// describe better should be matched there before this conversion.
    fn from(e: PortError) -> Self {
        match e.kind {
            ErrorKind::NotFound => {
                tracing::debug!(error = %e, "port reported not found");
                ApiError::NotFound("not found".into())
            }
            ErrorKind::Conflict => {
                tracing::debug!(error = %e, "port reported a conflict");
                ApiError::Conflict("the request conflicts with the current state".into())
            }
            ErrorKind::Transient => {
                if let Some(why) = e
                    .source
                    .as_deref()
                    .and_then(|s| s.downcast_ref::<OutOfTime>())
                {
                    tracing::warn!(error = %e, "an action ran out of time and changed nothing");
                    return ApiError::OutOfTime(why.0.clone());
                }
                tracing::warn!(error = %e, source = ?e.source, "transient backend failure");
                ApiError::Unavailable
            }
            ErrorKind::Internal => {
                tracing::error!(error = %e, source = ?e.source, "internal backend failure");
                ApiError::Internal
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The body as the client reads it.
    fn json_body(e: &ApiError) -> serde_json::Value {
        serde_json::to_value(e.body()).expect("an error body serialises")
    }

    #[test]
    fn internal_port_errors_never_reach_the_client() {
        let e = PortError::new(
            ErrorKind::Internal,
            "SELECT * FROM orders: /var/lib/dofs.db",
        );
        let api = ApiError::from(e);
        assert_eq!(api.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            json_body(&api),
            serde_json::json!({"error": "InternalError", "message": "internal error"})
        );
    }

    #[test]
    fn port_error_kinds_map_to_their_status_codes() {
        let cases = [
            (ErrorKind::NotFound, StatusCode::NOT_FOUND, "NotFound"),
            (ErrorKind::Conflict, StatusCode::CONFLICT, "Conflict"),
            (
                ErrorKind::Transient,
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailable",
            ),
            (
                ErrorKind::Internal,
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalError",
            ),
        ];
        for (kind, status, name) in cases {
            let api = ApiError::from(PortError::new(kind, "secret detail"));
            assert_eq!(api.status(), status, "{kind:?}");
            assert_eq!(api.name(), name, "{kind:?}");
            assert!(!api.message().contains("secret"), "{kind:?}");
        }
    }

    #[test]
    fn transient_failures_tell_the_client_when_to_retry() {
        let response = ApiError::from(PortError::new(ErrorKind::Transient, "busy")).into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            response.headers().get(header::RETRY_AFTER),
            Some(&HeaderValue::from_static("1"))
        );
    }

    #[test]
    fn an_action_out_of_time_is_a_503_timeout_that_says_what_to_do() {
        let e = PortError::with_source(
            ErrorKind::Transient,
            "searched 4000 of dlq-table-x",
            OutOfTime("the DLQ is too large; retry later".into()),
        );
        let response = ApiError::from(e).into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(response.headers().contains_key(header::RETRY_AFTER));
        let api = ApiError::from(PortError::with_source(
            ErrorKind::Transient,
            "searched 4000 of dlq-table-x",
            OutOfTime("the DLQ is too large; retry later".into()),
        ));
        assert_eq!(
            json_body(&api),
            serde_json::json!({"error": "Timeout", "message": "the DLQ is too large; retry later"})
        );
    }

    #[test]
    fn refusals_under_overload_are_429_with_retry_after() {
        let cases = [
            (ApiError::RateLimited { retry_after: 3 }, "3"),
            (ApiError::ServerBusy, "1"),
            (ApiError::QueueFull, "1"),
        ];
        for (e, after) in cases {
            let response = e.into_response();
            assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
            assert_eq!(
                response.headers().get(header::RETRY_AFTER),
                Some(&HeaderValue::from_static(after))
            );
        }
    }

    #[test]
    fn key_failures_are_401_or_403_and_never_echo_the_key() {
        let cases = [
            (
                ApiError::KeyMissing,
                StatusCode::UNAUTHORIZED,
                "Unauthorized",
            ),
            (
                ApiError::KeyInvalid,
                StatusCode::UNAUTHORIZED,
                "Unauthorized",
            ),
            (
                ApiError::OperatorKeyRequired,
                StatusCode::FORBIDDEN,
                "Forbidden",
            ),
        ];
        for (e, status, name) in cases {
            assert_eq!(e.status(), status, "{e:?}");
            assert_eq!(json_body(&e)["error"], name, "{e:?}");
            assert!(e
                .into_response()
                .headers()
                .get(header::RETRY_AFTER)
                .is_none());
        }
    }

    #[test]
    fn validation_errors_list_their_details_and_others_have_none() {
        let body = json_body(&ApiError::invalid_field(
            "order is invalid",
            "price",
            "must be a number",
        ));
        assert_eq!(
            body,
            serde_json::json!({
                "error": "ValidationError",
                "message": "order is invalid",
                "details": [{"field": "price", "message": "must be a number"}],
            })
        );
        assert!(json_body(&ApiError::UnsupportedMediaType)
            .get("details")
            .is_none());
    }

    #[test]
    fn every_error_body_has_a_name_and_a_message() {
        let all = [
            ApiError::MalformedJson("the body is not valid JSON".into()),
            ApiError::KeyMissing,
            ApiError::KeyInvalid,
            ApiError::OperatorKeyRequired,
            ApiError::NotFound("order not found".into()),
            ApiError::MethodNotAllowed,
            ApiError::Conflict("c".into()),
            ApiError::IdempotencyKeyInFlight,
            ApiError::PayloadTooLarge(65536),
            ApiError::UnsupportedMediaType,
            ApiError::IdempotencyKeyReused,
            ApiError::Internal,
            ApiError::Unavailable,
            ApiError::ShuttingDown,
            ApiError::Timeout,
            ApiError::OutOfTime("retry later".into()),
            ApiError::RequestTimeout,
            ApiError::RateLimited { retry_after: 2 },
            ApiError::ServerBusy,
            ApiError::QueueFull,
        ];
        for e in all {
            let body = json_body(&e);
            assert_eq!(body["error"], e.name());
            assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
        }
    }
}
