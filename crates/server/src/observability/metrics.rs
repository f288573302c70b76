//! The metrics registry and its Prometheus text exposition (format 0.0.4).
//!
//! [`Registry`] is a [`metrics::Recorder`]: code anywhere in the process (the
//! embedded workers and engine included) records through the `metrics` facade
//! macros, and `GET /metrics` renders what was recorded plus the gauges read
//! from durable state at scrape time. Histograms have explicit buckets, chosen
//! per metric name in [`CATALOG`]; there are no summaries. Label values are
//! always from small fixed sets (statuses, outcomes, route templates), never
//! ids.
//!
//! One registry serves the process ([`Registry::global`]); tests that need
//! isolation build their own with [`Registry::new`].

use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, PoisonError, RwLock};

/// The metric names DOFS records. The embedded crate records the event
/// counters by the same literal names through the `metrics` facade.
pub mod names {
    /// Counter: orders answered 202 (replays excluded).
    pub const ORDERS_ACCEPTED: &str = "dofs_orders_accepted_total";
    /// Counter by `reason` (the error code of the answer).
    pub const ORDERS_REJECTED: &str = "dofs_orders_rejected_total";
    /// Gauge by `status`, read from the store at scrape time.
    pub const ORDERS: &str = "dofs_orders";
    /// Counter by `outcome` (`success`, `failure`).
    pub const FULFILLMENT_ATTEMPTS: &str = "dofs_fulfillment_attempts_total";
    /// Gauge by `queue` (`orders`, `dlq`), read from the queue at scrape time.
    pub const QUEUE_MESSAGES: &str = "dofs_queue_messages";
    /// Gauge by `queue`: the age of the oldest message, 0 when the queue is empty.
    pub const QUEUE_OLDEST_AGE: &str = "dofs_queue_oldest_message_age_seconds";
    /// Counter by `status` (`SUCCEEDED`, `FAILED`).
    pub const WORKFLOW_EXECUTIONS: &str = "dofs_workflow_executions_total";
    /// Counter by `method`, `route`, `status`.
    pub const HTTP_REQUESTS: &str = "dofs_http_requests_total";
    /// Histogram by `method`, `route`.
    pub const HTTP_DURATION: &str = "dofs_http_request_duration_seconds";
    /// Gauge by `alert`: 1 while the rule fires.
    pub const ALERTS_FIRING: &str = "dofs_alerts_firing";
    /// Histogram by `status` (`FULFILLED`, `FAILED`): accept to terminal status.
    pub const TIME_TO_TERMINAL: &str = "dofs_order_time_to_terminal_seconds";
    /// Counter by `outcome` (`delivered`, `failed`, `dropped`): alert webhook deliveries.
    pub const ALERT_NOTIFICATIONS: &str = "dofs_alert_notifications_total";
    /// Counter by `reason` (`rate_limit`, `in_flight`, `backlog`): requests refused 429.
    pub const OVERLOAD_REJECTIONS: &str = "dofs_overload_rejections_total";
}

/// What kind of series a metric is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    fn as_str(self) -> &'static str {
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
];

fn info(name: &str) -> Option<&'static MetricInfo> {
    CATALOG.iter().find(|m| m.name == name)
}

/// Buckets of one histogram series: counts per bucket (not cumulative; the
/// last one is `+Inf`) and the sum of observations.
pub struct Buckets {
    bounds: &'static [f64],
    counts: Vec<AtomicU64>,
    sum_bits: AtomicU64,
}

impl Buckets {
    fn new(bounds: &'static [f64]) -> Self {
        Buckets {
            bounds,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_bits: AtomicU64::new(0f64.to_bits()),
        }
    }

    /// Records one observation; NaN is ignored.
    pub fn observe(&self, value: f64) {
        if value.is_nan() {
            return;
        }
        let index = self.bounds.partition_point(|bound| *bound < value);
        self.counts[index].fetch_add(1, Ordering::Relaxed);
        let mut current = self.sum_bits.load(Ordering::Relaxed);
        loop {
            let next = (f64::from_bits(current) + value).to_bits();
            match self.sum_bits.compare_exchange_weak(
                current,
                next,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(seen) => current = seen,
            }
        }
    }

