//! What every client command shares: the target flags (`--endpoint`,
//! `--api-key`, `--timeout`, `--json`), one HTTP client, and [`CliError`],
//! which decides the exit code.

use crate::commands::format::parse_duration;
use clap::Args;
use reqwest::header::{HeaderMap, CONTENT_TYPE};
use reqwest::{Method, StatusCode, Url};
use serde_json::Value;
use std::process::ExitCode;
use std::time::Duration;

/// The embedded server's default address.
pub const DEFAULT_ENDPOINT: &str = "http://127.0.0.1:8080";

/// The header that carries an API key (CONTRACT.md section 4).
pub const API_KEY_HEADER: &str = "x-api-key";

/// The process exit codes, the same for every client command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// Done, every check passed.
    Ok = 0,
    /// The command or a check failed, or the server answered 4xx/5xx (other than 404).
    Failed = 1,
    /// Bad flags, a bad input file, a bad endpoint URL.
    Usage = 2,
    /// Nothing answered at the endpoint (connection refused, DNS, timeout).
    Unreachable = 3,
    /// The order, execution or route does not exist (HTTP 404).
    NotFound = 4,
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> ExitCode {
        ExitCode::from(e as u8)
    }
}

/// Where a command sends its requests and how it prints.
#[derive(Args, Clone, Debug)]
pub struct Target {
    /// Base URL of the deployment: the embedded server, or the API Gateway
    /// stage URL (https://{api}.execute-api.{region}.amazonaws.com/{env}).
    #[arg(long, env = "DOFS_ENDPOINT", default_value = DEFAULT_ENDPOINT, value_name = "URL")]
    pub endpoint: String,
    /// API key sent as x-api-key (an operator key for retry, redrive, purge).
    #[arg(long, env = "DOFS_API_KEY", hide_env_values = true, value_name = "KEY")]
    pub api_key: Option<String>,
    /// How long one request may take (e.g. 500ms, 30s, 2m).
    #[arg(long, default_value = "30s", value_parser = parse_duration, value_name = "DURATION")]
    pub timeout: Duration,
    /// Print JSON on stdout instead of human-readable text.
    #[arg(long)]
    pub json: bool,
}

/// A failed command, as the user sees it.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Exit 2: the command line or its input is wrong.
    #[error("{0}")]
    Usage(String),
    /// Exit 3: nothing answered.
    #[error("cannot reach {endpoint}: {reason}")]
    Unreachable { endpoint: String, reason: String },
    /// Exit 4 for 404, else 1: the server refused.
    #[error("{}", http_summary(*status, body))]
    Http { status: u16, body: Value },
    /// Exit 1: anything else that went wrong.
    #[error("{0}")]
    Failed(String),
}

impl CliError {
    /// The exit code this error ends the process with.
    pub fn exit(&self) -> Exit {
        match self {
            CliError::Usage(_) => Exit::Usage,
            CliError::Unreachable { .. } => Exit::Unreachable,
            CliError::Http { status: 404, .. } => Exit::NotFound,
            CliError::Http { .. } | CliError::Failed(_) => Exit::Failed,
        }
    }

    /// Prints the error on stderr, with every validation detail.
    pub fn report(&self, command: &str) {
        eprintln!("dofs {command}: {self}");
        if let CliError::Http { body, .. } = self {
            for d in body["details"].as_array().into_iter().flatten() {
                eprintln!(
                    "  - {}: {}",
                    d["field"].as_str().unwrap_or("?"),
                    d["message"].as_str().unwrap_or("?")
                );
            }
        }
    }
}

/// `404 NotFound: order ... not found`, or the status alone for a non-JSON body.
fn http_summary(status: u16, body: &Value) -> String {
    let reason = StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("");
    match (body["error"].as_str(), body["message"].as_str()) {
        (Some(name), Some(message)) => format!("HTTP {status} {name}: {message}"),
        (Some(name), None) => format!("HTTP {status} {name}"),
        // API Gateway's own errors: {"message": "Forbidden"}.
        (None, Some(message)) => format!("HTTP {status} {reason}: {message}"),
        (None, None) => format!("HTTP {status} {reason}"),
    }
}

/// One answered request: status, headers and the raw body.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: bytes::Bytes,
}

impl Reply {
    /// The body as JSON, or `Null` when it is not JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// A header's value as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Whether the response declares a JSON body.
    pub fn is_json(&self) -> bool {
        self.header(CONTENT_TYPE.as_str())
            .is_some_and(|v| v.starts_with("application/json"))
    }

    /// The body as JSON when the status is 2xx, else [`CliError::Http`].
    pub fn into_json(self) -> Result<Value, CliError> {
        if (200..300).contains(&self.status) {
            Ok(self.json())
        } else {
            Err(CliError::Http {
                status: self.status,
                body: self.json(),
            })
        }
    }
}

/// The deployment's HTTP API.
#[derive(Clone, Debug)]
pub struct Api {
    base: String,
    api_key: Option<String>,
    http: reqwest::Client,
}

