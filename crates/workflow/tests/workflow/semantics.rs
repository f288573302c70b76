//! Paths, payload templates, retries, catches and Choice rules, one behaviour at a time.

use std::time::Duration;

use dofs_workflow::{EventKind, Outcome, MAX_STATE_TRANSITIONS};
use serde_json::{json, Value};

use crate::support::*;

fn failed(error: &str) -> impl Fn(&Outcome) -> bool + '_ {
    move |outcome| matches!(outcome, Outcome::Failed { error: e, .. } if e == error)
}

#[tokio::test]
async fn pass_state_places_its_result_at_result_path() {
    let source = r#"{"StartAt": "P", "States": {"P": {"Type": "Pass", "Result": {"x": 1}, "ResultPath": "$.r.s", "End": true}}}"#;
    let run = run_echo(source, json!({"a": 1})).await;
    assert_eq!(
        run.outcome,
        succeeded(json!({"a": 1, "r": {"s": {"x": 1}}}))
    );
}

#[tokio::test]
async fn pass_state_without_result_passes_its_parameters_or_input() {
    let source = r#"{"StartAt": "P", "States": {"P": {"Type": "Pass", "InputPath": "$.a", "Parameters": {"b.$": "$.b", "c": "$.literal"}, "ResultPath": "$.out", "End": true}}}"#;
    let run = run_echo(source, json!({"a": {"b": 2}})).await;
    // ResultPath merges into the raw input, not into the InputPath selection.
    assert_eq!(
        run.outcome,
        succeeded(json!({"a": {"b": 2}, "out": {"b": 2, "c": "$.literal"}}))
    );
}

#[tokio::test]
async fn input_path_and_parameters_shape_the_task_input() {
    let source = r#"{
  "StartAt": "T",
  "States": {
    "T": {
      "Type": "Task",
      "Resource": "echo",
      "InputPath": "$.order",
      "Parameters": {
        "id.$": "$.id",
        "firstSku.$": "$.items[0].sku",
        "odd.$": "$['odd key']",
        "whole.$": "$",
        "fixed": "literal",
        "nested": {"n.$": "$.id", "list": [{"v.$": "$.id"}, 2]}
      },
      "ResultPath": null,
      "End": true
    }
  }
}"#;
    let input = json!({"order": {"id": "o-1", "items": [{"sku": "A"}], "odd key": true}});
    let tasks = ScriptedTasks::echo();
    let run = run(&definition(source), input.clone(), &tasks).await;

    assert_eq!(
        run.outcome,
        succeeded(input.clone()),
        "ResultPath null keeps the input"
    );
    assert_eq!(
        tasks.calls()[0].1,
        json!({
            "id": "o-1",
            "firstSku": "A",
            "odd": true,
            "whole": input["order"],
            "fixed": "literal",
            "nested": {"n": "o-1", "list": [{"v": "o-1"}, 2]},
        })
    );
}

#[tokio::test]
async fn result_selector_reshapes_the_result_before_result_path_and_output_path() {
    let source = r#"{"StartAt": "T", "States": {"T": {
      "Type": "Task", "Resource": "echo",
      "Parameters": {"payload": {"deep": 5}, "noise": true},
      "ResultSelector": {"value.$": "$.payload.deep", "kind": "selected"},
      "ResultPath": "$.out",
      "OutputPath": "$.out",
      "End": true}}}"#;
    let run = run_echo(source, json!({"ignored": 1})).await;
    assert_eq!(
        run.outcome,
        succeeded(json!({"value": 5, "kind": "selected"}))
    );
}

#[tokio::test]
async fn default_paths_replace_the_input_with_the_result() {
    let source =
        r#"{"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": "r", "End": true}}}"#;
    let tasks = ScriptedTasks::new().on("r", vec![Ok(json!({"result": 1}))]);
    let run = run(&definition(source), json!({"input": 1}), &tasks).await;
    assert_eq!(run.outcome, succeeded(json!({"result": 1})));
}

