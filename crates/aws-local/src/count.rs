//! Counting what the AWS shape asks of AWS (`--count-calls`), for
//! `bench/aws-calls.sh`: every AWS API call, by caller, service and action;
//! every Lambda invocation, by function; every Step Functions state
//! transition.
//!
//! The calls are counted by [`forward`]ers: one plain HTTP forwarder per
//! caller (each function, the SQS event source, the Step Functions SQS
//! integration) between its SDK clients and the emulator. The caller's
//! `AWS_ENDPOINT_URL` (and `AWS_ENDPOINT_URL_SFN`) is its forwarder, which
//! passes every request on unchanged, to moto or, for Step Functions, to
//! this stack, and the response back unchanged. A call is named as AWS bills
//! it ([`classify`]): the service from the signature's credential scope, the
//! action from `X-Amz-Target` (JSON protocols), the path of an RPC v2 CBOR
//! request, or the `Action` parameter (query protocol). An SDK's own retry
//! is a second call, as on AWS.
//!
//! Invocations are counted by the [`crate::lambda::Invoker`] (every caller
//! of a function goes through it) and state transitions (`...StateEntered`
//! history events, what Step Functions Standard bills and throttles) by
//! [`crate::sfn`]. `GET /local/counts` on the stack's internal port answers
//! them all as JSON ([`Counts::snapshot`]).

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// The largest request body forwarded (DynamoDB's batch writes stay far below).
const MAX_BODY: usize = 64 * 1024 * 1024;

/// What was counted since the stack started.
#[derive(Default)]
pub struct Counts {
    /// (caller, service, action) → calls.
    calls: Mutex<BTreeMap<(String, String, String), u64>>,
    /// Function name → invocations.
    invocations: Mutex<BTreeMap<String, u64>>,
    transitions: AtomicU64,
}

impl Counts {
    fn call(&self, caller: &str, service: String, action: String) {
        let mut calls = self.calls.lock().unwrap_or_else(PoisonError::into_inner);
        *calls
            .entry((caller.to_owned(), service, action))
            .or_default() += 1;
    }

    /// Counts one invocation of `function`.
    pub fn invocation(&self, function: &str) {
        let mut inv = self
            .invocations
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        *inv.entry(function.to_owned()).or_default() += 1;
    }

    /// Counts one state transition of an execution.
    pub fn transition(&self) {
        self.transitions.fetch_add(1, Ordering::Relaxed);
    }

    /// Everything counted so far:
    /// `{"calls": [{caller, service, action, count}], "invocations":
    /// [{function, count}], "stateTransitions": n}`.
    pub fn snapshot(&self) -> Value {
        let calls: Vec<Value> = self
            .calls
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|((caller, service, action), count)| {
                json!({"caller": caller, "service": service, "action": action, "count": count})
            })
            .collect();
        let invocations: Vec<Value> = self
            .invocations
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(function, count)| json!({"function": function, "count": count}))
            .collect();
        json!({
            "calls": calls,
            "invocations": invocations,
            "stateTransitions": self.transitions.load(Ordering::Relaxed),
        })
    }
}

/// `GET /local/counts`.
pub async fn serve(State(counts): State<Arc<Counts>>) -> axum::Json<Value> {
    axum::Json(counts.snapshot())
}

/// The service a request is signed for: the fourth part of the SigV4
/// credential scope (`Credential=AKID/DATE/REGION/SERVICE/aws4_request`).
fn signed_service(headers: &HeaderMap) -> Option<String> {
    let auth = headers.get("authorization")?.to_str().ok()?;
    let scope = auth.split("Credential=").nth(1)?;
    let scope = scope.split([',', ' ']).next()?;
    scope.split('/').nth(3).map(str::to_owned)
}

/// The `Action` parameter of a query-protocol request (URL or form body).
fn action_param(text: &str) -> Option<String> {
    text.split('&')
        .find_map(|pair| pair.strip_prefix("Action="))
        .map(str::to_owned)
}

/// A call's service and action, as AWS names them.
pub fn classify(headers: &HeaderMap, uri: &Uri, method: &str, body: &[u8]) -> (String, String) {
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .filter(|t| !t.is_empty());
    let service = signed_service(headers)
        .or_else(|| {
            target
                .filter(|t| t.starts_with("AWSStepFunctions."))
                .map(|_| "states".to_owned())
        })
        .unwrap_or_else(|| "unknown".to_owned());
    let path = uri.path();
    let action = if let Some(t) = target {
        t.rsplit('.').next().unwrap_or(t).to_owned()
    } else if let Some((_, op)) = path.split_once("/operation/") {
        // RPC v2 CBOR: /service/{Service}/operation/{Operation}
        op.to_owned()
    } else if let Some(a) = uri.query().and_then(action_param) {
        a
    } else if let Some(a) = std::str::from_utf8(body).ok().and_then(action_param) {
        a
    } else {
        format!("{method} {path}")
    };
    (service, action)
}

