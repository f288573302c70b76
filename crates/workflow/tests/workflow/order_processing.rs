//! The product's own workflow file, run against fake tasks.

use std::time::Duration;

use dofs_workflow::{Definition, EventKind, GraphEdge, Outcome, StateType, TaskResource};
use serde_json::json;

use crate::support::*;

fn order_workflow() -> Definition {
    definition(ORDER_WORKFLOW)
}

fn happy_tasks() -> ScriptedTasks {
    ScriptedTasks::new()
        .on(VALIDATOR, vec![Ok(json!({"valid": true}))])
        .on(STORAGE, vec![Ok(json!({"stored": true}))])
        .on(QUEUE, vec![Ok(json!({"MessageId": "m-1"}))])
}

#[test]
fn order_workflow_lists_its_task_resources_with_positions() {
    let def = order_workflow();
    assert_eq!(def.start_at(), "Validate Order");
    let resource = |state: &str, resource: &str, line| TaskResource {
        state: state.to_owned(),
        resource: resource.to_owned(),
        line,
        column: 19,
    };
    assert_eq!(
        def.task_resources(),
        vec![
            resource("Validate Order", VALIDATOR, 7),
            resource("Store Order", STORAGE, 36),
            resource("Queue For Fulfillment", QUEUE, 60),
        ]
    );
}

#[test]
fn require_resources_names_the_first_unknown_resource() {
    let def = order_workflow();
    assert_eq!(def.require_resources(|_| true), Ok(()));
    let err = def
        .require_resources(|resource| resource != QUEUE)
        .expect_err("the queue resource is unknown");
    assert_eq!((err.line, err.column), (60, 19));
    assert_eq!(err.state.as_deref(), Some("Queue For Fulfillment"));
    assert_eq!(err.field.as_deref(), Some("Resource"));
    assert_eq!(
        err.to_string(),
        "line 60, column 19: state \"Queue For Fulfillment\": field \"Resource\": \
         unknown task resource \"arn:aws:states:::sqs:sendMessage\""
    );
}

#[test]
fn order_workflow_graph_lists_states_in_file_order_and_every_edge() {
    let graph = order_workflow().graph();
    let states: Vec<_> = graph
        .states
        .iter()
        .map(|s| (s.name.as_str(), s.state_type))
        .collect();
    assert_eq!(
        states,
        [
            ("Validate Order", StateType::Task),
            ("Store Order", StateType::Task),
            ("Queue For Fulfillment", StateType::Task),
            ("Order Queued", StateType::Succeed),
            ("Order Rejected", StateType::Fail),
            ("Order Processing Failed", StateType::Fail),
        ]
    );
    let edge = |from: &str, to: &str, label: &str| GraphEdge {
        from: from.to_owned(),
        to: to.to_owned(),
        label: label.to_owned(),
    };
    assert_eq!(
        graph.edges,
        vec![
            edge("Validate Order", "Store Order", "Next"),
            edge("Validate Order", "Order Rejected", "Catch ValidationError"),
            edge(
                "Validate Order",
                "Order Processing Failed",
                "Catch States.ALL"
            ),
            edge("Store Order", "Queue For Fulfillment", "Next"),
            edge("Store Order", "Order Processing Failed", "Catch States.ALL"),
            edge("Queue For Fulfillment", "Order Queued", "Next"),
            edge(
                "Queue For Fulfillment",
                "Order Processing Failed",
                "Catch States.ALL"
            ),
        ]
    );
    let serialized = serde_json::to_value(&graph).unwrap();
    assert_eq!(serialized["startAt"], "Validate Order");
    assert_eq!(
        serialized["states"][3],
        json!({"name": "Order Queued", "type": "Succeed"})
    );
    assert_eq!(
        serialized["edges"][0],
        json!({"from": "Validate Order", "to": "Store Order", "label": "Next"})
    );
}

