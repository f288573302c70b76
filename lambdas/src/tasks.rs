//! `validator` and `order_storage`: the workflow's two Lambda Task states.
//!
//! What they do is `dofs_core::tasks`, which `dofs serve` runs too; here are the
//! Lambda's parts: the error as a Lambda `Diagnostic` (its `errorType` is what the
//! ASL's `Retry` and `Catch` match), the execution ARN from Terraform's names, and
//! the store's write.

use dofs_core::ports::{ErrorKind, OrderStore};
use dofs_core::tasks;
use dofs_core::validation::Limits;
use dofs_core::{Clock, OrderId};
use lambda_runtime::Diagnostic;
use serde_json::Value;

pub use dofs_core::tasks::TaskFailure;

/// A task's failure as Step Functions reads it.
pub fn diagnostic(f: TaskFailure) -> Diagnostic {
    Diagnostic {
        error_type: f.error_type.to_owned(),
        error_message: f.message,
    }
}

/// `validator`: checks the order by the contract's rules.
pub fn validate(input: &Value, limits: &Limits) -> Result<Value, Diagnostic> {
    tasks::validate(input, limits, None).map_err(diagnostic)
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
///
/// The store's `put_new` is a conditional write that, when the order exists
/// with the same content (a retried task, or an order a cancel stored first),
/// answers the stored order; so there is no read before it, which cost a
/// `GetItem` per order. An order stored with other content (which no caller
/// makes: the id is the execution's) is answered as stored, as before.
pub async fn store_order(
    input: &Value,
    limits: &Limits,
    store: &dyn OrderStore,
    clock: &dyn Clock,
    execution_arn: impl FnOnce(OrderId) -> String,
) -> Result<Value, Diagnostic> {
    let order =
        tasks::order_to_store(input, limits, execution_arn, clock.now()).map_err(diagnostic)?;
    let stored = match store.put_new(&order).await {
        Ok(stored) => stored,
        Err(e) if e.kind == ErrorKind::Conflict => match store.get(order.id).await {
            Ok(Some(existing)) => existing,
            Ok(None) => return Err(diagnostic(e.into())),
            Err(e) => return Err(diagnostic(e.into())),
        },
        Err(e) => return Err(diagnostic(e.into())),
    };
    Ok(tasks::stored_answer(&stored))
}
