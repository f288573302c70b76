//! A small JSON scanner that keeps the line and column of every key and value.
//!
//! `serde_json::Value` forgets where things were, and a definition error that
//! cannot point at the offending text is hard to act on. This scanner builds a
//! [`Node`] tree instead, rejects duplicate keys (which `serde_json` silently
//! collapses), and limits nesting so hostile input cannot overflow the stack.

use serde_json::{Map, Value};

/// Deepest array/object nesting accepted, the same limit `serde_json` uses.
const MAX_DEPTH: usize = 128;

/// A 1-based line and column; columns count characters, not bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Pos {
    pub line: usize,
    pub column: usize,
}

/// A JSON value with the position of its first character.
#[derive(Clone, Debug)]
pub(crate) struct Node {
    pub pos: Pos,
    pub kind: Kind,
}

#[derive(Clone, Debug)]
pub(crate) enum Kind {
    Null,
    Bool(bool),
    Number(serde_json::Number),
    String(String),
    Array(Vec<Node>),
    /// Members in source order; keys are unique.
    Object(Vec<Member>),
}

/// One `"key": value` pair of an object.
#[derive(Clone, Debug)]
pub(crate) struct Member {
    pub key: String,
    pub key_pos: Pos,
    pub value: Node,
}

/// A syntax error at a position.
#[derive(Debug)]
pub(crate) struct SyntaxError {
    pub pos: Pos,
    pub message: String,
}

