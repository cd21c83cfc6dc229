//! Shared test fixtures: the default model and the demo dataset.

#![allow(dead_code)]

use std::path::PathBuf;

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The default model (CI pulls it before the tests).
pub fn model_path() -> PathBuf {
    let p = root().join("models/smollm2-135m-instruct.Q4_1.gguf");
    assert!(
        p.is_file(),
        "{} is missing: run `kefu models pull`",
        p.display()
    );
    p
}

pub fn demo_train() -> PathBuf {
    root().join("data/prepared/train.jsonl")
}

pub fn demo_test() -> PathBuf {
    root().join("data/prepared/test.jsonl")
}
