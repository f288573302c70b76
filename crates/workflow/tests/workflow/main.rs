//! Behaviour of the engine as a caller sees it: through `Definition` and `execute`.

mod order_processing;
mod properties;
mod rejections;
mod semantics;
mod support;
