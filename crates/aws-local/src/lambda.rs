//! Running the real Lambda binaries locally.
//!
//! - [`RuntimeApi`]: the Lambda **runtime API** (`/2018-06-01/runtime/...`)
//!   that the `lambda_runtime` crate inside each binary polls, one listener
//!   per function, so the binaries run unchanged, exactly as on Lambda
//!   (`AWS_LAMBDA_RUNTIME_API`). Several instances of a function share one
//!   listener: each takes the next invocation, one at a time, like Lambda's
//!   execution environments.
//! - [`invoke_routes`]: the Lambda **invoke API**
//!   (`POST /2015-03-31/functions/{name}/invocations`) in front of them.
//! - [`Invoker`]: the client side of the invoke API, used for every call to
//!   a function (API Gateway, Step Functions tasks, the SQS poller, the
//!   schedule). It can point at this stack or at `cargo lambda watch`.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// A function invocation's result: the payload, or the function's error.
pub type Outcome = Result<Bytes, FunctionError>;

/// An error the function reported (`errorType`, `errorMessage`), or one the
/// service raised on its behalf (`Sandbox.Timedout`, `Lambda.ServiceException`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FunctionError {
    pub error_type: String,
    pub error_message: String,
}

impl FunctionError {
    pub fn new(error_type: &str, error_message: impl Into<String>) -> Self {
        FunctionError {
            error_type: error_type.to_owned(),
            error_message: error_message.into(),
        }
    }
}

struct Invocation {
    request_id: String,
    payload: Bytes,
    /// Told when an instance takes the invocation: its timeout starts then.
    taken: oneshot::Sender<()>,
}

