//! The web dashboard: one HTML page, a script and a stylesheet compiled into
//! the binary (no build step, no CDN, nothing fetched at run time), and the
//! two JSON routes it polls besides the order API:
//!
//! - `GET /stats`: orders by status, queue depths, totals, per-second rates
//!   over the last minutes and latency percentiles. Built from the order
//!   counts table, the queue depths and process counters: constant time
//!   whatever the number of orders stored.
//! - `GET /workflow`: the ASL state graph, to draw an execution's path.
//!
//! Listings (recent orders, failed orders) come from the paginated API
//! routes, a page at a time, so the page stays quick with millions of orders.
//!
//! The page names its files and its data by URLs relative to itself
//! (`assets/app.js`, `stats`), so that it works wherever it is served: at `/`
//! by `dofs serve`, at `/{stage}/` behind API Gateway.

use super::{Observability, Point};
use crate::error::ApiError;
use crate::observability::metrics::{names, HistogramSnapshot};
use crate::state::AppState;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use dofs_core::OrderStatus;
use serde_json::{json, Value};
use std::time::Duration;

const INDEX_HTML: &str = include_str!("../../assets/index.html");
const APP_JS: &str = include_str!("../../assets/app.js");
const APP_CSS: &str = include_str!("../../assets/app.css");

/// Only the page's own files; no inline script, no third party.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'";

/// The window of the latency percentiles.
pub const LATENCY_WINDOW: Duration = Duration::from_secs(300);

/// The page shell: the page, its script and its stylesheet, open without a
/// key (the page asks for one itself).
pub fn shell_routes() -> Router<AppState> {
    Router::new()
        .route("/", get(index))
        .route("/assets/app.js", get(script))
        .route("/assets/app.css", get(stylesheet))
}

/// The JSON the page polls (they need [`Observability`] as an extension).
pub fn data_routes() -> Router<AppState> {
    Router::new()
        .route("/stats", get(stats))
        .route("/workflow", get(workflow))
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        body,
    )
        .into_response()
}

async fn index() -> Response {
    asset("text/html; charset=utf-8", INDEX_HTML)
}

async fn script() -> Response {
    asset("text/javascript; charset=utf-8", APP_JS)
}

async fn stylesheet() -> Response {
    asset("text/css; charset=utf-8", APP_CSS)
}

/// `GET /workflow`: `{"startAt", "states": [{"name", "type"}], "edges": [{"from", "to", "label"}]}`.
async fn workflow(Extension(obs): Extension<Observability>) -> Result<Json<Value>, ApiError> {
    obs.inner
        .workflow
        .clone()
        .map(Json)
        .ok_or_else(|| ApiError::NotFound("this deployment serves no workflow graph".into()))
}

fn percentiles(h: &HistogramSnapshot) -> Value {
    json!({
        "count": h.count(),
        "p50": h.quantile(0.5),
        "p95": h.quantile(0.95),
        "p99": h.quantile(0.99),
    })
}

fn per_second(later: &Point, earlier: &Point, pick: fn(&Point) -> u64) -> f64 {
    let seconds = (later.at.millis() - earlier.at.millis()) as f64 / 1000.0;
    if seconds <= 0.0 {
        return 0.0;
    }
    pick(later).saturating_sub(pick(earlier)) as f64 / seconds
}

/// `GET /stats`: what the dashboard's panels show, in one answer.
async fn stats(
    State(state): State<AppState>,
    Extension(obs): Extension<Observability>,
) -> Result<Json<Value>, ApiError> {
    let backend = state.backend();
    let counts = backend.orders.count_by_status().await?;
    let depth = backend.queue.depth().await?;
    let now = backend.clock.now();
    let current = obs.point(now);
    let history: Vec<Point> = obs
        .inner
        .history
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .iter()
        .cloned()
        .collect();

    let mut orders = serde_json::Map::new();
    let mut total = 0;
    for status in OrderStatus::ALL {
        let n = counts
            .iter()
            .find(|(s, _)| *s == status)
            .map_or(0, |(_, n)| *n);
        total += n;
        orders.insert(status.as_str().into(), json!(n));
    }
    orders.insert("total".into(), json!(total));
    let count = |s: OrderStatus| counts.iter().find(|(c, _)| *c == s).map_or(0, |(_, n)| *n);
    let (fulfilled, failed) = (count(OrderStatus::Fulfilled), count(OrderStatus::Failed));
    let success_ratio =
        (fulfilled + failed > 0).then(|| fulfilled as f64 / (fulfilled + failed) as f64);

    let series: Vec<Value> = history
        .windows(2)
        .map(|w| {
            json!({
                "t": w[1].at.millis(),
                "accepted": per_second(&w[1], &w[0], |p| p.accepted),
                "completed": per_second(&w[1], &w[0], |p| p.completed),
            })
        })
        .collect();
    let recent = history
        .iter()
        .rev()
        .find(|p| now.millis() - p.at.millis() >= 5_000)
        .or(history.first());
    let rates = match recent {
        Some(earlier) => json!({
            "accepted": per_second(&current, earlier, |p| p.accepted),
            "completed": per_second(&current, earlier, |p| p.completed),
        }),
        None => json!({"accepted": 0.0, "completed": 0.0}),
    };
    let window_start = now.millis() - LATENCY_WINDOW.as_millis() as i64;
    let (submit, terminal) = match history.iter().find(|p| p.at.millis() >= window_start) {
        Some(base) => (
            current.submit.since(&base.submit),
            current.terminal.since(&base.terminal),
        ),
        None => (current.submit.clone(), current.terminal.clone()),
    };

    let r = obs.registry();
    let rules = obs.alerts().rules();
    let firing: Vec<dofs_wire::Alert> = rules
        .iter()
        .filter(|x| x.state == super::alerts::AlertState::Firing)
        .map(super::alerts::RuleStatus::to_wire)
        .collect();
    Ok(Json(json!({
        "now": now.to_string(),
        "environment": obs.alerts().config().environment,
        "orders": orders,
        "successRatio": success_ratio,
        "queue": {
            "orders": depth.waiting + depth.in_flight,
            "waiting": depth.waiting,
            "inFlight": depth.in_flight,
            "dlq": depth.dead,
            "oldestAgeSeconds": depth.oldest_age_ms.map(|ms| ms as f64 / 1000.0),
        },
        "totals": {
            "accepted": r.counter_sum(names::ORDERS_ACCEPTED, &[]),
            "rejected": r.counter_sum(names::ORDERS_REJECTED, &[]),
            "attemptsSucceeded": r.counter_sum(names::FULFILLMENT_ATTEMPTS, &[("outcome", "success")]),
            "attemptsFailed": r.counter_sum(names::FULFILLMENT_ATTEMPTS, &[("outcome", "failure")]),
            "executionsSucceeded": r.counter_sum(names::WORKFLOW_EXECUTIONS, &[("status", "SUCCEEDED")]),
            "executionsFailed": r.counter_sum(names::WORKFLOW_EXECUTIONS, &[("status", "FAILED")]),
        },
        "rates": rates,
        "series": series,
        "latency": {
            "windowSeconds": LATENCY_WINDOW.as_secs(),
            "submit": percentiles(&submit),
            "timeToTerminal": percentiles(&terminal),
        },
        "alerts": {"rules": rules.len(), "firing": firing},
    })))
}
