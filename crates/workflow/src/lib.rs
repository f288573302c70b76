//! Amazon States Language (ASL) for DOFS: parse a state machine once, check it,
//! and run it in process with the same semantics AWS Step Functions gives the
//! same file.
//!
//! The crate does no I/O and owns no runtime. The caller supplies:
//! - a [`TaskHandler`] that maps each Task `Resource` string (opaque here, e.g.
//!   `${validator_arn}` or `arn:aws:states:::sqs:sendMessage`) to code;
//! - a [`Timer`] for timestamps and retry waits;
//! - an [`EventSink`] (a `Vec<Event>` will do) that receives the history as it
//!   happens.
//!
//! Only a subset of ASL is supported, and everything outside it is rejected by
//! [`Definition::parse`] with the line and column of the offending key or
//! value, so a definition that parses here behaves the same on Step Functions:
//! - states: Task, Pass, Choice, Succeed, Fail (no Wait, Parallel or Map);
//! - `InputPath`, `Parameters`, `ResultSelector`, `ResultPath`, `OutputPath`
//!   with reference paths only (`$`, `$.a.b`, `$['a b']`, `$.a[0]`), no
//!   context object (`$$`) and no intrinsic functions (`States.Format`, ...);
//! - `Retry` and `Catch` (no jitter, no timeouts);
//! - Choice rules with the common String, Numeric, Boolean and `Is*` operators,
//!   `And`, `Or` and `Not`.
//!
//! Layout:
//! - `json`: a JSON scanner that keeps positions and rejects duplicate keys;
//! - `path`: reference paths and payload templates;
//! - `parse`: from scanned JSON to a checked [`Definition`] (`parse::object` reads one
//!   object with positions, `parse::choice` the Choice rules);
//! - `choice`: Choice rules and their evaluation;
//! - `definition`: the model and what callers can ask of it ([`Graph`], [`TaskResource`]);
//! - `run`: [`execute`] and the ports it uses.

mod choice;
mod definition;
mod error;
mod json;
mod parse;
mod path;
mod run;

pub use definition::{Definition, Graph, GraphEdge, GraphState, StateType, TaskResource};
pub use error::DefinitionError;
pub use run::{
    execute, Event, EventKind, EventSink, NoHistory, Outcome, TaskError, TaskHandler, Timer,
    MAX_STATE_TRANSITIONS, NO_CHOICE_MATCHED, RUNTIME_ERROR,
};
