//! Turns the scanned JSON tree into a [`Definition`], checking the supported
//! subset of the Amazon States Language as it goes, then the graph as a whole.

mod choice;
mod object;

use std::collections::{HashMap, HashSet, VecDeque};

use self::choice::parse_rule;
use self::object::{error, Object};
use crate::definition::{
    Catcher, Choice, Definition, ErrorEquals, Fail, Pass, Retrier, State, StateKind, Succeed,
    Target, Task,
};
use crate::error::DefinitionError;
use crate::json::{self, Member, Node, Pos};
use crate::path::{ReferencePath, Template};

type Result<T> = std::result::Result<T, DefinitionError>;

const TOP_LEVEL_FIELDS: &[&str] = &["Comment", "StartAt", "States", "Version"];
const TASK_FIELDS: &[&str] = &[
    "Type",
    "Comment",
    "Resource",
    "Parameters",
    "ResultSelector",
    "InputPath",
    "ResultPath",
    "OutputPath",
    "Retry",
    "Catch",
    "Next",
    "End",
];
const PASS_FIELDS: &[&str] = &[
    "Type",
    "Comment",
    "Result",
    "Parameters",
    "InputPath",
    "ResultPath",
    "OutputPath",
    "Next",
    "End",
];
const CHOICE_FIELDS: &[&str] = &[
    "Type",
    "Comment",
    "Choices",
    "Default",
    "InputPath",
    "OutputPath",
];
const SUCCEED_FIELDS: &[&str] = &["Type", "Comment", "InputPath", "OutputPath"];
const FAIL_FIELDS: &[&str] = &["Type", "Comment", "Error", "Cause"];
const RETRIER_FIELDS: &[&str] = &[
    "ErrorEquals",
    "IntervalSeconds",
    "MaxAttempts",
    "BackoffRate",
    "MaxDelaySeconds",
    "JitterStrategy",
    "Comment",
];
const CATCHER_FIELDS: &[&str] = &["ErrorEquals", "ResultPath", "Next", "Comment"];

/// Step Functions' own limits for retrier numbers.
const MAX_INTERVAL_SECONDS: u64 = 99_999_999;
const MAX_ATTEMPTS: u64 = 99_999_999;
const MAX_DELAY_SECONDS: u64 = 31_622_400;

impl Definition {
    /// Parses and checks an Amazon States Language document.
    ///
    /// Anything outside the supported subset, any dangling or missing
    /// transition, any unreachable state and any duplicate key is rejected with
    /// the position of the offending text. Never panics, whatever `source` is.
    pub fn parse(source: &str) -> Result<Definition> {
        definition(source)
    }
}

/// Parses and checks a whole definition.
pub(crate) fn definition(source: &str) -> Result<Definition> {
    let root = json::parse(source).map_err(|e| error(e.pos, None, None, e.message))?;
    let Some(members) = root.as_object() else {
        return Err(error(
            root.pos,
            None,
            None,
            format!(
                "a state machine must be a JSON object, found {}",
                root.type_name()
            ),
        ));
    };
    let top = Object {
        members,
        anchor: root.pos,
        state: None,
    };
    top.only(TOP_LEVEL_FIELDS, "the top level")?;
    if let Some(version) = top.get("Version") {
        if top.string(version)? != "1.0" {
            return Err(top.error(
                version.value.pos,
                Some("Version"),
                "only Version \"1.0\" is supported",
            ));
        }
    }
    top.optional_string("Comment")?;
    let start_at_member = top.required("StartAt")?;
    let start_at = top.target(start_at_member)?;
    let states_member = top.required("States")?;
    let state_members = states_member.value.as_object().ok_or_else(|| {
        top.error(
            states_member.value.pos,
            Some("States"),
            format!(
                "expected an object of states, found {}",
                states_member.value.type_name()
            ),
        )
    })?;
    if state_members.is_empty() {
        return Err(top.error(
            states_member.value.pos,
            Some("States"),
            "a state machine needs at least one state",
        ));
    }
    let states = state_members
        .iter()
        .map(state)
        .collect::<Result<Vec<_>>>()?;
    check_targets(&start_at, &states)?;
    check_reachable(&start_at, &states)?;
    Ok(Definition {
        start_at: start_at.name,
        states,
    })
}