    /// A consistent-enough copy (each count is read once).
    pub fn snapshot(&self) -> HistogramSnapshot {
        HistogramSnapshot {
            bounds: self.bounds.to_vec(),
            counts: self
                .counts
                .iter()
                .map(|c| c.load(Ordering::Relaxed))
                .collect(),
            sum: f64::from_bits(self.sum_bits.load(Ordering::Relaxed)),
        }
    }
}

impl metrics::HistogramFn for Buckets {
    fn record(&self, value: f64) {
        self.observe(value);
    }
}

/// A histogram's buckets at one moment.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HistogramSnapshot {
    /// Upper bounds, ascending, without `+Inf`.
    pub bounds: Vec<f64>,
    /// Observations per bucket (not cumulative); one more than `bounds`, the last for `+Inf`.
    pub counts: Vec<u64>,
    pub sum: f64,
}

impl HistogramSnapshot {
    /// How many observations.
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Adds `other` (same bounds) into `self`; an empty `self` takes `other`'s bounds.
    pub fn merge(&mut self, other: &HistogramSnapshot) {
        if self.counts.is_empty() {
            *self = other.clone();
            return;
        }
        if self.bounds != other.bounds {
            return;
        }
        for (mine, theirs) in self.counts.iter_mut().zip(&other.counts) {
            *mine += theirs;
        }
        self.sum += other.sum;
    }

    /// What was observed since `earlier` (a snapshot of the same series).
    pub fn since(&self, earlier: &HistogramSnapshot) -> HistogramSnapshot {
        if earlier.bounds != self.bounds || earlier.counts.len() != self.counts.len() {
            return self.clone();
        }
        HistogramSnapshot {
            bounds: self.bounds.clone(),
            counts: self
                .counts
                .iter()
                .zip(&earlier.counts)
                .map(|(now, then)| now.saturating_sub(*then))
                .collect(),
            sum: (self.sum - earlier.sum).max(0.0),
        }
    }

    /// The `q`-quantile (0 to 1) estimated as Prometheus' `histogram_quantile`
    /// does: linear within the bucket that holds it. `None` without
    /// observations; the highest finite bound when it falls in `+Inf`.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let total = self.count();
        if total == 0 || !(0.0..=1.0).contains(&q) {
            return None;
        }
        let rank = q * total as f64;
        let mut cumulative = 0u64;
        for (i, count) in self.counts.iter().enumerate() {
            let before = cumulative;
            cumulative += count;
            if (cumulative as f64) >= rank && *count > 0 {
                let Some(upper) = self.bounds.get(i) else {
                    return self.bounds.last().copied();
                };
                let lower = if i == 0 { 0.0 } else { self.bounds[i - 1] };
                let within = (rank - before as f64) / *count as f64;
                return Some(lower + (upper - lower) * within.clamp(0.0, 1.0));
            }
        }
        self.bounds.last().copied()
    }
}

type Series<T> = RwLock<HashMap<Key, Arc<T>>>;

/// Counters, gauges and histograms by name and labels.
#[derive(Default)]
pub struct Registry {
    counters: Series<AtomicU64>,
    gauges: Series<AtomicU64>,
    histograms: Series<Buckets>,
}

fn get_or_insert<T>(series: &Series<T>, key: &Key, make: impl FnOnce() -> T) -> Arc<T> {
    if let Some(found) = series
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .get(key)
    {
        return Arc::clone(found);
    }
    let mut map = series.write().unwrap_or_else(PoisonError::into_inner);
    Arc::clone(map.entry(key.clone()).or_insert_with(|| Arc::new(make())))
}

fn key(name: &str, labels: &[(&str, &str)]) -> Key {
    let labels: Vec<metrics::Label> = labels
        .iter()
        .map(|(k, v)| metrics::Label::new(k.to_string(), v.to_string()))
        .collect();
    Key::from_parts(name.to_owned(), labels)
}

fn matches(key: &Key, name: &str, filter: &[(&str, &str)]) -> bool {
    key.name() == name
        && filter
            .iter()
            .all(|(k, v)| key.labels().any(|l| l.key() == *k && l.value() == *v))
}

