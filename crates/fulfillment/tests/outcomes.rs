//! The `http` backend against real receivers: every class of answer, and
//! what every attempt carries.

mod common;

use common::{dead_url, hang_up_url, sample_order, spawn_receiver, unix_now, Reply};
use dofs_core::{Fulfillment, Outcome};
use dofs_fulfillment::{verify, HttpConfig, HttpFulfillment, Secret};
use std::time::Duration;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn backend(url: &str) -> HttpFulfillment {
    let mut config = HttpConfig::new(url);
    config.timeout = Duration::from_millis(200);
    HttpFulfillment::new(config).expect("a valid configuration")
}

async fn outcome_of(reply: Reply) -> Outcome {
    let receiver = spawn_receiver(reply).await;
    backend(&receiver.url).attempt(&sample_order(), 1).await
}

fn failed(detail: &str, retry_after: Option<Duration>) -> Outcome {
    Outcome::Failed {
        detail: Some(detail.into()),
        retry_after,
    }
}

#[tokio::test]
async fn a_200_with_a_reference_fulfills_with_that_reference() {
    let reply = Reply::status(200).body(r#"{"reference":"WH-778","eta":"tomorrow"}"#);
    assert_eq!(
        outcome_of(reply).await,
        Outcome::Fulfilled {
            reference: Some("WH-778".into())
        }
    );
}

#[tokio::test]
async fn a_200_with_no_body_fulfills_without_a_reference() {
    assert_eq!(
        outcome_of(Reply::status(200)).await,
        Outcome::Fulfilled { reference: None }
    );
}

#[tokio::test]
async fn a_201_fulfills() {
    let reply = Reply::status(201).body(r#"{"reference":"created-1"}"#);
    assert_eq!(
        outcome_of(reply).await,
        Outcome::Fulfilled {
            reference: Some("created-1".into())
        }
    );
}

#[tokio::test]
async fn a_400_rejects_with_the_status_and_the_body() {
    let reply = Reply::status(400).body(r#"{"error":"PROD-2001 is discontinued"}"#);
    assert_eq!(
        outcome_of(reply).await,
        Outcome::Rejected {
            reason: r#"HTTP 400: {"error":"PROD-2001 is discontinued"}"#.into()
        }
    );
}

#[tokio::test]
async fn a_404_rejects() {
    let reply = Reply::status(404).body("no such route");
    assert_eq!(
        outcome_of(reply).await,
        Outcome::Rejected {
            reason: "HTTP 404: no such route".into()
        }
    );
}

#[tokio::test]
async fn a_long_rejection_body_is_cut_to_256_characters() {
    let reply = Reply::status(422).body(&"ü".repeat(5000));
    let Outcome::Rejected { reason } = outcome_of(reply).await else {
        panic!("a 422 must reject");
    };
    assert_eq!(reason, format!("HTTP 422: {}", "ü".repeat(256)));
}

#[tokio::test]
async fn a_408_fails_the_attempt() {
    assert_eq!(
        outcome_of(Reply::status(408)).await,
        failed("HTTP 408", None)
    );
}

#[tokio::test]
async fn a_429_fails_the_attempt_and_passes_on_retry_after() {
    let reply = Reply::status(429).header("retry-after", "7");
    assert_eq!(
        outcome_of(reply).await,
        failed("HTTP 429", Some(Duration::from_secs(7)))
    );
}

#[tokio::test]
async fn a_500_and_a_503_fail_the_attempt() {
    assert_eq!(
        outcome_of(Reply::status(500)).await,
        failed("HTTP 500", None)
    );
    let reply = Reply::status(503).body(r#"{"error":"maintenance"}"#);
    assert_eq!(outcome_of(reply).await, failed("HTTP 503", None));
}

#[tokio::test]
async fn a_redirect_is_not_followed_and_fails_the_attempt() {
    let receiver = spawn_receiver(Reply::status(302).header("location", "/elsewhere")).await;
    let outcome = backend(&receiver.url).attempt(&sample_order(), 1).await;
    assert_eq!(
        outcome,
        failed("HTTP 302 (redirects are not followed)", None)
    );
    assert_eq!(receiver.received().len(), 1, "the redirect was followed");
}

#[tokio::test]
async fn a_receiver_slower_than_the_timeout_fails_the_attempt_as_timed_out() {
    let receiver = spawn_receiver(Reply::status(200).delay(Duration::from_secs(5))).await;
    let started = std::time::Instant::now();
    let outcome = backend(&receiver.url).attempt(&sample_order(), 1).await;
    assert_eq!(outcome, failed("timed out after 200 ms", None));
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_refused_connection_fails_the_attempt() {
    let outcome = backend(&dead_url()).attempt(&sample_order(), 1).await;
    assert_eq!(outcome, failed("connection refused", None));
}

#[tokio::test]
async fn a_connection_closed_without_an_answer_fails_the_attempt() {
    let outcome = backend(&hang_up_url().await)
        .attempt(&sample_order(), 1)
        .await;
    assert_eq!(outcome, failed("connection reset", None));
}

#[tokio::test]
async fn every_attempt_carries_the_order_the_same_key_and_a_verifiable_signature() {
    let receiver = spawn_receiver(Reply::status(503)).await;
    let secret = Secret::parse(SECRET).expect("valid");
    let mut config = HttpConfig::new(receiver.url.as_str());
    config.secret = Some(secret.clone());
    let backend = HttpFulfillment::new(config).expect("valid");
    let order = sample_order();
    for attempt in 1..=3 {
        backend.attempt(&order, attempt).await;
    }
    let received = receiver.received();
    assert_eq!(received.len(), 3);
    let order_id = order.id.to_string();
    for (n, request) in (1u32..).zip(&received) {
        assert_eq!(request.header("idempotency-key"), order_id);
        assert_eq!(request.header("webhook-id"), format!("{order_id}.{n}"));
        assert_eq!(request.header("content-type"), "application/json");
        assert!(request.header("user-agent").starts_with("dofs/"));
        let verified = verify(
            &secret,
            request.header("webhook-id"),
            request.header("webhook-timestamp"),
            request.header("webhook-signature"),
            &request.body,
            unix_now(),
        );
        assert_eq!(verified, Ok(()), "attempt {n}");
        let mut expected = serde_json::to_value(dofs_wire::Order::from(&order)).expect("JSON");
        expected["attempt"] = n.into();
        assert_eq!(request.json(), expected);
    }
}

#[tokio::test]
async fn without_a_secret_no_signature_is_sent() {
    let receiver = spawn_receiver(Reply::status(200)).await;
    backend(&receiver.url).attempt(&sample_order(), 1).await;
    let received = receiver.received();
    assert_eq!(received.len(), 1);
    assert!(received[0].headers.get("webhook-signature").is_none());
    assert!(received[0].headers.get("webhook-timestamp").is_some());
}
