//! Choice rules: their parsing from a rule object and their evaluation.

use std::cmp::Ordering;

use serde_json::{Number, Value};

use crate::error::DefinitionError;
use crate::json::{Kind, Member, Node};
use crate::parse::Object;
use crate::path::ReferencePath;

/// The comparison operators this engine implements.
const OPERATORS: &[&str] = &[
    "StringEquals",
    "StringLessThan",
    "StringGreaterThan",
    "NumericEquals",
    "NumericLessThan",
    "NumericLessThanEquals",
    "NumericGreaterThan",
    "NumericGreaterThanEquals",
    "BooleanEquals",
    "IsPresent",
    "IsNull",
    "IsString",
    "IsNumeric",
    "IsBoolean",
];

/// One condition of a Choice state (without its `Next`).
#[derive(Clone, Debug)]
pub(crate) enum ChoiceRule {
    And(Vec<ChoiceRule>),
    Or(Vec<ChoiceRule>),
    Not(Box<ChoiceRule>),
    Compare { variable: ReferencePath, test: Test },
}

#[derive(Clone, Debug)]
pub(crate) enum Test {
    StringEquals(String),
    StringLessThan(String),
    StringGreaterThan(String),
    Numeric(Number, fn(Ordering) -> bool),
    BooleanEquals(bool),
    IsPresent(bool),
    IsNull(bool),
    IsString(bool),
    IsNumeric(bool),
    IsBoolean(bool),
}

impl ChoiceRule {
    /// Whether the rule holds for `input`. A `Variable` that does not resolve
    /// is an error (the runtime error `States.Runtime`), except for `IsPresent`.
    pub fn matches(&self, input: &Value) -> Result<bool, String> {
        match self {
            ChoiceRule::And(rules) => {
                for rule in rules {
                    if !rule.matches(input)? {
                        return Ok(false);
                    }
                }
                Ok(true)
            }
            ChoiceRule::Or(rules) => {
                for rule in rules {
                    if rule.matches(input)? {
                        return Ok(true);
                    }
                }
                Ok(false)
            }
            ChoiceRule::Not(rule) => Ok(!rule.matches(input)?),
            ChoiceRule::Compare { variable, test } => {
                let value = variable.get(input);
                if let Test::IsPresent(wanted) = test {
                    return Ok(value.is_some() == *wanted);
                }
                let value = value.ok_or_else(|| {
                    format!(
                        "the Choice Variable {:?} could not be found in the input",
                        variable.as_str()
                    )
                })?;
                Ok(test.holds(value))
            }
        }
    }
}

impl Test {
    /// A value of the wrong type never matches a comparison.
    fn holds(&self, value: &Value) -> bool {
        match self {
            Test::StringEquals(s) => value.as_str() == Some(s.as_str()),
            Test::StringLessThan(s) => value.as_str().is_some_and(|v| v < s.as_str()),
            Test::StringGreaterThan(s) => value.as_str().is_some_and(|v| v > s.as_str()),
            Test::Numeric(expected, accept) => match value {
                Value::Number(n) => compare_numbers(n, expected).is_some_and(accept),
                _ => false,
            },
            Test::BooleanEquals(b) => value.as_bool() == Some(*b),
            Test::IsPresent(wanted) => *wanted,
            Test::IsNull(wanted) => value.is_null() == *wanted,
            Test::IsString(wanted) => value.is_string() == *wanted,
            Test::IsNumeric(wanted) => value.is_number() == *wanted,
            Test::IsBoolean(wanted) => value.is_boolean() == *wanted,
        }
    }
}

/// Compares exactly when both are integers, as `f64` otherwise.
fn compare_numbers(a: &Number, b: &Number) -> Option<Ordering> {
    if let (Some(x), Some(y)) = (a.as_i64(), b.as_i64()) {
        return Some(x.cmp(&y));
    }
    if let (Some(x), Some(y)) = (a.as_u64(), b.as_u64()) {
        return Some(x.cmp(&y));
    }
    a.as_f64()?.partial_cmp(&b.as_f64()?)
}

