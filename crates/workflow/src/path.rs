//! Reference paths (`$`, `$.a.b`, `$['a b']`, `$.a[0]`) and payload templates
//! (`Parameters`, `ResultSelector`), checked at parse time and applied at run time.
//!
//! Only reference paths are supported: they name exactly one node, so there are
//! no wildcards, filters, slices or deep scans.

use serde_json::{Map, Value};
use std::borrow::Cow;

/// A parsed reference path such as `$.order['line items'][0]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ReferencePath {
    text: String,
    segments: Vec<Segment>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Segment {
    Field(String),
    Index(usize),
}

impl ReferencePath {
    /// Parses a reference path; the error explains what is wrong with it.
    pub fn parse(text: &str) -> Result<ReferencePath, String> {
        if text.starts_with("$$") {
            return Err(format!(
                "context object paths such as {text:?} are not supported"
            ));
        }
        if text.starts_with("States.") {
            return Err(format!(
                "intrinsic functions such as {text:?} are not supported"
            ));
        }
        let invalid = |why: &str| format!("invalid reference path {text:?}: {why}");
        let mut chars = text.chars().peekable();
        if chars.next() != Some('$') {
            return Err(invalid("it must start with '$'"));
        }
        let mut segments = Vec::new();
        while let Some(c) = chars.next() {
            match c {
                '.' => {
                    let mut name = String::new();
                    while let Some(&c) = chars.peek() {
                        if c == '.' || c == '[' {
                            break;
                        }
                        if matches!(
                            c,
                            '*' | '?' | '@' | '(' | ')' | ',' | ':' | '\'' | '"' | ']'
                        ) || c.is_whitespace()
                        {
                            return Err(invalid(&format!(
                                "{c:?} is not allowed in a field name; use ['...'] for unusual names"
                            )));
                        }
                        name.push(c);
                        chars.next();
                    }
                    if name.is_empty() {
                        return Err(invalid(
                            "empty field name (deep scan '..' is not supported)",
                        ));
                    }
                    segments.push(Segment::Field(name));
                }
                '[' => {
                    if chars.peek() == Some(&'\'') {
                        chars.next();
                        let mut name = String::new();
                        loop {
                            match chars.next() {
                                Some('\'') => break,
                                Some('\\') => match chars.next() {
                                    Some(c @ ('\'' | '\\')) => name.push(c),
                                    _ => {
                                        return Err(invalid(
                                            "only \\' and \\\\ escapes are allowed",
                                        ))
                                    }
                                },
                                Some(c) => name.push(c),
                                None => return Err(invalid("unterminated quoted name")),
                            }
                        }
                        segments.push(Segment::Field(name));
                    } else {
                        let mut digits = String::new();
                        while let Some(&c @ '0'..='9') = chars.peek() {
                            digits.push(c);
                            chars.next();
                        }
                        let index = digits.parse::<usize>().map_err(|_| {
                            invalid("brackets must hold an array index or a 'quoted name'")
                        })?;
                        segments.push(Segment::Index(index));
                    }
                    if chars.next() != Some(']') {
                        return Err(invalid(
                            "brackets must hold an array index or a 'quoted name'",
                        ));
                    }
                }
                _ => return Err(invalid(&format!("unexpected {c:?}"))),
            }
        }
        Ok(ReferencePath {
            text: text.to_owned(),
            segments,
        })
    }