/// One caller's forwarder.
#[derive(Clone)]
pub struct Forwarder {
    /// Who calls through it (a function's binary name, `event-source`, ...).
    pub caller: String,
    /// The emulator (moto).
    pub upstream: String,
    /// Where Step Functions calls go (this stack's internal port).
    pub states: String,
    pub counts: Arc<Counts>,
    pub client: reqwest::Client,
}

fn hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "host" | "connection" | "keep-alive" | "transfer-encoding" | "content-length" | "upgrade"
    )
}

/// The headers to pass on: all but the connection's own.
fn end_to_end(headers: &HeaderMap) -> HeaderMap {
    headers
        .iter()
        .filter(|(name, _)| !hop_by_hop(name))
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect()
}

/// Counts the request, passes it on unchanged and answers what came back.
pub async fn forward(State(f): State<Forwarder>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body: Bytes = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(e) => {
            return (StatusCode::PAYLOAD_TOO_LARGE, format!("forwarder: {e}")).into_response();
        }
    };
    let (service, action) = classify(&parts.headers, &parts.uri, parts.method.as_str(), &body);
    let base = if service == "states" {
        &f.states
    } else {
        &f.upstream
    };
    f.counts.call(&f.caller, service, action);
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let sent = f
        .client
        .request(parts.method, format!("{base}{path}"))
        .headers(end_to_end(&parts.headers))
        .body(body)
        .send()
        .await;
    let answer = match sent {
        Ok(a) => a,
        Err(e) => {
            return (StatusCode::BAD_GATEWAY, format!("forwarder: {e}")).into_response();
        }
    };
    let status = answer.status();
    let headers = end_to_end(answer.headers());
    match answer.bytes().await {
        Ok(bytes) => {
            let mut response = Response::new(Body::from(bytes));
            *response.status_mut() = status;
            *response.headers_mut() = headers;
            response
        }
        Err(e) => (StatusCode::BAD_GATEWAY, format!("forwarder: {e}")).into_response(),
    }
}

/// Starts a forwarder for `caller`; answers its URL.
pub async fn start(
    caller: &str,
    upstream: &str,
    states: &str,
    counts: &Arc<Counts>,
) -> anyhow::Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let f = Forwarder {
        caller: caller.to_owned(),
        upstream: upstream.trim_end_matches('/').to_owned(),
        states: states.trim_end_matches('/').to_owned(),
        counts: Arc::clone(counts),
        client: reqwest::Client::new(),
    };
    let app = axum::Router::new().fallback(forward).with_state(f);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(url)
}

/// Points a function's environment at `url` for all its AWS calls, Step
/// Functions' included, replacing the endpoints it had.
pub fn route_env(env: &mut Vec<(String, String)>, url: &str) {
    for name in ["AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_SFN"] {
        env.retain(|(k, _)| k != name);
        env.push((name.to_owned(), url.to_owned()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    const AUTH: &str = "AWS4-HMAC-SHA256 Credential=testing/20261205/us-east-1/dynamodb/aws4_request, SignedHeaders=host, Signature=00";

    #[test]
    fn a_json_protocol_call_is_named_by_its_target_and_signed_service() {
        let h = headers(&[
            ("authorization", AUTH),
            ("x-amz-target", "DynamoDB_20120810.TransactWriteItems"),
        ]);
        let uri: Uri = "/".parse().unwrap();
        assert_eq!(
            classify(&h, &uri, "POST", b"{}"),
            ("dynamodb".into(), "TransactWriteItems".into())
        );
    }

    #[test]
    fn cbor_query_and_rest_calls_are_named_too() {
        let auth = AUTH.replace("dynamodb", "monitoring");
        let h = headers(&[("authorization", &auth)]);
        let cbor: Uri = "/service/GraniteServiceVersion20100801/operation/PutMetricData"
            .parse()
            .unwrap();
        assert_eq!(
            classify(&h, &cbor, "POST", b""),
            ("monitoring".into(), "PutMetricData".into())
        );
        let root: Uri = "/".parse().unwrap();
        assert_eq!(
            classify(
                &h,
                &root,
                "POST",
                b"Action=GetMetricData&Version=2010-08-01"
            )
            .1,
            "GetMetricData"
        );
        let rest: Uri = "/2015-03-31/functions/f/invocations".parse().unwrap();
        assert_eq!(
            classify(&HeaderMap::new(), &rest, "POST", b"{}"),
            (
                "unknown".into(),
                "POST /2015-03-31/functions/f/invocations".into()
            )
        );
        let sfn = headers(&[("x-amz-target", "AWSStepFunctions.StartExecution")]);
        assert_eq!(
            classify(&sfn, &root, "POST", b"{}"),
            ("states".into(), "StartExecution".into())
        );
    }
}
