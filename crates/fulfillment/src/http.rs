//! The `http` fulfillment backend (CONTRACT.md §7): each attempt `POST`s
//! the order to the user's own service and reads the answer as an
//! [`Outcome`].

use crate::poster::{ClientError, PostResult, Response, SignedPoster};
use crate::signature::Secret;
use dofs_core::{Fulfillment, Order, Outcome};
use std::time::Duration;

/// The longest `reference` a service may give, in characters; a longer one
/// is ignored.
pub const MAX_REFERENCE_CHARS: usize = 256;

/// `fulfillment.http.timeout_ms` when unset.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// `fulfillment.http.concurrency` when unset.
pub const DEFAULT_CONCURRENCY: usize = 64;

/// The settings of the `http` backend (`fulfillment.http.*`).
#[derive(Clone, Debug)]
pub struct HttpConfig {
    /// `fulfillment.http.url`: where attempts are posted (http or https).
    pub url: String,
    /// `fulfillment.http.secret`: signs every attempt when set.
    pub secret: Option<Secret>,
    /// `fulfillment.http.timeout_ms`: the longest one attempt may take.
    pub timeout: Duration,
    /// `fulfillment.http.concurrency`: attempts in flight at most.
    pub concurrency: usize,
}

impl HttpConfig {
    /// A configuration for `url` with no secret and the default timeout and
    /// concurrency.
    pub fn new(url: impl Into<String>) -> HttpConfig {
        HttpConfig {
            url: url.into(),
            secret: None,
            timeout: DEFAULT_TIMEOUT,
            concurrency: DEFAULT_CONCURRENCY,
        }
    }
}

/// A setting of the `http` backend that cannot work; the message names the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("fulfillment.http.url: `{url}` is not a URL: {reason}")]
    BadUrl { url: String, reason: String },
    #[error("fulfillment.http.url: `{url}` must be http or https, not `{scheme}`")]
    BadScheme { url: String, scheme: String },
    #[error("fulfillment.http.timeout_ms must be more than 0")]
    ZeroTimeout,
    #[error("fulfillment.http.concurrency must be at least 1")]
    ZeroConcurrency,
    #[error("fulfillment.http: {0}")]
    Client(#[from] ClientError),
}

/// Fulfills orders by posting them to the user's service.
///
/// Every attempt at an order carries the same `Idempotency-Key: {orderId}`,
/// so the service can recognise a retry; `webhook-id` is
/// `{orderId}.{attempt}`, unique per attempt. The body is the order as
/// `GET /orders/{id}` shows it plus `"attempt": n`.
#[derive(Debug)]
pub struct HttpFulfillment {
    url: reqwest::Url,
    poster: SignedPoster,
    concurrency: usize,
}

impl HttpFulfillment {
    /// Checks the configuration and builds the client. The URL must parse
    /// and be http or https, the timeout must be positive and the
    /// concurrency at least 1. `concurrency` is what
    /// [`Fulfillment::concurrency`] reports: the setting
    /// `fulfillment.http.concurrency`, [`DEFAULT_CONCURRENCY`] (64) unless
    /// configured.
    pub fn new(config: HttpConfig) -> Result<HttpFulfillment, ConfigError> {
        let url = reqwest::Url::parse(config.url.trim()).map_err(|e| ConfigError::BadUrl {
            url: config.url.clone(),
            reason: e.to_string(),
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(ConfigError::BadScheme {
                scheme: url.scheme().to_owned(),
                url: config.url,
            });
        }
        if config.timeout.is_zero() {
            return Err(ConfigError::ZeroTimeout);
        }
        if config.concurrency == 0 {
            return Err(ConfigError::ZeroConcurrency);
        }
        Ok(HttpFulfillment {
            url,
            poster: SignedPoster::new(config.secret, config.timeout)?,
            concurrency: config.concurrency,
        })
    }

    /// Where attempts are posted.
    pub fn url(&self) -> &reqwest::Url {
        &self.url
    }
}

#[async_trait::async_trait]
impl Fulfillment for HttpFulfillment {
    /// Posts attempt `attempt` at `order`; see [`classify`] for how the
    /// answer becomes an outcome.
    async fn attempt(&self, order: &Order, attempt: u32) -> Outcome {
        let order_id = order.id.to_string();
        let body = match attempt_body(order, attempt) {
            Ok(body) => body,
            Err(e) => {
                return Outcome::Failed {
                    detail: Some(format!("cannot encode the order: {e}")),
                    retry_after: None,
                }
            }
        };
        let msg_id = format!("{order_id}.{attempt}");
        let headers = [("Idempotency-Key", order_id.as_str())];
        let result = self.poster.post(&self.url, &msg_id, &headers, body).await;
        let outcome = classify(result);
        tracing::debug!(order_id, attempt, ?outcome, "http fulfillment attempt");
        outcome
    }