    /// The path as written in the definition.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The node this path names in `value`, if there is one.
    pub fn get<'v>(&self, value: &'v Value) -> Option<&'v Value> {
        self.segments
            .iter()
            .try_fold(value, |node, segment| match (segment, node) {
                (Segment::Field(name), Value::Object(map)) => map.get(name),
                (Segment::Index(i), Value::Array(items)) => items.get(*i),
                _ => None,
            })
    }

    /// Like [`get`](Self::get), but a missing node is a runtime error message.
    pub fn select(&self, value: &Value) -> Result<Value, String> {
        self.get(value).cloned().ok_or_else(|| self.not_found())
    }

    /// The node this path names in `value`, to change in place.
    fn get_mut<'v>(&self, value: &'v mut Value) -> Option<&'v mut Value> {
        self.segments
            .iter()
            .try_fold(value, |node, segment| match (segment, node) {
                (Segment::Field(name), Value::Object(map)) => map.get_mut(name),
                (Segment::Index(i), Value::Array(items)) => items.get_mut(*i),
                _ => None,
            })
    }

    /// The node this path names in `value`, moved out of it (no copy).
    fn take(&self, mut value: Value) -> Result<Value, String> {
        match self.get_mut(&mut value) {
            Some(node) => Ok(std::mem::take(node)),
            None => Err(self.not_found()),
        }
    }

    /// This path names `other`'s node or a node inside it.
    fn within(&self, other: &ReferencePath) -> bool {
        self.segments.starts_with(&other.segments)
    }

    fn not_found(&self) -> String {
        format!("the path {:?} could not be found in the input", self.text)
    }

    /// Puts `result` at this path inside `target`, creating missing objects on
    /// the way (as `ResultPath` does). `$` replaces the whole target.
    pub fn set(&self, target: Value, result: Value) -> Result<Value, String> {
        let mut target = target;
        let mut node = &mut target;
        let mut result = Some(result);
        for (i, segment) in self.segments.iter().enumerate() {
            let last = i + 1 == self.segments.len();
            node = match (segment, node) {
                (Segment::Field(name), Value::Object(map)) => {
                    let entry = map.entry(name.clone());
                    if last {
                        let slot = entry.or_insert(Value::Null);
                        *slot = result.take().unwrap_or(Value::Null);
                        slot
                    } else {
                        entry.or_insert_with(|| Value::Object(Map::new()))
                    }
                }
                (Segment::Index(index), Value::Array(items)) => match items.get_mut(*index) {
                    Some(slot) => {
                        if last {
                            *slot = result.take().unwrap_or(Value::Null);
                        }
                        slot
                    }
                    None => return Err(self.cannot_set()),
                },
                _ => return Err(self.cannot_set()),
            };
        }
        match result {
            // The path was `$`: the result replaces the input.
            Some(result) => Ok(result),
            None => Ok(target),
        }
    }

    fn cannot_set(&self) -> String {
        format!(
            "the ResultPath {:?} cannot be applied to the input: a node on the way is not an object or the array index does not exist",
            self.text
        )
    }
}

/// A `Parameters` or `ResultSelector` payload: literal JSON in which a key
/// ending in `.$` takes its value from a reference path.
#[derive(Clone, Debug)]
pub(crate) enum Template {
    Literal(Value),
    Path(ReferencePath),
    Array(Vec<Template>),
    /// Output keys (without `.$`) in source order.
    Object(Vec<(String, Template)>),
}

impl Template {
    /// Whether [`lend`](Self::lend) can build this template: no path names
    /// a node that another path names or holds.
    pub fn lends(&self) -> bool {
        let mut paths = Vec::new();
        self.paths(&mut paths);
        paths
            .iter()
            .enumerate()
            .all(|(i, a)| paths[i + 1..].iter().all(|b| !a.within(b) && !b.within(a)))
    }

