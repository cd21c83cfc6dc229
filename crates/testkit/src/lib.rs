//! Test support shared by the workspace's suites: the repository root, the default model the
//! end-to-end tests run on, and the demo data. Only a dev-dependency.

use std::path::PathBuf;

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The default model: `KEFU_TEST_MODEL` when set, else the catalog's default file that
/// `kefu models pull` (run by `scripts/test`) puts under `models/`. Panics with the fix when
/// it is missing.
pub fn default_model() -> PathBuf {
    let path = std::env::var_os("KEFU_TEST_MODEL").map_or_else(
        || repo_root().join("models/smollm2-135m-instruct.Q4_1.gguf"),
        PathBuf::from,
    );
    assert!(
        path.is_file(),
        "the default model is missing at {}: run `kefu models pull` first",
        path.display()
    );
    path
}

/// A file of the prepared demo data (`data/prepared/NAME`, from `kefu data prepare`).
pub fn demo_prepared(name: &str) -> PathBuf {
    repo_root().join("data/prepared").join(name)
}