impl Node {
    pub fn as_str(&self) -> Option<&str> {
        match &self.kind {
            Kind::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_object(&self) -> Option<&[Member]> {
        match &self.kind {
            Kind::Object(members) => Some(members),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&[Node]> {
        match &self.kind {
            Kind::Array(items) => Some(items),
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self.kind, Kind::Null)
    }

    /// A short name of the JSON type, for error messages.
    pub fn type_name(&self) -> &'static str {
        match self.kind {
            Kind::Null => "null",
            Kind::Bool(_) => "a boolean",
            Kind::Number(_) => "a number",
            Kind::String(_) => "a string",
            Kind::Array(_) => "an array",
            Kind::Object(_) => "an object",
        }
    }

    /// The value without positions.
    pub fn to_value(&self) -> Value {
        match &self.kind {
            Kind::Null => Value::Null,
            Kind::Bool(b) => Value::Bool(*b),
            Kind::Number(n) => Value::Number(n.clone()),
            Kind::String(s) => Value::String(s.clone()),
            Kind::Array(items) => Value::Array(items.iter().map(Node::to_value).collect()),
            Kind::Object(members) => Value::Object(
                members
                    .iter()
                    .map(|m| (m.key.clone(), m.value.to_value()))
                    .collect::<Map<_, _>>(),
            ),
        }
    }
}

/// Parses one JSON document, rejecting duplicate keys and trailing content.
pub(crate) fn parse(source: &str) -> Result<Node, SyntaxError> {
    let mut scanner = Scanner {
        chars: source.chars().peekable(),
        pos: Pos { line: 1, column: 1 },
    };
    // A byte order mark is not JSON, but editors on some systems add one.
    if scanner.peek() == Some('\u{feff}') {
        scanner.bump();
    }
    scanner.skip_whitespace();
    let node = scanner.value(0)?;
    scanner.skip_whitespace();
    match scanner.peek() {
        None => Ok(node),
        Some(_) => Err(scanner.error("unexpected content after the end of the document")),
    }
}

struct Scanner<'a> {
    chars: std::iter::Peekable<std::str::Chars<'a>>,
    pos: Pos,
}

impl Scanner<'_> {
    fn peek(&mut self) -> Option<char> {
        self.chars.peek().copied()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.chars.next()?;
        if c == '\n' {
            self.pos.line += 1;
            self.pos.column = 1;
        } else {
            self.pos.column += 1;
        }
        Some(c)
    }

    fn error(&self, message: impl Into<String>) -> SyntaxError {
        self.error_at(self.pos, message)
    }

    fn error_at(&self, pos: Pos, message: impl Into<String>) -> SyntaxError {
        SyntaxError {
            pos,
            message: message.into(),
        }
    }

    fn skip_whitespace(&mut self) {
        while matches!(self.peek(), Some(' ' | '\t' | '\n' | '\r')) {
            self.bump();
        }
    }

    fn expect(&mut self, wanted: char, what: &str) -> Result<(), SyntaxError> {
        match self.peek() {
            Some(c) if c == wanted => {
                self.bump();
                Ok(())
            }
            Some(c) => Err(self.error(format!("expected {what}, found {c:?}"))),
            None => Err(self.error(format!("expected {what}, found the end of the document"))),
        }
    }

    fn value(&mut self, depth: usize) -> Result<Node, SyntaxError> {
        let pos = self.pos;
        let kind = match self.peek() {
            Some('{') => self.object(depth)?,
            Some('[') => self.array(depth)?,
            Some('"') => Kind::String(self.string()?),
            Some('-' | '0'..='9') => Kind::Number(self.number()?),
            Some('t') => self.literal("true", Kind::Bool(true))?,
            Some('f') => self.literal("false", Kind::Bool(false))?,
            Some('n') => self.literal("null", Kind::Null)?,
            Some(c) => return Err(self.error(format!("expected a JSON value, found {c:?}"))),
            None => return Err(self.error("expected a JSON value, found the end of the document")),
        };
        Ok(Node { pos, kind })
    }

    fn literal(&mut self, word: &str, kind: Kind) -> Result<Kind, SyntaxError> {
        let start = self.pos;
        for wanted in word.chars() {
            if self.peek() != Some(wanted) {
                return Err(self.error_at(start, "expected a JSON value"));
            }
            self.bump();
        }
        Ok(kind)
    }

    fn enter(&self, depth: usize) -> Result<usize, SyntaxError> {
        if depth >= MAX_DEPTH {
            return Err(self.error(format!("nested deeper than {MAX_DEPTH} levels")));
        }
        Ok(depth + 1)
    }

    fn object(&mut self, depth: usize) -> Result<Kind, SyntaxError> {
        let depth = self.enter(depth)?;
        self.bump(); // '{'
        let mut members: Vec<Member> = Vec::new();
        self.skip_whitespace();
        if self.peek() == Some('}') {
            self.bump();
            return Ok(Kind::Object(members));
        }
        loop {
            self.skip_whitespace();
            let key_pos = self.pos;
            if self.peek() != Some('"') {
                return Err(self.error("expected a string key"));
            }
            let key = self.string()?;
            if members.iter().any(|m| m.key == key) {
                return Err(self.error_at(key_pos, format!("duplicate key {key:?}")));
            }
            self.skip_whitespace();
            self.expect(':', "':' after the key")?;
            self.skip_whitespace();
            let value = self.value(depth)?;
            members.push(Member {
                key,
                key_pos,
                value,
            });
            self.skip_whitespace();
            match self.peek() {
                Some(',') => {
                    self.bump();
                }
                Some('}') => {
                    self.bump();
                    return Ok(Kind::Object(members));
                }
                _ => return Err(self.error("expected ',' or '}' in the object")),
            }
        }
    }

    fn array(&mut self, depth: usize) -> Result<Kind, SyntaxError> {
        let depth = self.enter(depth)?;
        self.bump(); // '['
        let mut items = Vec::new();
        self.skip_whitespace();
        if self.peek() == Some(']') {
            self.bump();
            return Ok(Kind::Array(items));
        }
        loop {
            self.skip_whitespace();
            items.push(self.value(depth)?);
            self.skip_whitespace();
            match self.peek() {
                Some(',') => {
                    self.bump();
                }
                Some(']') => {
                    self.bump();
                    return Ok(Kind::Array(items));
                }
                _ => return Err(self.error("expected ',' or ']' in the array")),
            }
        }
    }

    fn string(&mut self) -> Result<String, SyntaxError> {
        let start = self.pos;
        self.bump(); // '"'
        let mut out = String::new();
        loop {
            let here = self.pos;
            match self.bump() {
                None => return Err(self.error_at(start, "unterminated string")),
                Some('"') => return Ok(out),
                Some('\\') => {
                    let escape_pos = self.pos;
                    let decoded = match self.bump() {
                        Some('"') => '"',
                        Some('\\') => '\\',
                        Some('/') => '/',
                        Some('b') => '\u{8}',
                        Some('f') => '\u{c}',
                        Some('n') => '\n',
                        Some('r') => '\r',
                        Some('t') => '\t',
                        Some('u') => self.unicode_escape(escape_pos)?,
                        _ => return Err(self.error_at(escape_pos, "invalid escape sequence")),
                    };
                    out.push(decoded);
                }
                Some(c) if c < '\u{20}' => {
                    return Err(self.error_at(here, "control character in a string; escape it"));
                }
                Some(c) => out.push(c),
            }
        }
    }

    fn hex4(&mut self, escape_pos: Pos) -> Result<u32, SyntaxError> {
        let mut code = 0;
        for _ in 0..4 {
            let digit = self
                .bump()
                .and_then(|c| c.to_digit(16))
                .ok_or_else(|| self.error_at(escape_pos, "invalid \\u escape"))?;
            code = code * 16 + digit;
        }
        Ok(code)
    }

    /// Decodes the rest of a `\u` escape, including a surrogate pair.
    fn unicode_escape(&mut self, escape_pos: Pos) -> Result<char, SyntaxError> {
        let first = self.hex4(escape_pos)?;
        let code = if (0xD800..0xDC00).contains(&first) {
            if self.bump() != Some('\\') || self.bump() != Some('u') {
                return Err(self.error_at(escape_pos, "unpaired surrogate in \\u escape"));
            }
            let second = self.hex4(escape_pos)?;
            if !(0xDC00..0xE000).contains(&second) {
                return Err(self.error_at(escape_pos, "unpaired surrogate in \\u escape"));
            }
            0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00)
        } else {
            first
        };
        char::from_u32(code)
            .ok_or_else(|| self.error_at(escape_pos, "unpaired surrogate in \\u escape"))
    }

