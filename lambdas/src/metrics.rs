//! The functions' metrics on AWS: what an instance records (in the process
//! registry, by the contract's names) is published to CloudWatch once per
//! invocation ([`Publisher::flush`], one `PutMetricData`), and `GET /metrics`
//! reads the counters back as fleet-wide sums ([`CloudWatchCounters`]).
//!
//! A histogram is published as its buckets: each observation at its bucket's
//! upper bound (the `+Inf` bucket's at the highest finite bound), so
//! CloudWatch's percentiles have the buckets' precision, as Prometheus'
//! `histogram_quantile` has.

use dofs_aws::metrics::{Datum, Observed};
use dofs_aws::CloudWatchMetrics;
use dofs_server::observability::fleet::{FleetCounter, FleetCounters, TotalsFuture};
use dofs_server::observability::metrics::{HistogramSnapshot, Kind, Registry, SeriesKey, CATALOG};
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::Mutex;

/// What was last published, per series.
#[derive(Default)]
struct Published {
    counters: HashMap<SeriesKey, u64>,
    histograms: HashMap<SeriesKey, HistogramSnapshot>,
}

/// Publishes what the process registry recorded since the last flush.
pub struct Publisher {
    registry: Arc<Registry>,
    cloudwatch: CloudWatchMetrics,
    published: Mutex<Published>,
}

impl Publisher {
    /// A publisher of the process registry to `cloudwatch`.
    pub fn new(cloudwatch: CloudWatchMetrics) -> Self {
        Publisher::over(Registry::global(), cloudwatch)
    }

    /// A publisher of `registry` (tests use their own).
    pub fn over(registry: Arc<Registry>, cloudwatch: CloudWatchMetrics) -> Self {
        Publisher {
            registry,
            cloudwatch,
            published: Mutex::new(Published::default()),
        }
    }

    /// Publishes what was recorded since the last successful flush, in one
    /// call (none when nothing changed). A failed call is logged and its data
    /// are sent with the next flush, so a count is late, never lost while
    /// the instance lives. Answers how many data were sent.
    pub async fn flush(&self) -> usize {
        let mut published = self.published.lock().await;
        let counters = self.registry.counter_series();
        let histograms = self.registry.histogram_series();
        let data = changes(&published, &counters, &histograms);
        if data.is_empty() {
            return 0;
        }
        match self.cloudwatch.publish(&data).await {
            Ok(_) => {
                published.counters = counters.into_iter().collect();
                published.histograms = histograms.into_iter().collect();
                data.len()
            }
            Err(e) => {
                tracing::warn!(error = %e, series = data.len(), "metrics: could not publish to CloudWatch; retried with the next invocation's");
                0
            }
        }
    }
}

/// The data of every series that changed since `published`.
fn changes(
    published: &Published,
    counters: &[(SeriesKey, u64)],
    histograms: &[(SeriesKey, HistogramSnapshot)],
) -> Vec<Datum> {
    let mut data = Vec::new();
    for (key, value) in counters {
        let before = published.counters.get(key).copied().unwrap_or(0);
        if *value > before {
            data.push(Datum {
                name: key.0.clone(),
                labels: key.1.clone(),
                observed: Observed::Count(value - before),
            });
        }
    }
    for (key, snapshot) in histograms {
        let new = match published.histograms.get(key) {
            Some(before) => snapshot.since(before),
            None => snapshot.clone(),
        };
        let values = bucket_values(&new);
        if !values.is_empty() {
            data.push(Datum {
                name: key.0.clone(),
                labels: key.1.clone(),
                observed: Observed::Seconds(values),
            });
        }
    }
    data
}

/// A histogram's observations as (bucket upper bound, count).
fn bucket_values(h: &HistogramSnapshot) -> Vec<(f64, u64)> {
    let Some(highest) = h.bounds.last().copied() else {
        return Vec::new();
    };
    h.counts
        .iter()
        .enumerate()
        .filter(|(_, n)| **n > 0)
        .map(|(i, n)| (h.bounds.get(i).copied().unwrap_or(highest), *n))
        .collect()
}

/// The contract's counters, read back from CloudWatch as fleet-wide sums.
pub struct CloudWatchCounters {
    cloudwatch: CloudWatchMetrics,
    names: Vec<&'static str>,
}

impl CloudWatchCounters {
    /// Every counter of the catalogue, read from `cloudwatch`.
    pub fn new(cloudwatch: CloudWatchMetrics) -> Self {
        CloudWatchCounters {
            cloudwatch,
            names: CATALOG
                .iter()
                .filter(|m| m.kind == Kind::Counter)
                .map(|m| m.name)
                .collect(),
        }
    }
}

impl FleetCounters for CloudWatchCounters {
    fn totals(&self) -> TotalsFuture<'_> {
        Box::pin(async move {
            let totals = self
                .cloudwatch
                .counter_totals(&self.names)
                .await
                .map_err(|e| e.to_string())?;
            Ok(totals
                .into_iter()
                .map(|t| FleetCounter {
                    name: t.name,
                    labels: t.labels,
                    total: t.total.max(0.0).round() as u64,
                })
                .collect())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dofs_server::observability::metrics::names;

    #[test]
    fn only_what_changed_since_the_last_publication_is_sent() {
        let registry = Registry::new();
        registry.increment(names::ORDERS_ACCEPTED, &[], 3);
        registry.increment(names::ORDERS_REJECTED, &[("reason", "MalformedJson")], 1);
        registry.observe(
            names::HTTP_DURATION,
            &[("method", "POST"), ("route", "/order")],
            0.004,
        );
        let first = changes(
            &Published::default(),
            &registry.counter_series(),
            &registry.histogram_series(),
        );
        assert_eq!(first.len(), 3, "{first:?}");
        let published = Published {
            counters: registry.counter_series().into_iter().collect(),
            histograms: registry.histogram_series().into_iter().collect(),
        };
        registry.increment(names::ORDERS_ACCEPTED, &[], 2);
        registry.observe(
            names::HTTP_DURATION,
            &[("method", "POST"), ("route", "/order")],
            45.0,
        );
        let second = changes(
            &published,
            &registry.counter_series(),
            &registry.histogram_series(),
        );
        assert_eq!(
            second,
            vec![
                Datum {
                    name: names::ORDERS_ACCEPTED.into(),
                    labels: vec![],
                    observed: Observed::Count(2),
                },
                Datum {
                    name: names::HTTP_DURATION.into(),
                    labels: vec![
                        ("method".into(), "POST".into()),
                        ("route".into(), "/order".into())
                    ],
                    observed: Observed::Seconds(vec![(30.0, 1)]),
                },
            ],
            "the +Inf bucket at the highest bound"
        );
    }

    #[test]
    fn an_observation_is_published_at_its_buckets_upper_bound() {
        let registry = Registry::new();
        registry.observe(names::HTTP_DURATION, &[], 0.004);
        registry.observe(names::HTTP_DURATION, &[], 0.003);
        registry.observe(names::HTTP_DURATION, &[], 0.2);
        let (_, h) = registry.histogram_series().remove(0);
        assert_eq!(bucket_values(&h), vec![(0.005, 2), (0.25, 1)]);
    }
}
