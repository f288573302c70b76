//! Step Functions, played locally: the three actions the API Lambda calls
//! (`StartExecution`, `DescribeExecution`, `GetExecutionHistory`, plus
//! `ListExecutions` for tools) over the AWS JSON 1.0 protocol, so the real
//! `aws-sdk-sfn` client in `api_handler` talks to it through
//! `AWS_ENDPOINT_URL_SFN`.
//!
//! Executions run the same `workflow/order-processing.asl.json` with the
//! embedded ASL interpreter ([`dofs_workflow`]), the placeholders filled in as
//! Terraform's `templatefile` does; Lambda Task resources are invoked through
//! the Lambda invoke API, and `arn:aws:states:::sqs:sendMessage` sends to SQS
//! on the emulator, as Step Functions' SQS integration does.
//!
//! Executions live in memory: a restart of the stack forgets them (the
//! orders they stored stay in DynamoDB).

use crate::lambda::Invoker;
use async_trait::async_trait;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use dofs_workflow::{
    Definition, Event, EventKind, Outcome, StateType, TaskError, TaskHandler, Timer,
};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::Semaphore;

/// The SQS integration's resource.
pub const SQS_SEND: &str = "arn:aws:states:::sqs:sendMessage";

/// How many executions run at once.
const CONCURRENCY: usize = 64;

struct Record {
    arn: String,
    input: Value,
    status: &'static str,
    output: Option<Value>,
    error: Option<(String, String)>,
    started_ms: i64,
    stopped_ms: Option<i64>,
    events: Vec<Event>,
}

/// The local Step Functions service for one state machine.
#[derive(Clone)]
pub struct LocalStepFunctions {
    inner: Arc<Inner>,
}

struct Inner {
    state_machine_arn: String,
    definition: Definition,
    types: HashMap<String, StateType>,
    tasks: Arc<dyn TaskHandler>,
    executions: Mutex<HashMap<String, Arc<Mutex<Record>>>>,
    permits: Arc<Semaphore>,
    /// Where state transitions are counted (`--count-calls`).
    counts: Option<Arc<crate::count::Counts>>,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Step Functions' error response (AWS JSON 1.0).
fn error(code: &str, message: impl Into<String>) -> Response {
    (
        StatusCode::BAD_REQUEST,
        [
            ("x-amzn-errortype", code),
            ("content-type", "application/x-amz-json-1.0"),
        ],
        Json(json!({"__type": code, "message": message.into()})),
    )
        .into_response()
}

fn ok(body: Value) -> Response {
    (
        StatusCode::OK,
        [("content-type", "application/x-amz-json-1.0")],
        Json(body),
    )
        .into_response()
}

fn secs(ms: i64) -> f64 {
    ms as f64 / 1000.0
}

impl LocalStepFunctions {
    pub fn new(
        state_machine_arn: String,
        definition: Definition,
        tasks: Arc<dyn TaskHandler>,
        counts: Option<Arc<crate::count::Counts>>,
    ) -> Self {
        let types = definition
            .graph()
            .states
            .into_iter()
            .map(|s| (s.name, s.state_type))
            .collect();
        LocalStepFunctions {
            inner: Arc::new(Inner {
                state_machine_arn,
                definition,
                types,
                tasks,
                executions: Mutex::new(HashMap::new()),
                permits: Arc::new(Semaphore::new(CONCURRENCY)),
                counts,
            }),
        }
    }

    fn execution_arn(&self, name: &str) -> String {
        format!(
            "{}:{name}",
            self.inner
                .state_machine_arn
                .replacen(":stateMachine:", ":execution:", 1)
        )
    }