impl Registry {
    /// An empty registry, not installed anywhere.
    pub fn new() -> Self {
        Registry::default()
    }

    /// The process's registry, installed as the `metrics` facade's global
    /// recorder on first use. If another recorder was installed first, the
    /// facade's events go there and only direct calls reach this registry.
    pub fn global() -> Arc<Registry> {
        static GLOBAL: OnceLock<Arc<Registry>> = OnceLock::new();
        Arc::clone(GLOBAL.get_or_init(|| {
            let registry = Arc::new(Registry::new());
            if metrics::set_global_recorder(Arc::clone(&registry)).is_err() {
                tracing::warn!("another metrics recorder is installed; DOFS metrics from the facade will not reach /metrics");
            }
            registry
        }))
    }

    /// Adds `by` to the counter `name{labels}`.
    pub fn increment(&self, name: &str, labels: &[(&str, &str)], by: u64) {
        get_or_insert(&self.counters, &key(name, labels), || AtomicU64::new(0))
            .fetch_add(by, Ordering::Relaxed);
    }

    /// Sets the gauge `name{labels}`.
    pub fn set_gauge(&self, name: &str, labels: &[(&str, &str)], value: f64) {
        get_or_insert(&self.gauges, &key(name, labels), || AtomicU64::new(0))
            .store(value.to_bits(), Ordering::Relaxed);
    }

    /// Records one observation in the histogram `name{labels}`.
    pub fn observe(&self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.histogram(&key(name, labels)).observe(value);
    }

    fn histogram(&self, key: &Key) -> Arc<Buckets> {
        get_or_insert(&self.histograms, key, || {
            Buckets::new(info(key.name()).map_or(DEFAULT_BUCKETS, |i| i.buckets))
        })
    }

    /// The sum of every counter `name` whose labels include `filter`.
    pub fn counter_sum(&self, name: &str, filter: &[(&str, &str)]) -> u64 {
        self.counters
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|(k, _)| matches(k, name, filter))
            .map(|(_, v)| v.load(Ordering::Relaxed))
            .sum()
    }

    /// The sum of every counter `name` whose labels satisfy `pick`.
    pub fn counter_sum_where(&self, name: &str, pick: impl Fn(&Key) -> bool) -> u64 {
        self.counters
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|(k, _)| k.name() == name && pick(k))
            .map(|(_, v)| v.load(Ordering::Relaxed))
            .sum()
    }

    /// Every histogram `name` whose labels include `filter`, merged.
    pub fn histogram_merged(&self, name: &str, filter: &[(&str, &str)]) -> HistogramSnapshot {
        let mut merged = HistogramSnapshot {
            bounds: info(name).map_or(DEFAULT_BUCKETS, |i| i.buckets).to_vec(),
            counts: Vec::new(),
            sum: 0.0,
        };
        merged.counts = vec![0; merged.bounds.len() + 1];
        for (k, v) in self
            .histograms
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
        {
            if matches(k, name, filter) {
                merged.merge(&v.snapshot());
            }
        }
        merged
    }

    /// Everything in the Prometheus text exposition format 0.0.4: catalog
    /// metrics first in catalog order, then any others by name; series sorted
    /// by labels; `# HELP` and `# TYPE` once per metric.
    pub fn render(&self) -> String {
        let mut families: BTreeMap<String, Family> = BTreeMap::new();
        let mut add = |key: &Key, kind: Kind, sample: Sample| {
            let family = families
                .entry(key.name().to_owned())
                .or_insert_with(|| Family {
                    kind,
                    series: BTreeMap::new(),
                });
            if family.kind == kind {
                family.series.insert(sorted_labels(key), sample);
            }
        };
        for (k, v) in self
            .counters
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
        {
            add(k, Kind::Counter, Sample::Counter(v.load(Ordering::Relaxed)));
        }
        for (k, v) in self
            .gauges
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
        {
            add(
                k,
                Kind::Gauge,
                Sample::Gauge(f64::from_bits(v.load(Ordering::Relaxed))),
            );
        }
        for (k, v) in self
            .histograms
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
        {
            add(k, Kind::Histogram, Sample::Histogram(v.snapshot()));
        }

        let mut order: Vec<&String> = families.keys().collect();
        order.sort_by_key(|name| {
            (
                CATALOG
                    .iter()
                    .position(|m| m.name == name.as_str())
                    .unwrap_or(usize::MAX),
                name.to_string(),
            )
        });
        let mut out = String::new();
        for name in order {
            let family = &families[name];
            let help = info(name)
                .filter(|i| i.kind == family.kind)
                .map_or("DOFS metric.", |i| i.help);
            let _ = writeln!(out, "# HELP {name} {}", escape_help(help));
            let _ = writeln!(out, "# TYPE {name} {}", family.kind.as_str());
            for (labels, sample) in &family.series {
                match sample {
                    Sample::Counter(v) => {
                        let _ = writeln!(out, "{name}{} {v}", label_text(labels, None));
                    }
                    Sample::Gauge(v) => {
                        let _ = writeln!(out, "{name}{} {}", label_text(labels, None), number(*v));
                    }
                    Sample::Histogram(h) => {
                        let mut cumulative = 0;
                        for (i, count) in h.counts.iter().enumerate() {
                            cumulative += count;
                            let le = h.bounds.get(i).map_or("+Inf".to_owned(), |b| number(*b));
                            let _ = writeln!(
                                out,
                                "{name}_bucket{} {cumulative}",
                                label_text(labels, Some(&le))
                            );
                        }
                        let _ = writeln!(
                            out,
                            "{name}_sum{} {}",
                            label_text(labels, None),
                            number(h.sum)
                        );
                        let _ =
                            writeln!(out, "{name}_count{} {cumulative}", label_text(labels, None));
                    }
                }
            }
        }
        out
    }
}