#[tokio::test]
async fn null_input_and_output_paths_pass_an_empty_object() {
    let source = r#"{"StartAt": "T", "States": {
      "T": {"Type": "Task", "Resource": "echo", "InputPath": null, "ResultPath": "$.got", "Next": "S"},
      "S": {"Type": "Succeed", "OutputPath": null}}}"#;
    let tasks = ScriptedTasks::echo();
    let run = run(&definition(source), json!({"secret": 1}), &tasks).await;
    assert_eq!(tasks.calls()[0].1, json!({}));
    assert_eq!(run.input_of("S"), json!({"secret": 1, "got": {}}));
    assert_eq!(run.outcome, succeeded(json!({})));
}

#[tokio::test]
async fn succeed_state_applies_input_and_output_paths() {
    let source = r#"{"StartAt": "S", "States": {"S": {"Type": "Succeed", "InputPath": "$.a", "OutputPath": "$.b"}}}"#;
    let run = run_echo(source, json!({"a": {"b": [1]}})).await;
    assert_eq!(run.outcome, succeeded(json!([1])));
}

#[tokio::test]
async fn a_path_that_does_not_resolve_fails_with_states_runtime_and_is_not_caught() {
    let with_input_path = |field: &str| {
        format!(
            r#"{{"StartAt": "T", "States": {{
              "T": {{"Type": "Task", "Resource": "echo", {field},
                    "Catch": [{{"ErrorEquals": ["States.ALL"], "Next": "Caught"}}], "End": true}},
              "Caught": {{"Type": "Succeed"}}}}}}"#
        )
    };
    for field in [
        r#""InputPath": "$.missing""#,
        r#""Parameters": {"x.$": "$.order.nope"}"#,
        r#""ResultSelector": {"x.$": "$.nope"}"#,
        r#""ResultPath": "$.order.id.deeper""#,
        r#""OutputPath": "$[3]""#,
    ] {
        let tasks = ScriptedTasks::echo();
        let run = run(
            &definition(&with_input_path(field)),
            json!({"order": {"id": "o"}}),
            &tasks,
        )
        .await;
        assert!(
            failed("States.Runtime")(&run.outcome),
            "{field}: {:?}",
            run.outcome
        );
        assert_eq!(
            run.path(),
            ["T"],
            "{field}: a runtime error is never caught"
        );
        let last = run.events.last().unwrap();
        assert_eq!(
            (last.kind, last.state.as_deref()),
            (EventKind::ExecutionFailed, Some("T"))
        );
    }
}

#[tokio::test]
async fn states_task_failed_matches_task_errors_but_not_timeouts() {
    let source = r#"{"StartAt": "T", "States": {
      "T": {"Type": "Task", "Resource": "r",
            "Catch": [{"ErrorEquals": ["States.TaskFailed"], "Next": "Caught"}], "End": true},
      "Caught": {"Type": "Succeed"}}}"#;
    let def = definition(source);

    let tasks = ScriptedTasks::new().on("r", vec![fail("Anything")]);
    let run = run(&def, json!({}), &tasks).await;
    assert_eq!(run.path(), ["T", "Caught"]);
    // Without ResultPath, the error object replaces the input.
    assert_eq!(
        run.outcome,
        succeeded(json!({"Error": "Anything", "Cause": "Anything from the fake"}))
    );

    let tasks = ScriptedTasks::new().on("r", vec![fail("States.Timeout")]);
    let timed_out = crate::support::run(&def, json!({}), &tasks).await;
    assert!(
        failed("States.Timeout")(&timed_out.outcome),
        "{:?}",
        timed_out.outcome
    );
}

#[tokio::test]
async fn catch_result_path_null_forwards_the_original_input() {
    let source = r#"{"StartAt": "T", "States": {
      "T": {"Type": "Task", "Resource": "r",
            "Catch": [{"ErrorEquals": ["E"], "ResultPath": null, "Next": "Caught"}], "End": true},
      "Caught": {"Type": "Succeed"}}}"#;
    let tasks = ScriptedTasks::new().on("r", vec![fail("E")]);
    let run = run(&definition(source), json!({"keep": true}), &tasks).await;
    assert_eq!(run.outcome, succeeded(json!({"keep": true})));
}