    fn start(&self, body: &Value) -> Response {
        let inner = &self.inner;
        if body["stateMachineArn"].as_str() != Some(inner.state_machine_arn.as_str()) {
            return error("StateMachineDoesNotExist", "State Machine Does Not Exist");
        }
        let name = body["name"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let input_text = body["input"].as_str().unwrap_or("{}");
        let Ok(input) = serde_json::from_str::<Value>(input_text) else {
            return error("InvalidExecutionInput", "the input is not JSON");
        };
        let arn = self.execution_arn(&name);
        let record = {
            let mut executions = lock(&inner.executions);
            if let Some(existing) = executions.get(&name) {
                let existing = lock(existing);
                // Step Functions: the same name and input of a running execution is idempotent.
                if existing.status == "RUNNING" && existing.input == input {
                    return ok(
                        json!({"executionArn": existing.arn, "startDate": secs(existing.started_ms)}),
                    );
                }
                return error(
                    "ExecutionAlreadyExists",
                    format!("Execution Already Exists: '{arn}'"),
                );
            }
            let record = Arc::new(Mutex::new(Record {
                arn: arn.clone(),
                input: input.clone(),
                status: "RUNNING",
                output: None,
                error: None,
                started_ms: now_ms(),
                stopped_ms: None,
                events: Vec::new(),
            }));
            executions.insert(name, record.clone());
            record
        };
        let started = lock(&record).started_ms;
        let this = self.clone();
        tokio::spawn(async move { this.run(record, input).await });
        ok(json!({"executionArn": arn, "startDate": secs(started)}))
    }

    async fn run(&self, record: Arc<Mutex<Record>>, input: Value) {
        let Ok(_permit) = self.inner.permits.clone().acquire_owned().await else {
            return;
        };
        let mut sink = Sink(record.clone(), self.inner.counts.clone());
        let outcome = dofs_workflow::execute(
            &self.inner.definition,
            input,
            self.inner.tasks.as_ref(),
            &TokioTimer,
            &mut sink,
        )
        .await;
        let mut r = lock(&record);
        r.stopped_ms = Some(now_ms());
        match outcome {
            Outcome::Succeeded { output } => {
                r.status = "SUCCEEDED";
                r.output = Some(output);
            }
            Outcome::Failed { error, cause } => {
                tracing::info!(execution = %r.arn, %error, %cause, "execution failed");
                r.status = "FAILED";
                r.error = Some((error, cause));
            }
        }
    }

    /// The execution an `executionArn` names, if it is one of this state machine's.
    fn find(&self, body: &Value) -> Option<Arc<Mutex<Record>>> {
        let arn = body["executionArn"].as_str().unwrap_or_default();
        let name = arn.rsplit(':').next().unwrap_or_default();
        if arn != self.execution_arn(name) {
            return None;
        }
        lock(&self.inner.executions).get(name).cloned()
    }

    fn not_found(body: &Value) -> Response {
        let arn = body["executionArn"].as_str().unwrap_or_default();
        error(
            "ExecutionDoesNotExist",
            format!("Execution Does Not Exist: '{arn}'"),
        )
    }

    fn describe(&self, body: &Value) -> Response {
        let Some(record) = self.find(body) else {
            return Self::not_found(body);
        };
        let r = lock(&record);
        let mut out = json!({
            "executionArn": r.arn,
            "stateMachineArn": self.inner.state_machine_arn,
            "name": r.arn.rsplit(':').next(),
            "status": r.status,
            "startDate": secs(r.started_ms),
            "input": r.input.to_string(),
        });
        if let Some(obj) = out.as_object_mut() {
            if let Some(stopped) = r.stopped_ms {
                obj.insert("stopDate".into(), json!(secs(stopped)));
            }
            if let Some(output) = &r.output {
                obj.insert("output".into(), json!(output.to_string()));
            }
            if let Some((e, c)) = &r.error {
                obj.insert("error".into(), json!(e));
                obj.insert("cause".into(), json!(c));
            }
        }
        ok(out)
    }

    fn history(&self, body: &Value) -> Response {
        let Some(record) = self.find(body) else {
            return Self::not_found(body);
        };
        let r = lock(&record);
        let events: Vec<Value> = r
            .events
            .iter()
            .enumerate()
            .map(|(i, e)| self.history_event(i as i64 + 1, e))
            .collect();
        ok(json!({ "events": events }))
    }

    fn list(&self, body: &Value) -> Response {
        let filter = body["statusFilter"].as_str();
        let executions = lock(&self.inner.executions);
        let items: Vec<Value> = executions
            .values()
            .filter_map(|r| {
                let r = lock(r);
                if filter.is_some_and(|f| f != r.status) {
                    return None;
                }
                Some(json!({
                    "executionArn": r.arn,
                    "stateMachineArn": self.inner.state_machine_arn,
                    "name": r.arn.rsplit(':').next(),
                    "status": r.status,
                    "startDate": secs(r.started_ms),
                }))
            })
            .collect();
        ok(json!({ "executions": items }))
    }

    /// An interpreter event as a Step Functions history event.
    fn history_event(&self, id: i64, e: &Event) -> Value {
        let state_type = e
            .state
            .as_ref()
            .and_then(|s| self.inner.types.get(s))
            .map_or("Task", |t| match t {
                StateType::Task => "Task",
                StateType::Pass => "Pass",
                StateType::Choice => "Choice",
                StateType::Succeed => "Succeed",
                StateType::Fail => "Fail",
            });
        let d = &e.details;
        let text = |v: &Value| v.to_string();
        let resource = d["resource"].as_str().unwrap_or_default();
        let (resource_type, resource_name) = if resource == SQS_SEND {
            ("sqs", "sendMessage")
        } else {
            ("lambda", "invoke")
        };
        let (kind, details_key, details) = match e.kind {
            EventKind::ExecutionStarted => (
                "ExecutionStarted".to_owned(),
                "executionStartedEventDetails",
                json!({"input": text(&d["input"]), "roleArn": "arn:aws:iam::123456789012:role/dofs-local-states"}),
            ),
            EventKind::StateEntered => (
                format!("{state_type}StateEntered"),
                "stateEnteredEventDetails",
                json!({"name": e.state, "input": text(&d["input"])}),
            ),
            EventKind::TaskScheduled => (
                "TaskScheduled".to_owned(),
                "taskScheduledEventDetails",
                json!({"resourceType": resource_type, "resource": resource_name, "region": "us-east-1",
                       "parameters": text(&d["input"])}),
            ),
            EventKind::TaskSucceeded => (
                "TaskSucceeded".to_owned(),
                "taskSucceededEventDetails",
                json!({"resourceType": resource_type, "resource": resource_name, "output": text(&d["output"])}),
            ),
            EventKind::TaskFailed => (
                "TaskFailed".to_owned(),
                "taskFailedEventDetails",
                json!({"resourceType": resource_type, "resource": resource_name,
                       "error": d["error"], "cause": d["cause"]}),
            ),
            // Step Functions records a retry only as the next TaskScheduled;
            // the local history names it, the SDK reads it as an unknown type.
            EventKind::TaskRetryScheduled => (
                "TaskRetryScheduled".to_owned(),
                "taskFailedEventDetails",
                json!({"resourceType": resource_type, "resource": resource_name,
                       "error": d["error"], "cause": format!("retry {} in {} ms", d["retry"], d["delayMs"])}),
            ),
            EventKind::StateExited => (
                format!("{state_type}StateExited"),
                "stateExitedEventDetails",
                json!({"name": e.state, "output": text(&d["output"])}),
            ),
            EventKind::ExecutionSucceeded => (
                "ExecutionSucceeded".to_owned(),
                "executionSucceededEventDetails",
                json!({"output": text(&d["output"])}),
            ),
            EventKind::ExecutionFailed => (
                "ExecutionFailed".to_owned(),
                "executionFailedEventDetails",
                json!({"error": d["error"], "cause": d["cause"]}),
            ),
        };
        let mut v = json!({
            "id": id,
            "previousEventId": id - 1,
            "timestamp": secs(e.timestamp_ms),
            "type": kind,
        });
        if let Some(obj) = v.as_object_mut() {
            obj.insert(details_key.to_owned(), details);
        }
        v
    }
}

/// `POST /` with `X-Amz-Target: AWSStepFunctions.<Action>`.
pub async fn handle(
    State(sfn): State<LocalStepFunctions>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return error("SerializationException", "the body is not JSON");
    };
    match target.strip_prefix("AWSStepFunctions.") {
        Some("StartExecution") => sfn.start(&body),
        Some("DescribeExecution") => sfn.describe(&body),
        Some("GetExecutionHistory") => sfn.history(&body),
        Some("ListExecutions") => sfn.list(&body),
        _ => error(
            "UnknownOperationException",
            format!("the local stack does not play {target}"),
        ),
    }
}

/// An execution's history; each state entered is one state transition.
struct Sink(Arc<Mutex<Record>>, Option<Arc<crate::count::Counts>>);

#[async_trait]
impl dofs_workflow::EventSink for Sink {
    async fn record(&mut self, event: Event) {
        if let (EventKind::StateEntered, Some(counts)) = (&event.kind, &self.1) {
            counts.transition();
        }
        lock(&self.0).events.push(event);
    }
}

struct TokioTimer;

#[async_trait]
impl Timer for TokioTimer {
    fn now_millis(&self) -> i64 {
        now_ms()
    }
    async fn sleep(&self, duration: Duration) {
        tokio::time::sleep(duration).await;
    }
}

/// The Task resources: Lambda ARNs through the invoke API, and the SQS integration.
pub struct Tasks {
    pub invoker: Invoker,
    /// Lambda ARN → function name.
    pub functions: HashMap<String, String>,
    pub sqs: aws_sdk_sqs::Client,
}

#[async_trait]
impl TaskHandler for Tasks {
    async fn invoke(&self, resource: &str, input: &Value) -> Result<Value, TaskError> {
        if resource == SQS_SEND {
            let url = input["QueueUrl"]
                .as_str()
                .ok_or_else(|| TaskError::new("States.Runtime", "sendMessage needs a QueueUrl"))?;
            let body = match &input["MessageBody"] {
                Value::String(s) => s.clone(),
                Value::Null => {
                    return Err(TaskError::new(
                        "States.Runtime",
                        "sendMessage needs a MessageBody",
                    ))
                }
                other => other.to_string(),
            };
            let out = self
                .sqs
                .send_message()
                .queue_url(url)
                .message_body(body)
                .send()
                .await
                .map_err(|e| TaskError::new("SQS.SdkClientException", format!("{e:?}")))?;
            return Ok(json!({
                "MessageId": out.message_id,
                "MD5OfMessageBody": out.md5_of_message_body,
            }));
        }
        let Some(function) = self.functions.get(resource) else {
            return Err(TaskError::new(
                "States.TaskFailed",
                format!("no function for resource {resource}"),
            ));
        };
        match self.invoker.invoke(function, input).await {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                TaskError::new(
                    "States.Runtime",
                    format!("the function's output is not JSON: {e}"),
                )
            }),
            Err(e) => Err(TaskError::new(e.error_type, e.error_message)),
        }
    }
}
