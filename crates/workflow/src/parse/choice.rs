//! Choice rules, read from a Choice state's rule objects.

use std::cmp::Ordering;

use super::object::Object;
use crate::choice::{ChoiceRule, Test};
use crate::error::DefinitionError;
use crate::json::{Kind, Member, Node};
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
