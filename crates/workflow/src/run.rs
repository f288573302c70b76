//! Running a [`Definition`]: the caller's ports (tasks, time, history) and the
//! interpreter loop.

use std::borrow::Cow;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::definition::{Definition, State, StateKind, Task, Transition};

/// After this many states entered, an execution fails with `States.Runtime`:
/// a guard against definitions that loop forever (a Pass/Choice cycle, say).
pub const MAX_STATE_TRANSITIONS: usize = 10_000;

/// The error name of failures the definition cannot handle: a path that does
/// not resolve, a `ResultPath` that cannot be applied, too many transitions.
/// Retry and Catch never see it; it always fails the execution.
pub const RUNTIME_ERROR: &str = "States.Runtime";

/// The error name when no Choice rule matches and there is no `Default`.
pub const NO_CHOICE_MATCHED: &str = "States.NoChoiceMatched";

/// Runs Task states. Implemented by the caller, which maps each opaque
/// `Resource` string (such as `${validator_arn}`) to code.
#[async_trait::async_trait]
pub trait TaskHandler: Send + Sync {
    /// Runs one Task state's resource with its effective input (after
    /// `InputPath` and `Parameters`). `Err` is an ASL error (name + cause)
    /// that the state's `Retry` and `Catch` match by name. It may be called
    /// again with the same input when a retrier matches, so it should be
    /// idempotent or tolerate repeats.
    async fn invoke(&self, resource: &str, input: &Value) -> Result<Value, TaskError>;
}

/// An error raised by a task, as Step Functions sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{error}: {cause}")]
pub struct TaskError {
    /// The error name `ErrorEquals` matches, e.g. `ValidationError` or `TransientError`.
    pub error: String,
    /// A human-readable explanation.
    pub cause: String,
}

impl TaskError {
    /// An error with the given name and cause.
    pub fn new(error: impl Into<String>, cause: impl Into<String>) -> TaskError {
        TaskError {
            error: error.into(),
            cause: cause.into(),
        }
    }
}

/// The clock and the waits between retries. Tests pass a fake that records
/// sleeps and returns at once.
#[async_trait::async_trait]
pub trait Timer: Send + Sync {
    /// Milliseconds since the Unix epoch; stamps every [`Event`].
    fn now_millis(&self) -> i64;
    /// Waits `duration` (the delay before a retry).
    async fn sleep(&self, duration: Duration);
}

/// Where an execution's history goes, one event at a time as it happens, so
/// a caller can persist it before the execution moves on.
///
/// `Vec<Event>` implements it by pushing. Recording cannot fail: an adapter
/// whose storage fails must deal with that itself (buffer, log, or abort the
/// whole execution future).
#[async_trait::async_trait]
pub trait EventSink: Send {
    /// Records one event; events arrive in order.
    async fn record(&mut self, event: Event);

    /// Whether this sink keeps events. When it does not, the interpreter
    /// builds none (their details cost more than the rest of a run).
    fn records(&self) -> bool {
        true
    }
}

/// A sink that keeps nothing: for running an execution only for its outcome
/// (and its tasks' effects), when its history can be made again by running
/// it once more with the same input, tasks and clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoHistory;

#[async_trait::async_trait]
impl EventSink for NoHistory {
    async fn record(&mut self, _event: Event) {}

    fn records(&self) -> bool {
        false
    }
}

#[async_trait::async_trait]
impl EventSink for Vec<Event> {
    async fn record(&mut self, event: Event) {
        self.push(event);
    }
}

/// One entry of an execution's history.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    /// What happened; serialized as `"type"`.
    #[serde(rename = "type")]
    pub kind: EventKind,
    /// The state it happened in; `None` for execution-level events outside any state.
    pub state: Option<String>,
    /// From [`Timer::now_millis`].
    pub timestamp_ms: i64,
    /// Kind-specific data; see [`EventKind`].
    pub details: Value,
}

/// The kinds of history events. The names are stable: they are persisted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventKind {
    /// `{"input"}`: the execution's input.
    ExecutionStarted,
    /// `{"input"}`: the state's raw input.
    StateEntered,
    /// `{"resource", "input", "attempt"}`: a Task is about to be invoked;
    /// `attempt` counts from 1.
    TaskScheduled,
    /// `{"resource", "output"}`: the task's raw result.
    TaskSucceeded,
    /// `{"resource", "error", "cause", "attempt"}`.
    TaskFailed,
    /// `{"resource", "error", "retry", "delayMs"}`: the wait before the next
    /// attempt; `retry` counts the matching retrier's retries from 1.
    TaskRetryScheduled,
    /// `{"output", "next"}`: `next` is the next state, or null when the execution ends.
    StateExited,
    /// `{"output"}`.
    ExecutionSucceeded,
    /// `{"error", "cause"}`; `state` is where it failed, if in a state.
    ExecutionFailed,
}

