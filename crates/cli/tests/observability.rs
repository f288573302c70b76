//! Black-box tests of observability: the real binary's `/metrics` after a
//! seeded sequence of orders (exact values, and text that parses as the
//! Prometheus exposition format), the DLQ alert through a webhook receiver
//! this test runs, request ids, and the order's journey in the JSON logs.

mod common;

use common::{fast_env, seed_order, App};
use dofs_core::{FulfillmentPolicy, OrderId};
use serde_json::{json, Value};
use std::time::Duration;
use tokio::sync::mpsc;

/// A strict reader of the Prometheus text exposition format 0.0.4: every
/// line is a comment (`# HELP`, `# TYPE`), blank, or a sample
/// `name{label="value",...} number`; a family's `# TYPE` comes once and
/// before its samples; no series appears twice; histograms have cumulative
/// `_bucket` series ending with `le="+Inf"` equal to `_count`.
mod exposition {
    use std::collections::{BTreeMap, BTreeSet};

    pub type Labels = BTreeMap<String, String>;
    /// Label pairs, sorted by name.
    pub type Pairs = Vec<(String, String)>;

    #[derive(Debug, Default)]
    pub struct Scrape {
        pub types: BTreeMap<String, String>,
        pub samples: BTreeMap<(String, Pairs), f64>,
    }

    impl Scrape {
        /// The value of `name` with exactly `labels`, if present.
        pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
            let mut key: Vec<(String, String)> = labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            key.sort();
            self.samples.get(&(name.to_owned(), key)).copied()
        }