struct Family {
    kind: Kind,
    series: BTreeMap<Vec<(String, String)>, Sample>,
}

enum Sample {
    Counter(u64),
    Gauge(f64),
    Histogram(HistogramSnapshot),
}

fn sorted_labels(key: &Key) -> Vec<(String, String)> {
    let mut labels: Vec<(String, String)> = key
        .labels()
        .map(|l| (l.key().to_owned(), l.value().to_owned()))
        .collect();
    labels.sort();
    labels
}

fn label_text(labels: &[(String, String)], le: Option<&str>) -> String {
    if labels.is_empty() && le.is_none() {
        return String::new();
    }
    let mut parts: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape_label(v)))
        .collect();
    if let Some(le) = le {
        parts.push(format!("le=\"{le}\""));
    }
    format!("{{{}}}", parts.join(","))
}

/// Label values escape backslash, double quote and newline.
fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Help text escapes backslash and newline.
fn escape_help(text: &str) -> String {
    text.replace('\\', "\\\\").replace('\n', "\\n")
}

/// A sample value: whole numbers without a fraction, `+Inf`, `-Inf`, `NaN`.
pub fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

impl Recorder for Registry {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        Counter::from_arc(get_or_insert(&self.counters, key, || AtomicU64::new(0)))
    }

    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::from_arc(get_or_insert(&self.gauges, key, || AtomicU64::new(0)))
    }

    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::from_arc(self.histogram(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_recorded_through_the_facade_render_with_sorted_labels() {
        let registry = Registry::new();
        metrics::with_local_recorder(&registry, || {
            metrics::counter!(names::FULFILLMENT_ATTEMPTS, "outcome" => "success").increment(2);
            metrics::counter!(names::FULFILLMENT_ATTEMPTS, "outcome" => "failure").increment(1);
            metrics::counter!(names::HTTP_REQUESTS, "route" => "/order", "method" => "POST", "status" => "202").increment(1);
        });
        let text = registry.render();
        assert!(text.contains(
            "# HELP dofs_fulfillment_attempts_total Fulfillment attempts finished, by outcome.\n\
             # TYPE dofs_fulfillment_attempts_total counter\n\
             dofs_fulfillment_attempts_total{outcome=\"failure\"} 1\n\
             dofs_fulfillment_attempts_total{outcome=\"success\"} 2\n"
        ), "{text}");
        assert!(
            text.contains(
                "dofs_http_requests_total{method=\"POST\",route=\"/order\",status=\"202\"} 1\n"
            ),
            "{text}"
        );
        let attempts = text.find("dofs_fulfillment_attempts_total").unwrap_or(0);
        let http = text.find("dofs_http_requests_total").unwrap_or(0);
        assert!(attempts < http, "catalog order");
    }

    #[test]
    fn histograms_render_cumulative_buckets_with_inf_sum_and_count() {
        let registry = Registry::new();
        for v in [0.004, 0.02, 0.02, 45.0] {
            registry.observe(
                names::HTTP_DURATION,
                &[("method", "GET"), ("route", "/")],
                v,
            );
        }
        let text = registry.render();
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("dofs_http_request_duration_seconds"))
            .collect();
        assert_eq!(lines.len(), HTTP_BUCKETS.len() + 3, "{text}");
        assert!(lines.contains(
            &"dofs_http_request_duration_seconds_bucket{method=\"GET\",route=\"/\",le=\"0.0025\"} 0"
        ));
        assert!(lines.contains(
            &"dofs_http_request_duration_seconds_bucket{method=\"GET\",route=\"/\",le=\"0.005\"} 1"
        ));
        assert!(lines.contains(
            &"dofs_http_request_duration_seconds_bucket{method=\"GET\",route=\"/\",le=\"0.025\"} 3"
        ));
        assert!(lines.contains(
            &"dofs_http_request_duration_seconds_bucket{method=\"GET\",route=\"/\",le=\"30\"} 3"
        ));
        assert!(lines.contains(
            &"dofs_http_request_duration_seconds_bucket{method=\"GET\",route=\"/\",le=\"+Inf\"} 4"
        ));
        assert!(lines
            .contains(&"dofs_http_request_duration_seconds_count{method=\"GET\",route=\"/\"} 4"));
        assert!(text.contains("# TYPE dofs_http_request_duration_seconds histogram\n"));
    }

    #[test]
    fn an_observation_equal_to_a_bound_falls_in_that_bucket() {
        let registry = Registry::new();
        registry.observe(names::TIME_TO_TERMINAL, &[("status", "FULFILLED")], 1.0);
        let h = registry.histogram_merged(names::TIME_TO_TERMINAL, &[]);
        let index = TERMINAL_BUCKETS
            .iter()
            .position(|b| *b == 1.0)
            .unwrap_or(usize::MAX);
        assert_eq!(h.counts[index], 1);
        assert_eq!(h.count(), 1);
    }

    #[test]
    fn gauges_render_whole_numbers_without_a_fraction_and_label_values_are_escaped() {
        let registry = Registry::new();
        registry.set_gauge(names::ORDERS, &[("status", "PENDING")], 3.0);
        registry.set_gauge(names::QUEUE_OLDEST_AGE, &[("queue", "orders")], 1.5);
        registry.set_gauge("other_gauge", &[("x", "a\"b\\c\nd")], 0.0);
        let text = registry.render();
        assert!(
            text.contains("dofs_orders{status=\"PENDING\"} 3\n"),
            "{text}"
        );
        assert!(text.contains("dofs_queue_oldest_message_age_seconds{queue=\"orders\"} 1.5\n"));
        assert!(
            text.contains("other_gauge{x=\"a\\\"b\\\\c\\nd\"} 0\n"),
            "{text}"
        );
        assert!(text.contains("# HELP other_gauge DOFS metric.\n"));
    }

    #[test]
    fn sums_of_counters_filter_by_labels() {
        let registry = Registry::new();
        registry.increment(
            names::HTTP_REQUESTS,
            &[("route", "/a"), ("status", "500")],
            2,
        );
        registry.increment(
            names::HTTP_REQUESTS,
            &[("route", "/b"), ("status", "503")],
            1,
        );
        registry.increment(
            names::HTTP_REQUESTS,
            &[("route", "/b"), ("status", "200")],
            7,
        );
        assert_eq!(registry.counter_sum(names::HTTP_REQUESTS, &[]), 10);
        assert_eq!(
            registry.counter_sum(names::HTTP_REQUESTS, &[("route", "/b")]),
            8
        );
        let five_xx = registry.counter_sum_where(names::HTTP_REQUESTS, |k| {
            k.labels()
                .any(|l| l.key() == "status" && l.value().starts_with('5'))
        });
        assert_eq!(five_xx, 3);
    }

    #[test]
    fn quantiles_interpolate_within_the_bucket_like_histogram_quantile() {
        let h = HistogramSnapshot {
            bounds: vec![1.0, 2.0, 4.0],
            counts: vec![0, 10, 10, 0],
            sum: 0.0,
        };
        assert_eq!(h.quantile(0.5), Some(2.0));
        assert_eq!(h.quantile(0.25), Some(1.5));
        assert_eq!(h.quantile(0.75), Some(3.0));
        let inf = HistogramSnapshot {
            bounds: vec![1.0],
            counts: vec![0, 3],
            sum: 9.0,
        };
        assert_eq!(inf.quantile(0.99), Some(1.0));
        assert_eq!(HistogramSnapshot::default().quantile(0.5), None);
        let later = HistogramSnapshot {
            bounds: vec![1.0, 2.0, 4.0],
            counts: vec![1, 12, 10, 0],
            sum: 0.0,
        };
        assert_eq!(later.since(&h).counts, vec![1, 2, 0, 0]);
    }

    /// Every `dofs_*` name in `text`.
    fn metric_names(text: &str) -> Vec<String> {
        let mut names = Vec::new();
        let mut rest = text;
        while let Some(at) = rest.find("dofs_") {
            let tail = &rest[at..];
            let end = tail
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(tail.len());
            names.push(tail[..end].to_owned());
            rest = &tail[end..];
        }
        names
    }

    fn known(name: &str) -> bool {
        CATALOG.iter().any(|m| {
            m.name == name
                || (m.kind == Kind::Histogram
                    && ["_bucket", "_sum", "_count"]
                        .iter()
                        .any(|s| name == format!("{}{s}", m.name)))
        })
    }

    /// This package's directory, read when the test runs. `env!` would keep the
    /// checkout the test binary was first built in, and cargo reuses that binary
    /// from a shared target directory after the checkout has moved (CI clones
    /// into a new folder each run).
    fn manifest_dir() -> String {
        std::env::var("CARGO_MANIFEST_DIR")
            .unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_owned())
    }

    #[test]
    fn the_self_hosted_monitoring_files_use_only_metrics_dofs_exports() {
        let root = std::path::PathBuf::from(manifest_dir()).join("../../deploy");
        let rules = std::fs::read_to_string(root.join("prometheus/alerts.yml")).expect("rules");
        let grafana =
            std::fs::read_to_string(root.join("grafana/dofs-dashboard.json")).expect("dashboard");
        let dashboard: serde_json::Value = serde_json::from_str(&grafana).expect("valid JSON");
        let exprs: Vec<String> = dashboard["panels"]
            .as_array()
            .expect("panels")
            .iter()
            .flat_map(|p| p["targets"].as_array().cloned().unwrap_or_default())
            .filter_map(|t| t["expr"].as_str().map(str::to_owned))
            .collect();
        assert!(exprs.len() > 10, "the dashboard has queries");
        let mut used = metric_names(&rules);
        used.extend(exprs.iter().flat_map(|e| metric_names(e)));
        for name in &used {
            assert!(
                known(name),
                "{name} is used in deploy/ but DOFS does not export it"
            );
        }
        for rule in super::super::alerts::RULES {
            assert!(
                rules.contains(&format!("rule: {rule}")),
                "deploy/prometheus/alerts.yml mirrors the in-process rule {rule}"
            );
        }
    }

    #[test]
    fn numbers_follow_the_exposition_format() {
        assert_eq!(number(3.0), "3");
        assert_eq!(number(0.25), "0.25");
        assert_eq!(number(f64::INFINITY), "+Inf");
        assert_eq!(number(f64::NAN), "NaN");
    }
}