/// One function's runtime API: its queue of invocations and the ones running.
#[derive(Clone)]
pub struct RuntimeApi {
    pub name: String,
    pub arn: String,
    timeout: Duration,
    sender: mpsc::Sender<Invocation>,
    receiver: Arc<tokio::sync::Mutex<mpsc::Receiver<Invocation>>>,
    running: Arc<Mutex<HashMap<String, oneshot::Sender<Outcome>>>>,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl RuntimeApi {
    pub fn new(name: &str, arn: &str, timeout: Duration) -> Self {
        let (sender, receiver) = mpsc::channel(10_000);
        RuntimeApi {
            name: name.to_owned(),
            arn: arn.to_owned(),
            timeout,
            sender,
            receiver: Arc::new(tokio::sync::Mutex::new(receiver)),
            running: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    fn running(&self) -> std::sync::MutexGuard<'_, HashMap<String, oneshot::Sender<Outcome>>> {
        self.running.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues an invocation and waits for its result: at most the function's
    /// timeout once an instance has taken it. (Lambda would start another
    /// instance rather than queue; here invocations wait for a free one.)
    pub async fn invoke(&self, payload: Bytes) -> Outcome {
        let request_id = uuid::Uuid::new_v4().to_string();
        let (tx, rx) = oneshot::channel();
        let (taken, was_taken) = oneshot::channel();
        self.running().insert(request_id.clone(), tx);
        let invocation = Invocation {
            request_id: request_id.clone(),
            payload,
            taken,
        };
        if self.sender.send(invocation).await.is_err() || was_taken.await.is_err() {
            self.running().remove(&request_id);
            return Err(FunctionError::new(
                "Lambda.ServiceException",
                "the function is not running",
            ));
        }
        match tokio::time::timeout(self.timeout, rx).await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(_)) => Err(FunctionError::new(
                "Lambda.ServiceException",
                "the invocation was dropped",
            )),
            Err(_) => {
                self.running().remove(&request_id);
                Err(FunctionError::new(
                    "Sandbox.Timedout",
                    format!(
                        "Task timed out after {:.2} seconds",
                        self.timeout.as_secs_f64()
                    ),
                ))
            }
        }
    }

    /// The runtime API routes for this function's instances.
    pub fn routes(&self) -> Router {
        Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route(
                "/2018-06-01/runtime/invocation/{id}/response",
                post(respond),
            )
            .route("/2018-06-01/runtime/invocation/{id}/error", post(fail))
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .with_state(self.clone())
    }
}

async fn next(State(api): State<RuntimeApi>) -> Response {
    let invocation = {
        let mut receiver = api.receiver.lock().await;
        receiver.recv().await
    };
    let Some(inv) = invocation else {
        return StatusCode::GONE.into_response();
    };
    let deadline_ms = now_ms() + api.timeout.as_millis() as i64;
    let _ = inv.taken.send(());
    let mut headers = HeaderMap::new();
    let pairs = [
        ("lambda-runtime-aws-request-id", inv.request_id.clone()),
        ("lambda-runtime-deadline-ms", deadline_ms.to_string()),
        ("lambda-runtime-invoked-function-arn", api.arn.clone()),
        (
            "lambda-runtime-trace-id",
            format!(
                "Root=1-{:08x}-{}",
                now_ms() / 1000,
                &inv.request_id.replace('-', "")[..24]
            ),
        ),
    ];
    for (k, v) in pairs {
        if let Ok(v) = HeaderValue::from_str(&v) {
            headers.insert(k, v);
        }
    }
    (StatusCode::OK, headers, inv.payload).into_response()
}

async fn respond(State(api): State<RuntimeApi>, Path(id): Path<String>, body: Bytes) -> StatusCode {
    match api.running().remove(&id) {
        Some(tx) => {
            let _ = tx.send(Ok(body));
            StatusCode::ACCEPTED
        }
        None => StatusCode::NOT_FOUND,
    }
}

async fn fail(State(api): State<RuntimeApi>, Path(id): Path<String>, body: Bytes) -> StatusCode {
    let error = serde_json::from_slice::<FunctionError>(&body).unwrap_or_else(|_| {
        FunctionError::new("Unhandled", String::from_utf8_lossy(&body).into_owned())
    });
    match api.running().remove(&id) {
        Some(tx) => {
            let _ = tx.send(Err(error));
            StatusCode::ACCEPTED
        }
        None => StatusCode::NOT_FOUND,
    }
}

async fn init_error(State(api): State<RuntimeApi>, body: Bytes) -> StatusCode {
    tracing::error!(function = %api.name, error = %String::from_utf8_lossy(&body), "the function failed its cold start");
    StatusCode::ACCEPTED
}

/// The functions this stack runs, by name.
#[derive(Clone, Default)]
pub struct Functions(pub Arc<HashMap<String, RuntimeApi>>);

/// The invoke API: `POST /2015-03-31/functions/{name or ARN}/invocations`.
pub fn invoke_routes(functions: Functions) -> Router {
    Router::new()
        .route(
            "/2015-03-31/functions/{function}/invocations",
            post(invoke_api),
        )
        .with_state(functions)
}

async fn invoke_api(
    State(functions): State<Functions>,
    Path(function): Path<String>,
    body: Bytes,
) -> Response {
    let name = function.rsplit(':').next().unwrap_or(&function).to_owned();
    let Some(api) = functions
        .0
        .get(&name)
        .or_else(|| functions.0.values().find(|f| f.arn == function))
    else {
        let body = serde_json::json!({"Type": "User", "message": format!("Function not found: {function}")});
        return (
            StatusCode::NOT_FOUND,
            [("x-amzn-errortype", "ResourceNotFoundException")],
            axum::Json(body),
        )
            .into_response();
    };
    match api.invoke(body).await {
        Ok(payload) => (
            StatusCode::OK,
            [("x-amz-executed-version", "$LATEST")],
            payload,
        )
            .into_response(),
        Err(e) => (
            StatusCode::OK,
            [
                ("x-amz-function-error", "Unhandled"),
                ("x-amz-executed-version", "$LATEST"),
            ],
            axum::Json(e),
        )
            .into_response(),
    }
}

/// Calls functions through an invoke API endpoint.
#[derive(Clone)]
pub struct Invoker {
    endpoint: String,
    client: reqwest::Client,
    /// Function name → name in the URL (`cargo lambda watch` knows binaries by their own names).
    aliases: Arc<HashMap<String, String>>,
    /// Where invocations are counted (`--count-calls`).
    counts: Option<Arc<crate::count::Counts>>,
}

impl Invoker {
    pub fn new(endpoint: &str, aliases: HashMap<String, String>) -> Self {
        Invoker {
            endpoint: endpoint.trim_end_matches('/').to_owned(),
            client: reqwest::Client::new(),
            aliases: Arc::new(aliases),
            counts: None,
        }
    }

    /// Counts every invocation made through this invoker (and its clones).
    pub fn counting(mut self, counts: Arc<crate::count::Counts>) -> Self {
        self.counts = Some(counts);
        self
    }

    /// Invokes `function` synchronously (`RequestResponse`) with `payload`.
    pub async fn invoke(&self, function: &str, payload: &serde_json::Value) -> Outcome {
        if let Some(counts) = &self.counts {
            counts.invocation(function);
        }
        let name = self.aliases.get(function).map_or(function, String::as_str);
        let url = format!("{}/2015-03-31/functions/{name}/invocations", self.endpoint);
        let response = self
            .client
            .post(url)
            .header("x-amz-invocation-type", "RequestResponse")
            .body(payload.to_string())
            .send()
            .await
            .map_err(|e| FunctionError::new("Lambda.ServiceException", e.to_string()))?;
        let status = response.status();
        let failed = response.headers().contains_key("x-amz-function-error");
        let body = response
            .bytes()
            .await
            .map_err(|e| FunctionError::new("Lambda.ServiceException", e.to_string()))?;
        if !status.is_success() {
            return Err(FunctionError::new(
                "Lambda.ServiceException",
                format!(
                    "invoke answered {status}: {}",
                    String::from_utf8_lossy(&body)
                ),
            ));
        }
        if failed {
            return Err(serde_json::from_slice(&body).unwrap_or_else(|_| {
                FunctionError::new("Unhandled", String::from_utf8_lossy(&body).into_owned())
            }));
        }
        Ok(body)
    }
}
