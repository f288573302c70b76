//! Every rejection points at the offending key or value: line, column, state, field.

use dofs_workflow::{Definition, DefinitionError};

/// Parses `source`, which must be rejected, and checks where and why.
#[track_caller]
fn assert_rejected(
    source: &str,
    (line, column): (usize, usize),
    state: Option<&str>,
    field: Option<&str>,
    message: &str,
) -> DefinitionError {
    let err = Definition::parse(source).expect_err("the definition must be rejected");
    assert_eq!(
        (
            err.line,
            err.column,
            err.state.as_deref(),
            err.field.as_deref()
        ),
        (line, column, state, field),
        "{err}"
    );
    assert!(err.message.contains(message), "{err}");
    err
}

#[test]
fn wait_state_is_rejected_at_its_type() {
    let source = r#"{
  "StartAt": "Pause",
  "States": {
    "Pause": {
      "Type": "Wait",
      "Seconds": 5,
      "Next": "Done"
    },
    "Done": {"Type": "Succeed"}
  }
}"#;
    let err = assert_rejected(
        source,
        (5, 15),
        Some("Pause"),
        Some("Type"),
        "unsupported state type \"Wait\"",
    );
    assert_eq!(
        err.to_string(),
        "line 5, column 15: state \"Pause\": field \"Type\": unsupported state type \"Wait\" \
         (supported: Task, Pass, Choice, Succeed, Fail)"
    );
}

#[test]
fn parallel_map_and_unknown_state_types_are_rejected() {
    for (state_type, message) in [
        ("Parallel", "unsupported state type"),
        ("Map", "unsupported state type"),
        ("Sleep", "unknown state type"),
    ] {
        let source = format!(
            r#"{{"StartAt": "S", "States": {{"S": {{"Type": "{state_type}", "End": true}}}}}}"#
        );
        assert_rejected(&source, (1, 43), Some("S"), Some("Type"), message);
    }
}

#[test]
fn unknown_field_is_rejected_at_its_key() {
    let source = r#"{
  "StartAt": "Store Order",
  "States": {
    "Store Order": {
      "Type": "Task",
      "Resource": "${order_storage_arn}",
      "Foo": true,
      "End": true
    }
  }
}"#;
    let err = assert_rejected(
        source,
        (7, 7),
        Some("Store Order"),
        Some("Foo"),
        "unsupported field",
    );
    assert!(err
        .to_string()
        .starts_with("line 7, column 7: state \"Store Order\": field \"Foo\": unsupported field (a Task state allows: Type, Comment, Resource,"));
}

#[test]
fn timeouts_are_rejected_rather_than_ignored() {
    let top = r#"{
  "StartAt": "Done",
  "TimeoutSeconds": 60,
  "States": {"Done": {"Type": "Succeed"}}
}"#;
    assert_rejected(
        top,
        (3, 3),
        None,
        Some("TimeoutSeconds"),
        "unsupported field",
    );
    let task = r#"{"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": "r", "TimeoutSeconds": 5, "End": true}}}"#;
    assert_rejected(
        task,
        (1, 68),
        Some("T"),
        Some("TimeoutSeconds"),
        "unsupported field",
    );
}

#[test]
fn missing_next_target_is_rejected_at_the_next_value() {
    let source = r#"{
  "StartAt": "First",
  "States": {
    "First": {"Type": "Pass", "Next": "Nowhere"}
  }
}"#;
    assert_rejected(
        source,
        (4, 39),
        Some("First"),
        Some("Next"),
        "there is no state named \"Nowhere\"",
    );
}

#[test]
fn missing_start_at_catch_and_default_targets_are_rejected() {
    let start = r#"{"StartAt": "Nope", "States": {"S": {"Type": "Succeed"}}}"#;
    assert_rejected(
        start,
        (1, 13),
        None,
        Some("StartAt"),
        "no state named \"Nope\"",
    );

    let catch = r#"{
  "StartAt": "T",
  "States": {
    "T": {
      "Type": "Task",
      "Resource": "r",
      "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Gone"}],
      "End": true
    }
  }
}"#;
    assert_rejected(
        catch,
        (7, 57),
        Some("T"),
        Some("Next"),
        "no state named \"Gone\"",
    );

    let default = r#"{
  "StartAt": "C",
  "States": {
    "C": {
      "Type": "Choice",
      "Choices": [{"Variable": "$.x", "IsPresent": true, "Next": "Done"}],
      "Default": "Missing"
    },
    "Done": {"Type": "Succeed"}
  }
}"#;
    assert_rejected(
        default,
        (7, 18),
        Some("C"),
        Some("Default"),
        "no state named \"Missing\"",
    );
}

#[test]
fn unreachable_state_is_rejected_by_name() {
    let source = r#"{
  "StartAt": "First",
  "States": {
    "First": {"Type": "Succeed"},
    "Orphan": {"Type": "Succeed"}
  }
}"#;
    assert_rejected(
        source,
        (5, 5),
        Some("Orphan"),
        None,
        "\"Orphan\" cannot be reached from StartAt",
    );
}