fn state(member: &Member) -> Result<State> {
    let name = member.key.as_str();
    let state_error = |message: &str| error(member.key_pos, Some(name), None, message);
    if name.is_empty() {
        return Err(state_error("a state name must not be empty"));
    }
    let Some(members) = member.value.as_object() else {
        return Err(error(
            member.value.pos,
            Some(name),
            None,
            format!(
                "a state must be a JSON object, found {}",
                member.value.type_name()
            ),
        ));
    };
    let obj = Object {
        members,
        anchor: member.key_pos,
        state: Some(name),
    };
    let type_member = obj.required("Type")?;
    let kind = match obj.string(type_member)? {
        "Task" => StateKind::Task(task(&obj)?),
        "Pass" => StateKind::Pass(pass(&obj)?),
        "Choice" => StateKind::Choice(choice(&obj)?),
        "Succeed" => {
            obj.only(SUCCEED_FIELDS, "a Succeed state")?;
            obj.optional_string("Comment")?;
            StateKind::Succeed(Succeed {
                input_path: obj.filter_path("InputPath")?,
                output_path: obj.filter_path("OutputPath")?,
            })
        }
        "Fail" => {
            obj.only(FAIL_FIELDS, "a Fail state")?;
            obj.optional_string("Comment")?;
            StateKind::Fail(Fail {
                error: obj.optional_string("Error")?,
                cause: obj.optional_string("Cause")?,
            })
        }
        other => {
            let known = matches!(other, "Wait" | "Parallel" | "Map");
            return Err(obj.error(
                type_member.value.pos,
                Some("Type"),
                format!(
                    "{} state type {other:?} (supported: Task, Pass, Choice, Succeed, Fail)",
                    if known { "unsupported" } else { "unknown" }
                ),
            ));
        }
    };
    Ok(State {
        name: name.to_owned(),
        pos: member.key_pos,
        kind,
    })
}

fn task(obj: &Object<'_>) -> Result<Task> {
    obj.only(TASK_FIELDS, "a Task state")?;
    obj.optional_string("Comment")?;
    let resource = obj.required("Resource")?;
    let resource_name = obj.string(resource)?;
    if resource_name.is_empty() {
        return Err(obj.error(
            resource.value.pos,
            Some("Resource"),
            "Resource must not be empty",
        ));
    }
    let input_path = obj.filter_path("InputPath")?;
    let parameters = obj.template("Parameters")?;
    let lends_parameters = input_path.is_root() && parameters.as_ref().is_some_and(Template::lends);
    Ok(Task {
        resource: resource_name.to_owned(),
        resource_pos: resource.value.pos,
        input_path,
        parameters,
        lends_parameters,
        result_selector: obj.template("ResultSelector")?,
        result_path: obj.result_path("ResultPath")?,
        output_path: obj.filter_path("OutputPath")?,
        retry: handlers(obj, "Retry", RETRIER_FIELDS, retrier)?,
        catch: handlers(obj, "Catch", CATCHER_FIELDS, catcher)?,
        transition: obj.transition()?,
    })
}

fn pass(obj: &Object<'_>) -> Result<Pass> {
    obj.only(PASS_FIELDS, "a Pass state")?;
    obj.optional_string("Comment")?;
    Ok(Pass {
        input_path: obj.filter_path("InputPath")?,
        parameters: obj.template("Parameters")?,
        result: obj.get("Result").map(|m| m.value.to_value()),
        result_path: obj.result_path("ResultPath")?,
        output_path: obj.filter_path("OutputPath")?,
        transition: obj.transition()?,
    })
}

