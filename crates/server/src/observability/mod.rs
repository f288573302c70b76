//! Observability: what an operator watches. Prometheus metrics (`GET
//! /metrics`), alert rules evaluated in process (`GET /alerts`, webhook), the
//! request-id and request-metrics middleware, and the web dashboard (`GET /`,
//! `GET /stats`, `GET /workflow`).
//!
//! - [`metrics`]: the registry (a `metrics` facade recorder) and the text format.
//! - [`alerts`]: the rules, their state and the webhook notifier.
//! - [`http`]: the middleware that [`crate::with_layers`] adds.
//! - [`dashboard`]: the embedded page and the JSON it polls.
//! - [`fleet`]: `/metrics` for a shape with many API instances (AWS): only
//!   values true for the whole fleet.
//!
//! [`Observability`] is the state these routes share. [`Observability::spawn`]
//! starts the evaluator: once per `alerts.evaluation_interval_ms` it samples the
//! queue and the counters, evaluates the rules, sends changes to the webhook
//! and keeps a short history for the dashboard's charts. Everything it reads
//! is either durable (order counts, queue depths) or a process counter, so it
//! never walks the orders table.

pub mod alerts;
pub mod dashboard;
pub mod fleet;
pub mod http;
pub mod metrics;

use crate::state::AppState;
use ::metrics::Key;
use alerts::{AlertConfig, Alerts, Notifier, QueueSample, RetryPolicy, Sample};
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use dofs_core::ports::{Backend, QueueDepth};
use dofs_core::{OrderStatus, Timestamp};
use metrics::{names, HistogramSnapshot, Registry};
use serde_json::Value;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How much history the dashboard's charts keep.
pub const HISTORY: Duration = Duration::from_secs(600);
/// The spacing of history points.
pub const HISTORY_STEP: Duration = Duration::from_secs(1);

/// The state of the observability routes and of the evaluator.
#[derive(Clone)]
pub struct Observability {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Arc<Registry>,
    alerts: Alerts,
    workflow: Option<Value>,
    history: Mutex<VecDeque<Point>>,
    fleet: Option<Arc<dyn fleet::FleetCounters>>,
}

/// One moment of the dashboard's history: process counters and histograms.
#[derive(Clone, Debug)]
struct Point {
    at: Timestamp,
    accepted: u64,
    completed: u64,
    submit: HistogramSnapshot,
    terminal: HistogramSnapshot,
}

impl Observability {
    /// Observability over `registry` with `config`'s rules, all `ok` since
    /// `now`. `workflow` is the graph `GET /workflow` serves (the shape's
    /// ASL definition), when the shape has one.
    pub fn new(
        registry: Arc<Registry>,
        config: AlertConfig,
        workflow: Option<Value>,
        now: Timestamp,
    ) -> Observability {
        Observability {
            inner: Arc::new(Inner {
                registry,
                alerts: Alerts::new(config, now),
                workflow,
                history: Mutex::new(VecDeque::new()),
                fleet: None,
            }),
        }
    }

    /// For a shape that runs many API instances (AWS): `/metrics` serves
    /// the durable gauges and `counters`' fleet-wide totals, never this
    /// process's own counts ([`fleet`]). Rules are never evaluated here.
    pub fn fleet(now: Timestamp, counters: Arc<dyn fleet::FleetCounters>) -> Observability {
        Observability {
            inner: Arc::new(Inner {
                registry: Registry::global(),
                alerts: Alerts::new(AlertConfig::default(), now),
                workflow: None,
                history: Mutex::new(VecDeque::new()),
                fleet: Some(counters),
            }),
        }
    }

    /// Defaults on the process registry: rules never evaluated (no evaluator
    /// runs), no workflow graph. What [`crate::router`] uses.
    pub fn detached(now: Timestamp) -> Observability {
        Observability::new(Registry::global(), AlertConfig::default(), None, now)
    }

    /// The metrics registry.
    pub fn registry(&self) -> &Arc<Registry> {
        &self.inner.registry
    }

    /// The alert rules and their state.
    pub fn alerts(&self) -> &Alerts {
        &self.inner.alerts
    }

