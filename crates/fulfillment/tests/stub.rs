//! The stub receiver end to end: the `http` backend signs, the stub verifies,
//! de-duplicates and answers, over real HTTP.

mod common;

use common::sample_order;
use dofs_core::{Fulfillment, Outcome};
use dofs_fulfillment::{serve_stub, HttpConfig, HttpFulfillment, Secret, StubConfig};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const OTHER_SECRET: &str = "whsec_c2VjcmV0LWtleS1vZi1zb21lb25lLWVsc2U=";

fn secret(text: &str) -> Secret {
    Secret::parse(text).expect("a valid secret")
}

/// A running stub; dropping it stops the server.
struct Stub {
    url: String,
    stop: Option<oneshot::Sender<()>>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Stub {
    async fn start(config: StubConfig) -> Stub {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}/", listener.local_addr().expect("addr"));
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(serve_stub(listener, config, async {
            let _ = stopped.await;
        }));
        Stub {
            url,
            stop: Some(stop),
            server,
        }
    }

    fn backend(&self, secret: Option<Secret>, timeout: Duration) -> HttpFulfillment {
        let mut config = HttpConfig::new(self.url.as_str());
        config.secret = secret;
        config.timeout = timeout;
        HttpFulfillment::new(config).expect("a valid configuration")
    }

    async fn stop(mut self) -> std::io::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.server)
            .await
            .expect("the server task does not panic")
    }
}

fn signed_stub() -> StubConfig {
    StubConfig {
        secret: Some(secret(SECRET)),
        ..StubConfig::default()
    }
}

fn reference_of(outcome: Outcome) -> String {
    match outcome {
        Outcome::Fulfilled { reference: Some(r) } => r,
        other => panic!("expected a fulfilled outcome with a reference, got {other:?}"),
    }
}

#[tokio::test]
async fn a_signed_attempt_is_fulfilled_and_a_repeat_gets_the_same_reference() {
    let stub = Stub::start(signed_stub()).await;
    let backend = stub.backend(Some(secret(SECRET)), Duration::from_secs(5));
    let order = sample_order();
    let first = reference_of(backend.attempt(&order, 1).await);
    assert!(first.starts_with("stub-"), "{first}");
    let again = reference_of(backend.attempt(&order, 2).await);
    assert_eq!(first, again);
    let other = reference_of(backend.attempt(&sample_order(), 1).await);
    assert_ne!(first, other);
    stub.stop().await.expect("a clean shutdown");
}

#[tokio::test]
async fn a_wrong_or_missing_signature_is_a_401_which_rejects_the_order() {
    let stub = Stub::start(signed_stub()).await;
    for key in [Some(secret(OTHER_SECRET)), None] {
        let outcome = stub
            .backend(key, Duration::from_secs(5))
            .attempt(&sample_order(), 1)
            .await;
        let Outcome::Rejected { reason } = outcome else {
            panic!("a 401 must reject, got {outcome:?}");
        };
        assert!(reason.starts_with("HTTP 401: {\"error\":"), "{reason}");
    }
    stub.stop().await.expect("a clean shutdown");
}

#[tokio::test]
async fn a_stub_that_never_succeeds_fails_every_attempt_with_a_503() {
    let stub = Stub::start(StubConfig {
        success_rate: 0.0,
        ..signed_stub()
    })
    .await;
    let backend = stub.backend(Some(secret(SECRET)), Duration::from_secs(5));
    let order = sample_order();
    for attempt in 1..=3 {
        assert_eq!(
            backend.attempt(&order, attempt).await,
            Outcome::Failed {
                detail: Some("HTTP 503".into()),
                retry_after: None
            }
        );
    }
    stub.stop().await.expect("a clean shutdown");
}

#[tokio::test]
async fn a_stub_slower_than_the_timeout_fails_the_attempt() {
    let stub = Stub::start(StubConfig {
        latency: Duration::from_millis(1500),
        ..StubConfig::default()
    })
    .await;
    let outcome = stub
        .backend(None, Duration::from_millis(200))
        .attempt(&sample_order(), 1)
        .await;
    assert_eq!(
        outcome,
        Outcome::Failed {
            detail: Some("timed out after 200 ms".into()),
            retry_after: None
        }
    );
}

#[tokio::test]
async fn a_body_that_is_not_json_gets_a_400() {
    let stub = Stub::start(StubConfig::default()).await;
    let response = reqwest::Client::new()
        .post(stub.url.as_str())
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .expect("an answer");
    assert_eq!(response.status().as_u16(), 400);
    let body: serde_json::Value = response.json().await.expect("a JSON error");
    assert!(body["error"].is_string(), "{body}");
    stub.stop().await.expect("a clean shutdown");
}
