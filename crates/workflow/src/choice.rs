//! Choice rules and their evaluation against a state's input.

use std::cmp::Ordering;

use serde_json::{Number, Value};

use crate::path::ReferencePath;

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
