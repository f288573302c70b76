//! The five DOFS Lambda functions. Each binary in `src/bin` is a dozen lines:
//! [`cold_start`] (tracing, settings from the environment, clients built
//! once), then `run(service_fn(...))` over a handler from this library, so
//! the handlers can be tested as plain functions fed real event JSON.
//!
//! - [`api`]: `api_handler`, the same axum router as `dofs serve`, behind API Gateway.
//! - [`tasks`]: `validator` and `order_storage`, the workflow's Task states;
//!   their errors are named so the ASL's `Retry` and `Catch` match them
//!   (`ValidationError` is final, `TransientError` is retried).
//! - [`fulfill`]: `fulfill_order`, the SQS batch consumer with partial batch failures.
//! - [`dlq`]: `dlq_processor`, records dead letters without removing them.
//! - [`metrics`]: what `api_handler` and `fulfill_order` record, published
//!   to CloudWatch per invocation, and read back as fleet-wide counters.

pub mod api;
pub mod dlq;
pub mod fulfill;
pub mod metrics;
pub mod tasks;

use dofs_aws::{AwsAdapters, AwsSettings};

/// What every function does once per cold start: JSON logs to stdout (CloudWatch),
/// settings from the environment (a missing variable fails the start, naming
/// it), and the AWS clients.
pub async fn cold_start() -> Result<AwsAdapters, lambda_runtime::Error> {
    init_tracing();
    let settings = AwsSettings::from_env()?;
    let config = dofs_aws::load_sdk_config().await;
    Ok(AwsAdapters::new(settings, &config))
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_ansi(false)
        .without_time()
        .with_current_span(false)
        .try_init();
}