        /// Every series of `name` as (labels, value).
        pub fn series(&self, name: &str) -> Vec<(Labels, f64)> {
            self.samples
                .iter()
                .filter(|((n, _), _)| n == name)
                .map(|((_, l), v)| (l.iter().cloned().collect(), *v))
                .collect()
        }
    }

    fn valid_name(s: &str) -> bool {
        let mut chars = s.chars();
        matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    }

    fn valid_label(s: &str) -> bool {
        let mut chars = s.chars();
        matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
    }

    fn value(s: &str) -> Result<f64, String> {
        match s {
            "+Inf" => Ok(f64::INFINITY),
            "-Inf" => Ok(f64::NEG_INFINITY),
            "NaN" => Ok(f64::NAN),
            _ => s.parse().map_err(|_| format!("bad value {s:?}")),
        }
    }

    /// `{a="x",b="y"}` into sorted pairs; returns the rest of the line.
    fn labels(s: &str) -> Result<(Pairs, &str), String> {
        let mut out = Vec::new();
        let mut rest = s.strip_prefix('{').ok_or("labels must start with {")?;
        loop {
            if let Some(r) = rest.strip_prefix('}') {
                out.sort();
                let names: BTreeSet<&String> = out.iter().map(|(k, _)| k).collect();
                if names.len() != out.len() {
                    return Err("a label appears twice".into());
                }
                return Ok((out, r));
            }
            let eq = rest.find('=').ok_or("label without =")?;
            let name = &rest[..eq];
            if !valid_label(name) {
                return Err(format!("bad label name {name:?}"));
            }
            rest = rest[eq + 1..]
                .strip_prefix('"')
                .ok_or("label value must be quoted")?;
            let mut v = String::new();
            let mut chars = rest.char_indices();
            let end = loop {
                match chars.next() {
                    Some((i, '"')) => break i,
                    Some((_, '\\')) => match chars.next() {
                        Some((_, 'n')) => v.push('\n'),
                        Some((_, '\\')) => v.push('\\'),
                        Some((_, '"')) => v.push('"'),
                        other => return Err(format!("bad escape {other:?}")),
                    },
                    Some((_, c)) => v.push(c),
                    None => return Err("unterminated label value".into()),
                }
            };
            out.push((name.to_owned(), v));
            rest = &rest[end + 1..];
            if let Some(r) = rest.strip_prefix(',') {
                rest = r;
            } else if !rest.starts_with('}') {
                return Err("labels must be separated by commas".into());
            }
        }
    }

    fn family_of<'a>(name: &'a str, types: &BTreeMap<String, String>) -> &'a str {
        for suffix in ["_bucket", "_sum", "_count"] {
            if let Some(base) = name.strip_suffix(suffix) {
                if types.get(base).map(String::as_str) == Some("histogram") {
                    return base;
                }
            }
        }
        name
    }

    pub fn parse(text: &str) -> Result<Scrape, String> {
        let mut scrape = Scrape::default();
        let mut seen_samples: BTreeSet<String> = BTreeSet::new();
        for (n, line) in text.lines().enumerate() {
            let at = |e: String| format!("line {}: {e}: {line:?}", n + 1);
            if line.trim().is_empty() {
                continue;
            }
            if let Some(comment) = line.strip_prefix("# ") {
                let mut parts = comment.splitn(3, ' ');
                match (parts.next(), parts.next(), parts.next()) {
                    (Some("TYPE"), Some(name), Some(kind)) => {
                        if !valid_name(name) {
                            return Err(at("bad metric name".into()));
                        }
                        if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind)
                        {
                            return Err(at(format!("bad type {kind}")));
                        }
                        if seen_samples.contains(name) {
                            return Err(at("TYPE after the family's samples".into()));
                        }
                        if scrape
                            .types
                            .insert(name.to_owned(), kind.to_owned())
                            .is_some()
                        {
                            return Err(at("a second TYPE".into()));
                        }
                    }
                    (Some("HELP"), Some(name), _) if valid_name(name) => {}
                    _ => {}
                }
                continue;
            }
            if line.starts_with('#') {
                continue;
            }
            let name_end = line.find(['{', ' ']).ok_or_else(|| at("no value".into()))?;
            let name = &line[..name_end];
            if !valid_name(name) {
                return Err(at("bad metric name".into()));
            }
            let (labels, rest) = if line[name_end..].starts_with('{') {
                labels(&line[name_end..]).map_err(at)?
            } else {
                (Vec::new(), &line[name_end..])
            };
            let mut fields = rest.split_whitespace();
            let v = value(fields.next().ok_or_else(|| at("no value".into()))?).map_err(at)?;
            if let Some(ts) = fields.next() {
                ts.parse::<i64>().map_err(|_| at("bad timestamp".into()))?;
            }
            if fields.next().is_some() {
                return Err(at("trailing text".into()));
            }
            let family = family_of(name, &scrape.types);
            if !scrape.types.contains_key(family) {
                return Err(at("sample before its TYPE".into()));
            }
            seen_samples.insert(family.to_owned());
            if scrape
                .samples
                .insert((name.to_owned(), labels), v)
                .is_some()
            {
                return Err(at("duplicate series".into()));
            }
        }
        check_histograms(&scrape)?;
        Ok(scrape)
    }

    fn check_histograms(scrape: &Scrape) -> Result<(), String> {
        for (family, _) in scrape.types.iter().filter(|(_, t)| *t == "histogram") {
            let mut groups: BTreeMap<Pairs, Vec<(f64, f64)>> = BTreeMap::new();
            for (labels, v) in scrape.series(&format!("{family}_bucket")) {
                let le = labels
                    .get("le")
                    .ok_or(format!("{family}_bucket without le"))?;
                let le = value(le)?;
                let rest: Vec<(String, String)> =
                    labels.into_iter().filter(|(k, _)| k != "le").collect();
                groups.entry(rest).or_default().push((le, v));
            }
            for (labels, mut buckets) in groups {
                buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
                if buckets.windows(2).any(|w| w[1].1 < w[0].1) {
                    return Err(format!("{family}{labels:?}: buckets are not cumulative"));
                }
                let inf = buckets.last().filter(|b| b.0 == f64::INFINITY);
                let pairs: Vec<(&str, &str)> = labels
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                let count = scrape.get(&format!("{family}_count"), &pairs);
                let sum = scrape.get(&format!("{family}_sum"), &pairs);
                match (inf, count, sum) {
                    (Some(inf), Some(count), Some(_)) if inf.1 == count => {}
                    _ => {
                        return Err(format!(
                            "{family}{labels:?}: +Inf bucket, _count and _sum must agree"
                        ))
                    }
                }
            }
        }
        Ok(())
    }

    #[test]
    fn the_reader_rejects_what_prometheus_would_reject() {
        assert!(parse("# TYPE a counter\na 1\n").is_ok());
        assert!(parse("a 1\n").is_err(), "no TYPE");
        assert!(parse("# TYPE a counter\na{x=\"1\"} 1\na{x=\"1\"} 2\n").is_err());
        assert!(parse("# TYPE a counter\na{x=1} 1\n").is_err());
        assert!(parse("# TYPE a counter\na one\n").is_err());
        assert!(parse("# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n").is_err());
        assert!(parse("# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 2\n").is_ok());
    }
}

