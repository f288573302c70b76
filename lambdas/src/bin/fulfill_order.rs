//! `fulfill_order`: the orders queue's consumer (SQS event source, partial batch failures).

use aws_lambda_events::event::sqs::SqsEvent;
use lambda_runtime::{service_fn, Diagnostic, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let adapters = dofs_lambdas::cold_start().await?;
    let fulfiller = &adapters.fulfiller();
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        Ok::<_, Diagnostic>(dofs_lambdas::fulfill::fulfill_batch(event.payload, fulfiller).await)
    }))
    .await
}