    fn paths<'t>(&'t self, out: &mut Vec<&'t ReferencePath>) {
        match self {
            Template::Literal(_) => {}
            Template::Path(path) => out.push(path),
            Template::Array(items) => items.iter().for_each(|item| item.paths(out)),
            Template::Object(fields) => fields.iter().for_each(|(_, item)| item.paths(out)),
        }
    }

    /// Builds the payload as [`apply`](Self::apply) does, but moves the
    /// nodes its paths name out of `input` instead of copying them;
    /// [`give_back`](Self::give_back) puts them back. For a template that
    /// [`lends`](Self::lends). On an error, `input` has lost what was moved.
    pub fn lend(&self, input: &mut Value) -> Result<Value, String> {
        self.build(&mut |path| match path.get_mut(input) {
            Some(node) => Ok(std::mem::take(node)),
            None => Err(path.not_found()),
        })
    }

    /// Puts the nodes [`lend`](Self::lend) moved into `built` back where
    /// they were in `input`.
    pub fn give_back(&self, built: Value, input: &mut Value) {
        match (self, built) {
            (Template::Literal(_), _) => {}
            (Template::Path(path), node) => {
                if let Some(slot) = path.get_mut(input) {
                    *slot = node;
                }
            }
            (Template::Array(items), Value::Array(values)) => {
                for (item, value) in items.iter().zip(values) {
                    item.give_back(value, input);
                }
            }
            (Template::Object(fields), Value::Object(mut values)) => {
                for (key, item) in fields {
                    if let Some(value) = values.get_mut(key) {
                        item.give_back(std::mem::take(value), input);
                    }
                }
            }
            // What lend built has the template's shape.
            _ => {}
        }
    }

    /// Builds the payload from `input`; a path that does not resolve is an error.
    pub fn apply(&self, input: &Value) -> Result<Value, String> {
        self.build(&mut |path| path.select(input))
    }

    /// The payload, each path's node given by `node`.
    fn build(
        &self,
        node: &mut impl FnMut(&ReferencePath) -> Result<Value, String>,
    ) -> Result<Value, String> {
        Ok(match self {
            Template::Literal(value) => value.clone(),
            Template::Path(path) => node(path)?,
            Template::Array(items) => Value::Array(
                items
                    .iter()
                    .map(|item| item.build(node))
                    .collect::<Result<_, _>>()?,
            ),
            Template::Object(fields) => {
                // Sized once: collecting through `Result` would grow it entry by entry.
                let mut out = Map::with_capacity(fields.len());
                for (key, item) in fields {
                    out.insert(key.clone(), item.build(node)?);
                }
                Value::Object(out)
            }
        })
    }
}

/// `InputPath`/`OutputPath`: a path, or `null` to pass `{}` on.
#[derive(Clone, Debug)]
pub(crate) struct FilterPath(pub Option<ReferencePath>);

impl FilterPath {
    pub fn root() -> FilterPath {
        FilterPath(Some(root()))
    }

    /// The part of `input` this path passes on, borrowed where it can be:
    /// for an `InputPath` whose input is still needed (a task's `ResultPath`).
    pub fn view<'v>(&self, input: &'v Value) -> Result<Cow<'v, Value>, String> {
        match &self.0 {
            Some(path) => path
                .get(input)
                .map(Cow::Borrowed)
                .ok_or_else(|| path.not_found()),
            None => Ok(Cow::Owned(Value::Object(Map::new()))),
        }
    }

    /// The path is `$`: the whole input passes.
    pub fn is_root(&self) -> bool {
        self.0.as_ref().is_some_and(|p| p.segments.is_empty())
    }

    /// The part of `input` this path passes on, moved out of it.
    pub fn take(&self, input: Value) -> Result<Value, String> {
        match &self.0 {
            Some(path) => path.take(input),
            None => Ok(Value::Object(Map::new())),
        }
    }
}

/// `ResultPath`: where a result goes in the state's input, or `null` to discard it.
#[derive(Clone, Debug)]
pub(crate) struct ResultPath(pub Option<ReferencePath>);

impl ResultPath {
    pub fn root() -> ResultPath {
        ResultPath(Some(root()))
    }

    pub fn apply(&self, input: Value, result: Value) -> Result<Value, String> {
        match &self.0 {
            Some(path) => path.set(input, result),
            None => Ok(input),
        }
    }
}

