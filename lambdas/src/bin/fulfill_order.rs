//! `fulfill_order`: the orders queue's consumer (SQS event source, partial batch failures).

use aws_lambda_events::event::sqs::SqsEvent;
use lambda_runtime::{service_fn, Diagnostic, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let mut init = dofs_lambdas::InitTimer::start();
    let dofs_lambdas::ColdStart { adapters, config } = dofs_lambdas::cold_start(&mut init).await?;
    let backend = dofs_lambdas::fulfill::backend(&adapters.settings, &config).await?;
    let (fulfiller, queue) = (&adapters.fulfiller(backend), &adapters.queue);
    // The batch's attempts, published before the invocation ends.
    let publisher = &dofs_lambdas::metrics::Publisher::new(adapters.metrics.clone());
    init.ready("backend");
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        let batch = dofs_lambdas::fulfill::fulfill_batch(event.payload, fulfiller, queue).await;
        publisher.flush().await;
        Ok::<_, Diagnostic>(batch)
    }))
    .await
}
