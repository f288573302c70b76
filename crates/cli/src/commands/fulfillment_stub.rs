//! `dofs fulfillment-stub`: a fulfillment service to point
//! `fulfillment.http.url` at, to try the `http` mode or to start one's own
//! from. It verifies signatures when given the secret, de-duplicates by
//! `Idempotency-Key`, and succeeds with the given rate after the given
//! latency (see [`dofs_fulfillment::serve_stub`]). Runs until Ctrl-C.

use super::client::{CliError, Exit};
use clap::Args;
use dofs_fulfillment::{serve_stub, Secret, StubConfig};
use std::time::Duration;

/// The stub's flags.
#[derive(Args)]
pub struct StubArgs {
    /// Address and port to listen on.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9090")]
    bind: String,
    /// Probability that an attempt at a new order succeeds (else 503), 0 to 1.
    #[arg(long, value_name = "P", default_value_t = 1.0, value_parser = parse_rate)]
    success_rate: f64,
    /// Milliseconds to wait before answering each request.
    #[arg(long, value_name = "L", default_value_t = 0)]
    latency_ms: u64,
    /// Verify Standard Webhooks signatures with this `whsec_...` secret
    /// (the one given to `fulfillment.http.secret`); unsigned or badly signed
    /// requests get 401.
    #[arg(
        long,
        value_name = "whsec_...",
        env = "DOFS_FULFILLMENT_HTTP_SECRET",
        hide_env_values = true
    )]
    secret: Option<String>,
}

/// A success rate: a number from 0 to 1.
fn parse_rate(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(p) if (0.0..=1.0).contains(&p) => Ok(p),
        _ => Err(format!("`{text}` is not a number from 0 to 1")),
    }
}

/// Serves the stub until Ctrl-C. The secret is parsed here rather than by
/// clap, so that a malformed one is never echoed in the error.
pub async fn run(args: StubArgs) -> Result<Exit, CliError> {
    let secret = match args.secret.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(text) => Some(Secret::parse(text).map_err(|e| {
            CliError::Usage(format!("--secret (DOFS_FULFILLMENT_HTTP_SECRET): {e}"))
        })?),
    };
    let listener = tokio::net::TcpListener::bind(&args.bind)
        .await
        .map_err(|e| CliError::Failed(format!("cannot listen on {}: {e}", args.bind)))?;
    let address = listener
        .local_addr()
        .map_err(|e| CliError::Failed(format!("cannot listen on {}: {e}", args.bind)))?;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Fails only when a subscriber is already installed, which is then used.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .try_init();
    eprintln!(
        "fulfillment stub on http://{address}/ (success rate {}, latency {} ms, signatures {}); Ctrl-C stops it",
        args.success_rate,
        args.latency_ms,
        if secret.is_some() { "checked" } else { "not checked" }
    );
    let config = StubConfig {
        success_rate: args.success_rate,
        latency: Duration::from_millis(args.latency_ms),
        secret,
    };
    let stopped = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    serve_stub(listener, config, stopped)
        .await
        .map_err(|e| CliError::Failed(format!("the stub stopped: {e}")))?;
    Ok(Exit::Ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn success_rates_from_0_to_1_are_accepted_and_others_refused() {
        assert_eq!(parse_rate("0"), Ok(0.0));
        assert_eq!(parse_rate("0.25"), Ok(0.25));
        assert_eq!(parse_rate("1"), Ok(1.0));
        for bad in ["-0.1", "1.01", "NaN", "inf", "half", ""] {
            assert!(parse_rate(bad).is_err(), "{bad:?}");
        }
    }
}