fn root() -> ReferencePath {
    ReferencePath {
        text: "$".to_owned(),
        segments: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn path(text: &str) -> ReferencePath {
        ReferencePath::parse(text).expect(text)
    }

    #[test]
    fn reference_paths_select_fields_quoted_names_and_indexes() {
        let input = json!({"a": {"b": 1, "c d": [10, {"e": "x"}]}});
        assert_eq!(path("$").get(&input), Some(&input));
        assert_eq!(path("$.a.b").get(&input), Some(&json!(1)));
        assert_eq!(path("$.a['c d'][0]").get(&input), Some(&json!(10)));
        assert_eq!(path("$['a']['c d'][1].e").get(&input), Some(&json!("x")));
        assert_eq!(path("$.a.missing").get(&input), None);
        assert_eq!(path("$.a['c d'][2]").get(&input), None);
        assert_eq!(path("$.a.b.c").get(&input), None);
        assert_eq!(
            path("$['it\\'s']").get(&json!({"it's": 2})),
            Some(&json!(2))
        );
    }

    #[test]
    fn non_reference_paths_are_rejected_with_a_reason() {
        for (text, reason) in [
            ("a.b", "must start with '$'"),
            ("$..a", "deep scan"),
            ("$.a[*]", "brackets"),
            ("$.*", "'*' is not allowed"),
            ("$.a[?(@.b)]", "brackets"),
            ("$.a[0", "brackets"),
            ("$['a", "unterminated"),
            ("$.", "empty field name"),
            ("$a", "unexpected 'a'"),
            ("$$.Execution.Id", "context object paths"),
            ("States.Format('{}', $.a)", "intrinsic functions"),
        ] {
            let err = ReferencePath::parse(text).expect_err(text);
            assert!(err.contains(reason), "{text}: {err}");
        }
    }

    #[test]
    fn setting_a_result_creates_missing_objects_and_keeps_key_order() {
        let input = json!({"order": {"id": 1}, "z": 0});
        assert_eq!(
            path("$.result.inner").set(input.clone(), json!(true)),
            Ok(json!({"order": {"id": 1}, "z": 0, "result": {"inner": true}}))
        );
        let replaced = path("$.order").set(input.clone(), json!("r")).expect("set");
        assert_eq!(replaced, json!({"order": "r", "z": 0}));
        assert_eq!(
            replaced
                .as_object()
                .map(|m| m.keys().cloned().collect::<Vec<_>>()),
            Some(vec!["order".to_owned(), "z".to_owned()])
        );
        assert_eq!(path("$").set(input, json!(5)), Ok(json!(5)));
        assert_eq!(
            path("$.a[1]").set(json!({"a": [1, 2]}), json!(9)),
            Ok(json!({"a": [1, 9]}))
        );
    }

    #[test]
    fn setting_through_a_non_object_is_an_error() {
        assert!(path("$.a.b").set(json!({"a": 1}), json!(2)).is_err());
        assert!(path("$.a").set(json!("text"), json!(2)).is_err());
        assert!(path("$.a[3]").set(json!({"a": [1]}), json!(2)).is_err());
    }

    #[test]
    fn templates_fill_path_fields_and_fail_on_missing_ones() {
        let template = Template::Object(vec![
            ("id".to_owned(), Template::Path(path("$.order.id"))),
            ("fixed".to_owned(), Template::Literal(json!("$.not.a.path"))),
            (
                "list".to_owned(),
                Template::Array(vec![Template::Path(path("$.n"))]),
            ),
        ]);
        assert_eq!(
            template.apply(&json!({"order": {"id": 7}, "n": 3})),
            Ok(json!({"id": 7, "fixed": "$.not.a.path", "list": [3]}))
        );
        let err = template.apply(&json!({"n": 3})).expect_err("missing");
        assert!(err.contains("$.order.id"), "{err}");
    }

    #[test]
    fn a_template_lends_disjoint_nodes_and_gives_them_back() {
        let field = |name: &str, t: Template| (name.to_owned(), t);
        let template = Template::Object(vec![
            field("order", Template::Path(path("$.order"))),
            field("fixed", Template::Literal(json!(1))),
            field(
                "second",
                Template::Array(vec![Template::Path(path("$.items[1]"))]),
            ),
        ]);
        assert!(template.lends());
        let before = json!({"order": {"id": 7}, "items": [1, 2], "z": 0});
        let mut input = before.clone();
        let built = template.lend(&mut input).expect("lend");
        assert_eq!(Ok(built.clone()), template.apply(&before));
        assert_eq!(input["order"], Value::Null, "moved, not copied");
        template.give_back(built, &mut input);
        assert_eq!(input, before);

        let overlapping = |a: &str, b: &str| {
            Template::Object(vec![
                field("a", Template::Path(path(a))),
                field("b", Template::Path(path(b))),
            ])
        };
        assert!(!overlapping("$.order", "$.order.id").lends());
        assert!(!overlapping("$.order.id", "$.order").lends());
        assert!(!overlapping("$", "$.z").lends());
        assert!(!overlapping("$.z", "$.z").lends());
        assert!(overlapping("$.order", "$.z").lends());
    }
}
