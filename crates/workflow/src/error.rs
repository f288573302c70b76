//! The one error a definition can fail with.

use std::fmt;

/// Why a definition was rejected, and where.
///
/// `line` and `column` are 1-based; columns count characters. They point at
/// the offending key or value (or, for a missing field, at the name of the
/// object that lacks it). `state` is the state the problem is in, if any, and
/// `field` the field (key) at fault, if any.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct DefinitionError {
    /// 1-based line of the offending text.
    pub line: usize,
    /// 1-based column, in characters, of the offending text.
    pub column: usize,
    /// The state the problem is in; `None` for top-level and syntax problems.
    pub state: Option<String>,
    /// The field at fault, when one is.
    pub field: Option<String>,
    /// What is wrong, for a person to read.
    pub message: String,
}

impl fmt::Display for DefinitionError {
    /// `line 12, column 7: state "Store Order": field "Foo": unsupported field ...`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}, column {}: ", self.line, self.column)?;
        if let Some(state) = &self.state {
            write!(f, "state {state:?}: ")?;
        }
        if let Some(field) = &self.field {
            write!(f, "field {field:?}: ")?;
        }
        f.write_str(&self.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_position_state_and_field_when_known() {
        let err = DefinitionError {
            line: 12,
            column: 7,
            state: Some("Store Order".to_owned()),
            field: Some("Foo".to_owned()),
            message: "unsupported field".to_owned(),
        };
        assert_eq!(
            err.to_string(),
            r#"line 12, column 7: state "Store Order": field "Foo": unsupported field"#
        );
        let bare = DefinitionError {
            state: None,
            field: None,
            ..err
        };
        assert_eq!(bare.to_string(), "line 12, column 7: unsupported field");
    }
}
