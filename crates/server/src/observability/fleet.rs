//! `GET /metrics` for a shape that runs many instances of the API (the AWS
//! functions), where a process's own counters are a fraction of the truth
//! that changes with the instance that answers the scrape.
//!
//! Such a shape gives [`super::Observability::fleet`] a [`FleetCounters`],
//! which reads counters back from where every instance's counts are added up
//! (CloudWatch on AWS). The scrape then serves only values true for the
//! whole fleet: the gauges read from durable state (orders by status from
//! the store, queue depths from the queues) and the fleet's counters. What
//! cannot be served that way is left out rather than served per instance:
//! histograms (their buckets cannot be read back), the alert gauges (alerts
//! are the platform's alarms there), and a queue age the queue does not give.

use super::metrics::{names, Registry};
use dofs_core::ports::Backend;
use dofs_core::OrderStatus;
use std::future::Future;
use std::pin::Pin;

/// One counter series summed over the fleet: name, labels and total.
#[derive(Clone, Debug, PartialEq)]
pub struct FleetCounter {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub total: u64,
}

/// The future of [`FleetCounters::totals`].
pub type TotalsFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Vec<FleetCounter>, String>> + Send + 'a>>;

/// Where a fleet's counters are added up.
pub trait FleetCounters: Send + Sync {
    /// Every counter series recorded by any instance, with its fleet-wide
    /// total. A series not readable yet is missing (never zero); an error
    /// says why nothing could be read.
    fn totals(&self) -> TotalsFuture<'_>;
}

/// The fleet's `/metrics` text: durable gauges read now, counters from
/// `counters`. A source that cannot be read is left out (and logged).
pub async fn render(backend: &Backend, counters: &dyn FleetCounters) -> String {
    let registry = Registry::new();
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
            if let Some(age) = d.oldest_age_ms {
                registry.set_gauge(
                    names::QUEUE_OLDEST_AGE,
                    &[("queue", "orders")],
                    age.max(0) as f64 / 1000.0,
                );
            }
        }
        Err(e) => tracing::warn!(error = %e, "metrics: could not read the queue depth"),
    }
    match counters.totals().await {
        Ok(totals) => {
            for c in totals {
                let labels: Vec<(&str, &str)> = c
                    .labels
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                registry.increment(&c.name, &labels, c.total);
            }
        }
        Err(e) => tracing::warn!(error = %e, "metrics: could not read the fleet's counters"),
    }
    registry.render()
}
