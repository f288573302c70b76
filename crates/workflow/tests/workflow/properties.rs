//! `Definition::parse` is total: any input gives a definition or an error, never a panic.

use dofs_workflow::Definition;
use proptest::prelude::*;

use crate::support::ORDER_WORKFLOW;

/// An error position must point inside the text (or just past its end).
fn assert_position_is_inside(source: &str, line: usize, column: usize) {
    let lines: Vec<&str> = source.split('\n').collect();
    assert!(
        line >= 1 && line <= lines.len(),
        "line {line} of {}",
        lines.len()
    );
    let width = lines[line - 1].chars().count();
    assert!(
        column >= 1 && column <= width + 1,
        "column {column} of {width}"
    );
}

proptest! {
    #[test]
    fn parse_never_panics_on_arbitrary_strings(source in any::<String>()) {
        if let Err(err) = Definition::parse(&source) {
            assert_position_is_inside(&source, err.line, err.column);
        }
    }

    #[test]
    fn parse_never_panics_on_json_like_text(source in r#"[\[\]{}":,.$ a-zA-Z0-9\\\n-]{0,200}"#) {
        if let Err(err) = Definition::parse(&source) {
            assert_position_is_inside(&source, err.line, err.column);
        }
    }

    #[test]
    fn parse_never_panics_on_edits_of_the_order_workflow(
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<bool>(), any::<char>()), 1..4)
    ) {
        let mut chars: Vec<char> = ORDER_WORKFLOW.chars().collect();
        for (index, delete, replacement) in edits {
            let i = index.index(chars.len());
            if delete {
                chars.remove(i);
            } else {
                chars[i] = replacement;
            }
        }
        let source: String = chars.into_iter().collect();
        if let Err(err) = Definition::parse(&source) {
            assert_position_is_inside(&source, err.line, err.column);
        }
    }
}
