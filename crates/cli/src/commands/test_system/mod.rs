//! `dofs test-system`: the contract's behaviour, check by check, against any
//! deployment. Valid orders, every invalid-order rule, edge cases (limits,
//! wrong types, malformed JSON, oversized bodies, wrong content types),
//! idempotency, reads and listings, cancellation and the event feed, the
//! lifecycle to a terminal status with the expected fulfilled share,
//! operator retries, an optional load phase, and every answer checked
//! against the deployment's `/openapi.json`.
//!
//! It creates orders (tagged `metadata.source = "dofs-test-system"`); on a
//! shared deployment they show up like any other orders. It never purges or
//! redrives the DLQ.
//!
//! Layout: this file runs the checks in order; [`context`] holds what they
//! share, and [`submissions`], [`reads`], [`events`] and [`lifecycle`] the checks.

mod context;
mod events;
mod lifecycle;
mod reads;
mod submissions;

use context::{excerpt, expect_error, expect_status, order_with, seed_order, Ctx, Req};
use lifecycle::{lifecycle, load_phase};
use reads::{operations, reads};
use submissions::{edge_cases, idempotency, invalid_orders, malformed_and_http, valid_orders};

use crate::commands::checks::{Checklist, Status};
use crate::commands::client::{encode_segment, Api, CliError, Exit, Reply, Target};
use crate::commands::format::{human_duration, parse_duration, parse_timestamp, text};
use crate::commands::load;
use crate::commands::openapi::{Conformance, Spec};
use crate::commands::orders::is_terminal;
use clap::Args;
use reqwest::header::CONTENT_TYPE;
use reqwest::Method;
use serde_json::{json, Value};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use dofs_server::api_doc::CONTRACT_ROUTES;

/// `dofs test-system`.
#[derive(Args, Debug)]
pub struct TestSystemArgs {
    #[command(flatten)]
    pub target: Target,
    /// Orders submitted for the lifecycle checks.
    #[arg(long, default_value_t = 100, value_name = "N")]
    pub lifecycle_orders: u32,
    /// The share of orders expected to end FULFILLED: 1 - (1 - success_rate)^max_receive_count
    /// (0.973 for the defaults 0.7 and 3).
    #[arg(long, default_value_t = 0.973, value_name = "SHARE")]
    pub expected_fulfilled: f64,
    /// How far the measured share may be from the expected one
    /// [default: 4.5 standard deviations of a binomial share, at least 0.02].
    #[arg(long, value_name = "SHARE")]
    pub tolerance: Option<f64>,
    /// How long the lifecycle checks wait for every order to be terminal.
    #[arg(long, default_value = "3m", value_parser = parse_duration, value_name = "DURATION")]
    pub terminal_timeout: Duration,
    /// The deployment's validation.max_quantity.
    #[arg(long, default_value_t = 100, value_name = "N")]
    pub max_quantity: u32,
    /// The deployment's validation.max_price, in whole currency units.
    #[arg(long, default_value_t = 10_000, value_name = "N")]
    pub max_price: u64,
    /// Also run a load phase (closed loop) and require zero errors.
    #[arg(long)]
    pub load: bool,
    /// Requests in the load phase.
    #[arg(long, default_value_t = 2_000, value_name = "N")]
    pub load_orders: u64,
    /// Concurrency of the load phase.
    #[arg(long, default_value_t = 16, value_name = "N")]
    pub load_concurrency: usize,
    /// Do not check the answers against the deployment's /openapi.json.
    #[arg(long)]
    pub no_openapi: bool,
}