/// What the seeded policy says about one order: attempts that fail, then
/// (maybe) one that succeeds, within the receive limit.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Expected {
    failures: u32,
    fulfilled: bool,
}

fn predict(policy: &FulfillmentPolicy, id: &str, max_receives: u32) -> Expected {
    let id = OrderId::parse(id).expect("order id");
    for attempt in 1..=max_receives {
        if policy.attempt_succeeds(&id, attempt, 0) {
            return Expected {
                failures: attempt - 1,
                fulfilled: true,
            };
        }
    }
    Expected {
        failures: max_receives,
        fulfilled: false,
    }
}

const SEED: u64 = 20_261_128;

#[tokio::test]
async fn metrics_after_a_seeded_sequence_of_orders_have_the_exact_expected_values() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut env = fast_env();
    env.extend([
        ("DOFS_FULFILLMENT_SEED", SEED.to_string()),
        ("DOFS_FULFILLMENT_SUCCESS_RATE", "0.5".to_string()),
        // Thresholds no run of this test reaches, so every alert gauge is exactly 0.
        ("DOFS_ALERTS_DLQ_DEPTH_THRESHOLD", "1000".to_string()),
        ("DOFS_ALERTS_FAILURE_RATIO_THRESHOLD", "1".to_string()),
    ]);
    let app = App::spawn_on(dir.path(), &env);
    let policy = FulfillmentPolicy {
        success_rate: 0.5,
        seed: Some(SEED),
    };

    // Orders until the run holds at least two of each fate the seed can give:
    // fulfilled at once, fulfilled after failures, and dead-lettered.
    let mut ids = Vec::new();
    let mut expected = Vec::new();
    while ids.len() < 200 {
        let r = app.post_order(&seed_order()).await;
        assert_eq!(r.status().as_u16(), 202);
        let body: Value = r.json().await.expect("json");
        let id = body["orderId"].as_str().expect("orderId").to_owned();
        expected.push(predict(&policy, &id, 3));
        ids.push(id);
        let first = expected
            .iter()
            .filter(|e| e.fulfilled && e.failures == 0)
            .count();
        let retried = expected
            .iter()
            .filter(|e| e.fulfilled && e.failures > 0)
            .count();
        let dead = expected.iter().filter(|e| !e.fulfilled).count();
        if ids.len() >= 10 && first >= 2 && retried >= 2 && dead >= 2 {
            break;
        }
    }
    // An idempotent replay is answered 202 again but is not a new order.
    let keyed = |key: &str| {
        app.client
            .post(app.url("/order"))
            .header("Idempotency-Key", key)
            .json(&seed_order())
    };
    let first = keyed("metrics-key").send().await.expect("POST");
    assert_eq!(first.status().as_u16(), 202);
    let first: Value = first.json().await.expect("json");
    let replay = keyed("metrics-key").send().await.expect("POST");
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    let id = first["orderId"].as_str().expect("orderId").to_owned();
    expected.push(predict(&policy, &id, 3));
    ids.push(id);
    // Refusals, one per reason.
    let invalid =
        json!({"customerId": "INVALID", "productId": "PROD-2001", "quantity": 0, "price": -1});
    for body in [&invalid, &invalid] {
        assert_eq!(app.post_order(body).await.status().as_u16(), 400);
    }
    let malformed = app
        .client
        .post(app.url("/order"))
        .header("content-type", "application/json")
        .body("{\"customerId\": ")
        .send()
        .await
        .expect("POST");
    assert_eq!(malformed.status().as_u16(), 400);
    let plain = app
        .client
        .post(app.url("/orders"))
        .header("content-type", "text/plain")
        .body("hello")
        .send()
        .await
        .expect("POST");
    assert_eq!(plain.status().as_u16(), 415);

    let orders = app.wait_all_terminal(&ids, Duration::from_secs(60)).await;
    for (order, e) in orders.iter().zip(&expected) {
        let status = if e.fulfilled { "FULFILLED" } else { "FAILED" };
        assert_eq!(
            order["status"], status,
            "the seed decides {}",
            order["orderId"]
        );
    }
    let n = ids.len() as f64;
    let fulfilled = expected.iter().filter(|e| e.fulfilled).count() as f64;
    let failed = n - fulfilled;
    let failures: f64 = expected.iter().map(|e| f64::from(e.failures)).sum();

    // FAILED is recorded by the dead-letter recorder; wait until its
    // time-to-terminal observations are in, then read everything once.
    let scrape = app
        .eventually(
            "every order's time to terminal",
            Duration::from_secs(20),
            || async {
                let text = app.metrics_text().await;
                let scrape = exposition::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
                let done: f64 = scrape
                    .series("dofs_order_time_to_terminal_seconds_count")
                    .iter()
                    .map(|(_, v)| v)
                    .sum();
                (done == n).then_some(scrape)
            },
        )
        .await;

    let exact = |name: &str, labels: &[(&str, &str)], want: f64| {
        assert_eq!(
            scrape.get(name, labels),
            Some(want),
            "{name}{labels:?} (fulfilled {fulfilled}, failed {failed}, failed attempts {failures})"
        );
    };
    exact("dofs_orders_accepted_total", &[], n);
    exact(
        "dofs_orders_rejected_total",
        &[("reason", "ValidationError")],
        2.0,
    );
    exact(
        "dofs_orders_rejected_total",
        &[("reason", "MalformedJson")],
        1.0,
    );
    exact(
        "dofs_orders_rejected_total",
        &[("reason", "UnsupportedMediaType")],
        1.0,
    );
    assert_eq!(scrape.series("dofs_orders_rejected_total").len(), 3);
    exact("dofs_orders", &[("status", "PENDING")], 0.0);
    exact("dofs_orders", &[("status", "PROCESSING")], 0.0);
    exact("dofs_orders", &[("status", "FULFILLED")], fulfilled);
    exact("dofs_orders", &[("status", "FAILED")], failed);
    exact(
        "dofs_fulfillment_attempts_total",
        &[("outcome", "success")],
        fulfilled,
    );
    exact(
        "dofs_fulfillment_attempts_total",
        &[("outcome", "failure")],
        failures,
    );
    exact("dofs_queue_messages", &[("queue", "orders")], 0.0);
    exact("dofs_queue_messages", &[("queue", "dlq")], failed);
    exact(
        "dofs_queue_oldest_message_age_seconds",
        &[("queue", "orders")],
        0.0,
    );
    exact(
        "dofs_workflow_executions_total",
        &[("status", "SUCCEEDED")],
        n,
    );
    assert_eq!(scrape.series("dofs_workflow_executions_total").len(), 1);
    let post = |route: &'static str, status: &'static str| {
        [("method", "POST"), ("route", route), ("status", status)]
    };
    exact("dofs_http_requests_total", &post("/order", "202"), n + 1.0);
    exact("dofs_http_requests_total", &post("/order", "400"), 3.0);
    exact("dofs_http_requests_total", &post("/orders", "415"), 1.0);
    exact(
        "dofs_http_request_duration_seconds_count",
        &[("method", "POST"), ("route", "/order")],
        n + 4.0,
    );
    exact(
        "dofs_order_time_to_terminal_seconds_count",
        &[("status", "FULFILLED")],
        fulfilled,
    );
    exact(
        "dofs_order_time_to_terminal_seconds_count",
        &[("status", "FAILED")],
        failed,
    );
    for alert in [
        "dlq_depth",
        "fulfillment_failure_ratio",
        "api_5xx",
        "workflow_failures",
        "queue_message_age",
    ] {
        exact("dofs_alerts_firing", &[("alert", alert)], 0.0);
    }
    for (name, kind) in [
        ("dofs_orders_accepted_total", "counter"),
        ("dofs_orders", "gauge"),
        ("dofs_http_request_duration_seconds", "histogram"),
        ("dofs_order_time_to_terminal_seconds", "histogram"),
    ] {
        assert_eq!(
            scrape.types.get(name).map(String::as_str),
            Some(kind),
            "{name}"
        );
    }
    for (name, labels) in scrape.samples.keys() {
        for (k, v) in labels {
            assert!(
                OrderId::parse(v).is_err(),
                "{name} has an order id in label {k}: ids stay out of labels"
            );
        }
    }
}

