//! [`CloudWatchMetrics`] on moto: what several publishers (the instances of
//! a function) send adds up, per series, to the totals read back.

use super::{emulator, random_prefix};
use dofs_aws::metrics::{CounterTotal, Datum, Observed};
use dofs_aws::CloudWatchMetrics;

fn count(name: &str, labels: &[(&str, &str)], n: u64) -> Datum {
    Datum {
        name: name.into(),
        labels: labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        observed: Observed::Count(n),
    }
}

#[tokio::test]
#[ignore = "needs moto: scripts/test-aws.sh runs it"]
async fn counters_published_by_several_instances_read_back_as_one_total_per_series() {
    let Some(config) = emulator().await else {
        return;
    };
    let environment = random_prefix("metrics");
    let instance = || {
        CloudWatchMetrics::new(
            aws_sdk_cloudwatch::Client::new(&config),
            "DOFS".into(),
            environment.clone(),
        )
    };
    let (a, b) = (instance(), instance());
    let accepted = "dofs_orders_accepted_total";
    let rejected = "dofs_orders_rejected_total";
    a.publish(&[
        count(accepted, &[], 3),
        count(rejected, &[("reason", "MalformedJson")], 1),
        Datum {
            name: "dofs_http_request_duration_seconds".into(),
            labels: vec![],
            observed: Observed::Seconds(vec![(0.005, 2), (0.25, 1)]),
        },
    ])
    .await
    .expect("publish");
    b.publish(&[
        count(accepted, &[], 4),
        count(rejected, &[("reason", "MalformedJson")], 2),
        count(rejected, &[("reason", "ValidationError")], 5),
    ])
    .await
    .expect("publish");
    // Another environment's counts are not this one's.
    CloudWatchMetrics::new(
        aws_sdk_cloudwatch::Client::new(&config),
        "DOFS".into(),
        random_prefix("other"),
    )
    .publish(&[count(accepted, &[], 100)])
    .await
    .expect("publish");

    let mut totals = a
        .counter_totals(&[accepted, rejected])
        .await
        .expect("totals");
    totals.sort_by(|x, y| (&x.name, &x.labels).cmp(&(&y.name, &y.labels)));
    let total = |name: &str, labels: &[(&str, &str)], total: f64| CounterTotal {
        name: name.into(),
        labels: labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        total,
    };
    assert_eq!(
        totals,
        vec![
            total(accepted, &[], 7.0),
            total(rejected, &[("reason", "MalformedJson")], 3.0),
            total(rejected, &[("reason", "ValidationError")], 5.0),
        ],
        "histograms are not counters; each series is summed over both instances"
    );
}