fn retrying(retry: &str) -> String {
    format!(
        r#"{{"StartAt": "T", "States": {{"T": {{"Type": "Task", "Resource": "r", "Retry": {retry}, "End": true}}}}}}"#
    )
}

#[tokio::test]
async fn max_attempts_zero_never_retries() {
    let tasks = ScriptedTasks::new().on("r", vec![fail("E"), Ok(json!(1))]);
    let source = retrying(r#"[{"ErrorEquals": ["E"], "MaxAttempts": 0}]"#);
    let run = run(&definition(&source), json!({}), &tasks).await;
    assert!(failed("E")(&run.outcome));
    assert_eq!(tasks.calls_to("r"), 1);
    assert!(run.sleeps.is_empty());
}

#[tokio::test]
async fn retry_defaults_are_three_attempts_from_one_second_doubling() {
    let tasks = ScriptedTasks::new().on("r", (0..4).map(|_| fail("E")).collect());
    let run = run(
        &definition(&retrying(r#"[{"ErrorEquals": ["E"]}]"#)),
        json!({}),
        &tasks,
    )
    .await;
    assert!(failed("E")(&run.outcome));
    assert_eq!(run.sleeps, [1, 2, 4].map(Duration::from_secs));
}

#[tokio::test]
async fn max_delay_seconds_caps_the_backoff() {
    let tasks = ScriptedTasks::new().on(
        "r",
        vec![
            fail("E"),
            fail("E"),
            fail("E"),
            fail("E"),
            Ok(json!("done")),
        ],
    );
    let source = retrying(
        r#"[{"ErrorEquals": ["E"], "IntervalSeconds": 3, "BackoffRate": 3, "MaxAttempts": 4, "MaxDelaySeconds": 20}]"#,
    );
    let run = run(&definition(&source), json!({}), &tasks).await;
    assert_eq!(run.outcome, succeeded(json!("done")));
    assert_eq!(run.sleeps, [3, 9, 20, 20].map(Duration::from_secs));
}

#[tokio::test]
async fn fractional_backoff_rates_give_fractional_waits() {
    let tasks = ScriptedTasks::new().on("r", vec![fail("E"), fail("E"), Ok(json!(1))]);
    let source = retrying(r#"[{"ErrorEquals": ["E"], "IntervalSeconds": 2, "BackoffRate": 1.5}]"#);
    let run = run(&definition(&source), json!({}), &tasks).await;
    assert_eq!(run.sleeps, [Duration::from_secs(2), Duration::from_secs(3)]);
}

#[tokio::test]
async fn only_the_first_matching_retrier_applies_even_when_exhausted() {
    let tasks = ScriptedTasks::new().on("r", (0..10).map(|_| fail("E")).collect());
    let source = retrying(
        r#"[{"ErrorEquals": ["E"], "MaxAttempts": 1}, {"ErrorEquals": ["States.ALL"], "MaxAttempts": 5}]"#,
    );
    let run = run(&definition(&source), json!({}), &tasks).await;
    assert!(failed("E")(&run.outcome));
    assert_eq!(tasks.calls_to("r"), 2);
}

#[tokio::test]
async fn each_retrier_counts_its_own_retries() {
    let tasks =
        ScriptedTasks::new().on("r", vec![fail("E"), fail("F"), fail("E"), Ok(json!("ok"))]);
    let source = retrying(
        r#"[{"ErrorEquals": ["E"], "MaxAttempts": 2}, {"ErrorEquals": ["F"], "IntervalSeconds": 10}]"#,
    );
    let run = run(&definition(&source), json!({}), &tasks).await;
    assert_eq!(run.outcome, succeeded(json!("ok")));
    assert_eq!(run.sleeps, [1, 10, 2].map(Duration::from_secs));
}

/// Runs a Choice state with one rule (going to "Yes") and a Default ("No").
async fn choose(rule: &str, input: Value) -> Outcome {
    let source = format!(
        r#"{{"StartAt": "C", "States": {{
          "C": {{"Type": "Choice", "Choices": [{{{rule}, "Next": "Yes"}}], "Default": "No"}},
          "Yes": {{"Type": "Pass", "Result": "yes", "End": true}},
          "No": {{"Type": "Pass", "Result": "no", "End": true}}}}}}"#
    );
    run_echo(&source, input).await.outcome
}

