//! The checked state machine ([`Definition`]) and what callers can ask of it.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::choice::ChoiceRule;
use crate::error::DefinitionError;
use crate::json::Pos;
use crate::path::{FilterPath, ResultPath, Template};

/// A parsed and checked state machine.
///
/// Holding one means: every transition names an existing state, every state
/// is reachable from `StartAt`, and only the supported subset of the Amazon
/// States Language is used. Build it with [`Definition::parse`].
#[derive(Clone, Debug)]
pub struct Definition {
    pub(crate) start_at: String,
    /// States in file order; names are unique.
    pub(crate) states: Vec<State>,
}

#[derive(Clone, Debug)]
pub(crate) struct State {
    pub name: String,
    /// Position of the state's name (its key under `States`).
    pub pos: Pos,
    pub kind: StateKind,
}

#[derive(Clone, Debug)]
pub(crate) enum StateKind {
    Task(Task),
    Pass(Pass),
    Choice(Choice),
    Succeed(Succeed),
    Fail(Fail),
}

/// A reference to another state (`Next`, `Default`, a catcher's `Next`).
#[derive(Clone, Debug)]
pub(crate) struct Target {
    pub name: String,
    pub pos: Pos,
}

#[derive(Clone, Debug)]
pub(crate) enum Transition {
    Next(Target),
    End,
}

#[derive(Clone, Debug)]
pub(crate) struct Task {
    pub resource: String,
    pub resource_pos: Pos,
    pub input_path: FilterPath,
    pub parameters: Option<Template>,
    /// The `Parameters` build the task's input by lending the state input's
    /// nodes ([`Template::lend`]): the `InputPath` is `$` and the template
    /// [`lends`](Template::lends).
    pub lends_parameters: bool,
    pub result_selector: Option<Template>,
    pub result_path: ResultPath,
    pub output_path: FilterPath,
    pub retry: Vec<Retrier>,
    pub catch: Vec<Catcher>,
    pub transition: Transition,
}

/// The error names a retrier or catcher handles.
#[derive(Clone, Debug)]
pub(crate) struct ErrorEquals(pub Vec<String>);

impl ErrorEquals {
    /// Exact names match; `States.ALL` matches everything and
    /// `States.TaskFailed` everything except `States.Timeout`.
    pub fn matches(&self, error: &str) -> bool {
        self.0.iter().any(|name| match name.as_str() {
            "States.ALL" => true,
            "States.TaskFailed" => error != "States.Timeout",
            name => name == error,
        })
    }
}

#[derive(Clone, Debug)]
pub(crate) struct Retrier {
    pub error_equals: ErrorEquals,
    pub interval_seconds: u64,
    pub max_attempts: u64,
    pub backoff_rate: f64,
    pub max_delay_seconds: Option<u64>,
}

impl Retrier {
    /// The wait before retry number `retry` (1-based):
    /// `IntervalSeconds × BackoffRate^(retry−1)`, capped by `MaxDelaySeconds`.
    pub fn delay(&self, retry: u64) -> std::time::Duration {
        let exponent = i32::try_from(retry.saturating_sub(1)).unwrap_or(i32::MAX);
        let mut seconds = self.interval_seconds as f64 * self.backoff_rate.powi(exponent);
        if let Some(max) = self.max_delay_seconds {
            seconds = seconds.min(max as f64);
        }
        std::time::Duration::try_from_secs_f64(seconds).unwrap_or(std::time::Duration::MAX)
    }
}

#[derive(Clone, Debug)]
pub(crate) struct Catcher {
    pub error_equals: ErrorEquals,
    pub result_path: ResultPath,
    pub next: Target,
}

#[derive(Clone, Debug)]
pub(crate) struct Pass {
    pub input_path: FilterPath,
    pub parameters: Option<Template>,
    pub result: Option<Value>,
    pub result_path: ResultPath,
    pub output_path: FilterPath,
    pub transition: Transition,
}

#[derive(Clone, Debug)]
pub(crate) struct Choice {
    pub input_path: FilterPath,
    pub output_path: FilterPath,
    pub choices: Vec<(ChoiceRule, Target)>,
    pub default: Option<Target>,
}

#[derive(Clone, Debug)]
pub(crate) struct Succeed {
    pub input_path: FilterPath,
    pub output_path: FilterPath,
}

#[derive(Clone, Debug)]
pub(crate) struct Fail {
    pub error: Option<String>,
    pub cause: Option<String>,
}

impl StateKind {
    pub fn state_type(&self) -> StateType {
        match self {
            StateKind::Task(_) => StateType::Task,
            StateKind::Pass(_) => StateType::Pass,
            StateKind::Choice(_) => StateType::Choice,
            StateKind::Succeed(_) => StateType::Succeed,
            StateKind::Fail(_) => StateType::Fail,
        }
    }

