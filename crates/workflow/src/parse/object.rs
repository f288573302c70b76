//! The JSON object being read as part of a definition, and the errors that point into it.

use super::template;
use crate::definition::{Target, Transition};
use crate::error::DefinitionError;
use crate::json::{self, Member, Node, Pos};
use crate::path::{FilterPath, ReferencePath, ResultPath, Template};

type Result<T> = std::result::Result<T, DefinitionError>;

/// A JSON object being read as part of a definition: knows which state it
/// belongs to and where to point when a required field is missing.
pub(crate) struct Object<'a> {
    pub members: &'a [Member],
    /// Where "missing field" errors point: the state's name, or the object itself.
    pub anchor: Pos,
    pub state: Option<&'a str>,
}

impl<'a> Object<'a> {
    pub fn error(
        &self,
        pos: Pos,
        field: Option<&str>,
        message: impl Into<String>,
    ) -> DefinitionError {
        error(pos, self.state, field, message)
    }

    pub fn get(&self, key: &str) -> Option<&'a Member> {
        self.members.iter().find(|m| m.key == key)
    }

    /// `node` (the value of `field`) read as an object of the same state.
    pub fn nested(&self, node: &'a Node, field: &str) -> Result<Object<'a>> {
        let members = node.as_object().ok_or_else(|| {
            self.error(
                node.pos,
                Some(field),
                format!("expected an object, found {}", node.type_name()),
            )
        })?;
        Ok(Object {
            members,
            anchor: node.pos,
            state: self.state,
        })
    }

    /// Rejects any field not in `allowed`, pointing at the first such key.
    pub(super) fn only(&self, allowed: &[&str], what: &str) -> Result<()> {
        match self
            .members
            .iter()
            .find(|m| !allowed.contains(&m.key.as_str()))
        {
            None => Ok(()),
            Some(member) => Err(self.error(
                member.key_pos,
                Some(&member.key),
                format!("unsupported field ({what} allows: {})", allowed.join(", ")),
            )),
        }
    }

    pub(super) fn required(&self, key: &str) -> Result<&'a Member> {
        self.get(key)
            .ok_or_else(|| self.error(self.anchor, Some(key), "missing required field"))
    }

    pub(super) fn string(&self, member: &'a Member) -> Result<&'a str> {
        member.value.as_str().ok_or_else(|| {
            self.error(
                member.value.pos,
                Some(&member.key),
                format!("expected a string, found {}", member.value.type_name()),
            )
        })
    }

    pub fn optional_string(&self, key: &str) -> Result<Option<String>> {
        self.get(key)
            .map(|m| self.string(m).map(str::to_owned))
            .transpose()
    }

    pub(super) fn target(&self, member: &Member) -> Result<Target> {
        let name = self.string(member)?;
        Ok(Target {
            name: name.to_owned(),
            pos: member.value.pos,
        })
    }

    /// An integer field in `min..=max`, or `default` when absent.
    pub(super) fn integer(&self, key: &str, min: u64, max: u64, default: u64) -> Result<u64> {
        let Some(member) = self.get(key) else {
            return Ok(default);
        };
        let value = match &member.value.kind {
            json::Kind::Number(n) => n.as_u64(),
            _ => None,
        };
        match value {
            Some(value) if (min..=max).contains(&value) => Ok(value),
            _ => Err(self.error(
                member.value.pos,
                Some(key),
                format!("expected an integer from {min} to {max}"),
            )),
        }
    }

    pub(super) fn reference_path(&self, member: &Member) -> Result<ReferencePath> {
        let text = self.string(member)?;
        ReferencePath::parse(text)
            .map_err(|message| self.error(member.value.pos, Some(&member.key), message))
    }

    /// `InputPath`/`OutputPath`: `$` when absent, `null` allowed.
    pub(super) fn filter_path(&self, key: &str) -> Result<FilterPath> {
        match self.get(key) {
            None => Ok(FilterPath::root()),
            Some(member) if member.value.is_null() => Ok(FilterPath(None)),
            Some(member) => Ok(FilterPath(Some(self.reference_path(member)?))),
        }
    }

    /// `ResultPath`: `$` when absent, `null` allowed.
    pub(super) fn result_path(&self, key: &str) -> Result<ResultPath> {
        match self.get(key) {
            None => Ok(ResultPath::root()),
            Some(member) if member.value.is_null() => Ok(ResultPath(None)),
            Some(member) => Ok(ResultPath(Some(self.reference_path(member)?))),
        }
    }

    pub(super) fn template(&self, key: &str) -> Result<Option<Template>> {
        self.get(key)
            .map(|member| template(self, &member.value))
            .transpose()
    }

    /// `Next` or `End: true`, exactly one of them.
    pub(super) fn transition(&self) -> Result<Transition> {
        match (self.get("Next"), self.get("End")) {
            (Some(_), Some(end)) => Err(self.error(
                end.key_pos,
                Some("End"),
                "a state cannot have both Next and End",
            )),
            (Some(next), None) => Ok(Transition::Next(self.target(next)?)),
            (None, Some(end)) => match end.value.kind {
                json::Kind::Bool(true) => Ok(Transition::End),
                _ => Err(self.error(
                    end.value.pos,
                    Some("End"),
                    "End must be true; use Next to continue to another state",
                )),
            },
            (None, None) => Err(self.error(
                self.anchor,
                Some("Next"),
                "missing Next or End: a non-terminal state needs exactly one of them",
            )),
        }
    }
}

pub(super) fn error(
    pos: Pos,
    state: Option<&str>,
    field: Option<&str>,
    message: impl Into<String>,
) -> DefinitionError {
    DefinitionError {
        line: pos.line,
        column: pos.column,
        state: state.map(str::to_owned),
        field: field.map(str::to_owned),
        message: message.into(),
    }
}
