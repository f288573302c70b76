//! Every error body.

use serde::Serialize;
use utoipa::ToSchema;

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
    #[serde(skip_serializing_if = "Option::is_none")]
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

impl From<&dofs_core::FieldError> for FieldError {
    fn from(e: &dofs_core::FieldError) -> FieldError {
        FieldError {
            field: e.field.clone(),
            message: e.message.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn details_appear_only_when_there_are_some() {
        let plain = Error {
            error: "NotFound".into(),
            message: "order not found".into(),
            details: None,
        };
        assert_eq!(
            serde_json::to_value(plain).expect("JSON"),
            serde_json::json!({"error": "NotFound", "message": "order not found"})
        );
        let invalid = Error {
            error: "ValidationError".into(),
            message: "order is invalid".into(),
            details: Some(vec![FieldError {
                field: "price".into(),
                message: "must be a number".into(),
            }]),
        };
        assert_eq!(
            serde_json::to_value(invalid).expect("JSON")["details"][0]["field"],
            "price"
        );
    }
}