    /// Starts the evaluator; it stops when `stop` turns true. It also starts
    /// the webhook's delivery task when a URL is configured; the returned
    /// handle ends after that task has delivered (or given up on) the backlog.
    pub fn spawn(&self, backend: Backend, mut stop: watch::Receiver<bool>) -> JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move {
            let config = this.alerts().config().clone();
            let notifier = config.webhook_url.clone().map(|url| {
                Notifier::spawn(url, RetryPolicy::default(), Arc::clone(this.registry()))
            });
            let mut ticker = tokio::time::interval(config.evaluation_interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            while !*stop.borrow() {
                tokio::select! {
                    _ = ticker.tick() => this.tick(&backend, notifier.as_ref().map(|(n, _)| n)).await,
                    _ = stop.changed() => break,
                }
            }
            if let Some((notifier, delivery)) = notifier {
                drop(notifier);
                let _ = delivery.await;
            }
        })
    }

    /// One evaluation: sample, evaluate, notify, record history.
    pub async fn tick(&self, backend: &Backend, notifier: Option<&Notifier>) {
        let now = backend.clock.now();
        let queue = match backend.queue.depth().await {
            Ok(d) => Some(QueueSample {
                dlq_depth: d.dead,
                oldest_age_ms: d.oldest_age_ms,
            }),
            Err(e) => {
                tracing::warn!(error = %e, "alerts: could not read the queue depth");
                None
            }
        };
        let registry = self.registry();
        let sample = Sample {
            at: now,
            queue,
            attempts_succeeded: registry
                .counter_sum(names::FULFILLMENT_ATTEMPTS, &[("outcome", "success")]),
            attempts_failed: registry
                .counter_sum(names::FULFILLMENT_ATTEMPTS, &[("outcome", "failure")]),
            http_5xx: registry.counter_sum_where(names::HTTP_REQUESTS, is_5xx),
            workflow_failed: registry
                .counter_sum(names::WORKFLOW_EXECUTIONS, &[("status", "FAILED")]),
            storage_writable: registry
                .gauge(names::STORAGE_WRITABLE, &[])
                .map(|v| v > 0.0),
        };
        let environment = self.alerts().config().environment.clone();
        for change in self.alerts().evaluate(sample) {
            let rule = &change.rule;
            match change.status() {
                "firing" => tracing::warn!(
                    alert = rule.name,
                    value = rule.value,
                    threshold = rule.threshold,
                    "alert firing: {}",
                    rule.message
                ),
                _ => tracing::info!(
                    alert = rule.name,
                    value = rule.value,
                    threshold = rule.threshold,
                    "alert resolved: {}",
                    rule.message
                ),
            }
            if let Some(n) = notifier {
                n.notify(change.payload(&environment, now));
            }
        }
        self.refresh_alert_gauges();
        self.record_point(now);
    }

    fn refresh_alert_gauges(&self) {
        for rule in self.alerts().rules() {
            let firing = rule.state == alerts::AlertState::Firing;
            self.registry().set_gauge(
                names::ALERTS_FIRING,
                &[("alert", rule.name)],
                if firing { 1.0 } else { 0.0 },
            );
        }
    }

    fn point(&self, at: Timestamp) -> Point {
        let r = self.registry();
        Point {
            at,
            accepted: r.counter_sum(names::ORDERS_ACCEPTED, &[]),
            completed: r.histogram_merged(names::TIME_TO_TERMINAL, &[]).count(),
            submit: submit_latency(r),
            terminal: r.histogram_merged(names::TIME_TO_TERMINAL, &[]),
        }
    }

    fn record_point(&self, now: Timestamp) {
        let point = self.point(now);
        let mut history = self
            .inner
            .history
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if history
            .back()
            .is_some_and(|last| now.millis() - last.at.millis() < HISTORY_STEP.as_millis() as i64)
        {
            return;
        }
        history.push_back(point);
        let oldest = now.millis() - HISTORY.as_millis() as i64;
        while history.front().is_some_and(|p| p.at.millis() < oldest) {
            history.pop_front();
        }
    }

    /// Sets the gauges read from durable state: orders by status, queue
    /// depths and age, and the alert rules. A source that cannot be read keeps
    /// its last values (and is logged).
    pub async fn refresh_gauges(&self, backend: &Backend) {
        let registry = self.registry();
        if let Some(depth) = set_durable_gauges(registry, backend).await {
            // A queue that gives no age is empty here (the embedded queue), and
            // the gauge outlives this scrape: 0, not the last age it had.
            registry.set_gauge(
                names::QUEUE_OLDEST_AGE,
                &[("queue", "orders")],
                depth.oldest_age_ms.unwrap_or(0).max(0) as f64 / 1000.0,
            );
        }
        self.refresh_alert_gauges();
    }
}