    fn concurrency(&self) -> usize {
        self.concurrency
    }
}

/// The request body: the order as `GET /orders/{id}` shows it, with `"attempt": n`.
pub fn attempt_body(order: &Order, attempt: u32) -> serde_json::Result<String> {
    serde_json::to_string(&dofs_wire::FulfillmentRequest {
        order: dofs_wire::Order::from(order),
        attempt,
    })
}

/// How an answer (or its absence) ends the attempt:
/// - 2xx: [`Outcome::Fulfilled`], with a JSON body's string `reference` of
///   at most [`MAX_REFERENCE_CHARS`] characters (anything else is ignored,
///   with a warning when a `reference` field was there but unusable);
/// - 3xx (redirects are not followed), 408, 429, 5xx, and every transport
///   failure: [`Outcome::Failed`] with the status or the failure as detail
///   and the `Retry-After` delay;
/// - any other 4xx (and anything below 200): [`Outcome::Rejected`] with
///   `HTTP {status}: {first 256 characters of the body}`.
pub fn classify(result: PostResult) -> Outcome {
    let response = match result {
        PostResult::Transport(e) => {
            return Outcome::Failed {
                detail: Some(e.to_string()),
                retry_after: None,
            }
        }
        PostResult::Response(r) => r,
    };
    match response.status {
        200..=299 => Outcome::Fulfilled {
            reference: reference(&response),
        },
        300..=399 => Outcome::Failed {
            detail: Some(format!(
                "HTTP {} (redirects are not followed)",
                response.status
            )),
            retry_after: response.retry_after,
        },
        408 | 429 | 500.. => Outcome::Failed {
            detail: Some(format!("HTTP {}", response.status)),
            retry_after: response.retry_after,
        },
        _ => Outcome::Rejected {
            reason: rejection(&response),
        },
    }
}

fn rejection(response: &Response) -> String {
    let head = response.head();
    if head.is_empty() {
        format!("HTTP {}", response.status)
    } else {
        format!("HTTP {}: {head}", response.status)
    }
}

/// A 2xx body's `reference`, when it is a string short enough to keep.
fn reference(response: &Response) -> Option<String> {
    let json: serde_json::Value = serde_json::from_str(&response.body).ok()?;
    match json.get("reference")? {
        serde_json::Value::String(s) if s.chars().count() <= MAX_REFERENCE_CHARS => Some(s.clone()),
        serde_json::Value::String(s) => {
            tracing::warn!(
                chars = s.chars().count(),
                "ignoring a fulfillment reference longer than {MAX_REFERENCE_CHARS} characters"
            );
            None
        }
        serde_json::Value::Null => None,
        other => {
            tracing::warn!(reference = %other, "ignoring a fulfillment reference that is not a string");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::poster::TransportError;

    fn answer(status: u16, body: &str) -> PostResult {
        PostResult::Response(Response {
            status,
            body: body.into(),
            retry_after: None,
        })
    }

    fn fulfilled(reference: Option<&str>) -> Outcome {
        Outcome::Fulfilled {
            reference: reference.map(str::to_owned),
        }
    }

    fn failed(detail: &str) -> Outcome {
        Outcome::Failed {
            detail: Some(detail.into()),
            retry_after: None,
        }
    }

    #[test]
    fn a_2xx_is_fulfilled_with_the_bodys_string_reference() {
        assert_eq!(
            classify(answer(200, r#"{"reference":"R-1"}"#)),
            fulfilled(Some("R-1"))
        );
        assert_eq!(
            classify(answer(201, r#"{"reference":"R-2","x":1}"#)),
            fulfilled(Some("R-2"))
        );
        assert_eq!(classify(answer(204, "")), fulfilled(None));
        assert_eq!(classify(answer(200, "ok")), fulfilled(None));
        assert_eq!(classify(answer(200, "[1,2]")), fulfilled(None));
    }

    #[test]
    fn a_reference_that_is_too_long_or_not_a_string_is_ignored() {
        let long = format!(r#"{{"reference":"{}"}}"#, "r".repeat(257));
        assert_eq!(classify(answer(200, &long)), fulfilled(None));
        let edge = "é".repeat(256);
        let at_limit = format!(r#"{{"reference":"{edge}"}}"#);
        assert_eq!(classify(answer(200, &at_limit)), fulfilled(Some(&edge)));
        assert_eq!(
            classify(answer(200, r#"{"reference":42}"#)),
            fulfilled(None)
        );
        assert_eq!(
            classify(answer(200, r#"{"reference":null}"#)),
            fulfilled(None)
        );
    }

    #[test]
    fn retryable_statuses_fail_the_attempt_with_their_retry_after() {
        for status in [408, 429, 500, 502, 503, 504, 599] {
            assert_eq!(
                classify(answer(status, "busy")),
                failed(&format!("HTTP {status}"))
            );
        }
        let r = classify(PostResult::Response(Response {
            status: 429,
            body: String::new(),
            retry_after: Some(Duration::from_secs(7)),
        }));
        assert_eq!(
            r,
            Outcome::Failed {
                detail: Some("HTTP 429".into()),
                retry_after: Some(Duration::from_secs(7))
            }
        );
    }

    #[test]
    fn a_redirect_is_a_failed_attempt() {
        assert_eq!(
            classify(answer(302, "")),
            failed("HTTP 302 (redirects are not followed)")
        );
    }

    #[test]
    fn other_4xx_reject_the_order_with_status_and_body_head() {
        let r = classify(answer(400, r#"{"error":"unknown product"}"#));
        assert_eq!(
            r,
            Outcome::Rejected {
                reason: r#"HTTP 400: {"error":"unknown product"}"#.into()
            }
        );
        assert_eq!(
            classify(answer(404, "")),
            Outcome::Rejected {
                reason: "HTTP 404".into()
            }
        );
        let Outcome::Rejected { reason } = classify(answer(422, &"x".repeat(1000))) else {
            panic!("422 must reject");
        };
        assert_eq!(reason, format!("HTTP 422: {}", "x".repeat(256)));
    }

    #[test]
    fn transport_failures_fail_the_attempt_with_their_text() {
        let timed_out = TransportError::TimedOut {
            after: Duration::from_millis(10_000),
        };
        assert_eq!(
            classify(PostResult::Transport(timed_out)),
            failed("timed out after 10000 ms")
        );
        assert_eq!(
            classify(PostResult::Transport(TransportError::Refused)),
            failed("connection refused")
        );
        assert_eq!(
            classify(PostResult::Transport(TransportError::Other("dns".into()))),
            failed("dns")
        );
    }

    #[test]
    fn the_configuration_is_checked_naming_the_key() {
        let err = |c: HttpConfig| HttpFulfillment::new(c).err().map(|e| e.to_string());
        let bad = err(HttpConfig::new("not a url")).unwrap_or_default();
        assert!(bad.starts_with("fulfillment.http.url:"), "{bad}");
        let ftp = err(HttpConfig::new("ftp://example.com/")).unwrap_or_default();
        assert!(
            ftp.contains("fulfillment.http.url") && ftp.contains("ftp"),
            "{ftp}"
        );
        let mut zero = HttpConfig::new("http://127.0.0.1:1/");
        zero.timeout = Duration::ZERO;
        assert!(err(zero)
            .unwrap_or_default()
            .contains("fulfillment.http.timeout_ms"));
        let mut none = HttpConfig::new("https://example.com/fulfill");
        none.concurrency = 0;
        assert!(err(none)
            .unwrap_or_default()
            .contains("fulfillment.http.concurrency"));
    }

    #[test]
    fn a_valid_configuration_reports_its_concurrency() {
        let f = HttpFulfillment::new(HttpConfig::new("https://example.com/fulfill"));
        assert_eq!(f.map(|f| f.concurrency()).ok(), Some(DEFAULT_CONCURRENCY));
    }
}
