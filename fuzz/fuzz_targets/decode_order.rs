//! The order decoder and validation (`dofs_core::validation::decode_order`)
//! on arbitrary bytes. Besides never panicking, it must keep the promises
//! checked in `../checks.rs` (shared with the corpus replay in `cargo test`).
#![no_main]

#[path = "../checks.rs"]
mod checks;

use dofs_core::validation::Limits;
use dofs_core::Price;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    checks::check("the fuzz input", data, &Limits::default());
    // Tight limits too, so that the range checks are exercised at their edges.
    checks::check(
        "the fuzz input",
        data,
        &Limits {
            max_quantity: 1,
            max_price: Price::from_cents(1),
        },
    );
});