    /// Where this state can go next, with the label drawn on the edge.
    pub fn targets(&self) -> Vec<(&Target, String)> {
        let mut out = Vec::new();
        match self {
            StateKind::Task(task) => {
                if let Transition::Next(next) = &task.transition {
                    out.push((next, "Next".to_owned()));
                }
                for catcher in &task.catch {
                    out.push((
                        &catcher.next,
                        format!("Catch {}", catcher.error_equals.0.join(", ")),
                    ));
                }
            }
            StateKind::Pass(pass) => {
                if let Transition::Next(next) = &pass.transition {
                    out.push((next, "Next".to_owned()));
                }
            }
            StateKind::Choice(choice) => {
                for (_, next) in &choice.choices {
                    out.push((next, "Choice".to_owned()));
                }
                if let Some(default) = &choice.default {
                    out.push((default, "Default".to_owned()));
                }
            }
            StateKind::Succeed(_) | StateKind::Fail(_) => {}
        }
        out
    }
}

/// A Task state's `Resource`, with where it is written.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskResource {
    /// The Task state's name.
    pub state: String,
    /// The resource string exactly as written, e.g. `${validator_arn}`.
    pub resource: String,
    /// 1-based line of the `Resource` value.
    pub line: usize,
    /// 1-based column (in characters) of the `Resource` value.
    pub column: usize,
}

/// The kind of a state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum StateType {
    /// Calls the caller's [`TaskHandler`](crate::TaskHandler).
    Task,
    /// Passes (and optionally reshapes) its input.
    Pass,
    /// Branches on its input.
    Choice,
    /// Ends the execution successfully.
    Succeed,
    /// Ends the execution with an error.
    Fail,
}

/// The state graph, for drawing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Graph {
    /// The state the execution starts in.
    pub start_at: String,
    /// Every state, in file order.
    pub states: Vec<GraphState>,
    /// Every possible transition, grouped by source state in file order.
    pub edges: Vec<GraphEdge>,
}

/// A node of the [`Graph`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GraphState {
    /// The state's name.
    pub name: String,
    /// The state's type, serialized as `"type"`.
    #[serde(rename = "type")]
    pub state_type: StateType,
}

/// An edge of the [`Graph`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GraphEdge {
    /// Source state.
    pub from: String,
    /// Target state.
    pub to: String,
    /// `"Next"`, `"Catch <ErrorEquals joined by ", ">"`, `"Choice"` or `"Default"`.
    pub label: String,
}

impl Definition {
    /// The name of the first state.
    pub fn start_at(&self) -> &str {
        &self.start_at
    }

    /// Every Task state's resource, in file order.
    pub fn task_resources(&self) -> Vec<TaskResource> {
        self.states
            .iter()
            .filter_map(|state| match &state.kind {
                StateKind::Task(task) => Some(TaskResource {
                    state: state.name.clone(),
                    resource: task.resource.clone(),
                    line: task.resource_pos.line,
                    column: task.resource_pos.column,
                }),
                _ => None,
            })
            .collect()
    }

    /// Checks every Task resource against `known` (for instance "does the
    /// caller's handler map this placeholder?"), failing on the first rejected
    /// one in file order, naming its state, the `Resource` field and position.
    pub fn require_resources(&self, known: impl Fn(&str) -> bool) -> Result<(), DefinitionError> {
        match self
            .task_resources()
            .into_iter()
            .find(|task| !known(&task.resource))
        {
            None => Ok(()),
            Some(task) => Err(DefinitionError {
                line: task.line,
                column: task.column,
                message: format!("unknown task resource {:?}", task.resource),
                state: Some(task.state),
                field: Some("Resource".to_owned()),
            }),
        }
    }

    /// The state graph: states in file order and every possible transition.
    pub fn graph(&self) -> Graph {
        Graph {
            start_at: self.start_at.clone(),
            states: self
                .states
                .iter()
                .map(|state| GraphState {
                    name: state.name.clone(),
                    state_type: state.kind.state_type(),
                })
                .collect(),
            edges: self
                .states
                .iter()
                .flat_map(|state| {
                    state
                        .kind
                        .targets()
                        .into_iter()
                        .map(|(target, label)| GraphEdge {
                            from: state.name.clone(),
                            to: target.name.clone(),
                            label,
                        })
                })
                .collect(),
        }
    }

    /// The index of the state called `name`.
    pub(crate) fn index_of(&self, name: &str) -> Option<usize> {
        self.states.iter().position(|state| state.name == name)
    }
}
