//! [`CloudWatchMetrics`]: the AWS shape's counters and histograms, published
//! where AWS adds them up across every function instance (CloudWatch custom
//! metrics, `PutMetricData`), and counters read back from there as sums
//! (`ListMetrics`, then `GetMetricData`), so that `GET /metrics` serves
//! values true for the whole fleet, not for the instance that answered.
//!
//! Naming: a CloudWatch metric is named as its Prometheus metric
//! (`dofs_orders_accepted_total`, `dofs_metric_names`); its dimensions are
//! `Environment` (`DOFS_ENVIRONMENT`) and the Prometheus labels, by the same
//! names (`reason`, `outcome`, `method`, `route`, `status`). The namespace is
//! `DOFS_METRICS_NAMESPACE` (Terraform's `metrics_namespace`, `DOFS`).
//!
//! Costs are per call, never per metric: a function publishes what one
//! invocation recorded in one `PutMetricData` (up to [`MAX_DATA_PER_CALL`]
//! data), and a read is one paged `ListMetrics` plus one `GetMetricData` per
//! [`MAX_QUERIES_PER_CALL`] series.

use crate::error::port_error;
use aws_sdk_cloudwatch::types::{
    Dimension, DimensionFilter, Metric, MetricDataQuery, MetricDatum, MetricStat, StandardUnit,
};
use aws_sdk_cloudwatch::Client;
use dofs_core::ports::PortError;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime};

/// The default namespace (Terraform's `metrics_namespace`).
pub const DEFAULT_NAMESPACE: &str = "DOFS";

/// The dimension every DOFS metric carries.
pub const ENVIRONMENT_DIMENSION: &str = "Environment";

/// `PutMetricData` takes at most 1000 data per call.
pub const MAX_DATA_PER_CALL: usize = 1000;

/// A datum's `Values` and `Counts` hold at most 150 entries.
pub const MAX_VALUES_PER_DATUM: usize = 150;

/// `GetMetricData` takes at most 500 queries per call.
pub const MAX_QUERIES_PER_CALL: usize = 500;

/// How far back a counter's sum reaches: CloudWatch keeps hourly data for
/// 455 days; the window stays inside it (a multiple of an hour, as
/// `GetMetricData` wants for data older than 63 days).
pub const SUM_WINDOW: Duration = Duration::from_secs(450 * 24 * 3600);

/// Labels as (name, value), sorted by name.
pub type Labels = Vec<(String, String)>;

/// What one series recorded since the last publication.
#[derive(Clone, Debug, PartialEq)]
pub enum Observed {
    /// A counter's increase.
    Count(u64),
    /// A histogram's observations in seconds, as (value, how many times).
    Seconds(Vec<(f64, u64)>),
}

/// One series' new data: its metric name, labels and what was observed.
#[derive(Clone, Debug, PartialEq)]
pub struct Datum {
    pub name: String,
    pub labels: Labels,
    pub observed: Observed,
}

/// A counter's fleet-wide total, summed by CloudWatch.
#[derive(Clone, Debug, PartialEq)]
pub struct CounterTotal {
    pub name: String,
    pub labels: Labels,
    pub total: f64,
}

/// DOFS's custom metrics in CloudWatch, for one environment.
#[derive(Clone, Debug)]
pub struct CloudWatchMetrics {
    client: Client,
    namespace: String,
    environment: String,
}

impl CloudWatchMetrics {
    /// The metrics of `environment` in `namespace`.
    pub fn new(client: Client, namespace: String, environment: String) -> Self {
        CloudWatchMetrics {
            client,
            namespace,
            environment,
        }
    }

