//! Fakes for the engine's ports: scripted tasks and a timer that records sleeps.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use dofs_workflow::{execute, Definition, Event, Outcome, TaskError, TaskHandler, Timer};
use serde_json::{json, Value};

/// The workflow the product runs, read from the repository.
pub const ORDER_WORKFLOW: &str = include_str!("../../../../workflow/order-processing.asl.json");

pub const VALIDATOR: &str = "${validator_arn}";
pub const STORAGE: &str = "${order_storage_arn}";
pub const QUEUE: &str = "arn:aws:states:::sqs:sendMessage";

/// Answers each resource from a script, in order; an unscripted call fails
/// with `Unscripted`. With `echo`, unscripted calls return their input.
#[derive(Default)]
pub struct ScriptedTasks {
    script: Mutex<HashMap<String, VecDeque<Result<Value, TaskError>>>>,
    calls: Mutex<Vec<(String, Value)>>,
    echo: bool,
}

impl ScriptedTasks {
    pub fn new() -> ScriptedTasks {
        ScriptedTasks::default()
    }

    /// A handler that returns every task's input as its result.
    pub fn echo() -> ScriptedTasks {
        ScriptedTasks {
            echo: true,
            ..ScriptedTasks::default()
        }
    }

    pub fn on(self, resource: &str, results: Vec<Result<Value, TaskError>>) -> ScriptedTasks {
        self.script
            .lock()
            .unwrap()
            .entry(resource.to_owned())
            .or_default()
            .extend(results);
        self
    }

    pub fn calls(&self) -> Vec<(String, Value)> {
        self.calls.lock().unwrap().clone()
    }

    pub fn calls_to(&self, resource: &str) -> usize {
        self.calls().iter().filter(|(r, _)| r == resource).count()
    }
}

#[async_trait::async_trait]
impl TaskHandler for ScriptedTasks {
    async fn invoke(&self, resource: &str, input: &Value) -> Result<Value, TaskError> {
        self.calls
            .lock()
            .unwrap()
            .push((resource.to_owned(), input.clone()));
        let next = self
            .script
            .lock()
            .unwrap()
            .get_mut(resource)
            .and_then(VecDeque::pop_front);
        match next {
            Some(result) => result,
            None if self.echo => Ok(input.clone()),
            None => Err(TaskError::new("Unscripted", resource)),
        }
    }
}

pub fn fail(error: &str) -> Result<Value, TaskError> {
    Err(TaskError::new(error, format!("{error} from the fake")))
}

/// A clock that starts at a fixed instant, ticks 1 ms per reading and jumps
/// forward by each sleep, which it records instead of waiting.
pub struct FakeTimer {
    now: AtomicI64,
    sleeps: Mutex<Vec<Duration>>,
}

pub const START_MILLIS: i64 = 1_700_000_000_000;

impl FakeTimer {
    pub fn new() -> FakeTimer {
        FakeTimer {
            now: AtomicI64::new(START_MILLIS),
            sleeps: Mutex::new(Vec::new()),
        }
    }

    pub fn sleeps(&self) -> Vec<Duration> {
        self.sleeps.lock().unwrap().clone()
    }
}

#[async_trait::async_trait]
impl Timer for FakeTimer {
    fn now_millis(&self) -> i64 {
        self.now.fetch_add(1, Ordering::SeqCst)
    }

    async fn sleep(&self, duration: Duration) {
        self.sleeps.lock().unwrap().push(duration);
        let millis = i64::try_from(duration.as_millis()).unwrap();
        self.now.fetch_add(millis, Ordering::SeqCst);
    }
}

/// What one execution did.
pub struct Run {
    pub outcome: Outcome,
    pub events: Vec<Event>,
    pub sleeps: Vec<Duration>,
}

impl Run {
    /// The names of the states entered, in order.
    pub fn path(&self) -> Vec<String> {
        self.events
            .iter()
            .filter(|e| e.kind == dofs_workflow::EventKind::StateEntered)
            .filter_map(|e| e.state.clone())
            .collect()
    }

    /// The raw input of the last entry into `state`.
    pub fn input_of(&self, state: &str) -> Value {
        self.events
            .iter()
            .rev()
            .find(|e| {
                e.kind == dofs_workflow::EventKind::StateEntered
                    && e.state.as_deref() == Some(state)
            })
            .map(|e| e.details["input"].clone())
            .unwrap_or_else(|| panic!("{state} was never entered"))
    }
}

pub async fn run(def: &Definition, input: Value, tasks: &ScriptedTasks) -> Run {
    let timer = FakeTimer::new();
    let mut events = Vec::new();
    let outcome = execute(def, input, tasks, &timer, &mut events).await;
    Run {
        outcome,
        events,
        sleeps: timer.sleeps(),
    }
}

/// Parses a definition that must be valid.
pub fn definition(source: &str) -> Definition {
    Definition::parse(source).unwrap_or_else(|e| panic!("{e}"))
}

/// Runs a definition whose tasks echo their input.
pub async fn run_echo(source: &str, input: Value) -> Run {
    run(&definition(source), input, &ScriptedTasks::echo()).await
}

pub fn succeeded(output: Value) -> Outcome {
    Outcome::Succeeded { output }
}

pub fn order_input() -> Value {
    json!({"order": {"orderId": "ord-1", "customer": "c-9", "items": [{"sku": "A", "quantity": 2}]}})
}
