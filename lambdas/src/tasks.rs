//! `validator` and `order_storage`: the workflow's two Lambda Task states.
//!
//! Both receive the state's effective input, `{"order": {orderId, customerId,
//! productId, quantity, price, metadata?}}` (the ASL's `Parameters`). Their
//! errors carry an error type that the ASL matches by name:
//! - `ValidationError`: the order is invalid; `Catch` ends the execution as rejected;
//! - `TransientError`: DynamoDB was busy or unreachable; `Retry` tries again;
//! - `OrderConflict`: another order already has this id; not retried.

use dofs_core::ports::{ErrorKind, OrderStore, PortError};
use dofs_core::validation::{decode_order, DecodeError, Limits};
use dofs_core::{Clock, NewOrder, Order, OrderId, Timestamp};
use lambda_runtime::Diagnostic;
use serde_json::{json, Value};

/// A task's failure, named for Step Functions' `Retry` and `Catch`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{error_type}: {message}")]
pub struct TaskFailure {
    pub error_type: &'static str,
    pub message: String,
}

impl TaskFailure {
    fn validation(message: impl Into<String>) -> Self {
        TaskFailure {
            error_type: "ValidationError",
            message: message.into(),
        }
    }
}

impl From<PortError> for TaskFailure {
    fn from(e: PortError) -> Self {
        let error_type = match e.kind {
            ErrorKind::Conflict => "OrderConflict",
            ErrorKind::Transient => "TransientError",
            // A broken dependency may heal; let the retrier decide how often.
            ErrorKind::Internal | ErrorKind::NotFound => "TransientError",
        };
        TaskFailure {
            error_type,
            message: e.to_string(),
        }
    }
}

impl From<TaskFailure> for Diagnostic {
    fn from(f: TaskFailure) -> Self {
        Diagnostic {
            error_type: f.error_type.to_owned(),
            error_message: f.message,
        }
    }
}

/// The order id, the decoded order and (when the API gave it) the moment the
/// order was accepted, from a task's input.
pub fn order_from_input(
    input: &Value,
    limits: &Limits,
) -> Result<(OrderId, NewOrder, Option<Timestamp>), TaskFailure> {
    let mut order = input
        .get("order")
        .and_then(Value::as_object)
        .cloned()
        .ok_or_else(|| TaskFailure::validation("the input has no order object"))?;
    let id = order
        .remove("orderId")
        .and_then(|v| v.as_str().and_then(|s| OrderId::parse(s).ok()))
        .ok_or_else(|| TaskFailure::validation("the order has no valid orderId"))?;
    let accepted_at = order
        .remove(dofs_aws::workflow::ACCEPTED_AT_FIELD)
        .and_then(|v| v.as_i64())
        .map(Timestamp);
    let body = Value::Object(order).to_string();
    match decode_order(body.as_bytes(), limits) {
        Ok(o) => Ok((id, o, accepted_at)),
        Err(DecodeError::Malformed(m)) => Err(TaskFailure::validation(m)),
        Err(DecodeError::Invalid(errors)) => Err(TaskFailure::validation(
            errors
                .iter()
                .map(|e| format!("{} {}", e.field, e.message))
                .collect::<Vec<_>>()
                .join("; "),
        )),
    }
}

/// `validator`: checks the order by the contract's rules.
pub fn validate(input: &Value, limits: &Limits) -> Result<Value, TaskFailure> {
    order_from_input(input, limits)?;
    Ok(json!({ "valid": true }))
}

/// The execution ARN that runs `order`, for the order record.
///
/// `DOFS_STATE_MACHINE_ARN` when set; otherwise derived from the function's
/// own ARN and Terraform's naming (`<prefix>-order-storage` runs under the
/// state machine `<prefix>-order-processing`), because the state machine's
/// ARN cannot be given to the functions it invokes without a cycle.
pub fn execution_arn_for(
    state_machine_arn: Option<&str>,
    invoked_function_arn: &str,
    order: OrderId,
) -> String {
    if let Some(arn) = state_machine_arn {
        return dofs_aws::workflow::execution_arn_of(arn, &order.to_string());
    }
    // arn:aws:lambda:REGION:ACCOUNT:function:NAME[:QUALIFIER]
    let parts: Vec<&str> = invoked_function_arn.split(':').collect();
    let (partition, region, account, function) = match parts.as_slice() {
        ["arn", partition, "lambda", region, account, "function", name, ..] => {
            (*partition, *region, *account, *name)
        }
        _ => ("aws", "local", "000000000000", "dofs-order-storage"),
    };
    let prefix = function.strip_suffix("-order-storage").unwrap_or(function);
    format!("arn:{partition}:states:{region}:{account}:execution:{prefix}-order-processing:{order}")
}

/// `order_storage`: stores the order as `PENDING`. Idempotent: a retried task
/// finds the order it stored and answers the same.
pub async fn store_order(
    input: &Value,
    limits: &Limits,
    store: &dyn OrderStore,
    clock: &dyn Clock,
    execution_arn: impl FnOnce(OrderId) -> String,
) -> Result<Value, TaskFailure> {
    let (id, new_order, accepted_at) = order_from_input(input, limits)?;
    let stored = match store.get(id).await? {
        Some(existing) => existing,
        None => {
            let created_at = accepted_at.unwrap_or_else(|| clock.now());
            let order = Order::new(id, new_order, execution_arn(id), created_at);
            store.put_new(&order).await?
        }
    };
    Ok(json!({ "orderId": stored.id.to_string(), "status": stored.status.as_str() }))
}