    /// The namespace published to.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    fn dimensions(&self, labels: &Labels) -> Vec<Dimension> {
        std::iter::once(
            Dimension::builder()
                .name(ENVIRONMENT_DIMENSION)
                .value(&self.environment)
                .build(),
        )
        .chain(
            labels
                .iter()
                .filter(|(k, v)| !v.is_empty() && k != ENVIRONMENT_DIMENSION)
                .map(|(k, v)| Dimension::builder().name(k).value(v).build()),
        )
        .collect()
    }

    /// The `PutMetricData` data of `data`: counters as one `Count` value,
    /// histograms as `Values` and `Counts` in `Seconds` (150 entries a datum).
    pub fn to_cloudwatch(&self, data: &[Datum]) -> Vec<MetricDatum> {
        let mut out = Vec::new();
        for d in data {
            let base = || {
                MetricDatum::builder()
                    .metric_name(&d.name)
                    .set_dimensions(Some(self.dimensions(&d.labels)))
            };
            match &d.observed {
                Observed::Count(0) => {}
                Observed::Count(n) => {
                    out.push(base().value(*n as f64).unit(StandardUnit::Count).build())
                }
                Observed::Seconds(values) => {
                    let values: Vec<&(f64, u64)> = values
                        .iter()
                        .filter(|(v, n)| *n > 0 && v.is_finite())
                        .collect();
                    for chunk in values.chunks(MAX_VALUES_PER_DATUM) {
                        out.push(
                            base()
                                .set_values(Some(chunk.iter().map(|(v, _)| *v).collect()))
                                .set_counts(Some(chunk.iter().map(|(_, n)| *n as f64).collect()))
                                .unit(StandardUnit::Seconds)
                                .build(),
                        );
                    }
                }
            }
        }
        out
    }

    /// Publishes `data`: one `PutMetricData` call per [`MAX_DATA_PER_CALL`]
    /// data, none when there is nothing new. Not idempotent: a call repeated
    /// after a lost answer counts twice.
    pub async fn publish(&self, data: &[Datum]) -> Result<usize, PortError> {
        let data = self.to_cloudwatch(data);
        let mut calls = 0;
        for chunk in data.chunks(MAX_DATA_PER_CALL) {
            self.client
                .put_metric_data()
                .namespace(&self.namespace)
                .set_metric_data(Some(chunk.to_vec()))
                .send()
                .await
                .map_err(|e| port_error("PutMetricData", e))?;
            calls += 1;
        }
        Ok(calls)
    }

    /// Every series of the counters `names` this environment has published,
    /// with the sum of everything published over [`SUM_WINDOW`]: one paged
    /// `ListMetrics` (it lists series with data in the last two weeks), then
    /// `GetMetricData`. A series CloudWatch has not made readable yet is
    /// missing, never zero.
    pub async fn counter_totals(&self, names: &[&str]) -> Result<Vec<CounterTotal>, PortError> {
        let series = self.series(names).await?;
        let end = SystemTime::now() + Duration::from_secs(60);
        let start = end - SUM_WINDOW;
        let mut totals = Vec::new();
        for chunk in series.chunks(MAX_QUERIES_PER_CALL) {
            let queries: Vec<MetricDataQuery> = chunk
                .iter()
                .enumerate()
                .map(|(i, (name, labels))| {
                    let metric = Metric::builder()
                        .namespace(&self.namespace)
                        .metric_name(name)
                        .set_dimensions(Some(self.dimensions(labels)))
                        .build();
                    MetricDataQuery::builder()
                        .id(format!("m{i}"))
                        .metric_stat(
                            MetricStat::builder()
                                .metric(metric)
                                .period(SUM_WINDOW.as_secs() as i32)
                                .stat("Sum")
                                .build(),
                        )
                        .return_data(true)
                        .build()
                })
                .collect();
            let mut sums: BTreeMap<usize, f64> = BTreeMap::new();
            let mut next: Option<String> = None;
            loop {
                let answer = self
                    .client
                    .get_metric_data()
                    .set_metric_data_queries(Some(queries.clone()))
                    .start_time(start.into())
                    .end_time(end.into())
                    .set_next_token(next.take())
                    .send()
                    .await
                    .map_err(|e| port_error("GetMetricData", e))?;
                for result in answer.metric_data_results() {
                    let Some(index) = result
                        .id()
                        .and_then(|id| id.strip_prefix('m'))
                        .and_then(|i| i.parse::<usize>().ok())
                    else {
                        continue;
                    };
                    if !result.values().is_empty() {
                        *sums.entry(index).or_default() += result.values().iter().sum::<f64>();
                    }
                }
                match answer.next_token() {
                    Some(t) if !t.is_empty() => next = Some(t.to_owned()),
                    _ => break,
                }
            }
            for (index, total) in sums {
                if let Some((name, labels)) = chunk.get(index) {
                    totals.push(CounterTotal {
                        name: name.clone(),
                        labels: labels.clone(),
                        total,
                    });
                }
            }
        }
        Ok(totals)
    }

    /// The series (name, labels without `Environment`) of `names` in this
    /// environment, each once.
    async fn series(&self, names: &[&str]) -> Result<Vec<(String, Labels)>, PortError> {
        let mut found = BTreeSet::new();
        let mut next: Option<String> = None;
        loop {
            let page = self
                .client
                .list_metrics()
                .namespace(&self.namespace)
                .dimensions(
                    DimensionFilter::builder()
                        .name(ENVIRONMENT_DIMENSION)
                        .value(&self.environment)
                        .build(),
                )
                .set_next_token(next.take())
                .send()
                .await
                .map_err(|e| port_error("ListMetrics", e))?;
            for m in page.metrics() {
                let Some(name) = m.metric_name().filter(|n| names.contains(n)) else {
                    continue;
                };
                let mut labels: Labels = m
                    .dimensions()
                    .iter()
                    .filter_map(|d| Some((d.name()?.to_owned(), d.value()?.to_owned())))
                    .filter(|(k, _)| k != ENVIRONMENT_DIMENSION)
                    .collect();
                labels.sort();
                found.insert((name.to_owned(), labels));
            }
            match page.next_token() {
                Some(t) if !t.is_empty() => next = Some(t.to_owned()),
                _ => break,
            }
        }
        Ok(found.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metrics() -> CloudWatchMetrics {
        let config = aws_sdk_cloudwatch::Config::builder()
            .behavior_version(aws_sdk_cloudwatch::config::BehaviorVersion::latest())
            .region(aws_sdk_cloudwatch::config::Region::new("us-east-1"))
            .build();
        CloudWatchMetrics::new(Client::from_conf(config), "DOFS".into(), "dev".into())
    }

    #[test]
    fn a_counter_becomes_one_count_datum_with_the_environment_and_its_labels() {
        let data = metrics().to_cloudwatch(&[
            Datum {
                name: "dofs_orders_rejected_total".into(),
                labels: vec![("reason".into(), "ValidationError".into())],
                observed: Observed::Count(3),
            },
            Datum {
                name: "dofs_orders_accepted_total".into(),
                labels: vec![],
                observed: Observed::Count(0),
            },
        ]);
        assert_eq!(data.len(), 1, "a zero increase is not sent: {data:?}");
        let d = &data[0];
        assert_eq!(d.metric_name(), Some("dofs_orders_rejected_total"));
        assert_eq!(d.value(), Some(3.0));
        assert_eq!(d.unit(), Some(&StandardUnit::Count));
        let dims: Vec<(Option<&str>, Option<&str>)> = d
            .dimensions()
            .iter()
            .map(|x| (x.name(), x.value()))
            .collect();
        assert_eq!(
            dims,
            vec![
                (Some("Environment"), Some("dev")),
                (Some("reason"), Some("ValidationError"))
            ]
        );
    }

    #[test]
    fn a_histogram_becomes_values_and_counts_150_at_a_time() {
        let values: Vec<(f64, u64)> = (0..200).map(|i| (i as f64 / 100.0, 2)).collect();
        let data = metrics().to_cloudwatch(&[Datum {
            name: "dofs_http_request_duration_seconds".into(),
            labels: vec![],
            observed: Observed::Seconds(values),
        }]);
        assert_eq!(data.len(), 2);
        assert_eq!(data[0].values().len(), 150);
        assert_eq!(data[1].values().len(), 50);
        assert_eq!(data[0].counts()[0], 2.0);
        assert_eq!(data[0].unit(), Some(&StandardUnit::Seconds));
    }
}
