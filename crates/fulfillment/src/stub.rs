//! A fulfillment service to start from: it answers the `http` backend the
//! way a real one should (verify the signature, de-duplicate by
//! `Idempotency-Key`, answer with a reference) and can be told to be slow
//! or to fail, to watch retries and backoff at work.

use crate::signature::{verify, Secret};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use serde_json::json;
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How the stub behaves.
#[derive(Clone, Debug)]
pub struct StubConfig {
    /// Probability, from 0 to 1, that a new order is fulfilled; otherwise
    /// the answer is 503.
    pub success_rate: f64,
    /// How long to wait before answering.
    pub latency: Duration,
    /// When set, requests without a valid Standard Webhooks signature get 401.
    pub secret: Option<Secret>,
}

impl Default for StubConfig {
    /// Always succeeds at once, checks no signature.
    fn default() -> Self {
        StubConfig {
            success_rate: 1.0,
            latency: Duration::ZERO,
            secret: None,
        }
    }
}

struct Stub {
    config: StubConfig,
    /// The reference given to each `Idempotency-Key` fulfilled so far.
    fulfilled: Mutex<HashMap<String, String>>,
}

/// Serves the stub on `listener` until `shutdown` completes, then lets the
/// requests in flight finish.
///
/// Every `POST`, at any path, is answered:
/// - 401 `{"error": ...}` when a secret is configured and the signature
///   headers are missing, stale or do not match;
/// - 400 `{"error": ...}` when the body is not JSON;
/// - after `latency`: 200 `{"reference": "stub-..."}`, the same reference
///   again for an `Idempotency-Key` already fulfilled; else, with
///   probability `1 - success_rate`, 503 `{"error": ...}`.
///
/// Other methods get 405. One log line is written per request.
pub async fn serve_stub(
    listener: tokio::net::TcpListener,
    config: StubConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(config))
        .with_graceful_shutdown(shutdown)
        .await
}

/// The stub's routes, for serving elsewhere or testing in process.
pub fn router(config: StubConfig) -> Router {
    let stub = Arc::new(Stub {
        config,
        fulfilled: Mutex::new(HashMap::new()),
    });
    Router::new().fallback(handle).with_state(stub)
}

