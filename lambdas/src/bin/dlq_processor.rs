//! `dlq_processor`: records dead letters in failed_orders, leaving them in the DLQ.

use lambda_runtime::{service_fn, Diagnostic, LambdaEvent};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let adapters = dofs_lambdas::cold_start().await?;
    let adapters = &adapters;
    lambda_runtime::run(service_fn(move |_event: LambdaEvent<Value>| async move {
        dofs_lambdas::dlq::process_dead_letters(
            &adapters.queue,
            &adapters.store,
            adapters.clock.as_ref(),
        )
        .await
        .map_err(|e| Diagnostic {
            error_type: "TransientError".into(),
            error_message: e.to_string(),
        })
    }))
    .await
}
