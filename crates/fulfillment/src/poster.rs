//! A signed JSON `POST`, shared by the `http` fulfillment backend and event
//! webhooks: one pooled client, Standard Webhooks headers, and a result that
//! says what the receiver answered or why nothing was answered.

use crate::signature::{sign, Secret};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE, RETRY_AFTER};
use std::error::Error as _;
use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How many characters of a response body [`Response::head`] keeps.
pub const BODY_HEAD_CHARS: usize = 256;

/// How much of a response body is read at most; the rest is dropped unread.
pub const BODY_LIMIT_BYTES: usize = 64 * 1024;

/// The longest a new connection may take to open, within the total timeout.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long an idle pooled connection is kept for reuse.
const POOL_IDLE: Duration = Duration::from_secs(90);

/// Posts JSON bodies, signed when a secret is set.
///
/// One client is shared by every call: connections are pooled and kept
/// alive, redirects are never followed (a 3xx is returned as it is), and
/// each request, body included, is bounded by the timeout.
#[derive(Clone, Debug)]
pub struct SignedPoster {
    client: reqwest::Client,
    secret: Option<Secret>,
    timeout: Duration,
}

/// The HTTP client could not be built (the TLS backend failed to start).
#[derive(Debug, thiserror::Error)]
#[error("cannot build the HTTP client: {0}")]
pub struct ClientError(String);

/// What one `POST` came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PostResult {
    /// The receiver answered, with any status.
    Response(Response),
    /// No answer: the request could not be sent or the answer did not come.
    Transport(TransportError),
}

/// A receiver's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    /// The body as text (invalid UTF-8 replaced), at most [`BODY_LIMIT_BYTES`]
    /// of it; a body cut short by a failure while reading is kept as read.
    pub body: String,
    /// The `Retry-After` header, as seconds or an HTTP date turned into a
    /// delay from now (zero for a date already past); `None` when absent or
    /// unreadable.
    pub retry_after: Option<Duration>,
}

impl Response {
    /// The first [`BODY_HEAD_CHARS`] characters of the body.
    pub fn head(&self) -> &str {
        match self.body.char_indices().nth(BODY_HEAD_CHARS) {
            Some((end, _)) => &self.body[..end],
            None => &self.body,
        }
    }
}

/// Why no answer came back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TransportError {
    /// The whole request took longer than the timeout.
    TimedOut { after: Duration },
    /// Nothing listens at the address.
    Refused,
    /// The receiver closed or reset the connection before answering.
    Reset,
    /// Anything else (DNS, TLS, a malformed answer), as text.
    Other(String),
}

impl fmt::Display for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TransportError::TimedOut { after } => {
                write!(f, "timed out after {} ms", after.as_millis())
            }
            TransportError::Refused => f.write_str("connection refused"),
            TransportError::Reset => f.write_str("connection reset"),
            TransportError::Other(text) => f.write_str(text),
        }
    }
}

impl SignedPoster {
    /// A poster whose requests each take at most `timeout`, signed with
    /// `secret` when one is given.
    pub fn new(secret: Option<Secret>, timeout: Duration) -> Result<SignedPoster, ClientError> {
        let client = reqwest::Client::builder()
            .user_agent(concat!("dofs/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(timeout.min(CONNECT_TIMEOUT))
            .timeout(timeout)
            .pool_idle_timeout(POOL_IDLE)
            .tcp_keepalive(POOL_IDLE)
            .tcp_nodelay(true)
            .build()
            .map_err(|e| ClientError(e.to_string()))?;
        Ok(SignedPoster {
            client,
            secret,
            timeout,
        })
    }

    /// The timeout each request is bounded by.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Posts `body` to `url` with `Content-Type: application/json`,
    /// `webhook-id: {msg_id}`, `webhook-timestamp` (now, unix seconds),
    /// `webhook-signature` when a secret is set, and `extra_headers`
    /// (invalid names or values among them are skipped with a warning).
    /// Never panics; every failure is a [`PostResult::Transport`].
    pub async fn post(
        &self,
        url: &reqwest::Url,
        msg_id: &str,
        extra_headers: &[(&str, &str)],
        body: String,
    ) -> PostResult {
        let timestamp = unix_now();
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        let mut add = |name: &str, value: &str| match (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            (Ok(n), Ok(v)) => {
                headers.insert(n, v);
            }
            _ => tracing::warn!(header = name, "skipping a header that is not valid HTTP"),
        };
        add("webhook-id", msg_id);
        add("webhook-timestamp", &timestamp.to_string());
        if let Some(secret) = &self.secret {
            add(
                "webhook-signature",
                &sign(secret, msg_id, timestamp, body.as_bytes()),
            );
        }
        for (name, value) in extra_headers {
            add(name, value);
        }
        let sent = self
            .client
            .post(url.clone())
            .headers(headers)
            .body(body)
            .send()
            .await;
        match sent {
            Ok(response) => PostResult::Response(self.read(response).await),
            Err(e) => PostResult::Transport(self.transport_error(&e)),
        }
    }

    /// The status, `Retry-After` and up to [`BODY_LIMIT_BYTES`] of the body.
    async fn read(&self, mut response: reqwest::Response) -> Response {
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, SystemTime::now()));
        let mut bytes = Vec::new();
        while bytes.len() < BODY_LIMIT_BYTES {
            match response.chunk().await {
                Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
                Ok(None) => break,
                Err(e) => {
                    tracing::debug!(error = %e, status, "response body cut short");
                    break;
                }
            }
        }
        bytes.truncate(BODY_LIMIT_BYTES);
        Response {
            status,
            body: String::from_utf8_lossy(&bytes).into_owned(),
            retry_after,
        }
    }

