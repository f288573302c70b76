//! `dlq_processor`: records dead letters in failed_orders, leaving them in the
//! DLQ, then publishes the events not yet on the EventBridge bus.

use lambda_runtime::{service_fn, Diagnostic, LambdaEvent};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let mut init = dofs_lambdas::InitTimer::start();
    let cold = dofs_lambdas::cold_start(&mut init).await?;
    let publisher = &cold.adapters.publisher(&cold.config);
    let adapters = &cold.adapters;
    init.ready("publisher");
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0);
        let stop = dofs_lambdas::dlq::stop_at(event.context.deadline, now_ms);
        let transient = |e: dofs_core::ports::PortError| Diagnostic {
            error_type: "TransientError".into(),
            error_message: e.to_string(),
        };
        let mut report = dofs_lambdas::dlq::process_dead_letters_until(
            &adapters.queue,
            &adapters.store,
            adapters.clock.as_ref(),
            Some(stop),
        )
        .await
        .map_err(transient)?;
        if let Some(p) = publisher {
            report["events"] = dofs_lambdas::dlq::publish_events(p, stop)
                .await
                .map_err(transient)?;
        }
        Ok::<_, Diagnostic>(report)
    }))
    .await
}
