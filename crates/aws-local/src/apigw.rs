//! API Gateway, played locally: every HTTP request becomes a REST API proxy
//! event (payload format 1.0, the `{proxy+}` resource of Terraform's
//! `api_gateway` module) for `api_handler`, and its proxy response becomes the
//! HTTP response. Like API Gateway, a function error answers 502 and a
//! timeout 504, with API Gateway's own JSON message.
//!
//! The stage: as on AWS, the API is served under `/{stage}/` (the stage is
//! `--env`, the environment, as Terraform names it): `/{stage}/orders` is the
//! event's `path` `/orders`, and `/{stage}` and `/{stage}/` are both the root
//! `/`; `requestContext.path` is the path as requested, stage included. For
//! local convenience the same paths without the stage are served too
//! (`/orders`, as `dofs serve` has them; `requestContext.path` is then
//! `/{stage}/orders`); a path under `/{stage}` is always read as the stage's.
//!
//! API keys, as Terraform's `api_gateway` module sets them up: every route but
//! `GET /health`, `GET /ready`, `GET /` and `GET /assets/...` needs an
//! `x-api-key` of the usage plan (else 401, the module's `INVALID_API_KEY`
//! response), and the key's id goes to `api_handler` in
//! `requestContext.identity.apiKeyId`, which tells operator keys from client
//! keys. Started without keys, the stand-in requires none and every request
//! carries the id of a built-in operator key, [`LOCAL_OPERATOR_KEY_ID`].
//!
//! What it does not do: usage plan quotas, throttling, request validation,
//! custom domains.

use crate::lambda::Invoker;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::{json, Map, Value};

/// What the API Gateway stand-in needs.
#[derive(Clone)]
pub struct Gateway {
    pub invoker: Invoker,
    pub function: String,
    pub stage: String,
    pub keys: std::sync::Arc<ApiKeys>,
}

/// The API key id every request carries when the stack runs without keys.
pub const LOCAL_OPERATOR_KEY_ID: &str = "local-operator";

/// The usage plan's API keys: each key's value and id, and which ids are operators'.
#[derive(Clone, Debug, Default)]
pub struct ApiKeys {
    keys: Vec<(String, String)>,
    operator_ids: Vec<String>,
}

impl ApiKeys {
    /// Client keys and operator keys; ids are `local-client-N` and `local-operator-N`.
    pub fn new(client: &[String], operator: &[String]) -> ApiKeys {
        let mut keys = Vec::new();
        let mut operator_ids = Vec::new();
        for (i, k) in client.iter().enumerate() {
            keys.push((k.clone(), format!("local-client-{i}")));
        }
        for (i, k) in operator.iter().enumerate() {
            let id = format!("local-operator-{i}");
            keys.push((k.clone(), id.clone()));
            operator_ids.push(id);
        }
        ApiKeys { keys, operator_ids }
    }

    /// Whether keys are required (some key is configured).
    pub fn enforced(&self) -> bool {
        !self.keys.is_empty()
    }

    /// `DOFS_OPERATOR_API_KEY_IDS` for `api_handler`.
    pub fn operator_ids_var(&self) -> String {
        if self.enforced() {
            self.operator_ids.join(",")
        } else {
            LOCAL_OPERATOR_KEY_ID.to_owned()
        }
    }

    /// The id of the key `presented`, if it is one of the plan's keys.
    fn id_of(&self, presented: &str) -> Option<&str> {
        self.keys
            .iter()
            .find(|(value, _)| value == presented)
            .map(|(_, id)| id.as_str())
    }
}

/// Routes whose methods need no API key (`api_key = false` in the module).
pub fn is_keyless(method: &str, path: &str) -> bool {
    method == "GET" && (matches!(path, "/health" | "/ready" | "/") || path.starts_with("/assets/"))
}

/// The gateway's answer to a missing or unknown key: the module's
/// `INVALID_API_KEY` gateway response (401 in the contract's error shape).
fn invalid_api_key() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [("x-amzn-errortype", "ForbiddenException")],
        axum::Json(json!({
            "error": "Unauthorized",
            "message": "a valid x-api-key header is required",
        })),
    )
        .into_response()
}

/// The largest request body API Gateway accepts (10 MB).
const MAX_BODY: usize = 10 * 1024 * 1024;

fn gateway_error(status: StatusCode, message: &str) -> Response {
    (
        status,
        [("x-amzn-errortype", "InternalServerErrorException")],
        axum::Json(json!({ "message": message })),
    )
        .into_response()
}

