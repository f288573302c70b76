//! What DOFS records: every metric's name, kind, help text and histogram
//! buckets ([`CATALOG`]).

/// The metric names DOFS records (kept in the domain crate, where every
/// shape's code records by them).
pub use dofs_core::metric_names as names;

/// What kind of series a metric is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// A known metric: its help text and, for histograms, its buckets.
pub struct MetricInfo {
    pub name: &'static str,
    pub kind: Kind,
    pub help: &'static str,
    pub buckets: &'static [f64],
}

/// Request latencies: half a millisecond to 30 seconds.
pub const HTTP_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Accept to terminal status: 10 ms (no backoff) to an hour (long backoffs, retries).
pub const TERMINAL_BUCKETS: &[f64] = &[
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
    1800.0, 3600.0,
];

/// Prometheus' default buckets, for histograms not in the catalog.
pub const DEFAULT_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Every metric DOFS exports, in the order `/metrics` lists them.
pub const CATALOG: &[MetricInfo] = &[
    MetricInfo {
        name: names::ORDERS_ACCEPTED,
        kind: Kind::Counter,
        help: "Orders accepted (202), idempotent replays excluded.",
        buckets: &[],
    },
    MetricInfo {
        name: names::ORDERS_REJECTED,
        kind: Kind::Counter,
        help: "Order submissions refused, by the error code of the answer.",
        buckets: &[],
    },
    MetricInfo {
        name: names::ORDERS,
        kind: Kind::Gauge,
        help: "Orders stored, by status.",
        buckets: &[],
    },
    MetricInfo {
        name: names::FULFILLMENT_ATTEMPTS,
        kind: Kind::Counter,
        help: "Fulfillment attempts finished, by outcome.",
        buckets: &[],
    },
    MetricInfo {
        name: names::QUEUE_MESSAGES,
        kind: Kind::Gauge,
        help: "Messages on the orders queue (waiting or in flight) and in the dead-letter queue.",
        buckets: &[],
    },
    MetricInfo {
        name: names::QUEUE_OLDEST_AGE,
        kind: Kind::Gauge,
        help: "Age of the oldest message on the queue in seconds, 0 when it is empty.",
        buckets: &[],
    },
    MetricInfo {
        name: names::WORKFLOW_EXECUTIONS,
        kind: Kind::Counter,
        help: "Workflow executions finished, by status.",
        buckets: &[],
    },
    MetricInfo {
        name: names::HTTP_REQUESTS,
        kind: Kind::Counter,
        help: "HTTP requests answered, by method, route template and status code.",
        buckets: &[],
    },
    MetricInfo {
        name: names::HTTP_DURATION,
        kind: Kind::Histogram,
        help: "HTTP request duration in seconds, by method and route template.",
        buckets: HTTP_BUCKETS,
    },
    MetricInfo {
        name: names::ALERTS_FIRING,
        kind: Kind::Gauge,
        help: "1 while the alert rule fires, else 0.",
        buckets: &[],
    },
    MetricInfo {
        name: names::TIME_TO_TERMINAL,
        kind: Kind::Histogram,
        help: "Seconds from an order's acceptance to its terminal status, by status.",
        buckets: TERMINAL_BUCKETS,
    },
    MetricInfo {
        name: names::ALERT_NOTIFICATIONS,
        kind: Kind::Counter,
        help: "Alert webhook notifications, by outcome.",
        buckets: &[],
    },
    MetricInfo {
        name: names::OVERLOAD_REJECTIONS,
        kind: Kind::Counter,
        help: "Requests refused 429 to protect the server, by reason (rate_limit, in_flight, backlog).",
        buckets: &[],
    },
    MetricInfo {
        name: names::EVENTS_DELIVERED,
        kind: Kind::Counter,
        help: "Order event webhook delivery attempts, by outcome (success, failure; dropped: given up after events.max_age_s).",
        buckets: &[],
    },
    MetricInfo {
        name: names::EVENTS_PENDING,
        kind: Kind::Gauge,
        help: "Order events recorded and not yet delivered, by webhook (its place in events.webhook_urls).",
        buckets: &[],
    },
    MetricInfo {
        name: names::STORAGE_WRITABLE,
        kind: Kind::Gauge,
        help: "1 while the store takes writes, 0 after a write could not reach the disk (full, read-only); back to 1 by itself once one does.",
        buckets: &[],
    },
];

pub(super) fn info(name: &str) -> Option<&'static MetricInfo> {
    CATALOG.iter().find(|m| m.name == name)
}
