//! `order_storage`: the workflow's Store Order task.

use lambda_runtime::{service_fn, LambdaEvent};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let mut init = dofs_lambdas::InitTimer::start();
    let adapters = &dofs_lambdas::cold_start(&mut init).await?.adapters;
    init.ready("handler");
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let arn = |id| {
            dofs_lambdas::tasks::execution_arn_for(
                adapters.settings.state_machine_arn.as_deref(),
                &event.context.invoked_function_arn,
                id,
            )
        };
        dofs_lambdas::tasks::store_order(
            &event.payload,
            &adapters.settings.limits,
            &adapters.store,
            adapters.clock.as_ref(),
            arn,
        )
        .await
    }))
    .await
}