/// The path of a request to route, without the stage, and the path as API
/// Gateway's `requestContext.path` has it: `/{stage}/x` is `/x` (and `/{stage}`
/// is `/`), requested as it is; a path without the stage is served as it is,
/// as if requested under the stage.
pub fn split_stage(requested: &str, stage: &str) -> (String, String) {
    match requested
        .strip_prefix('/')
        .and_then(|p| p.strip_prefix(stage))
    {
        Some("") => ("/".to_owned(), requested.to_owned()),
        Some(rest) if rest.starts_with('/') => (rest.to_owned(), requested.to_owned()),
        _ => (requested.to_owned(), format!("/{stage}{requested}")),
    }
}

/// The proxy event of a request for `path` (without the stage), requested
/// as `context_path` (with it; see [`split_stage`]).
#[allow(clippy::too_many_arguments)]
pub fn proxy_event(
    method: &str,
    path: &str,
    context_path: &str,
    query: Option<&str>,
    headers: &[(String, String)],
    body: &[u8],
    stage: &str,
    api_key_id: Option<&str>,
) -> Value {
    let mut single = Map::new();
    let mut multi: Map<String, Value> = Map::new();
    for (k, v) in headers {
        single.insert(k.clone(), json!(v));
        match multi.get_mut(k) {
            Some(Value::Array(list)) => list.push(json!(v)),
            _ => {
                multi.insert(k.clone(), json!([v]));
            }
        }
    }
    let mut qs_single = Map::new();
    let mut qs_multi: Map<String, Value> = Map::new();
    if let Some(q) = query {
        for (k, v) in form_urlencoded_pairs(q) {
            qs_single.insert(k.clone(), json!(v));
            match qs_multi.get_mut(&k) {
                Some(Value::Array(list)) => list.push(json!(v)),
                _ => {
                    qs_multi.insert(k, json!([v]));
                }
            }
        }
    }
    let (body, encoded) = match std::str::from_utf8(body) {
        Ok(text) => (text.to_owned(), false),
        Err(_) => (base64::engine::general_purpose::STANDARD.encode(body), true),
    };
    let request_id = uuid::Uuid::new_v4().to_string();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    json!({
        "resource": "/{proxy+}",
        "path": path,
        "httpMethod": method,
        "headers": single,
        "multiValueHeaders": multi,
        "queryStringParameters": if qs_single.is_empty() { Value::Null } else { Value::Object(qs_single) },
        "multiValueQueryStringParameters": if qs_multi.is_empty() { Value::Null } else { Value::Object(qs_multi) },
        "pathParameters": { "proxy": path.trim_start_matches('/') },
        "stageVariables": Value::Null,
        "requestContext": {
            "accountId": "123456789012",
            "resourceId": "local",
            "stage": stage,
            "requestId": request_id,
            "identity": {
                "sourceIp": "127.0.0.1",
                "userAgent": single.get("user-agent").cloned().unwrap_or(Value::Null),
                "apiKeyId": api_key_id,
            },
            "resourcePath": "/{proxy+}",
            "httpMethod": method,
            "apiId": "local",
            "path": context_path,
            "protocol": "HTTP/1.1",
            "requestTimeEpoch": now,
            "domainName": single.get("host").cloned().unwrap_or(Value::Null),
        },
        "body": if body.is_empty() && !encoded { Value::Null } else { json!(body) },
        "isBase64Encoded": encoded,
    })
}

