//! `validator`: the workflow's Validate Order task.

use lambda_runtime::{service_fn, LambdaEvent};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let mut init = dofs_lambdas::InitTimer::start();
    let limits = dofs_lambdas::cold_start_settings(&mut init)?.limits;
    init.ready("handler");
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        dofs_lambdas::tasks::validate(&event.payload, &limits)
    }))
    .await
}