impl Api {
    /// A client for `target`; a malformed endpoint is a usage error.
    pub fn new(target: &Target) -> Result<Api, CliError> {
        let base = normalize_endpoint(&target.endpoint)?;
        let http = reqwest::Client::builder()
            .timeout(target.timeout)
            .connect_timeout(target.timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("dofs/", env!("CARGO_PKG_VERSION")))
            // Let go of an idle connection before `dofs serve` closes it (after
            // 5 s): a request sent as the server closes fails half-way.
            .pool_idle_timeout(Duration::from_secs(2))
            .build()
            .map_err(|e| CliError::Failed(format!("cannot build the HTTP client: {e}")))?;
        Ok(Api {
            base,
            api_key: target.api_key.clone(),
            http,
        })
    }

    /// The endpoint without a trailing slash.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The API key, if one is configured.
    pub fn api_key(&self) -> Option<&str> {
        self.api_key.as_deref()
    }

    /// The full URL of `path` (which starts with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// A request to `path` with the API key set; send it with [`Api::send`].
    pub fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let builder = self.http.request(method, self.url(path));
        match &self.api_key {
            Some(key) => builder.header(API_KEY_HEADER, key),
            None => builder,
        }
    }

    /// Sends a request and reads the whole answer. Only a transport failure is
    /// an error: every status code is a [`Reply`].
    pub async fn send(&self, request: reqwest::RequestBuilder) -> Result<Reply, CliError> {
        let response = request.send().await.map_err(|e| self.transport(e))?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.bytes().await.map_err(|e| self.transport(e))?;
        Ok(Reply {
            status,
            headers,
            body,
        })
    }

    /// `GET path`, whatever the status.
    pub async fn get(&self, path: &str) -> Result<Reply, CliError> {
        self.send(self.request(Method::GET, path)).await
    }

    /// `GET path` as JSON; a non-2xx answer is [`CliError::Http`].
    pub async fn get_json(&self, path: &str) -> Result<Value, CliError> {
        self.get(path).await?.into_json()
    }

    /// `POST path` with a JSON body (sent exactly as given) and optional headers.
    pub async fn post_json(
        &self,
        path: &str,
        body: impl Into<reqwest::Body>,
        headers: &[(&str, &str)],
    ) -> Result<Reply, CliError> {
        let mut request = self
            .request(Method::POST, path)
            .header(CONTENT_TYPE, "application/json")
            .body(body);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        self.send(request).await
    }

    fn transport(&self, e: reqwest::Error) -> CliError {
        if e.is_connect() || e.is_timeout() {
            CliError::Unreachable {
                endpoint: self.base.clone(),
                reason: root_cause(&e),
            }
        } else {
            CliError::Failed(format!(
                "request to {} failed: {}",
                self.base,
                error_chain(&e)
            ))
        }
    }
}

/// An error and its causes on one line: reqwest's own message rarely says why.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

/// The innermost cause: for a refused connection, `Connection refused (os error 111)`
/// rather than reqwest's whole story; `timed out` for a timeout.
pub fn root_cause(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        return "no answer in time (--timeout)".into();
    }
    let mut cause: &dyn std::error::Error = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

/// Checks that the endpoint is an http(s) URL without query or fragment and
/// returns it without a trailing slash, so that paths can be appended.
pub fn normalize_endpoint(endpoint: &str) -> Result<String, CliError> {
    let url = Url::parse(endpoint.trim()).map_err(|e| {
        CliError::Usage(format!(
            "--endpoint {endpoint:?} is not a URL ({e}); expected e.g. {DEFAULT_ENDPOINT}"
        ))
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(CliError::Usage(format!(
            "--endpoint must be an http:// or https:// URL, not {endpoint:?}"
        )));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(CliError::Usage(format!(
            "--endpoint must not have a query or a fragment: {endpoint:?}"
        )));
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

/// Percent-encodes a path segment (an id or an ARN typed by the user).
pub fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Percent-encodes a query value.
pub fn encode_query(s: &str) -> String {
    encode_segment(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn endpoints_lose_their_trailing_slash_and_keep_their_stage() {
        assert_eq!(
            normalize_endpoint("http://127.0.0.1:8080/").expect("valid"),
            "http://127.0.0.1:8080"
        );
        assert_eq!(
            normalize_endpoint("https://abc.execute-api.eu-west-1.amazonaws.com/dev/")
                .expect("valid"),
            "https://abc.execute-api.eu-west-1.amazonaws.com/dev"
        );
    }

    #[test]
    fn an_endpoint_that_is_not_an_http_url_is_a_usage_error() {
        for bad in ["localhost:8080", "ftp://host/", "http://h/?a=1", ""] {
            let e = normalize_endpoint(bad).expect_err(bad);
            assert_eq!(e.exit(), Exit::Usage, "{bad}");
        }
    }

    #[test]
    fn a_404_exits_4_and_other_refusals_exit_1() {
        let not_found = CliError::Http {
            status: 404,
            body: json!({"error": "NotFound", "message": "order x not found"}),
        };
        assert_eq!(not_found.exit(), Exit::NotFound);
        assert_eq!(
            not_found.to_string(),
            "HTTP 404 NotFound: order x not found"
        );
        let conflict = CliError::Http {
            status: 409,
            body: Value::Null,
        };
        assert_eq!(conflict.exit(), Exit::Failed);
        assert_eq!(conflict.to_string(), "HTTP 409 Conflict");
    }

    #[test]
    fn arns_are_encoded_as_one_path_segment() {
        assert_eq!(
            encode_segment("arn:aws:states:x:1:execution:m:0193 a/b"),
            "arn%3Aaws%3Astates%3Ax%3A1%3Aexecution%3Am%3A0193%20a%2Fb"
        );
    }
}