fn form_urlencoded_pairs(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 3 <= bytes.len() => {
                match std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The HTTP response of a proxy response.
pub fn http_response(proxy: &Value) -> Option<Response> {
    let status = StatusCode::from_u16(u16::try_from(proxy["statusCode"].as_u64()?).ok()?).ok()?;
    let mut response = Response::builder().status(status);
    let mut seen = std::collections::HashSet::new();
    if let Some(multi) = proxy["multiValueHeaders"].as_object() {
        for (k, values) in multi {
            for v in values.as_array().into_iter().flatten() {
                if let (Ok(name), Some(Ok(value))) = (
                    HeaderName::try_from(k.as_str()),
                    v.as_str().map(HeaderValue::from_str),
                ) {
                    seen.insert(name.clone());
                    response = response.header(name, value);
                }
            }
        }
    }
    if let Some(single) = proxy["headers"].as_object() {
        for (k, v) in single {
            if let (Ok(name), Some(Ok(value))) = (
                HeaderName::try_from(k.as_str()),
                v.as_str().map(HeaderValue::from_str),
            ) {
                if !seen.contains(&name) {
                    response = response.header(name, value);
                }
            }
        }
    }
    let text = proxy["body"].as_str().unwrap_or_default();
    let body = if proxy["isBase64Encoded"].as_bool() == Some(true) {
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .ok()?
    } else {
        text.as_bytes().to_vec()
    };
    response.body(Body::from(body)).ok()
}

/// Every request: proxy event → `api_handler` → proxy response.
pub async fn handle(State(gw): State<Gateway>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body: Bytes = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(_) => {
            return gateway_error(StatusCode::PAYLOAD_TOO_LARGE, "Request Too Long");
        }
    };
    let headers: Vec<(String, String)> = parts
        .headers
        .iter()
        .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
        .collect();
    let method = parts.method.as_str();
    let (path, context_path) = split_stage(parts.uri.path(), &gw.stage);
    let api_key_id = if !gw.keys.enforced() {
        Some(LOCAL_OPERATOR_KEY_ID.to_owned())
    } else if is_keyless(method, &path) {
        None
    } else {
        let presented = parts.headers.get("x-api-key").and_then(|v| v.to_str().ok());
        match presented.and_then(|k| gw.keys.id_of(k)) {
            Some(id) => Some(id.to_owned()),
            None => return invalid_api_key(),
        }
    };
    let event = proxy_event(
        method,
        &path,
        &context_path,
        parts.uri.query(),
        &headers,
        &body,
        &gw.stage,
        api_key_id.as_deref(),
    );
    match gw.invoker.invoke(&gw.function, &event).await {
        Ok(bytes) => match serde_json::from_slice::<Value>(&bytes)
            .ok()
            .as_ref()
            .and_then(http_response)
        {
            Some(r) => r,
            None => gateway_error(StatusCode::BAD_GATEWAY, "Internal server error"),
        },
        Err(e) if e.error_type == "Sandbox.Timedout" => {
            gateway_error(StatusCode::GATEWAY_TIMEOUT, "Endpoint request timed out")
        }
        Err(e) => {
            tracing::warn!(error = %e.error_message, kind = %e.error_type, "api_handler failed");
            gateway_error(StatusCode::BAD_GATEWAY, "Internal server error")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_map_to_ids_and_only_the_dashboard_and_probes_are_keyless() {
        let keys = ApiKeys::new(&["c-key".into()], &["o-key".into(), "o-key-2".into()]);
        assert!(keys.enforced());
        assert_eq!(keys.id_of("c-key"), Some("local-client-0"));
        assert_eq!(keys.id_of("o-key-2"), Some("local-operator-1"));
        assert_eq!(keys.id_of("nope"), None);
        assert_eq!(keys.operator_ids_var(), "local-operator-0,local-operator-1");
        let open = ApiKeys::default();
        assert!(!open.enforced());
        assert_eq!(open.operator_ids_var(), LOCAL_OPERATOR_KEY_ID);
        for (m, p) in [
            ("GET", "/health"),
            ("GET", "/ready"),
            ("GET", "/"),
            ("GET", "/assets/app.js"),
        ] {
            assert!(is_keyless(m, p), "{m} {p}");
        }
        for (m, p) in [
            ("POST", "/health"),
            ("GET", "/orders"),
            ("POST", "/dlq/purge"),
            ("GET", "/metrics"),
        ] {
            assert!(!is_keyless(m, p), "{m} {p}");
        }
    }

    #[test]
    fn query_strings_are_decoded_into_single_and_multi_value_maps() {
        let e = proxy_event(
            "GET",
            "/orders",
            "/local/orders",
            Some("status=FAILED&limit=5&x=a%20b&x=c"),
            &[],
            b"",
            "local",
            Some("local-client-0"),
        );
        assert_eq!(
            e["requestContext"]["identity"]["apiKeyId"],
            "local-client-0"
        );
        assert_eq!(e["queryStringParameters"]["status"], "FAILED");
        assert_eq!(
            e["multiValueQueryStringParameters"]["x"],
            json!(["a b", "c"])
        );
        assert_eq!(e["body"], Value::Null);
        assert_eq!(e["requestContext"]["path"], "/local/orders");
    }

    #[test]
    fn the_stage_is_stripped_and_kept_in_the_context_path() {
        for (requested, path, context) in [
            ("/dev/orders", "/orders", "/dev/orders"),
            ("/dev/assets/app.js", "/assets/app.js", "/dev/assets/app.js"),
            ("/dev/", "/", "/dev/"),
            ("/dev", "/", "/dev"),
            // Without the stage (local only): as if requested under it.
            ("/orders", "/orders", "/dev/orders"),
            ("/", "/", "/dev/"),
            // Not the stage, only a path that starts like it.
            ("/devices", "/devices", "/dev/devices"),
        ] {
            assert_eq!(
                split_stage(requested, "dev"),
                (path.to_owned(), context.to_owned()),
                "{requested}"
            );
        }
    }

    #[test]
    fn a_proxy_response_becomes_the_http_response() {
        let r = http_response(&json!({
            "statusCode": 202,
            "headers": {"content-type": "application/json"},
            "multiValueHeaders": {"location": ["/orders/1"]},
            "body": "{}",
            "isBase64Encoded": false
        }))
        .expect("response");
        assert_eq!(r.status(), StatusCode::ACCEPTED);
        assert_eq!(r.headers()["location"], "/orders/1");
        assert_eq!(r.headers()["content-type"], "application/json");
    }
}