fn choice(obj: &Object<'_>) -> Result<Choice> {
    obj.only(CHOICE_FIELDS, "a Choice state")?;
    obj.optional_string("Comment")?;
    let choices_member = obj.required("Choices")?;
    let items = match choices_member.value.as_array() {
        Some(items) if !items.is_empty() => items,
        _ => {
            return Err(obj.error(
                choices_member.value.pos,
                Some("Choices"),
                "Choices must be a non-empty array of Choice rules",
            ))
        }
    };
    let mut choices = Vec::new();
    for item in items {
        let rule_obj = obj.nested(item, "Choices")?;
        let rule = parse_rule(&rule_obj, true)?;
        let next = rule_obj.required("Next")?;
        choices.push((rule, rule_obj.target(next)?));
    }
    Ok(Choice {
        input_path: obj.filter_path("InputPath")?,
        output_path: obj.filter_path("OutputPath")?,
        choices,
        default: obj.get("Default").map(|m| obj.target(m)).transpose()?,
    })
}

/// Reads a `Retry` or `Catch` array, checking that `States.ALL` is alone and
/// only in the last entry.
fn handlers<T>(
    obj: &Object<'_>,
    field: &str,
    allowed: &[&str],
    read: fn(&Object<'_>, ErrorEquals) -> Result<T>,
) -> Result<Vec<T>> {
    let Some(member) = obj.get(field) else {
        return Ok(Vec::new());
    };
    let Some(items) = member.value.as_array() else {
        return Err(obj.error(
            member.value.pos,
            Some(field),
            format!("expected an array, found {}", member.value.type_name()),
        ));
    };
    let what = if field == "Retry" {
        "a retrier"
    } else {
        "a catcher"
    };
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let handler = obj.nested(item, field)?;
        handler.only(allowed, what)?;
        handler.optional_string("Comment")?;
        let (names, all) = error_equals(&handler)?;
        if let Some(all_pos) = all {
            if i + 1 != items.len() {
                return Err(obj.error(
                    all_pos,
                    Some("ErrorEquals"),
                    format!("States.ALL must only be used in the last entry of {field}"),
                ));
            }
        }
        out.push(read(&handler, names)?);
    }
    Ok(out)
}

/// Reads `ErrorEquals`, with the position of `States.ALL` if it is there.
fn error_equals(handler: &Object<'_>) -> Result<(ErrorEquals, Option<Pos>)> {
    let member = handler.required("ErrorEquals")?;
    let items = match member.value.as_array() {
        Some(items) if !items.is_empty() => items,
        _ => {
            return Err(handler.error(
                member.value.pos,
                Some("ErrorEquals"),
                "ErrorEquals must be a non-empty array of error names",
            ))
        }
    };
    let mut names = Vec::new();
    let mut all = None;
    for item in items {
        match item.as_str() {
            Some("States.ALL") if items.len() > 1 => {
                return Err(handler.error(
                    item.pos,
                    Some("ErrorEquals"),
                    "States.ALL must appear alone in ErrorEquals",
                ))
            }
            Some(name) if !name.is_empty() => {
                if name == "States.ALL" {
                    all = Some(item.pos);
                }
                names.push(name.to_owned());
            }
            _ => {
                return Err(handler.error(
                    item.pos,
                    Some("ErrorEquals"),
                    "an error name must be a non-empty string",
                ))
            }
        }
    }
    Ok((ErrorEquals(names), all))
}

fn retrier(handler: &Object<'_>, error_equals: ErrorEquals) -> Result<Retrier> {
    let backoff_rate = match handler.get("BackoffRate") {
        None => 2.0,
        Some(member) => {
            let rate = match &member.value.kind {
                json::Kind::Number(n) => n.as_f64(),
                _ => None,
            };
            match rate {
                Some(rate) if rate >= 1.0 => rate,
                _ => {
                    return Err(handler.error(
                        member.value.pos,
                        Some("BackoffRate"),
                        "BackoffRate must be a number of at least 1.0",
                    ))
                }
            }
        }
    };
    if let Some(member) = handler.get("JitterStrategy") {
        let strategy = handler.string(member)?;
        if strategy != "NONE" {
            return Err(handler.error(
                member.value.pos,
                Some("JitterStrategy"),
                format!("JitterStrategy {strategy:?} is not supported; only \"NONE\""),
            ));
        }
    }
    Ok(Retrier {
        error_equals,
        interval_seconds: handler.integer("IntervalSeconds", 1, MAX_INTERVAL_SECONDS, 1)?,
        max_attempts: handler.integer("MaxAttempts", 0, MAX_ATTEMPTS, 3)?,
        backoff_rate,
        max_delay_seconds: match handler.get("MaxDelaySeconds") {
            None => None,
            Some(_) => Some(handler.integer("MaxDelaySeconds", 1, MAX_DELAY_SECONDS, 1)?),
        },
    })
}

