//! Tests of the alert rules, their bookkeeping and the webhook delivery.

use super::*;

fn config() -> AlertConfig {
    AlertConfig {
        window: Duration::from_secs(60),
        ..AlertConfig::default()
    }
}

fn at(seconds: i64) -> Timestamp {
    Timestamp(1_000_000 + seconds * 1000)
}

fn sample(seconds: i64, dlq: u64) -> Sample {
    Sample {
        at: at(seconds),
        queue: Some(QueueSample {
            dlq_depth: dlq,
            oldest_age_ms: None,
        }),
        ..Sample::zero(at(0))
    }
}

fn state_of(alerts: &Alerts, name: &str) -> RuleStatus {
    alerts
        .rules()
        .into_iter()
        .find(|r| r.name == name)
        .expect("rule exists")
}

#[test]
fn the_dlq_rule_fires_above_the_threshold_and_resolves_at_or_below_it() {
    let alerts = Alerts::new(config(), at(0));
    assert!(alerts.evaluate(sample(1, 5)).is_empty(), "5 is not above 5");
    let changes = alerts.evaluate(sample(2, 6));
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].rule.name, DLQ_DEPTH);
    assert_eq!(changes[0].status(), "firing");
    assert_eq!(state_of(&alerts, DLQ_DEPTH).since, at(2));
    assert!(
        alerts.evaluate(sample(3, 9)).is_empty(),
        "still firing: no new change"
    );
    assert_eq!(state_of(&alerts, DLQ_DEPTH).since, at(2));
    let changes = alerts.evaluate(sample(4, 0));
    assert_eq!(changes[0].status(), "resolved");
    assert_eq!(state_of(&alerts, DLQ_DEPTH).state, AlertState::Ok);
}

#[test]
fn a_sample_without_the_queue_keeps_the_queue_rules_as_they_were() {
    let alerts = Alerts::new(config(), at(0));
    alerts.evaluate(sample(1, 7));
    let blind = Sample {
        at: at(2),
        ..Sample::zero(at(0))
    };
    assert!(alerts.evaluate(blind).is_empty());
    assert_eq!(state_of(&alerts, DLQ_DEPTH).state, AlertState::Firing);
}

#[test]
fn the_failure_ratio_counts_only_attempts_inside_the_window() {
    let alerts = Alerts::new(config(), at(0));
    let attempts = |s: i64, ok: u64, failed: u64| Sample {
        at: at(s),
        attempts_succeeded: ok,
        attempts_failed: failed,
        ..Sample::zero(at(0))
    };
    assert!(
        alerts.evaluate(attempts(1, 0, 9)).is_empty(),
        "too few attempts"
    );
    let changes = alerts.evaluate(attempts(2, 0, 12));
    assert_eq!(changes[0].rule.name, FAILURE_RATIO);
    assert_eq!(changes[0].rule.value, Some(1.0));
    alerts.evaluate(attempts(30, 100, 12));
    assert_eq!(state_of(&alerts, FAILURE_RATIO).state, AlertState::Ok);
    // At 95 s the window starts at 35 s: the baseline is the sample of 30 s,
    // so the 140 failures since then are all the attempts in the window.
    let changes = alerts.evaluate(attempts(95, 100, 152));
    assert_eq!(state_of(&alerts, FAILURE_RATIO).state, AlertState::Firing);
    assert_eq!(changes.len(), 1);
    let value = state_of(&alerts, FAILURE_RATIO).value.unwrap_or(0.0);
    assert!((value - 140.0 / 140.0).abs() < 1e-9, "{value}");
}

#[test]
fn a_5xx_fires_the_api_rule_until_the_window_has_passed_without_one() {
    let alerts = Alerts::new(config(), at(0));
    let errors = |s: i64, n: u64| Sample {
        at: at(s),
        http_5xx: n,
        ..Sample::zero(at(0))
    };
    assert_eq!(alerts.evaluate(errors(1, 1))[0].status(), "firing");
    assert!(alerts.evaluate(errors(30, 1)).is_empty());
    assert!(alerts.evaluate(errors(60, 1)).is_empty(), "still inside");
    let changes = alerts.evaluate(errors(61, 1));
    assert_eq!(changes[0].rule.name, API_5XX);
    assert_eq!(changes[0].status(), "resolved");
}

#[test]
fn the_queue_age_rule_compares_seconds_with_the_bound() {
    let alerts = Alerts::new(config(), at(0));
    let aged = |ms: Option<i64>| Sample {
        at: at(1),
        queue: Some(QueueSample {
            dlq_depth: 0,
            oldest_age_ms: ms,
        }),
        ..Sample::zero(at(0))
    };
    assert!(alerts.evaluate(aged(Some(300_000))).is_empty());
    assert_eq!(alerts.evaluate(aged(Some(300_001)))[0].rule.name, QUEUE_AGE);
    assert_eq!(alerts.evaluate(aged(None))[0].status(), "resolved");
}

#[test]
fn a_notification_names_the_rule_its_status_and_since_when() {
    let alerts = Alerts::new(config(), at(0));
    let change = alerts.evaluate(sample(3, 8)).remove(0);
    let body = change.payload("staging", at(4));
    assert_eq!(body["alert"], "dlq_depth");
    assert_eq!(body["status"], "firing");
    assert_eq!(body["since"], at(3).to_string());
    assert_eq!(body["value"], 8.0);
    assert_eq!(body["threshold"], 5.0);
    assert_eq!(body["environment"], "staging");
}

#[test]
fn retries_back_off_exponentially_up_to_the_maximum() {
    let p = RetryPolicy {
        attempts: 10,
        base: Duration::from_millis(500),
        max: Duration::from_secs(3),
        timeout: Duration::from_secs(1),
    };
    let delays: Vec<u128> = (1..=5).map(|a| p.delay_after(a).as_millis()).collect();
    assert_eq!(delays, [500, 1000, 2000, 3000, 3000]);
}

#[tokio::test]
async fn a_notification_is_retried_until_the_receiver_accepts_it() {
    use axum::http::StatusCode;
    use axum::routing::post;
    use std::sync::atomic::{AtomicU32, Ordering};
    let calls = Arc::new(AtomicU32::new(0));
    let seen = Arc::clone(&calls);
    let app = axum::Router::new().route(
        "/hook",
        post(move || {
            let seen = Arc::clone(&seen);
            async move {
                if seen.fetch_add(1, Ordering::SeqCst) < 2 {
                    StatusCode::SERVICE_UNAVAILABLE
                } else {
                    StatusCode::NO_CONTENT
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    let policy = RetryPolicy {
        attempts: 4,
        base: Duration::from_millis(1),
        max: Duration::from_millis(5),
        timeout: Duration::from_secs(5),
    };
    let delivered = deliver(
        &reqwest::Client::new(),
        &url,
        &json!({"alert": "x"}),
        policy,
    )
    .await;
    assert!(delivered);
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn a_notification_to_a_dead_receiver_is_given_up_after_the_last_try() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
    drop(listener);
    let policy = RetryPolicy {
        attempts: 2,
        base: Duration::from_millis(1),
        max: Duration::from_millis(1),
        timeout: Duration::from_secs(2),
    };
    assert!(!deliver(&reqwest::Client::new(), &url, &json!({}), policy).await);
}
