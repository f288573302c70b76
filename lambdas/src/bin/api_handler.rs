//! `api_handler`: API Gateway → the contract's HTTP API.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    let mut init = dofs_lambdas::InitTimer::start();
    let adapters = dofs_lambdas::cold_start(&mut init).await?.adapters;
    let app = dofs_lambdas::api::app(&adapters)?;
    init.ready("router");
    lambda_http::run(app).await
}