    fn number(&mut self) -> Result<serde_json::Number, SyntaxError> {
        let start = self.pos;
        let mut text = String::new();
        if self.peek() == Some('-') {
            text.extend(self.bump());
        }
        match self.peek() {
            Some('0') => text.extend(self.bump()),
            Some('1'..='9') => self.digits(&mut text),
            _ => return Err(self.error_at(start, "invalid number")),
        }
        if self.peek() == Some('.') {
            text.extend(self.bump());
            if !matches!(self.peek(), Some('0'..='9')) {
                return Err(self.error_at(start, "invalid number"));
            }
            self.digits(&mut text);
        }
        if matches!(self.peek(), Some('e' | 'E')) {
            text.extend(self.bump());
            if matches!(self.peek(), Some('+' | '-')) {
                text.extend(self.bump());
            }
            if !matches!(self.peek(), Some('0'..='9')) {
                return Err(self.error_at(start, "invalid number"));
            }
            self.digits(&mut text);
        }
        serde_json::from_str(&text)
            .map_err(|_| self.error_at(start, format!("number {text} is out of range")))
    }

    fn digits(&mut self, text: &mut String) {
        while let Some(c @ '0'..='9') = self.peek() {
            text.push(c);
            self.bump();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_round_trip_with_escapes_and_key_order() {
        let node = parse(r#" {"b": [1, -2.5e3, true, null], "a": "x\"\u00e9\ud83d\ude00\n"} "#)
            .expect("valid JSON");
        assert_eq!(
            node.to_value(),
            json!({"b": [1, -2500.0, true, null], "a": "x\"é😀\n"})
        );
        let keys: Vec<_> = node
            .as_object()
            .expect("object")
            .iter()
            .map(|m| m.key.as_str())
            .collect();
        assert_eq!(keys, ["b", "a"]);
    }

    #[test]
    fn positions_count_lines_and_characters() {
        let node = parse("{\n  \"é\": 1,\n  \"k\":\n    [true]\n}").expect("valid JSON");
        let members = node.as_object().expect("object");
        assert_eq!(members[0].key_pos, Pos { line: 2, column: 3 });
        assert_eq!(members[0].value.pos, Pos { line: 2, column: 8 });
        assert_eq!(members[1].value.pos, Pos { line: 4, column: 5 });
    }

    #[test]
    fn duplicate_keys_are_rejected_at_the_second_key() {
        let err = parse("{\"a\": 1,\n \"a\": 2}").expect_err("duplicate");
        assert_eq!(err.pos, Pos { line: 2, column: 2 });
        assert_eq!(err.message, "duplicate key \"a\"");
    }

    #[test]
    fn malformed_documents_are_rejected_with_positions() {
        let cases = [
            ("", 1, 1),
            ("{", 1, 2),
            ("[1,]", 1, 4),
            ("{\"a\" 1}", 1, 6),
            ("01", 1, 2),
            ("1.", 1, 1),
            ("\"\\x\"", 1, 3),
            ("\"\\ud800\"", 1, 3),
            ("\"a\nb\"", 1, 3),
            ("nul", 1, 1),
            ("{} {}", 1, 4),
            ("1e999", 1, 1),
        ];
        for (source, line, column) in cases {
            let err = parse(source).expect_err(source);
            assert_eq!((err.pos.line, err.pos.column), (line, column), "{source:?}");
        }
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        let source = "[".repeat(100_000);
        let err = parse(&source).expect_err("too deep");
        assert!(err.message.contains("nested deeper"));
    }
}