#[test]
fn states_all_must_be_last_in_catch() {
    let source = r#"{
  "StartAt": "Work",
  "States": {
    "Work": {
      "Type": "Task",
      "Resource": "work",
      "Catch": [
        {"ErrorEquals": ["States.ALL"], "Next": "Done"},
        {"ErrorEquals": ["TransientError"], "Next": "Done"}
      ],
      "Next": "Done"
    },
    "Done": {"Type": "Succeed"}
  }
}"#;
    assert_rejected(
        source,
        (8, 26),
        Some("Work"),
        Some("ErrorEquals"),
        "States.ALL must only be used in the last entry of Catch",
    );
}

#[test]
fn states_all_must_be_alone_and_last_in_retry() {
    let alone = r#"{
  "StartAt": "Work",
  "States": {
    "Work": {
      "Type": "Task",
      "Resource": "work",
      "Retry": [{"ErrorEquals": ["TransientError", "States.ALL"]}],
      "End": true
    }
  }
}"#;
    assert_rejected(
        alone,
        (7, 52),
        Some("Work"),
        Some("ErrorEquals"),
        "must appear alone",
    );

    let last = r#"{
  "StartAt": "Work",
  "States": {
    "Work": {
      "Type": "Task",
      "Resource": "work",
      "Retry": [{"ErrorEquals": ["States.ALL"]}, {"ErrorEquals": ["X"]}],
      "End": true
    }
  }
}"#;
    assert_rejected(
        last,
        (7, 34),
        Some("Work"),
        Some("ErrorEquals"),
        "last entry of Retry",
    );
}

#[test]
fn intrinsic_function_is_rejected_at_its_value() {
    let source = r#"{
  "StartAt": "Greet",
  "States": {
    "Greet": {
      "Type": "Pass",
      "Parameters": {
        "greeting.$": "States.Format('Hello, {}', $.name)"
      },
      "End": true
    }
  }
}"#;
    assert_rejected(
        source,
        (7, 23),
        Some("Greet"),
        Some("greeting.$"),
        "intrinsic functions such as \"States.Format('Hello, {}', $.name)\" are not supported",
    );
}

#[test]
fn context_object_paths_and_non_reference_paths_are_rejected() {
    let context = r#"{"StartAt": "P", "States": {"P": {"Type": "Pass", "Parameters": {"id.$": "$$.Execution.Id"}, "End": true}}}"#;
    assert_rejected(
        context,
        (1, 74),
        Some("P"),
        Some("id.$"),
        "context object paths",
    );

    let wildcard = r#"{"StartAt": "P", "States": {"P": {"Type": "Pass", "InputPath": "$.items[*]", "End": true}}}"#;
    assert_rejected(
        wildcard,
        (1, 64),
        Some("P"),
        Some("InputPath"),
        "invalid reference path",
    );

    let not_a_string =
        r#"{"StartAt": "P", "States": {"P": {"Type": "Pass", "ResultPath": 3, "End": true}}}"#;
    assert_rejected(
        not_a_string,
        (1, 65),
        Some("P"),
        Some("ResultPath"),
        "expected a string",
    );
}

#[test]
fn duplicate_key_is_rejected_at_the_second_occurrence() {
    let source = r#"{
  "StartAt": "Done",
  "States": {
    "Done": {
      "Type": "Succeed",
      "Type": "Fail"
    }
  }
}"#;
    let err = assert_rejected(source, (6, 7), None, None, "duplicate key \"Type\"");
    assert_eq!(err.to_string(), "line 6, column 7: duplicate key \"Type\"");
}

#[test]
fn duplicate_parameter_output_key_is_rejected() {
    let source = r#"{"StartAt": "P", "States": {"P": {"Type": "Pass", "Parameters": {"a": 1, "a.$": "$.x"}, "End": true}}}"#;
    assert_rejected(source, (1, 74), Some("P"), Some("a.$"), "given twice");
}

#[test]
fn transitions_need_exactly_one_of_next_and_end() {
    let both = r#"{"StartAt": "P", "States": {"P": {"Type": "Pass", "Next": "P", "End": true}}}"#;
    assert_rejected(both, (1, 64), Some("P"), Some("End"), "both Next and End");

    let neither = r#"{
  "StartAt": "P",
  "States": {
    "P": {"Type": "Pass"}
  }
}"#;
    assert_rejected(
        neither,
        (4, 5),
        Some("P"),
        Some("Next"),
        "missing Next or End",
    );

    let end_false = r#"{"StartAt": "P", "States": {"P": {"Type": "Pass", "End": false}}}"#;
    assert_rejected(
        end_false,
        (1, 58),
        Some("P"),
        Some("End"),
        "End must be true",
    );

    let terminal_with_next =
        r#"{"StartAt": "S", "States": {"S": {"Type": "Succeed", "Next": "S"}}}"#;
    assert_rejected(
        terminal_with_next,
        (1, 54),
        Some("S"),
        Some("Next"),
        "unsupported field",
    );

    let choice_with_end = r#"{"StartAt": "C", "States": {"C": {"Type": "Choice", "Choices": [{"Variable": "$", "IsNull": true, "Next": "C"}], "End": true}}}"#;
    assert_rejected(
        choice_with_end,
        (1, 114),
        Some("C"),
        Some("End"),
        "unsupported field",
    );
}

