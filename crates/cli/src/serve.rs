//! `dofs serve`: the embedded system behind the HTTP API, with its metrics,
//! alert evaluator and dashboard, and graceful shutdown on SIGTERM and Ctrl-C.

use crate::settings::{FulfillmentMode, Settings};
use anyhow::Context;
use dofs_core::service::Backoff;
use dofs_core::validation::Limits;
use dofs_core::FulfillmentPolicy;
use dofs_embedded::webhooks::WebhookConfig;
use dofs_embedded::{Embedded, EmbeddedConfig};
use dofs_server::observability::alerts::AlertConfig;
use dofs_server::observability::metrics::Registry;
use dofs_server::observability::Observability;
use dofs_server::AppState;
use std::io::Write;
use std::time::Duration;
use tokio::sync::watch;

/// Logs to stderr, as text or JSON lines; `RUST_LOG` filters (default `info`).
pub fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colours only for a terminal: a file or a pipe gets plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    if json {
        // Event fields at the top level, span fields under "span" and
        // "spans": a request's lines are in its `request` span, an order's
        // attempts in an `attempt` span, both with the accepting request's
        // `requestId`.
        builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(true)
            .init();
    } else {
        builder.init();
    }
}

/// The `http` mode's backend (`None`: the simulated one).
fn fulfillment_backend(
    settings: &Settings,
) -> anyhow::Result<Option<std::sync::Arc<dyn dofs_core::Fulfillment>>> {
    let FulfillmentMode::Http {
        url,
        secret,
        timeout,
        concurrency,
    } = &settings.fulfillment
    else {
        return Ok(None);
    };
    let secret = secret
        .as_ref()
        .map(|s| dofs_fulfillment::Secret::parse(&s.0))
        .transpose()
        .map_err(|e| anyhow::anyhow!("invalid value for `fulfillment.http.secret`: {e}"))?;
    let backend = dofs_fulfillment::HttpFulfillment::new(dofs_fulfillment::HttpConfig {
        url: url.clone(),
        secret,
        timeout: *timeout,
        concurrency: *concurrency,
    })
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(Some(std::sync::Arc::new(backend)))
}

/// The event webhooks, when `events.webhook_urls` names any.
fn webhooks(settings: &Settings) -> anyhow::Result<Option<WebhookConfig>> {
    let events = &settings.events;
    if events.webhook_urls.is_empty() {
        return Ok(None);
    }
    let secret = events
        .secret
        .as_ref()
        .map(|s| dofs_fulfillment::Secret::parse(&s.0))
        .transpose()
        .map_err(|e| anyhow::anyhow!("invalid value for `events.secret`: {e}"))?;
    let poster = dofs_fulfillment::SignedPoster::new(secret, WEBHOOK_TIMEOUT)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(Some(WebhookConfig {
        urls: events.webhook_urls.clone(),
        poster,
        max_age: events.max_age,
    }))
}

/// How long one event delivery may take before it counts as failed.
const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs until SIGTERM or Ctrl-C, then stops accepting (503), finishes the
/// requests and attempts in flight, and returns.
pub async fn run(settings: Settings) -> anyhow::Result<()> {
    // Installed before the workers start, so that no event goes uncounted.
    let registry = Registry::global();
    let limits = Limits {
        max_quantity: settings.max_quantity,
        max_price: settings.max_price,
    };
    let config = EmbeddedConfig {
        data_dir: settings.data_dir.clone(),
        environment: settings.environment.clone(),
        policy: FulfillmentPolicy {
            success_rate: settings.success_rate,
            seed: settings.seed,
        },
        delay: settings.delay,
        workers: settings.workers,
        max_receive_count: settings.max_receive_count,
        visibility_timeout: settings.visibility_timeout,
        backoff: Backoff {
            base: settings.backoff_base,
            max: settings.backoff_max,
        },
        limits,
        workflow: None,
        backend: fulfillment_backend(&settings)?,
        events_max_age: settings.events.max_age,
        webhooks: webhooks(&settings)?,
    };
    let embedded = Embedded::start(config).await?;
    let reveal =
        |keys: &[crate::settings::Secret]| keys.iter().map(|k| k.0.clone()).collect::<Vec<_>>();
    let keys = dofs_server::auth::Keys::new(
        &reveal(&settings.api_keys),
        &reveal(&settings.operator_keys),
    );
    let state = AppState::new(embedded.backend(), limits)
        .with_keys(keys)
        .with_overload(settings.overload);
    let graph =
        dofs_embedded::engine::load_definition(dofs_embedded::engine::ORDER_WORKFLOW)?.graph();
    let obs = Observability::new(
        registry,
        alert_config(&settings),
        Some(serde_json::to_value(graph)?),
        embedded.backend().clock.now(),
    );
    let (stop_evaluator, evaluator_stopped) = watch::channel(false);
    let evaluator = obs.spawn(embedded.backend(), evaluator_stopped);
    let app = dofs_server::router_with(state.clone(), obs);
    let listener = tokio::net::TcpListener::bind(settings.bind)
        .await
        .with_context(|| format!("cannot listen on {}", settings.bind))?;
    let addr = listener.local_addr()?;
    tracing::info!(
        address = %addr,
        data = %dofs_embedded::db::db_path(&settings.data_dir).display(),
        environment = %settings.environment,
        workers = settings.workers,
        fulfillment = match &settings.fulfillment {
            FulfillmentMode::Simulated => "simulated",
            FulfillmentMode::Http { .. } => "http",
        },
        webhooks = settings.events.webhook_urls.len(),
        "DOFS is serving"
    );
    // One line on stdout that scripts and tests can wait for.
    println!("dofs listening on http://{addr}");
    let _ = std::io::stdout().flush();

    let shutting_down = state.clone();
    dofs_server::serve::serve(listener, app, settings.serve, async move {
        shutdown_signal().await;
        tracing::info!("shutting down: refusing new orders, finishing work in flight");
        shutting_down.begin_shutdown();
    })
    .await;
    let _ = stop_evaluator.send(true);
    if tokio::time::timeout(WEBHOOK_GRACE, evaluator)
        .await
        .is_err()
    {
        tracing::warn!("alert notifications still undelivered at shutdown were dropped");
    }
    embedded.shutdown().await;
    tracing::info!("stopped");
    Ok(())
}

/// How long shutdown waits for the webhook to take notifications still queued.
const WEBHOOK_GRACE: Duration = Duration::from_secs(5);

/// The alert rules as configured (`alerts.*`).
fn alert_config(settings: &Settings) -> AlertConfig {
    let rules = &settings.alert_rules;
    AlertConfig {
        evaluation_interval: rules.evaluation_interval,
        window: rules.window,
        dlq_depth_threshold: settings.dlq_depth_threshold,
        failure_ratio_threshold: rules.failure_ratio_threshold,
        failure_ratio_min_attempts: rules.failure_ratio_min_attempts,
        http_5xx_threshold: rules.http_5xx_threshold,
        workflow_failures_threshold: rules.workflow_failures_threshold,
        queue_age_threshold: rules.queue_age_threshold,
        webhook_url: settings.webhook_url.clone(),
        environment: settings.environment.clone(),
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}