async fn handle(
    State(stub): State<Arc<Stub>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let started = Instant::now();
    let key = header(&headers, "idempotency-key").map(str::to_owned);
    let (status, answer) = stub.answer(&method, &headers, &body, key.as_deref()).await;
    tracing::info!(
        method = %method,
        path = uri.path(),
        idempotency_key = key.as_deref().unwrap_or("-"),
        webhook_id = header(&headers, "webhook-id").unwrap_or("-"),
        status = status.as_u16(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "fulfillment stub request"
    );
    let mut response = (status, Json(answer)).into_response();
    if status == StatusCode::METHOD_NOT_ALLOWED {
        let allow = axum::http::HeaderValue::from_static("POST");
        response
            .headers_mut()
            .insert(axum::http::header::ALLOW, allow);
    }
    response
}

impl Stub {
    async fn answer(
        &self,
        method: &Method,
        headers: &HeaderMap,
        body: &[u8],
        key: Option<&str>,
    ) -> (StatusCode, serde_json::Value) {
        if method != Method::POST {
            return error(StatusCode::METHOD_NOT_ALLOWED, "only POST is served");
        }
        if let Some(secret) = &self.config.secret {
            if let Err(why) = check_signature(secret, headers, body) {
                return error(StatusCode::UNAUTHORIZED, &why);
            }
        }
        if let Err(e) = serde_json::from_slice::<serde_json::Value>(body) {
            return error(
                StatusCode::BAD_REQUEST,
                &format!("the body is not JSON: {e}"),
            );
        }
        if !self.config.latency.is_zero() {
            tokio::time::sleep(self.config.latency).await;
        }
        let mut fulfilled = match self.fulfilled.lock() {
            Ok(map) => map,
            // A panic elsewhere cannot leave the map half-written: keep going.
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(reference) = key.and_then(|k| fulfilled.get(k)) {
            return (StatusCode::OK, json!({ "reference": reference }));
        }
        if fastrand::f64() >= self.config.success_rate {
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                &format!(
                    "simulated failure (success rate {})",
                    self.config.success_rate
                ),
            );
        }
        let reference = format!("stub-{}", uuid::Uuid::now_v7().simple());
        if let Some(k) = key {
            fulfilled.insert(k.to_owned(), reference.clone());
        }
        (StatusCode::OK, json!({ "reference": reference }))
    }
}

fn error(status: StatusCode, message: &str) -> (StatusCode, serde_json::Value) {
    (status, json!({ "error": message }))
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Verifies the Standard Webhooks headers, saying what was wrong.
fn check_signature(secret: &Secret, headers: &HeaderMap, body: &[u8]) -> Result<(), String> {
    let get = |name: &str| header(headers, name).ok_or(format!("missing {name} header"));
    let id = get("webhook-id")?;
    let timestamp = get("webhook-timestamp")?;
    let signature = get("webhook-signature")?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    verify(secret, id, timestamp, signature, body, now).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signature::sign;

    fn stub(config: StubConfig) -> Stub {
        Stub {
            config,
            fulfilled: Mutex::new(HashMap::new()),
        }
    }

    fn secret() -> Secret {
        Secret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").expect("valid secret")
    }

    fn signed(id: &str, body: &[u8]) -> HeaderMap {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or_default();
        let mut h = HeaderMap::new();
        h.insert("webhook-id", id.parse().expect("ascii"));
        h.insert("webhook-timestamp", now.to_string().parse().expect("ascii"));
        let sig = sign(&secret(), id, now, body);
        h.insert("webhook-signature", sig.parse().expect("ascii"));
        h
    }

    #[tokio::test]
    async fn the_same_key_gets_the_same_reference_and_new_keys_new_ones() {
        let s = stub(StubConfig::default());
        let h = HeaderMap::new();
        let (status, first) = s.answer(&Method::POST, &h, b"{}", Some("o-1")).await;
        assert_eq!(status, StatusCode::OK);
        let (_, again) = s.answer(&Method::POST, &h, b"{}", Some("o-1")).await;
        let (_, other) = s.answer(&Method::POST, &h, b"{}", Some("o-2")).await;
        assert_eq!(first, again);
        assert_ne!(first, other);
        assert!(first["reference"]
            .as_str()
            .is_some_and(|r| r.starts_with("stub-")));
    }

    #[tokio::test]
    async fn a_zero_success_rate_answers_503_but_a_fulfilled_key_still_gets_its_reference() {
        let s = stub(StubConfig::default());
        let h = HeaderMap::new();
        let (_, first) = s.answer(&Method::POST, &h, b"{}", Some("o-1")).await;
        let s = Stub {
            config: StubConfig {
                success_rate: 0.0,
                ..StubConfig::default()
            },
            fulfilled: s.fulfilled,
        };
        let (status, body) = s.answer(&Method::POST, &h, b"{}", Some("o-2")).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body["error"].is_string());
        let (status, again) = s.answer(&Method::POST, &h, b"{}", Some("o-1")).await;
        assert_eq!((status, again), (StatusCode::OK, first));
    }

    #[tokio::test]
    async fn a_body_that_is_not_json_is_a_400() {
        let s = stub(StubConfig::default());
        let (status, body) = s
            .answer(&Method::POST, &HeaderMap::new(), b"{nope", None)
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(body["error"].is_string());
    }

    #[tokio::test]
    async fn only_post_is_served() {
        let s = stub(StubConfig::default());
        let (status, _) = s.answer(&Method::GET, &HeaderMap::new(), b"", None).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    }

    #[tokio::test]
    async fn with_a_secret_only_correctly_signed_requests_pass() {
        let s = stub(StubConfig {
            secret: Some(secret()),
            ..StubConfig::default()
        });
        let body = br#"{"orderId":"o-1"}"#;
        let ok = s
            .answer(&Method::POST, &signed("o-1.1", body), body, None)
            .await;
        assert_eq!(ok.0, StatusCode::OK);
        let tampered = s
            .answer(&Method::POST, &signed("o-1.1", b"{}"), body, None)
            .await;
        assert_eq!(tampered.0, StatusCode::UNAUTHORIZED);
        let (status, why) = s.answer(&Method::POST, &HeaderMap::new(), body, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(why["error"], "missing webhook-id header");
    }
}
