//! The checks the fuzz targets run. They are one file in the main workspace's test crate,
//! compiled here as well, so `cargo test --workspace` replays the corpus through the same
//! code on stable (`tests/tests/fuzz_corpus.rs`) without this crate or libFuzzer.

#[path = "../../tests/src/fuzz_checks.rs"]
mod checks;

pub use checks::*;