/// Runs the suite and prints a line per check.
pub async fn run(args: TestSystemArgs) -> Result<Exit, CliError> {
    if !(0.0..=1.0).contains(&args.expected_fulfilled)
        || args.tolerance.is_some_and(|t| !(0.0..=1.0).contains(&t))
    {
        return Err(CliError::Usage(
            "--expected-fulfilled and --tolerance are shares from 0 to 1".into(),
        ));
    }
    if args.lifecycle_orders == 0 || args.max_quantity == 0 || args.max_price == 0 {
        return Err(CliError::Usage(
            "--lifecycle-orders, --max-quantity and --max-price must be at least 1".into(),
        ));
    }
    let api = Api::new(&args.target)?;
    let mut list = Checklist::new(args.target.json);
    let mut ctx = Ctx {
        api,
        spec: None,
        conformance: Mutex::new(Conformance::default()),
        max_quantity: args.max_quantity,
        max_price_cents: args.max_price.saturating_mul(100),
    };

    // Nothing else can pass if nothing answers.
    match ctx.api.get("/health").await {
        Ok(r) if r.status == 200 => list.record("health", Status::Pass, "GET /health: 200"),
        Ok(r) => list.record(
            "health",
            Status::Fail,
            format!("GET /health: {}", excerpt(&r)),
        ),
        Err(e) => {
            list.unreachable = matches!(e, CliError::Unreachable { .. });
            list.record("health", Status::Fail, e.to_string());
            return Ok(list.finish());
        }
    }
    let r = ctx.call(Req::get("/ready", "/ready")).await;
    list.result(
        "ready",
        r.and_then(|r| {
            expect_status(&r, 200)
                .map(|()| "GET /ready: 200, the store and the queue answer".into())
        }),
    );

    let doc = openapi_document(&ctx).await;
    match doc {
        Ok((spec, detail)) => {
            list.record("openapi.document", Status::Pass, detail);
            if !args.no_openapi {
                ctx.spec = Some(spec);
            }
        }
        Err(e) => list.record("openapi.document", Status::Fail, e),
    }

    let seed = valid_orders(&ctx, &mut list).await;
    edge_cases(&ctx, &mut list).await;
    invalid_orders(&ctx, &mut list).await;
    malformed_and_http(&ctx, &mut list).await;
    idempotency(&ctx, &mut list).await;
    reads(&ctx, &mut list, seed.as_deref()).await;
    operations(&ctx, &mut list).await;
    events::cancel_and_events(&ctx, &mut list, seed.as_deref()).await;
    lifecycle(&ctx, &mut list, &args, seed.as_deref()).await;
    if args.load {
        load_phase(&args, &mut list).await;
    }

    if ctx.spec.is_some() {
        let c = ctx
            .conformance
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner);
        if c.mismatches.is_empty() {
            list.record(
                "openapi.responses-conform",
                Status::Pass,
                format!(
                    "{} answers on {} (operation, status) pairs match /openapi.json",
                    c.checked,
                    c.seen.len()
                ),
            );
        } else {
            let shown: Vec<&String> = c.mismatches.iter().take(5).collect();
            list.record(
                "openapi.responses-conform",
                Status::Fail,
                format!(
                    "{} mismatch(es) in {} answers: {}",
                    c.mismatches.len(),
                    c.checked,
                    shown
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(" | ")
                ),
            );
        }
    }
    Ok(list.finish())
}

async fn openapi_document(ctx: &Ctx) -> Result<(Spec, String), String> {
    let r = ctx
        .api
        .get("/openapi.json")
        .await
        .map_err(|e| e.to_string())?;
    expect_status(&r, 200)?;
    let spec = Spec::new(r.json(), true)?;
    let missing: Vec<String> = CONTRACT_ROUTES
        .iter()
        .filter(|(m, p)| !spec.has(m, p))
        .map(|(m, p)| format!("{} {p}", m.to_ascii_uppercase()))
        .collect();
    if !missing.is_empty() {
        return Err(format!("not described: {}", missing.join(", ")));
    }
    let detail = format!(
        "OpenAPI {} describing all {} contract routes",
        text(&spec.doc()["openapi"]),
        CONTRACT_ROUTES.len()
    );
    Ok((spec, detail))
}

/// Runs futures concurrently on this task and returns their outputs in order.
async fn join_all<F: std::future::Future>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output> {
    let mut pinned: Vec<std::pin::Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    let mut out: Vec<Option<F::Output>> = pinned.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut all = true;
        for (f, slot) in pinned.iter_mut().zip(out.iter_mut()) {
            if slot.is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => *slot = Some(v),
                    std::task::Poll::Pending => all = false,
                }
            }
        }
        if all {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
    out.into_iter().flatten().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_edits_replace_remove_and_add_fields_as_raw_json() {
        let body = order_with(&[
            ("quantity", Some("1.5")),
            ("metadata", None),
            ("x", Some("[1]")),
        ]);
        assert_eq!(
            body,
            r#"{"customerId":"CUST-1001","productId":"PROD-2001","quantity":1.5,"price":29.99,"x":[1]}"#
        );
        assert!(
            dofs_core::validation::decode_order(seed_order().as_bytes(), &Default::default())
                .is_ok()
        );
    }

    #[tokio::test]
    async fn join_all_keeps_the_order_of_its_futures() {
        let out = join_all((0..5u64).map(|i| async move {
            tokio::time::sleep(Duration::from_millis(10 * (5 - i))).await;
            i
        }))
        .await;
        assert_eq!(out, [0, 1, 2, 3, 4]);
    }
}