#[tokio::test]
async fn choice_operators_compare_the_variable_with_their_operand() {
    let cases: &[(&str, Value, bool)] = &[
        (r#""StringEquals": "a""#, json!("a"), true),
        (r#""StringEquals": "a""#, json!("b"), false),
        (r#""StringEquals": "1""#, json!(1), false),
        (r#""StringLessThan": "b""#, json!("a"), true),
        (r#""StringLessThan": "b""#, json!("b"), false),
        (r#""StringGreaterThan": "b""#, json!("c"), true),
        (r#""StringGreaterThan": "b""#, json!("a"), false),
        (r#""NumericEquals": 2"#, json!(2), true),
        (r#""NumericEquals": 2"#, json!(2.0), true),
        (r#""NumericEquals": 2"#, json!("2"), false),
        (r#""NumericLessThan": 2"#, json!(1.5), true),
        (r#""NumericLessThan": 2"#, json!(2), false),
        (r#""NumericLessThanEquals": 2"#, json!(2), true),
        (r#""NumericLessThanEquals": 2"#, json!(3), false),
        (r#""NumericGreaterThan": -1"#, json!(0), true),
        (r#""NumericGreaterThan": 2"#, json!(2), false),
        (r#""NumericGreaterThanEquals": 2.5"#, json!(2.5), true),
        (r#""NumericGreaterThanEquals": 2"#, json!(1), false),
        (r#""BooleanEquals": true"#, json!(true), true),
        (r#""BooleanEquals": true"#, json!(false), false),
        (r#""IsPresent": true"#, json!(null), true),
        (r#""IsNull": true"#, json!(null), true),
        (r#""IsNull": true"#, json!(0), false),
        (r#""IsNull": false"#, json!(0), true),
        (r#""IsString": true"#, json!("x"), true),
        (r#""IsString": true"#, json!(1), false),
        (r#""IsNumeric": true"#, json!(1), true),
        (r#""IsNumeric": true"#, json!("1"), false),
        (r#""IsBoolean": true"#, json!(false), true),
        (r#""IsBoolean": false"#, json!("x"), true),
    ];
    for (operator, value, expected) in cases {
        let rule = format!(r#""Variable": "$.v", {operator}"#);
        let outcome = choose(&rule, json!({"v": value})).await;
        let branch = if *expected { "yes" } else { "no" };
        assert_eq!(outcome, succeeded(json!(branch)), "{operator} on {value}");
    }
}

#[tokio::test]
async fn choice_rules_combine_with_and_or_not() {
    let a = r#"{"Variable": "$.a", "StringEquals": "x"}"#;
    let n = r#"{"Variable": "$.n['count'][0]", "NumericGreaterThan": 10}"#;
    let input = |a: &str, n: i64| json!({"a": a, "n": {"count": [n]}});
    let cases = [
        (format!(r#""And": [{a}, {n}]"#), input("x", 11), "yes"),
        (format!(r#""And": [{a}, {n}]"#), input("x", 10), "no"),
        (format!(r#""Or": [{a}, {n}]"#), input("y", 11), "yes"),
        (format!(r#""Or": [{a}, {n}]"#), input("y", 1), "no"),
        (format!(r#""Not": {a}"#), input("y", 1), "yes"),
        (
            format!(r#""Not": {{"And": [{a}, {{"Not": {n}}}]}}"#),
            input("x", 1),
            "no",
        ),
    ];
    for (rule, input, branch) in cases {
        assert_eq!(
            choose(&rule, input).await,
            succeeded(json!(branch)),
            "{rule}"
        );
    }
}

#[tokio::test]
async fn choice_on_a_missing_variable_is_a_runtime_error_except_for_is_present() {
    let outcome = choose(r#""Variable": "$.v", "StringEquals": "a""#, json!({})).await;
    assert!(failed("States.Runtime")(&outcome), "{outcome:?}");
    let outcome = choose(r#""Variable": "$.v", "IsPresent": false"#, json!({})).await;
    assert_eq!(outcome, succeeded(json!("yes")));
    // And stops at the first false rule, so a later missing variable is not read.
    let rule =
        r#""And": [{"Variable": "$.v", "IsPresent": true}, {"Variable": "$.v", "IsNull": true}]"#;
    assert_eq!(choose(rule, json!({})).await, succeeded(json!("no")));
}

#[tokio::test]
async fn choice_without_a_match_or_default_fails() {
    let source = r#"{"StartAt": "C", "States": {
      "C": {"Type": "Choice", "Choices": [{"Variable": "$.v", "BooleanEquals": true, "Next": "Done"}]},
      "Done": {"Type": "Succeed"}}}"#;
    let run = run_echo(source, json!({"v": false})).await;
    assert!(
        failed("States.NoChoiceMatched")(&run.outcome),
        "{:?}",
        run.outcome
    );
}

#[tokio::test]
async fn choice_applies_input_path_then_output_path() {
    let source = r#"{"StartAt": "C", "States": {
      "C": {"Type": "Choice", "InputPath": "$.a", "OutputPath": "$.b",
            "Choices": [{"Variable": "$.flag", "BooleanEquals": true, "Next": "Done"}]},
      "Done": {"Type": "Succeed"}}}"#;
    let run = run_echo(source, json!({"a": {"flag": true, "b": {"kept": 1}}})).await;
    assert_eq!(run.outcome, succeeded(json!({"kept": 1})));
}

#[tokio::test]
async fn a_pass_cycle_fails_after_the_transition_limit() {
    let source = r#"{"StartAt": "A", "States": {
      "A": {"Type": "Pass", "Next": "B"},
      "B": {"Type": "Pass", "Next": "A"}}}"#;
    let run = run_echo(source, json!({})).await;
    assert!(failed("States.Runtime")(&run.outcome), "{:?}", run.outcome);
    let entered = run
        .events
        .iter()
        .filter(|e| e.kind == EventKind::StateEntered)
        .count();
    assert_eq!(entered, MAX_STATE_TRANSITIONS);
}

#[tokio::test]
async fn fail_state_reports_its_error_and_cause() {
    let source = r#"{"StartAt": "F", "States": {"F": {"Type": "Fail", "Error": "Nope", "Cause": "because"}}}"#;
    let run = run_echo(source, json!({})).await;
    assert_eq!(
        run.outcome,
        Outcome::Failed {
            error: "Nope".to_owned(),
            cause: "because".to_owned()
        }
    );
    let outcome = serde_json::to_value(&run.outcome).unwrap();
    assert_eq!(
        outcome,
        json!({"status": "failed", "error": "Nope", "cause": "because"})
    );
}

#[test]
fn graph_labels_choice_default_and_multi_error_catch_edges() {
    let source = r#"{"StartAt": "C", "States": {
      "C": {"Type": "Choice", "Choices": [{"Variable": "$.v", "IsNull": true, "Next": "T"}], "Default": "D"},
      "T": {"Type": "Task", "Resource": "r", "Catch": [{"ErrorEquals": ["A", "B"], "Next": "D"}], "End": true},
      "D": {"Type": "Succeed"}}}"#;
    let edges: Vec<_> = definition(source)
        .graph()
        .edges
        .into_iter()
        .map(|e| (e.from, e.to, e.label))
        .collect();
    let edge =
        |from: &str, to: &str, label: &str| (from.to_owned(), to.to_owned(), label.to_owned());
    assert_eq!(
        edges,
        [
            edge("C", "T", "Choice"),
            edge("C", "D", "Default"),
            edge("T", "D", "Catch A, B"),
        ]
    );
}
