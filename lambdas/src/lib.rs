//! The five DOFS Lambda functions. Each binary in `src/bin` is a dozen lines:
//! [`cold_start`] (tracing, settings from the environment, one AWS
//! configuration and the clients built once, each step timed by an
//! [`InitTimer`]; `validator` calls no AWS service and builds none of it, see
//! [`cold_start_settings`]), then `run(service_fn(...))`
//! over a handler from this library, so the handlers can be tested as plain
//! functions fed real event JSON.
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
use std::time::{Duration, Instant};

/// What a function builds once, at its cold start.
pub struct ColdStart {
    pub adapters: AwsAdapters,
    /// The one AWS configuration every client of the function is made from
    /// (an EventBridge or SSM client built later too), so it is loaded once.
    pub config: aws_config::SdkConfig,
}

/// What every function that calls AWS does once per cold start: JSON logs to
/// stdout (CloudWatch), settings from the environment (a missing variable
/// fails the start, naming it), the AWS configuration and clients. Each step
/// is a phase of `init`.
pub async fn cold_start(init: &mut InitTimer) -> Result<ColdStart, lambda_runtime::Error> {
    let settings = cold_start_settings(init)?;
    let config = sdk_config().await;
    init.lap("sdk_config");
    let adapters = AwsAdapters::new(settings, &config);
    init.lap("clients");
    Ok(ColdStart { adapters, config })
}

/// The cold start of a function that calls no AWS service (`validator`):
/// tracing and the settings, checked as every function checks them, and no
/// AWS configuration, whose loading is most of a cold start's time inside
/// `main` (it reads the platform's root certificates).
pub fn cold_start_settings(init: &mut InitTimer) -> Result<AwsSettings, lambda_runtime::Error> {
    init_tracing();
    init.lap("tracing");
    let settings = AwsSettings::from_env()?;
    init.lap("settings");
    Ok(settings)
}

/// The AWS configuration. Lambda puts the region and the function role's
/// credentials in the environment (`AWS_REGION`, `AWS_ACCESS_KEY_ID`,
/// `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`); when they are there they are
/// used directly. The default chains look there first and would stop there
/// too, but building them builds their other providers as well (profile
/// files, web identity, ECS, IMDS). Without them, [`dofs_aws::load_sdk_config`]'s
/// default chains.
pub async fn sdk_config() -> aws_config::SdkConfig {
    let set = |name| std::env::var(name).is_ok_and(|v| !v.is_empty());
    match std::env::var("AWS_REGION") {
        Ok(region)
            if !region.is_empty() && set("AWS_ACCESS_KEY_ID") && set("AWS_SECRET_ACCESS_KEY") =>
        {
            aws_config::defaults(aws_config::BehaviorVersion::latest())
                .region(aws_config::Region::new(region))
                .credentials_provider(
                    aws_config::environment::EnvironmentVariableCredentialsProvider::new(),
                )
                .load()
                .await
        }
        _ => dofs_aws::load_sdk_config().await,
    }
}

/// Where a cold start's time goes: the phases of a function's init, from `main`
/// to its first request for an invocation, logged as one `cold start` event
/// (`init_phases`: `name=ms` pairs in order, `init_ms`: their sum) so that
/// CloudWatch and `bench/cold-start.sh` show it. The time before `main` (exec,
/// dynamic linking, the tokio runtime) is not in it.
pub struct InitTimer {
    started: Instant,
    last: Instant,
    phases: Vec<(&'static str, Duration)>,
}

impl InitTimer {
    /// Starts timing; call it first thing in `main`.
    pub fn start() -> Self {
        let now = Instant::now();
        InitTimer {
            started: now,
            last: now,
            phases: Vec::new(),
        }
    }

    /// Ends the phase `name` (it began where the previous one ended).
    pub fn lap(&mut self, name: &'static str) {
        let now = Instant::now();
        self.phases.push((name, now - self.last));
        self.last = now;
    }

    /// Ends the last phase, `name`, and logs the cold start.
    pub fn ready(mut self, name: &'static str) {
        self.lap(name);
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let phases = self
            .phases
            .iter()
            .map(|(n, d)| format!("{n}={:.3}", ms(*d)))
            .collect::<Vec<_>>()
            .join(" ");
        tracing::info!(
            init_phases = %phases,
            init_ms = format!("{:.3}", ms(self.last - self.started)),
            "cold start"
        );
    }
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
