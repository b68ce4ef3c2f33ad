//! Replays the committed fuzz corpus (`fuzz/corpus/TARGET/`, `fuzz/regressions/TARGET/`) and
//! the generated seeds through the same checks the cargo-fuzz targets run
//! (`fieldsync_tests::fuzz_checks`), on stable, as part of `cargo test --workspace`.
//!
//! `cargo test -p fieldsync-tests --test fuzz_corpus -- --ignored write_fuzz_seeds` writes
//! the seeds into the corpus directories (before a fuzz run on a fresh corpus).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use fieldsync_tests::fuzz_checks::{seeds, Check, TARGETS};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.is_file())
        .collect();
    out.sort();
    out
}

/// Runs `check` on every input, and fails listing every input that panicked.
fn replay(check: Check, inputs: impl IntoIterator<Item = (String, Vec<u8>)>) -> usize {
    let mut failed = Vec::new();
    let mut n = 0;
    for (name, data) in inputs {
        n += 1;
        if catch_unwind(AssertUnwindSafe(|| check(&data))).is_err() {
            failed.push(name);
        }
    }
    assert!(failed.is_empty(), "fuzz inputs failing: {failed:#?}");
    n
}

#[test]
fn fuzz_corpus_replays() {
    for (target, check) in TARGETS {
        let corpus = fuzz_dir().join("corpus").join(target);
        let mut inputs = files(&corpus);
        assert!(
            !inputs.is_empty(),
            "the fuzz corpus {} is empty",
            corpus.display()
        );
        let regressions = fuzz_dir().join("regressions").join(target);
        if regressions.is_dir() {
            inputs.extend(files(&regressions));
        }
        let n = replay(
            check,
            inputs.into_iter().map(|p| {
                let data = std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
                (p.display().to_string(), data)
            }),
        );
        eprintln!("{target}: {n} inputs replayed");
    }
}

#[test]
fn fuzz_seeds_pass() {
    for (target, check) in TARGETS {
        let mine = seeds()
            .into_iter()
            .filter(|(t, _, _)| *t == target)
            .map(|(_, name, data)| (format!("{target}/seed-{name}"), data));
        assert!(replay(check, mine) > 0, "no seeds for {target}");
    }
}

#[test]
#[ignore = "writes the seeds into fuzz/corpus; run by hand before fuzzing a fresh corpus"]
fn write_fuzz_seeds() {
    for (target, name, data) in seeds() {
        let dir = fuzz_dir().join("corpus").join(target);
        std::fs::create_dir_all(&dir).expect("corpus dir");
        std::fs::write(dir.join(format!("seed-{name}")), data).expect("write seed");
    }
}