#[tokio::test]
async fn order_workflow_runs_to_success_and_outputs_the_order() {
    let tasks = happy_tasks();
    let run = run(&order_workflow(), order_input(), &tasks).await;

    assert_eq!(run.outcome, succeeded(order_input()["order"].clone()));
    assert_eq!(
        run.path(),
        [
            "Validate Order",
            "Store Order",
            "Queue For Fulfillment",
            "Order Queued"
        ]
    );
    assert_eq!(
        tasks.calls(),
        vec![
            (
                VALIDATOR.to_owned(),
                json!({"order": order_input()["order"]})
            ),
            (STORAGE.to_owned(), json!({"order": order_input()["order"]})),
            (
                QUEUE.to_owned(),
                json!({"QueueUrl": "${orders_queue_url}", "MessageBody": {"orderId": "ord-1"}})
            ),
        ]
    );
    // Each ResultPath adds to the state's input rather than replacing it.
    assert_eq!(
        run.input_of("Order Queued"),
        json!({
            "order": order_input()["order"],
            "validation": {"valid": true},
            "storage": {"stored": true},
            "queued": {"MessageId": "m-1"},
        })
    );
    assert!(run.sleeps.is_empty());
}

#[tokio::test]
async fn successful_execution_records_a_complete_history_with_timer_timestamps() {
    let run = run(&order_workflow(), order_input(), &happy_tasks()).await;
    use EventKind::*;
    let task_state = [StateEntered, TaskScheduled, TaskSucceeded, StateExited];
    let mut expected = vec![ExecutionStarted];
    for _ in 0..3 {
        expected.extend(task_state);
    }
    expected.extend([StateEntered, StateExited, ExecutionSucceeded]);
    let kinds: Vec<_> = run.events.iter().map(|e| e.kind).collect();
    assert_eq!(kinds, expected);

    let stamps: Vec<_> = run.events.iter().map(|e| e.timestamp_ms).collect();
    assert_eq!(stamps[0], START_MILLIS);
    assert!(stamps.windows(2).all(|w| w[0] < w[1]), "{stamps:?}");

    let first = serde_json::to_value(&run.events[0]).unwrap();
    assert_eq!(
        first,
        json!({
            "type": "ExecutionStarted",
            "state": null,
            "timestampMs": START_MILLIS,
            "details": {"input": order_input()},
        })
    );
    let scheduled = &run.events[2];
    assert_eq!(scheduled.state.as_deref(), Some("Validate Order"));
    assert_eq!(
        scheduled.details,
        json!({"resource": VALIDATOR, "input": {"order": order_input()["order"]}, "attempt": 1})
    );
    let round_trip: Vec<dofs_workflow::Event> =
        serde_json::from_value(serde_json::to_value(&run.events).unwrap()).unwrap();
    assert_eq!(round_trip, run.events);
}

#[tokio::test]
async fn validation_error_routes_to_order_rejected() {
    let tasks = ScriptedTasks::new().on(VALIDATOR, vec![fail("ValidationError")]);
    let run = run(&order_workflow(), order_input(), &tasks).await;

    assert_eq!(
        run.outcome,
        Outcome::Failed {
            error: "ValidationError".to_owned(),
            cause: "The order failed validation.".to_owned(),
        }
    );
    assert_eq!(run.path(), ["Validate Order", "Order Rejected"]);
    assert_eq!(
        tasks.calls_to(VALIDATOR),
        1,
        "ValidationError is not retried"
    );
    assert_eq!(
        run.input_of("Order Rejected")["error"],
        json!({"Error": "ValidationError", "Cause": "ValidationError from the fake"})
    );
    // The task's Parameters lent the order to the task; the Catch sees it back.
    assert_eq!(
        run.input_of("Order Rejected")["order"],
        order_input()["order"]
    );
    let last = run.events.last().unwrap();
    assert_eq!(last.kind, EventKind::ExecutionFailed);
    assert_eq!(last.state.as_deref(), Some("Order Rejected"));
    assert!(run.sleeps.is_empty());
}

