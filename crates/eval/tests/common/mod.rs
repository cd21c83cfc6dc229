//! Shared test helpers: where the default model and the demo data are.

use std::path::PathBuf;

/// The default model (`kefu models pull`, or `KEFU_TEST_MODEL`).
pub fn model_path() -> PathBuf {
    let path = std::env::var_os("KEFU_TEST_MODEL").map_or_else(
        || {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../../models/smollm2-135m-instruct.Q4_1.gguf")
        },
        PathBuf::from,
    );
    assert!(
        path.is_file(),
        "the default model is missing at {}: run `kefu models pull` first",
        path.display()
    );
    path
}

/// The demo test split from `kefu data prepare`.
#[allow(dead_code)]
pub fn test_split() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data/prepared/test.jsonl")
}