/// A webhook receiver: every JSON body POSTed to it arrives on the channel.
async fn webhook_receiver() -> (String, mpsc::UnboundedReceiver<Value>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |axum::Json(body): axum::Json<Value>| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(body);
                axum::http::StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the webhook receiver");
    let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, rx)
}

/// Waits for the receiver's next notification about `alert`, skipping others.
async fn next_about(rx: &mut mpsc::UnboundedReceiver<Value>, alert: &str) -> Value {
    let wait = async {
        loop {
            let body = rx.recv().await.expect("the receiver is alive");
            if body["alert"] == alert {
                return body;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(30), wait)
        .await
        .unwrap_or_else(|_| panic!("no notification about {alert} within 30 s"))
}

async fn rule(app: &App, name: &str) -> Value {
    let (status, body) = app.get_json("/alerts").await;
    assert_eq!(status, 200);
    body["alerts"]
        .as_array()
        .expect("alerts")
        .iter()
        .find(|r| r["name"] == name)
        .cloned()
        .unwrap_or_else(|| panic!("no rule {name} in {body}"))
}

#[tokio::test]
async fn the_dlq_alert_fires_on_the_sixth_dead_letter_and_resolves_when_they_are_purged() {
    let (url, mut hook) = webhook_receiver().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut env = fast_env();
    env.extend([
        ("DOFS_FULFILLMENT_SUCCESS_RATE", "0".to_string()),
        ("DOFS_ALERTS_WEBHOOK_URL", url),
        ("DOFS_ALERTS_EVALUATION_INTERVAL_MS", "50".to_string()),
    ]);
    let app = App::spawn_on(dir.path(), &env);
    assert_eq!(rule(&app, "dlq_depth").await["state"], "ok");

    let mut ids = Vec::new();
    for _ in 0..5 {
        let r = app.post_order(&seed_order()).await;
        assert_eq!(r.status().as_u16(), 202);
        let body: Value = r.json().await.expect("json");
        ids.push(body["orderId"].as_str().expect("orderId").to_owned());
    }
    app.wait_all_terminal(&ids, Duration::from_secs(30)).await;
    // An evaluation has seen the five: the rule is still ok (5 is not above 5).
    let five = app
        .eventually(
            "an evaluation of 5 dead letters",
            Duration::from_secs(10),
            || async {
                let r = rule(&app, "dlq_depth").await;
                (r["value"] == 5.0).then_some(r)
            },
        )
        .await;
    assert_eq!(five["state"], "ok", "{five}");

    let r = app.post_order(&seed_order()).await;
    assert_eq!(r.status().as_u16(), 202);
    let firing = next_about(&mut hook, "dlq_depth").await;
    assert_eq!(firing["status"], "firing", "{firing}");
    assert_eq!(firing["value"], 6.0);
    assert_eq!(firing["threshold"], 5.0);
    assert_eq!(firing["environment"], "dev");
    let shown = rule(&app, "dlq_depth").await;
    assert_eq!(shown["state"], "firing");
    assert_eq!(
        shown["since"], firing["since"],
        "GET /alerts says since when"
    );
    let text = app.metrics_text().await;
    assert!(
        text.contains("dofs_alerts_firing{alert=\"dlq_depth\"} 1\n"),
        "{text}"
    );

    let (status, purged) = {
        let r = app
            .client
            .post(app.url("/dlq/purge"))
            .send()
            .await
            .expect("purge");
        (r.status().as_u16(), r.json::<Value>().await.expect("json"))
    };
    assert_eq!((status, purged["purged"].as_u64()), (200, Some(6)));
    let resolved = next_about(&mut hook, "dlq_depth").await;
    assert_eq!(resolved["status"], "resolved", "{resolved}");
    assert_eq!(resolved["value"], 0.0);
    assert_eq!(rule(&app, "dlq_depth").await["state"], "ok");
    let text = app.metrics_text().await;
    assert!(
        text.contains("dofs_alerts_firing{alert=\"dlq_depth\"} 0\n"),
        "{text}"
    );
}

#[tokio::test]
async fn the_dlq_alert_resolves_when_the_dead_letters_are_redriven() {
    let (url, mut hook) = webhook_receiver().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut env = fast_env();
    env.extend([
        ("DOFS_FULFILLMENT_SUCCESS_RATE", "0".to_string()),
        ("DOFS_ALERTS_DLQ_DEPTH_THRESHOLD", "1".to_string()),
        ("DOFS_ALERTS_WEBHOOK_URL", url),
        ("DOFS_ALERTS_EVALUATION_INTERVAL_MS", "50".to_string()),
        // One attempt each, and each takes 1.5 s: after the redrive the DLQ
        // stays empty while the new attempts run (they fail again, as
        // success_rate is 0, and the alert fires again afterwards).
        ("DOFS_QUEUE_MAX_RECEIVE_COUNT", "1".to_string()),
        ("DOFS_FULFILLMENT_DELAY_MS", "1500".to_string()),
    ]);
    let app = App::spawn_on(dir.path(), &env);
    let mut ids = Vec::new();
    for _ in 0..2 {
        let body: Value = app
            .post_order(&seed_order())
            .await
            .json()
            .await
            .expect("json");
        ids.push(body["orderId"].as_str().expect("orderId").to_owned());
    }
    let firing = next_about(&mut hook, "dlq_depth").await;
    assert_eq!(firing["status"], "firing", "{firing}");
    let r = app
        .client
        .post(app.url("/dlq/redrive"))
        .send()
        .await
        .expect("redrive");
    assert_eq!(r.status().as_u16(), 200);
    let resolved = next_about(&mut hook, "dlq_depth").await;
    assert_eq!(resolved["status"], "resolved", "{resolved}");
}

#[tokio::test]
async fn every_answer_carries_a_request_id_kept_from_the_client_or_generated() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = App::spawn_on(dir.path(), &fast_env());
    let given = app
        .client
        .get(app.url("/health"))
        .header("x-request-id", "client-chosen-42")
        .send()
        .await
        .expect("GET");
    assert_eq!(given.headers()["x-request-id"], "client-chosen-42");
    let mut generated = Vec::new();
    for path in ["/health", "/no-such-route", "/orders/not-an-id"] {
        let r = app.client.get(app.url(path)).send().await.expect("GET");
        let id = r.headers()["x-request-id"]
            .to_str()
            .expect("ascii")
            .to_owned();
        assert_eq!(id.len(), 36, "{path}: a UUID, got {id}");
        generated.push(id);
    }
    generated.dedup();
    assert_eq!(generated.len(), 3, "each request gets its own id");
}

#[tokio::test]
async fn json_logs_carry_the_request_id_order_id_and_execution_id_of_an_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("dofs.log");
    let mut env = fast_env();
    env.push(("DOFS_LOG_FORMAT", "json".to_string()));
    env.push(("DOFS_FULFILLMENT_SUCCESS_RATE", "1".to_string()));
    let data = dir.path().join("data");
    let mut app = App::spawn_logging(&data, &env, &log, "info,dofs_embedded=debug");
    let r = app
        .client
        .post(app.url("/order"))
        .header("x-request-id", "journey-7")
        .json(&seed_order())
        .send()
        .await
        .expect("POST");
    assert_eq!(r.headers()["x-request-id"], "journey-7");
    let body: Value = r.json().await.expect("json");
    let id = body["orderId"].as_str().expect("orderId").to_owned();
    let execution = body["executionArn"]
        .as_str()
        .and_then(|a| a.rsplit(':').next())
        .expect("execution id")
        .to_owned();
    app.wait_all_terminal(std::slice::from_ref(&id), Duration::from_secs(20))
        .await;
    app.terminate();

    let text = std::fs::read_to_string(&log).expect("read the log");
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}")))
        .collect();
    let about_order: Vec<&Value> = lines
        .iter()
        .filter(|l| l["orderId"] == id.as_str())
        .collect();
    let accepted = about_order
        .iter()
        .find(|l| l["message"] == "order accepted")
        .unwrap_or_else(|| panic!("no 'order accepted' line in\n{text}"));
    assert_eq!(accepted["executionId"], execution.as_str());
    assert_eq!(accepted["span"]["requestId"], "journey-7");
    assert_eq!(accepted["span"]["route"], "/order");
    let later: Vec<&&Value> = about_order
        .iter()
        .filter(|l| l["message"] != "order accepted")
        .collect();
    let attempt = later
        .iter()
        .find(|l| l["message"] == "fulfillment attempt")
        .unwrap_or_else(|| panic!("no worker line about the order in\n{text}"));
    assert_eq!(attempt["executionId"], execution.as_str());
    assert_eq!(attempt["span"]["name"], "attempt");
    assert_eq!(
        attempt["span"]["requestId"], "journey-7",
        "the worker's line carries the request that accepted the order"
    );
    assert_eq!(attempt["span"]["attempt"], 1);
    assert!(
        later.iter().all(|l| l["span"]["requestId"] == "journey-7"),
        "every line about the order carries its request id:\n{text}"
    );
    assert!(
        lines
            .iter()
            .all(|l| l["level"].is_string() && l["timestamp"].is_string()),
        "every line has a level and a timestamp"
    );
}