#[tokio::test]
async fn transient_error_is_retried_with_backoff_then_succeeds() {
    let tasks = ScriptedTasks::new()
        .on(VALIDATOR, vec![Ok(json!({"valid": true}))])
        .on(
            STORAGE,
            vec![
                fail("TransientError"),
                fail("TransientError"),
                Ok(json!({"stored": true})),
            ],
        )
        .on(QUEUE, vec![Ok(json!({}))]);
    let run = run(&order_workflow(), order_input(), &tasks).await;

    assert!(
        matches!(run.outcome, Outcome::Succeeded { .. }),
        "{:?}",
        run.outcome
    );
    assert_eq!(tasks.calls_to(STORAGE), 3);
    let storage_inputs: Vec<_> = tasks
        .calls()
        .into_iter()
        .filter(|(resource, _)| resource == STORAGE)
        .map(|(_, input)| input)
        .collect();
    assert_eq!(
        storage_inputs,
        vec![json!({"order": order_input()["order"]}); 3],
        "every attempt gets the whole order"
    );
    assert_eq!(run.sleeps, [Duration::from_secs(1), Duration::from_secs(2)]);
    let retries: Vec<_> = run
        .events
        .iter()
        .filter(|e| e.kind == EventKind::TaskRetryScheduled)
        .map(|e| (e.details["retry"].clone(), e.details["delayMs"].clone()))
        .collect();
    assert_eq!(retries, [(json!(1), json!(1000)), (json!(2), json!(2000))]);
    // The wait happens between the retry being scheduled and the next attempt.
    let scheduled: Vec<_> = run
        .events
        .iter()
        .filter(|e| e.kind == EventKind::TaskScheduled && e.state.as_deref() == Some("Store Order"))
        .map(|e| (e.details["attempt"].clone(), e.timestamp_ms))
        .collect();
    assert_eq!(scheduled.len(), 3);
    assert!(scheduled[1].1 - scheduled[0].1 >= 1000);
    assert!(scheduled[2].1 - scheduled[1].1 >= 2000);
    assert_eq!(scheduled[2].0, json!(3));
}

#[tokio::test]
async fn retry_waits_with_exponential_backoff_then_catch_routes_to_fail() {
    let tasks = ScriptedTasks::new()
        .on(VALIDATOR, vec![Ok(json!({"valid": true}))])
        .on(STORAGE, (0..6).map(|_| fail("TransientError")).collect());
    let run = run(&order_workflow(), order_input(), &tasks).await;

    assert_eq!(
        run.outcome,
        Outcome::Failed {
            error: "OrderProcessingFailed".to_owned(),
            cause: "The order could not be stored or queued.".to_owned(),
        }
    );
    assert_eq!(
        tasks.calls_to(STORAGE),
        6,
        "one attempt and MaxAttempts 5 retries"
    );
    assert_eq!(run.sleeps, [1, 2, 4, 8, 16].map(Duration::from_secs));
    assert_eq!(
        run.path(),
        ["Validate Order", "Store Order", "Order Processing Failed"]
    );
    let input = run.input_of("Order Processing Failed");
    assert_eq!(input["error"]["Error"], "TransientError");
    assert_eq!(input["validation"], json!({"valid": true}));
}

#[tokio::test]
async fn an_error_no_retrier_names_goes_straight_to_the_catch_all() {
    let tasks = ScriptedTasks::new().on(VALIDATOR, vec![fail("Boom")]);
    let run = run(&order_workflow(), order_input(), &tasks).await;

    assert_eq!(run.path(), ["Validate Order", "Order Processing Failed"]);
    assert!(run.sleeps.is_empty());
    assert!(
        matches!(run.outcome, Outcome::Failed { ref error, .. } if error == "OrderProcessingFailed")
    );
}

#[tokio::test]
async fn queue_retries_any_error_because_its_retrier_uses_states_all() {
    let tasks = ScriptedTasks::new()
        .on(VALIDATOR, vec![Ok(json!({}))])
        .on(STORAGE, vec![Ok(json!({}))])
        .on(
            QUEUE,
            vec![fail("Sqs.Throttled"), Ok(json!({"MessageId": "m"}))],
        );
    let run = run(&order_workflow(), order_input(), &tasks).await;

    assert!(matches!(run.outcome, Outcome::Succeeded { .. }));
    assert_eq!(run.sleeps, [Duration::from_secs(1)]);
}

#[test]
fn definitions_and_executions_can_move_across_threads() {
    fn assert_send<T: Send>(_: &T) {}
    fn assert_send_sync<T: Send + Sync + Clone + std::fmt::Debug>() {}
    assert_send_sync::<Definition>();

    let def = order_workflow();
    let tasks = ScriptedTasks::new();
    let timer = FakeTimer::new();
    let mut events = Vec::new();
    let execution = dofs_workflow::execute(&def, order_input(), &tasks, &timer, &mut events);
    assert_send(&execution);
}
