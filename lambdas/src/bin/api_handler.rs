//! `api_handler`: API Gateway → the contract's HTTP API.

use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    let mut init = dofs_lambdas::InitTimer::start();
    let adapters = dofs_lambdas::cold_start(&mut init).await?.adapters;
    let app = dofs_lambdas::api::app(&adapters)?;
    init.ready("router");
    let publisher = Arc::new(dofs_lambdas::metrics::Publisher::new(
        adapters.metrics.clone(),
    ));
    lambda_http::run(dofs_lambdas::api::publishing(app, publisher)).await
}