#[test]
fn retrier_values_are_checked() {
    let retry = |fields: &str| {
        format!(
            r#"{{"StartAt": "T", "States": {{"T": {{"Type": "Task", "Resource": "r", "Retry": [{{"ErrorEquals": ["E"], {fields}}}], "End": true}}}}}}"#
        )
    };
    // The retrier's own fields start at column 101.
    assert_rejected(
        &retry(r#""JitterStrategy": "FULL""#),
        (1, 119),
        Some("T"),
        Some("JitterStrategy"),
        "JitterStrategy \"FULL\" is not supported",
    );
    assert_rejected(
        &retry(r#""BackoffRate": 0.5"#),
        (1, 116),
        Some("T"),
        Some("BackoffRate"),
        "at least 1.0",
    );
    assert_rejected(
        &retry(r#""MaxAttempts": -1"#),
        (1, 116),
        Some("T"),
        Some("MaxAttempts"),
        "integer from 0",
    );
    assert_rejected(
        &retry(r#""IntervalSeconds": 1.5"#),
        (1, 120),
        Some("T"),
        Some("IntervalSeconds"),
        "integer from 1",
    );
    assert_rejected(
        &retry(r#""MaxDelaySeconds": 0"#),
        (1, 120),
        Some("T"),
        Some("MaxDelaySeconds"),
        "integer from 1",
    );
    assert_rejected(
        &retry(r#""Foo": 1"#),
        (1, 101),
        Some("T"),
        Some("Foo"),
        "unsupported field (a retrier allows",
    );
    assert!(
        Definition::parse(&retry(r#""JitterStrategy": "NONE", "MaxDelaySeconds": 10"#)).is_ok()
    );
}

#[test]
fn unsupported_choice_rules_are_rejected() {
    let choice = |rule: &str| {
        format!(
            r#"{{"StartAt": "C", "States": {{"C": {{"Type": "Choice", "Choices": [{rule}], "Default": "D"}}, "D": {{"Type": "Succeed"}}}}}}"#
        )
    };
    // The rule starts at column 65.
    assert_rejected(
        &choice(r#"{"Variable": "$.s", "StringMatches": "a*", "Next": "D"}"#),
        (1, 85),
        Some("C"),
        Some("StringMatches"),
        "unsupported comparison operator",
    );
    assert_rejected(
        &choice(r#"{"Variable": "$.n", "NumericEquals": "1", "Next": "D"}"#),
        (1, 102),
        Some("C"),
        Some("NumericEquals"),
        "NumericEquals takes a number, not a string",
    );
    assert_rejected(
        &choice(r#"{"And": [{"Variable": "$.a", "IsNull": true, "Next": "D"}], "Next": "D"}"#),
        (1, 110),
        Some("C"),
        Some("Next"),
        "only allowed on a top-level Choice rule",
    );
    assert_rejected(
        &choice(r#"{"Variable": "$.a", "IsNull": true, "IsString": true, "Next": "D"}"#),
        (1, 101),
        Some("C"),
        Some("IsString"),
        "exactly one operator",
    );
    assert_rejected(
        &choice(r#"{"Variable": "$.a", "Next": "D"}"#),
        (1, 65),
        Some("C"),
        None,
        "needs a comparison operator",
    );
    assert_rejected(
        &choice(r#"{"IsNull": true}"#),
        (1, 65),
        Some("C"),
        Some("Variable"),
        "missing required field",
    );
    assert_rejected(
        &choice(r#"{"Variable": "$.a", "IsNull": true}"#),
        (1, 65),
        Some("C"),
        Some("Next"),
        "missing required field",
    );
}

#[test]
fn malformed_documents_are_rejected_with_positions() {
    let missing_comma = "{\n  \"StartAt\": \"S\"\n  \"States\": {}\n}";
    assert_rejected(missing_comma, (3, 3), None, None, "expected ',' or '}'");
    assert_rejected("[]", (1, 1), None, None, "must be a JSON object");
    assert_rejected(
        "  {\"States\": {\"S\": {\"Type\": \"Succeed\"}}}",
        (1, 3),
        None,
        Some("StartAt"),
        "missing required field",
    );
    assert_rejected(
        r#"{"StartAt": "S", "States": {}}"#,
        (1, 28),
        None,
        Some("States"),
        "at least one state",
    );
    assert_rejected(
        r#"{"StartAt": "S", "States": {"S": []}}"#,
        (1, 34),
        Some("S"),
        None,
        "must be a JSON object",
    );
    assert_rejected(
        r#"{"StartAt": "S", "States": {"S": {}}}"#,
        (1, 29),
        Some("S"),
        Some("Type"),
        "missing required field",
    );
    assert_rejected(
        r#"{"StartAt": "S", "Version": "2.0", "States": {"S": {"Type": "Succeed"}}}"#,
        (1, 29),
        None,
        Some("Version"),
        "only Version",
    );
}
