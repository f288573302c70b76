//! The workflow's Task states, Validate Order and Store Order, once for both shapes.
//!
//! `dofs serve` runs them in process inside the submit transaction
//! (`dofs_embedded::engine`); on AWS they are the `validator` and `order_storage`
//! Lambdas, which Step Functions invokes. Both read the state's input
//! `{"order": {...}}` ([`workflow_input`]) and fail with an error type the ASL
//! matches by name:
//! - [`VALIDATION_ERROR`]: the order is invalid; `Catch` ends the execution as rejected;
//! - [`TRANSIENT_ERROR`]: the store was busy or unreachable; `Retry` tries again;
//! - [`ORDER_CONFLICT`]: another order already has this id; not retried.

use serde_json::{json, Value};

use crate::ports::{ErrorKind, PortError};
use crate::validation::{check_limits, decode_order, DecodeError, FieldError, Limits};
use crate::{NewOrder, Order, OrderId, Timestamp};

/// The order is invalid.
pub const VALIDATION_ERROR: &str = "ValidationError";
/// A dependency was busy or unreachable; worth another try.
pub const TRANSIENT_ERROR: &str = "TransientError";
/// Another order already has this id.
pub const ORDER_CONFLICT: &str = "OrderConflict";

/// The field of the workflow's order that carries the moment it was accepted
/// (milliseconds since the epoch): Store Order keeps it as `createdAt`, so an
/// order reads the same before and after it is stored.
pub const ACCEPTED_AT_FIELD: &str = "acceptedAtMs";

/// A task's failure, named for the ASL's `Retry` and `Catch`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{error_type}: {message}")]
pub struct TaskFailure {
    pub error_type: &'static str,
    pub message: String,
}

impl TaskFailure {
    pub fn validation(message: impl Into<String>) -> Self {
        TaskFailure {
            error_type: VALIDATION_ERROR,
            message: message.into(),
        }
    }

    fn invalid(errors: &[FieldError]) -> Self {
        TaskFailure::validation(
            errors
                .iter()
                .map(|e| format!("{} {}", e.field, e.message))
                .collect::<Vec<_>>()
                .join("; "),
        )
    }
}

impl From<PortError> for TaskFailure {
    fn from(e: PortError) -> Self {
        let error_type = match e.kind {
            ErrorKind::Conflict => ORDER_CONFLICT,
            ErrorKind::Transient => TRANSIENT_ERROR,
            // A broken dependency may heal; let the retrier decide how often.
            ErrorKind::Internal | ErrorKind::NotFound => TRANSIENT_ERROR,
        };
        TaskFailure {
            error_type,
            message: e.to_string(),
        }
    }
}

/// The workflow's input for an order:
/// `{"order": {...as submitted, with orderId and acceptedAtMs}}`.
pub fn workflow_input(order: &Order) -> Value {
    let mut submitted = order.submitted_json();
    if let Some(fields) = submitted.as_object_mut() {
        fields.insert(ACCEPTED_AT_FIELD.into(), order.created_at.millis().into());
    }
    // Moved in, not through `json!`, which would copy it by serializing it.
    let mut input = serde_json::Map::with_capacity(1);
    input.insert("order".into(), submitted);
    Value::Object(input)
}

/// What a task's input describes.
#[derive(Clone, Debug, PartialEq)]
pub struct TaskOrder {
    pub id: OrderId,
    pub order: NewOrder,
    /// When the API accepted it; absent in an input written by hand.
    pub accepted_at: Option<Timestamp>,
}

/// The input's order, decoded by the contract's rules.
pub fn read_input(input: &Value, limits: &Limits) -> Result<TaskOrder, TaskFailure> {
    let (id, fields) = order_object(input)?;
    let accepted_at = fields
        .get(ACCEPTED_AT_FIELD)
        .and_then(Value::as_i64)
        .map(Timestamp);
    let mut rest = fields.clone();
    rest.remove("orderId");
    rest.remove(ACCEPTED_AT_FIELD);
    match decode_order(Value::Object(rest).to_string().as_bytes(), limits) {
        Ok(order) => Ok(TaskOrder {
            id,
            order,
            accepted_at,
        }),
        Err(DecodeError::Malformed(m)) => Err(TaskFailure::validation(m)),
        Err(DecodeError::Invalid(errors)) => Err(TaskFailure::invalid(&errors)),
    }
}

/// Validate Order: checks the input's order and answers `{"valid": true}`.
///
/// `known` is an order already decoded (by the API, moments ago): when the input
/// names it, only the rules that depend on the limits are checked again, since the
/// others hold by its types. Any other order is decoded from the input.
pub fn validate(
    input: &Value,
    limits: &Limits,
    known: Option<&Order>,
) -> Result<Value, TaskFailure> {
    check(input, limits, known)?;
    Ok(json!({ "valid": true }))
}