fn catcher(handler: &Object<'_>, error_equals: ErrorEquals) -> Result<Catcher> {
    Ok(Catcher {
        error_equals,
        result_path: handler.result_path("ResultPath")?,
        next: handler.target(handler.required("Next")?)?,
    })
}

/// Builds a payload template; keys ending in `.$` must hold a reference path.
fn template(obj: &Object<'_>, node: &Node) -> Result<Template> {
    match &node.kind {
        json::Kind::Object(members) => {
            let mut fields: Vec<(String, Template)> = Vec::new();
            for member in members {
                let (key, value) = match member.key.strip_suffix(".$") {
                    Some(key) => {
                        let text = obj.string(member)?;
                        let path = ReferencePath::parse(text).map_err(|message| {
                            obj.error(member.value.pos, Some(&member.key), message)
                        })?;
                        (key, Template::Path(path))
                    }
                    None => (member.key.as_str(), template(obj, &member.value)?),
                };
                if fields.iter().any(|(k, _)| k == key) {
                    return Err(obj.error(
                        member.key_pos,
                        Some(&member.key),
                        format!("the key {key:?} is given twice (with and without \".$\")"),
                    ));
                }
                fields.push((key.to_owned(), value));
            }
            Ok(Template::Object(fields))
        }
        json::Kind::Array(items) => Ok(Template::Array(
            items
                .iter()
                .map(|item| template(obj, item))
                .collect::<Result<_>>()?,
        )),
        _ => Ok(Template::Literal(node.to_value())),
    }
}

/// Every `StartAt`, `Next`, `Default` and catcher `Next` must name a state;
/// the first dangling one in the file is reported.
fn check_targets(start_at: &Target, states: &[State]) -> Result<()> {
    let names: HashSet<&str> = states.iter().map(|s| s.name.as_str()).collect();
    let mut references = vec![(start_at, None, "StartAt")];
    for state in states {
        for (target, label) in state.kind.targets() {
            let field = if label == "Default" {
                "Default"
            } else {
                "Next"
            };
            references.push((target, Some(state.name.as_str()), field));
        }
    }
    match references
        .into_iter()
        .filter(|(target, _, _)| !names.contains(target.name.as_str()))
        .min_by_key(|(target, _, _)| (target.pos.line, target.pos.column))
    {
        None => Ok(()),
        Some((target, state, field)) => Err(error(
            target.pos,
            state,
            Some(field),
            format!("there is no state named {:?}", target.name),
        )),
    }
}

/// Every state must be reachable from `StartAt`; the first one that is not is reported.
fn check_reachable(start_at: &Target, states: &[State]) -> Result<()> {
    let index: HashMap<&str, usize> = states
        .iter()
        .enumerate()
        .map(|(i, s)| (s.name.as_str(), i))
        .collect();
    let mut reached = vec![false; states.len()];
    let mut queue = VecDeque::new();
    queue.extend(index.get(start_at.name.as_str()).copied());
    while let Some(i) = queue.pop_front() {
        if std::mem::replace(&mut reached[i], true) {
            continue;
        }
        for (target, _) in states[i].kind.targets() {
            queue.extend(index.get(target.name.as_str()).copied());
        }
    }
    match states.iter().zip(&reached).find(|(_, reached)| !**reached) {
        None => Ok(()),
        Some((state, _)) => Err(error(
            state.pos,
            Some(&state.name),
            None,
            format!("state {:?} cannot be reached from StartAt", state.name),
        )),
    }
}
