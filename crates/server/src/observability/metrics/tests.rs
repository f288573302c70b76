//! Tests of the registry, the histograms and the text exposition.

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
    assert!(
        text.contains(
            "# HELP dofs_fulfillment_attempts_total Fulfillment attempts finished, by outcome.\n\
         # TYPE dofs_fulfillment_attempts_total counter\n\
         dofs_fulfillment_attempts_total{outcome=\"failure\"} 1\n\
         dofs_fulfillment_attempts_total{outcome=\"success\"} 2\n"
        ),
        "{text}"
    );
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
    assert!(
        lines.contains(&"dofs_http_request_duration_seconds_count{method=\"GET\",route=\"/\"} 4")
    );
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
    std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_owned())
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

#[test]
fn a_series_is_one_whether_recorded_directly_or_through_the_facade() {
    let registry = Registry::new();
    let labels = [("outcome", "success")];
    registry.increment(names::FULFILLMENT_ATTEMPTS, &labels, 2);
    metrics::with_local_recorder(&registry, || {
        metrics::counter!(names::FULFILLMENT_ATTEMPTS, "outcome" => "success").increment(3);
        metrics::counter!(names::FULFILLMENT_ATTEMPTS, "outcome" => "failure").increment(1);
    });
    registry.increment(names::FULFILLMENT_ATTEMPTS, &labels, 4);
    assert_eq!(
        registry.counter_sum(names::FULFILLMENT_ATTEMPTS, &labels),
        9
    );
    assert_eq!(registry.counter_sum(names::FULFILLMENT_ATTEMPTS, &[]), 10);
    assert_eq!(registry.counter_series().len(), 2);
    registry.set_gauge(names::QUEUE_MESSAGES, &[], 5.0);
    assert_eq!(registry.gauge(names::QUEUE_MESSAGES, &[]), Some(5.0));
    assert_eq!(registry.gauge(names::QUEUE_MESSAGES, &labels), None);
}

#[test]
fn the_order_of_a_series_labels_does_not_make_another_series() {
    let registry = Registry::new();
    let (method, route) = (("method", "POST"), ("route", "/order"));
    registry.increment(names::HTTP_REQUESTS, &[method, route], 1);
    registry.increment(names::HTTP_REQUESTS, &[route, method], 2);
    metrics::with_local_recorder(&registry, || {
        metrics::counter!(names::HTTP_REQUESTS, "route" => "/order", "method" => "POST")
            .increment(4);
    });
    assert_eq!(registry.counter_series().len(), 1);
    assert_eq!(registry.counter_sum(names::HTTP_REQUESTS, &[]), 7);
    registry.increment(names::HTTP_REQUESTS, &[method, ("route", "/orders")], 1);
    assert_eq!(registry.counter_series().len(), 2);
}

/// Two series whose fingerprints are equal (the hash is fast, not proof
/// against collisions) stay two series in one bucket.
#[test]
fn series_that_hash_alike_stay_apart() {
    let series: Series<AtomicU64> = Series::default();
    let get = |name: &str| {
        series.find_or_insert(
            7,
            |k| is(k, name, &[]),
            || key(name, &[]),
            || AtomicU64::new(0),
        )
    };
    get("dofs_a").fetch_add(1, Ordering::Relaxed);
    get("dofs_b").fetch_add(5, Ordering::Relaxed);
    get("dofs_a").fetch_add(1, Ordering::Relaxed);
    assert_eq!(get("dofs_a").load(Ordering::Relaxed), 2);
    assert_eq!(get("dofs_b").load(Ordering::Relaxed), 5);
    let mut names = Vec::new();
    series.each(|k, _| names.push(k.name().to_owned()));
    assert_eq!(names, ["dofs_a", "dofs_b"]);
}
