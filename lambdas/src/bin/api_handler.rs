//! `api_handler`: API Gateway → the contract's HTTP API.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    let adapters = dofs_lambdas::cold_start().await?;
    let app = dofs_lambdas::api::app(&adapters)?;
    lambda_http::run(app).await
}
