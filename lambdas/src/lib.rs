//! The five DOFS Lambda functions. Each binary in `src/bin` is a dozen lines:
//! [`cold_start`] (tracing, settings from the environment, clients built
//! once, each step timed by an [`InitTimer`]), then `run(service_fn(...))`
//! over a handler from this library, so the handlers can be tested as plain
//! functions fed real event JSON.
//!
//! - [`api`]: `api_handler`, the same axum router as `dofs serve`, behind API Gateway.
//! - [`tasks`]: `validator` and `order_storage`, the workflow's Task states;
//!   their errors are named so the ASL's `Retry` and `Catch` match them
//!   (`ValidationError` is final, `TransientError` is retried).
//! - [`fulfill`]: `fulfill_order`, the SQS batch consumer with partial batch failures.
//! - [`dlq`]: `dlq_processor`, records dead letters without removing them.

pub mod api;
pub mod dlq;
pub mod fulfill;
pub mod tasks;

use dofs_aws::{AwsAdapters, AwsSettings};
use std::time::{Duration, Instant};

/// What every function does once per cold start: JSON logs to stdout (CloudWatch),
/// settings from the environment (a missing variable fails the start, naming
/// it), and the AWS clients. Each step is a phase of `init`.
pub async fn cold_start(init: &mut InitTimer) -> Result<AwsAdapters, lambda_runtime::Error> {
    init_tracing();
    init.lap("tracing");
    let settings = AwsSettings::from_env()?;
    init.lap("settings");
    let config = dofs_aws::load_sdk_config().await;
    init.lap("sdk_config");
    let adapters = AwsAdapters::new(settings, &config);
    init.lap("clients");
    Ok(adapters)
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
