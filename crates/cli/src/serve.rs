//! `dofs serve`: the embedded system behind the HTTP API, with graceful
//! shutdown on SIGTERM and Ctrl-C.

use crate::settings::Settings;
use anyhow::Context;
use dofs_core::service::Backoff;
use dofs_core::validation::Limits;
use dofs_core::FulfillmentPolicy;
use dofs_embedded::{Embedded, EmbeddedConfig};
use dofs_server::AppState;
use std::io::Write;

/// Logs to stderr, as text or JSON lines; `RUST_LOG` filters (default `info`).
pub fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// Runs until SIGTERM or Ctrl-C, then stops accepting (503), finishes the
/// requests and attempts in flight, and returns.
pub async fn run(settings: Settings) -> anyhow::Result<()> {
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
    };
    let embedded = Embedded::start(config).await?;
    let reveal =
        |keys: &[crate::settings::Secret]| keys.iter().map(|k| k.0.clone()).collect::<Vec<_>>();
    let keys = dofs_server::auth::Keys::new(
        &reveal(&settings.api_keys),
        &reveal(&settings.operator_keys),
    );
    let state = AppState::new(embedded.backend(), limits).with_keys(keys);
    let app = dofs_server::router(state.clone());
    let listener = tokio::net::TcpListener::bind(settings.bind)
        .await
        .with_context(|| format!("cannot listen on {}", settings.bind))?;
    let addr = listener.local_addr()?;
    tracing::info!(
        address = %addr,
        data = %dofs_embedded::db::db_path(&settings.data_dir).display(),
        environment = %settings.environment,
        workers = settings.workers,
        "DOFS is serving"
    );
    // One line on stdout that scripts and tests can wait for.
    println!("dofs listening on http://{addr}");
    let _ = std::io::stdout().flush();

    let shutting_down = state.clone();
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown_signal().await;
            tracing::info!("shutting down: refusing new orders, finishing work in flight");
            shutting_down.begin_shutdown();
        })
        .await
        .context("the HTTP server failed")?;
    embedded.shutdown().await;
    tracing::info!("stopped");
    Ok(())
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
