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
    let depth = super::set_durable_gauges(&registry, backend).await;
    // No age is not an empty queue here: SQS does not give its oldest
    // message's age, so the gauge is left out rather than shown as 0.
    if let Some(age) = depth.and_then(|d| d.oldest_age_ms) {
        registry.set_gauge(
            names::QUEUE_OLDEST_AGE,
            &[("queue", "orders")],
            age.max(0) as f64 / 1000.0,
        );
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

#[cfg(test)]
mod tests {
    use super::*;

    struct Totals;

    impl FleetCounters for Totals {
        fn totals(&self) -> TotalsFuture<'_> {
            Box::pin(async {
                Ok(vec![FleetCounter {
                    name: names::ORDERS_ACCEPTED.into(),
                    labels: Vec::new(),
                    total: 7,
                }])
            })
        }
    }

    #[tokio::test]
    async fn a_fleet_scrape_shows_durable_gauges_and_fleet_counters_but_no_unknown_age() {
        let dir = tempfile::tempdir().expect("tempdir");
        let embedded =
            dofs_embedded::Embedded::start(dofs_embedded::EmbeddedConfig::new(dir.path()))
                .await
                .expect("embedded");
        let text = render(&embedded.backend(), &Totals).await;
        assert!(
            text.contains(r#"dofs_orders{status="PENDING"} 0"#),
            "{text}"
        );
        assert!(
            text.contains(r#"dofs_queue_messages{queue="dlq"} 0"#),
            "{text}"
        );
        assert!(text.contains("dofs_orders_accepted_total 7"), "{text}");
        assert!(
            !text.contains(names::QUEUE_OLDEST_AGE),
            "a queue that gives no age shows none: {text}"
        );
        embedded.shutdown().await;
    }
}