    fn transport_error(&self, e: &reqwest::Error) -> TransportError {
        if e.is_timeout() {
            return TransportError::TimedOut {
                after: self.timeout,
            };
        }
        let mut source = e.source();
        while let Some(cause) = source {
            if let Some(h) = cause.downcast_ref::<hyper::Error>() {
                if h.is_incomplete_message() {
                    return TransportError::Reset;
                }
            }
            if let Some(io) = cause.downcast_ref::<std::io::Error>() {
                match io.kind() {
                    std::io::ErrorKind::ConnectionRefused => return TransportError::Refused,
                    std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::ConnectionAborted
                    | std::io::ErrorKind::BrokenPipe
                    | std::io::ErrorKind::UnexpectedEof => return TransportError::Reset,
                    std::io::ErrorKind::TimedOut => {
                        return TransportError::TimedOut {
                            after: self.timeout,
                        }
                    }
                    _ => {}
                }
            }
            source = cause.source();
        }
        TransportError::Other(error_chain(e))
    }
}

/// An error and its causes, `: `-separated (reqwest's own text is terse).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let more = cause.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = cause.source();
    }
    text
}

/// Seconds since the Unix epoch (0 for a clock set before 1970).
fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// A `Retry-After` value as a delay from `now`: delta seconds (`120`) or an
/// HTTP date (`Wed, 21 Oct 2015 07:28:00 GMT`); `None` for anything else.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_delta_seconds() {
        let now = SystemTime::now();
        assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
    }

    #[test]
    fn retry_after_reads_an_http_date_as_the_delay_until_it() {
        let now = UNIX_EPOCH + Duration::from_secs(1_445_412_400); // 07:26:40 GMT
        let r = parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now);
        assert_eq!(r, Some(Duration::from_secs(80)));
    }

    #[test]
    fn retry_after_in_the_past_is_zero() {
        let now = UNIX_EPOCH + Duration::from_secs(1_445_500_000);
        let r = parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now);
        assert_eq!(r, Some(Duration::ZERO));
    }

    #[test]
    fn unreadable_retry_after_is_ignored() {
        let now = SystemTime::now();
        for v in ["", "-5", "1.5", "soon", "Wed, 21 Oct 2015"] {
            assert_eq!(parse_retry_after(v, now), None, "{v:?}");
        }
    }

    #[test]
    fn the_head_is_the_first_256_characters_not_bytes() {
        let body: String = "é".repeat(300);
        let r = Response {
            status: 400,
            body,
            retry_after: None,
        };
        assert_eq!(r.head().chars().count(), 256);
        let short = Response {
            status: 400,
            body: "nope".into(),
            retry_after: None,
        };
        assert_eq!(short.head(), "nope");
    }

    #[test]
    fn transport_errors_read_as_the_contract_words_them() {
        let t = TransportError::TimedOut {
            after: Duration::from_millis(10_000),
        };
        assert_eq!(t.to_string(), "timed out after 10000 ms");
        assert_eq!(TransportError::Refused.to_string(), "connection refused");
        assert_eq!(TransportError::Reset.to_string(), "connection reset");
    }
}
