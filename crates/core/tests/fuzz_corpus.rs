//! Replays the kept fuzz corpus (fuzz/corpus/decode_order) through the
//! order decoder with the fuzz target's checks (`fuzz/checks.rs`, included
//! by both), without libFuzzer, so that every `cargo test` run covers the
//! inputs fuzzing found interesting.

#[path = "../../../fuzz/checks.rs"]
mod checks;

use checks::check;
use dofs_core::validation::Limits;
use dofs_core::Price;

#[test]
fn the_kept_fuzz_corpus_keeps_the_decoders_promises() {
    let dir = std::path::PathBuf::from(manifest_dir()).join("../../fuzz/corpus/decode_order");
    let mut files = 0;
    let mut valid = 0;
    for entry in std::fs::read_dir(&dir).expect("the fuzz corpus directory") {
        let path = entry.expect("a corpus entry").path();
        let data = std::fs::read(&path).expect("a corpus file");
        let name = path.display().to_string();
        files += 1;
        valid += usize::from(check(&name, &data, &Limits::default()));
        check(
            &name,
            &data,
            &Limits {
                max_quantity: 1,
                max_price: Price::from_cents(1),
            },
        );
    }
    assert!(
        files >= 20,
        "only {files} corpus files in {}",
        dir.display()
    );
    assert!(valid >= 3, "the corpus holds valid orders too ({valid})");
}

/// This package's directory, read when the test runs. `env!` would keep the
/// checkout the test binary was first built in, and cargo reuses that binary
/// from a shared target directory after the checkout has moved (CI clones
/// into a new folder each run).
fn manifest_dir() -> String {
    std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_owned())
}