/// How an execution ended.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "camelCase")]
pub enum Outcome {
    /// A Succeed state or an `End` was reached.
    Succeeded {
        /// The last state's output.
        output: Value,
    },
    /// A Fail state, an uncaught task error, or a runtime error.
    Failed {
        /// The error name, e.g. `ValidationError` or `States.Runtime`.
        error: String,
        /// A human-readable explanation.
        cause: String,
    },
}

/// Runs an execution of `def` from `StartAt` with `input`.
///
/// Every event is recorded to `events` (stamped by `timer`) before the
/// execution goes on. Never panics; every failure, including a runtime
/// error, ends as [`Outcome::Failed`] after an `ExecutionFailed` event.
pub async fn execute(
    def: &Definition,
    input: Value,
    tasks: &dyn TaskHandler,
    timer: &dyn Timer,
    events: &mut dyn EventSink,
) -> Outcome {
    Run {
        tasks,
        timer,
        events,
    }
    .execute(def, input)
    .await
}

/// What a state decided.
enum Step {
    Next(String, Value),
    Succeed(Value),
    Fail { error: String, cause: String },
}

struct Run<'a> {
    tasks: &'a dyn TaskHandler,
    timer: &'a dyn Timer,
    events: &'a mut dyn EventSink,
}

impl Run<'_> {
    async fn emit(
        &mut self,
        kind: EventKind,
        state: Option<&str>,
        details: impl FnOnce() -> Value,
    ) {
        if !self.events.records() {
            return;
        }
        let event = Event {
            kind,
            state: state.map(str::to_owned),
            timestamp_ms: self.timer.now_millis(),
            details: details(),
        };
        self.events.record(event).await;
    }

    async fn fail(&mut self, state: Option<&str>, error: String, cause: String) -> Outcome {
        self.emit(
            EventKind::ExecutionFailed,
            state,
            || json!({"error": error, "cause": cause}),
        )
        .await;
        Outcome::Failed { error, cause }
    }

    async fn execute(&mut self, def: &Definition, input: Value) -> Outcome {
        self.emit(
            EventKind::ExecutionStarted,
            None,
            || json!({"input": input}),
        )
        .await;
        let mut current = def.start_at.clone();
        let mut value = input;
        for _ in 0..MAX_STATE_TRANSITIONS {
            // Parsing guarantees every target exists; stay total anyway.
            let Some(state) = def.index_of(&current).and_then(|i| def.states.get(i)) else {
                let cause = format!("there is no state named {current:?}");
                return self.fail(None, RUNTIME_ERROR.to_owned(), cause).await;
            };
            let name = Some(state.name.as_str());
            self.emit(EventKind::StateEntered, name, || json!({"input": value}))
                .await;
            let step = match self.step(state, value).await {
                Ok(step) => step,
                Err(cause) => Step::Fail {
                    error: RUNTIME_ERROR.to_owned(),
                    cause,
                },
            };
            match step {
                Step::Next(next, output) => {
                    self.emit(
                        EventKind::StateExited,
                        name,
                        || json!({"output": output, "next": next}),
                    )
                    .await;
                    current = next;
                    value = output;
                }
                Step::Succeed(output) => {
                    self.emit(
                        EventKind::StateExited,
                        name,
                        || json!({"output": output, "next": null}),
                    )
                    .await;
                    self.emit(
                        EventKind::ExecutionSucceeded,
                        None,
                        || json!({"output": output}),
                    )
                    .await;
                    return Outcome::Succeeded { output };
                }
                Step::Fail { error, cause } => return self.fail(name, error, cause).await,
            }
        }
        let cause = format!(
            "the execution entered {MAX_STATE_TRANSITIONS} states without ending; the definition probably loops"
        );
        self.fail(None, RUNTIME_ERROR.to_owned(), cause).await
    }

    /// Runs one state; `Err` is a runtime error's cause.
    async fn step(&mut self, state: &State, input: Value) -> Result<Step, String> {
        match &state.kind {
            StateKind::Task(task) => self.task(&state.name, task, input).await,
            StateKind::Pass(pass) => {
                let effective = pass.input_path.view(&input)?;
                let effective = match &pass.parameters {
                    Some(parameters) => Cow::Owned(parameters.apply(&effective)?),
                    None => effective,
                };
                let result = match &pass.result {
                    Some(result) => result.clone(),
                    None => effective.into_owned(),
                };
                let output = pass.result_path.apply(input, result)?;
                Ok(transition(&pass.transition, pass.output_path.take(output)?))
            }
            StateKind::Choice(choice) => {
                let effective = choice.input_path.take(input)?;
                let mut next = choice.default.as_ref();
                for (rule, target) in &choice.choices {
                    if rule.matches(&effective)? {
                        next = Some(target);
                        break;
                    }
                }
                Ok(match next {
                    Some(target) => {
                        Step::Next(target.name.clone(), choice.output_path.take(effective)?)
                    }
                    None => Step::Fail {
                        error: NO_CHOICE_MATCHED.to_owned(),
                        cause: "no Choice rule matched and the state has no Default".to_owned(),
                    },
                })
            }
            StateKind::Succeed(succeed) => {
                let effective = succeed.input_path.take(input)?;
                Ok(Step::Succeed(succeed.output_path.take(effective)?))
            }
            StateKind::Fail(fail) => Ok(Step::Fail {
                error: fail.error.clone().unwrap_or_default(),
                cause: fail.cause.clone().unwrap_or_default(),
            }),
        }
    }

    /// Invokes the task, retrying as its retriers say, then catches or fails.
    async fn task(&mut self, name: &str, task: &Task, input: Value) -> Result<Step, String> {
        let state = Some(name);
        let resource = task.resource.as_str();
        let mut input = input;
        // The task's own input. Parameters that copy parts of the state's
        // input (`"order.$": "$.order"`) lend them instead: moved into the
        // task's input and given back when the task is done, as the state's
        // output needs them.
        let lent = task.parameters.as_ref().filter(|_| task.lends_parameters);
        let task_input = match (&task.parameters, lent) {
            (_, Some(parameters)) => parameters.lend(&mut input)?,
            (Some(parameters), None) => parameters.apply(&*task.input_path.view(&input)?)?,
            (None, _) => task.input_path.view(&input)?.into_owned(),
        };
        // Each retrier counts its own retries within this visit of the state.
        let mut retries = vec![0_u64; task.retry.len()];
        let mut attempt = 1_u64;
        let error = loop {
            self.emit(
                EventKind::TaskScheduled,
                state,
                || json!({"resource": resource, "input": task_input, "attempt": attempt}),
            )
            .await;
            match self.tasks.invoke(resource, &task_input).await {
                Ok(result) => {
                    self.emit(
                        EventKind::TaskSucceeded,
                        state,
                        || json!({"resource": resource, "output": result}),
                    )
                    .await;
                    let result = match &task.result_selector {
                        Some(selector) => selector.apply(&result)?,
                        None => result,
                    };
                    if let Some(parameters) = lent {
                        parameters.give_back(task_input, &mut input);
                    }
                    let output = task.result_path.apply(input, result)?;
                    return Ok(transition(&task.transition, task.output_path.take(output)?));
                }
                Err(error) => {
                    self.emit(EventKind::TaskFailed, state, || {
                        json!({
                            "resource": resource,
                            "error": error.error,
                            "cause": error.cause,
                            "attempt": attempt,
                        })
                    })
                    .await;
                    // Only the first matching retrier applies, even when exhausted.
                    let retrier = task
                        .retry
                        .iter()
                        .zip(retries.iter_mut())
                        .find(|(retrier, _)| retrier.error_equals.matches(&error.error));
                    match retrier {
                        Some((retrier, count)) if *count < retrier.max_attempts => {
                            *count += 1;
                            let delay = retrier.delay(*count);
                            let delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
                            let retry = *count;
                            self.emit(EventKind::TaskRetryScheduled, state, || {
                                json!({
                                    "resource": resource,
                                    "error": error.error,
                                    "retry": retry,
                                    "delayMs": delay_ms,
                                })
                            })
                            .await;
                            self.timer.sleep(delay).await;
                            attempt += 1;
                        }
                        _ => break error,
                    }
                }
            }
        };
        if let Some(parameters) = lent {
            parameters.give_back(task_input, &mut input);
        }
        match task
            .catch
            .iter()
            .find(|catcher| catcher.error_equals.matches(&error.error))
        {
            Some(catcher) => {
                let caught = json!({"Error": error.error, "Cause": error.cause});
                let output = catcher.result_path.apply(input, caught)?;
                Ok(Step::Next(catcher.next.name.clone(), output))
            }
            None => Ok(Step::Fail {
                error: error.error,
                cause: error.cause,
            }),
        }
    }
}

fn transition(transition: &Transition, output: Value) -> Step {
    match transition {
        Transition::Next(target) => Step::Next(target.name.clone(), output),
        Transition::End => Step::Succeed(output),
    }
}