/// Parses a rule object. Top-level rules carry `Next` (read by the caller);
/// rules nested in `And`, `Or` and `Not` must not.
pub(crate) fn parse_rule(
    rule: &Object<'_>,
    top_level: bool,
) -> Result<ChoiceRule, DefinitionError> {
    let mut operator: Option<&Member> = None;
    for member in rule.members {
        let key = member.key.as_str();
        let is_operator = matches!(key, "And" | "Or" | "Not") || OPERATORS.contains(&key);
        let allowed =
            is_operator || key == "Variable" || key == "Comment" || (top_level && key == "Next");
        if !allowed {
            let message = if key == "Next" {
                "Next is only allowed on a top-level Choice rule, not inside And, Or or Not"
                    .to_owned()
            } else if looks_like_operator(key) {
                format!(
                    "unsupported comparison operator (supported: {})",
                    OPERATORS.join(", ")
                )
            } else {
                let next = if top_level { "Next, " } else { "" };
                format!(
                    "unsupported field (a Choice rule allows: Variable, {next}Comment, And, Or, Not, {})",
                    OPERATORS.join(", ")
                )
            };
            return Err(rule.error(member.key_pos, Some(key), message));
        }
        if is_operator {
            if let Some(first) = operator {
                return Err(rule.error(
                    member.key_pos,
                    Some(key),
                    format!(
                        "a Choice rule takes exactly one operator, and this one already has {:?}",
                        first.key
                    ),
                ));
            }
            operator = Some(member);
        }
    }
    rule.optional_string("Comment")?;
    let Some(operator) = operator else {
        return Err(rule.error(
            rule.anchor,
            None,
            "a Choice rule needs a comparison operator, And, Or or Not",
        ));
    };
    let key = operator.key.as_str();
    let value = &operator.value;
    match key {
        "And" | "Or" | "Not" => {
            if let Some(variable) = rule.get("Variable") {
                return Err(rule.error(
                    variable.key_pos,
                    Some("Variable"),
                    format!("Variable is not allowed beside {key}"),
                ));
            }
            if key == "Not" {
                let inner = rule.nested(value, key)?;
                return Ok(ChoiceRule::Not(Box::new(parse_rule(&inner, false)?)));
            }
            let items = match value.as_array() {
                Some(items) if !items.is_empty() => items,
                _ => {
                    return Err(rule.error(
                        value.pos,
                        Some(key),
                        format!("{key} must be a non-empty array of Choice rules"),
                    ))
                }
            };
            let rules = items
                .iter()
                .map(|item| parse_rule(&rule.nested(item, key)?, false))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(if key == "And" {
                ChoiceRule::And(rules)
            } else {
                ChoiceRule::Or(rules)
            })
        }
        _ => {
            let Some(variable) = rule.get("Variable") else {
                return Err(rule.error(
                    rule.anchor,
                    Some("Variable"),
                    format!("missing required field (a {key} rule compares a Variable)"),
                ));
            };
            let path = variable.value.as_str().ok_or_else(|| {
                rule.error(
                    variable.value.pos,
                    Some("Variable"),
                    "Variable must be a string path",
                )
            })?;
            let variable = ReferencePath::parse(path)
                .map_err(|message| rule.error(variable.value.pos, Some("Variable"), message))?;
            let test = parse_test(rule, key, value)?;
            Ok(ChoiceRule::Compare { variable, test })
        }
    }
}

fn parse_test(rule: &Object<'_>, key: &str, value: &Node) -> Result<Test, DefinitionError> {
    let wrong = |wanted: &str| {
        rule.error(
            value.pos,
            Some(key),
            format!("{key} takes {wanted}, not {}", value.type_name()),
        )
    };
    if let Some(op) = key.strip_prefix("String") {
        let Kind::String(s) = &value.kind else {
            return Err(wrong("a string"));
        };
        let s = s.clone();
        return Ok(match op {
            "Equals" => Test::StringEquals(s),
            "LessThan" => Test::StringLessThan(s),
            _ => Test::StringGreaterThan(s),
        });
    }
    if let Some(op) = key.strip_prefix("Numeric") {
        let Kind::Number(n) = &value.kind else {
            return Err(wrong("a number"));
        };
        let accept: fn(Ordering) -> bool = match op {
            "Equals" => Ordering::is_eq,
            "LessThan" => Ordering::is_lt,
            "LessThanEquals" => Ordering::is_le,
            "GreaterThan" => Ordering::is_gt,
            _ => Ordering::is_ge,
        };
        return Ok(Test::Numeric(n.clone(), accept));
    }
    let Kind::Bool(b) = value.kind else {
        return Err(wrong("a boolean"));
    };
    Ok(match key {
        "BooleanEquals" => Test::BooleanEquals(b),
        "IsPresent" => Test::IsPresent(b),
        "IsNull" => Test::IsNull(b),
        "IsString" => Test::IsString(b),
        "IsNumeric" => Test::IsNumeric(b),
        _ => Test::IsBoolean(b),
    })
}

/// Whether `key` is an ASL comparison operator this engine does not implement
/// (`StringMatches`, `TimestampEquals`, `NumericEqualsPath`, ...).
fn looks_like_operator(key: &str) -> bool {
    ["String", "Numeric", "Boolean", "Timestamp", "Is"]
        .iter()
        .any(|prefix| key.starts_with(prefix))
}