/// Store Order: the order the input describes, as it is first stored: `PENDING`, no
/// attempts, created when the API accepted it (or `now`). The caller writes it.
pub fn order_to_store(
    input: &Value,
    limits: &Limits,
    execution_arn: impl FnOnce(OrderId) -> String,
    now: Timestamp,
) -> Result<Order, TaskFailure> {
    let task = read_input(input, limits)?;
    let created_at = task.accepted_at.unwrap_or(now);
    Ok(Order::new(
        task.id,
        task.order,
        execution_arn(task.id),
        created_at,
    ))
}

/// Store Order for an order already in hand (the embedded shape, whose submit
/// transaction writes it): checks the input and that it names that order.
pub fn store_known(input: &Value, limits: &Limits, order: &Order) -> Result<Value, TaskFailure> {
    let id = check(input, limits, Some(order))?;
    if id != order.id {
        return Err(TaskFailure::validation(
            "Store Order can store only the order the execution is for",
        ));
    }
    Ok(stored_answer(order))
}

/// Store Order's answer for the order stored.
pub fn stored_answer(order: &Order) -> Value {
    json!({ "orderId": order.id.text().as_str(), "status": order.status.as_str() })
}

/// The id of the input's order once it is checked.
fn check(input: &Value, limits: &Limits, known: Option<&Order>) -> Result<OrderId, TaskFailure> {
    let (id, _) = order_object(input)?;
    match known {
        Some(order) if order.id == id => {
            let errors = check_limits(order.quantity, order.price, limits);
            match errors.is_empty() {
                true => Ok(id),
                false => Err(TaskFailure::invalid(&errors)),
            }
        }
        _ => read_input(input, limits).map(|task| task.id),
    }
}

/// The input's `order` object and its id.
fn order_object(input: &Value) -> Result<(OrderId, &serde_json::Map<String, Value>), TaskFailure> {
    let fields = input
        .get("order")
        .and_then(Value::as_object)
        .ok_or_else(|| TaskFailure::validation("the input has no order object"))?;
    let id = fields
        .get("orderId")
        .and_then(Value::as_str)
        .and_then(|s| OrderId::parse(s).ok())
        .ok_or_else(|| TaskFailure::validation("the order has no valid orderId"))?;
    Ok((id, fields))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CustomerId, Price, ProductId};

    fn limits() -> Limits {
        Limits::default()
    }

    fn order(quantity: u32) -> Order {
        let new = NewOrder {
            customer_id: CustomerId::parse("CUST-1001").expect("customer"),
            product_id: ProductId::parse("PROD-2001").expect("product"),
            quantity,
            price: Price::from_cents(2999),
            metadata: None,
        };
        let id = OrderId::parse("01900000-0000-7000-8000-000000000001").expect("id");
        Order::new(id, new, "arn:run".into(), Timestamp(1_700_000_000_123))
    }

    #[test]
    fn store_order_keeps_the_moment_the_order_was_accepted() {
        let accepted = order(2);
        let stored = order_to_store(
            &workflow_input(&accepted),
            &limits(),
            |_| "arn:run".into(),
            Timestamp(9),
        )
        .expect("stored");
        assert_eq!(stored, accepted);
    }

    #[test]
    fn validate_decodes_an_order_it_does_not_know_and_names_every_broken_rule() {
        let mut input = workflow_input(&order(2));
        input["order"]["quantity"] = 0.into();
        input["order"]["price"] = "free".into();
        let err = validate(&input, &limits(), None).expect_err("invalid");
        assert_eq!(err.error_type, VALIDATION_ERROR);
        assert!(err.message.contains("quantity"), "{}", err.message);
        assert!(err.message.contains("price"), "{}", err.message);
    }

    #[test]
    fn a_known_order_is_checked_against_the_limits_of_today() {
        let big = order(100);
        let strict = Limits {
            max_quantity: 10,
            ..Limits::default()
        };
        let input = workflow_input(&big);
        assert!(validate(&input, &limits(), Some(&big)).is_ok());
        let err = validate(&input, &strict, Some(&big)).expect_err("over the limit");
        assert!(err.message.starts_with("quantity"), "{}", err.message);
    }

    #[test]
    fn store_known_refuses_an_input_about_another_order() {
        let mut input = workflow_input(&order(2));
        input["order"]["orderId"] = "01900000-0000-7000-8000-000000000002".into();
        let err = store_known(&input, &limits(), &order(2)).expect_err("another order");
        assert_eq!(err.error_type, VALIDATION_ERROR);
        assert_eq!(
            store_known(&workflow_input(&order(2)), &limits(), &order(2)),
            Ok(json!({"orderId": "01900000-0000-7000-8000-000000000001", "status": "PENDING"}))
        );
    }

    #[test]
    fn port_errors_become_the_names_the_workflow_retries_or_not() {
        let conflict: TaskFailure = PortError::conflict("taken").into();
        assert_eq!(conflict.error_type, ORDER_CONFLICT);
        let busy: TaskFailure = PortError::new(ErrorKind::Transient, "busy").into();
        assert_eq!(busy.error_type, TRANSIENT_ERROR);
    }
}