/// Sets the gauges every `/metrics` reads from durable state, a process's
/// and a fleet's ([`fleet::render`]) alike: orders by status and the
/// messages on each queue. Returns the depth read, whose oldest-message age
/// each caller shows its own way. A source that cannot be read sets nothing
/// (and is logged).
async fn set_durable_gauges(registry: &Registry, backend: &Backend) -> Option<QueueDepth> {
    match backend.orders.count_by_status().await {
        Ok(counts) => {
            for status in OrderStatus::ALL {
                let n = counts
                    .iter()
                    .find(|(s, _)| *s == status)
                    .map_or(0, |(_, n)| *n);
                registry.set_gauge(names::ORDERS, &[("status", status.as_str())], n as f64);
            }
        }
        Err(e) => tracing::warn!(error = %e, "metrics: could not count orders by status"),
    }
    match backend.queue.depth().await {
        Ok(d) => {
            registry.set_gauge(
                names::QUEUE_MESSAGES,
                &[("queue", "orders")],
                (d.waiting + d.in_flight) as f64,
            );
            registry.set_gauge(names::QUEUE_MESSAGES, &[("queue", "dlq")], d.dead as f64);
            Some(d)
        }
        Err(e) => {
            tracing::warn!(error = %e, "metrics: could not read the queue depth");
            None
        }
    }
}

fn is_5xx(key: &Key) -> bool {
    key.labels()
        .any(|l| l.key() == "status" && l.value().starts_with('5'))
}

fn submit_latency(registry: &Registry) -> HistogramSnapshot {
    let mut merged = registry.histogram_merged(names::HTTP_DURATION, &[("route", "/order")]);
    merged.merge(&registry.histogram_merged(
        names::HTTP_DURATION,
        &[("route", "/orders"), ("method", "POST")],
    ));
    merged
}

/// The observability routes that need a key, over the API's state and
/// `obs`: `/alerts` and the dashboard's data (the reader group).
pub fn routes(obs: Observability) -> Router<AppState> {
    Router::new()
        .route("/alerts", get(alerts_json))
        .merge(dashboard::data_routes())
        .layer(axum::Extension(obs))
}

/// `/metrics`: needs a key, never limited, so that scrapes see an
/// overloaded server as it is (the scrape group).
pub fn scrape_routes(obs: Observability) -> Router<AppState> {
    Router::new()
        .route("/metrics", get(metrics_text))
        .layer(axum::Extension(obs))
}

/// `GET /metrics`: the Prometheus text format; for a fleet, only its values.
async fn metrics_text(
    State(state): State<AppState>,
    axum::Extension(obs): axum::Extension<Observability>,
) -> Response {
    let text = match &obs.inner.fleet {
        Some(counters) => fleet::render(state.backend(), counters.as_ref()).await,
        None => {
            obs.refresh_gauges(state.backend()).await;
            obs.registry().render()
        }
    };
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

/// `GET /alerts`: every rule with its state and since when.
async fn alerts_json(
    axum::Extension(obs): axum::Extension<Observability>,
) -> Json<dofs_wire::AlertList> {
    let rules = obs.alerts().rules();
    let firing = rules
        .iter()
        .filter(|r| r.state == alerts::AlertState::Firing)
        .count();
    Json(dofs_wire::AlertList {
        alerts: rules.iter().map(alerts::RuleStatus::to_wire).collect(),
        firing: firing as u64,
        evaluated_at: obs.alerts().evaluated_at().map(|t| t.to_string()),
    })
}
