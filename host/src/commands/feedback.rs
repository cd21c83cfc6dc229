//! `kefu feedback export`: the thumbs-down cases clients reported through `POST /v1/feedback`,
//! as instruction JSONL for review and the next fine-tune.
//!
//! Reads the gateway's records straight from `<state-dir>/key_value.db` (read-only, so it is
//! safe while `kefu up` runs); the join and the file format are `kefu_feedback::export`'s.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use kefu_feedback::{
    COMPLETION_PREFIX, CompletionRecord, FEEDBACK_PREFIX, FeedbackRecord, STORE, export,
};
use kefu_runtime::kv::{DB_FILE, KeyValueStores};
use serde::de::DeserializeOwned;

#[derive(Debug, clap::Subcommand)]
pub enum FeedbackCommand {
    /// Write the thumbs-down cases (masked question, the answer given, the comment) as
    /// instruction JSONL: fill in `output` and feed the file to `kefu data prepare`.
    Export(ExportArgs),
}

#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// The state directory `kefu up` ran with.
    #[arg(long, default_value = "state")]
    state_dir: PathBuf,
    /// The JSONL file to write.
    #[arg(long)]
    out: PathBuf,
}

pub fn run(cmd: FeedbackCommand) -> Result<()> {
    match cmd {
        FeedbackCommand::Export(args) => run_export(&args),
    }
}

fn run_export(args: &ExportArgs) -> Result<()> {
    let kv = open(&args.state_dir)?;
    let completions: Vec<CompletionRecord> = read_records(&kv, COMPLETION_PREFIX)?;
    let feedback: Vec<FeedbackRecord> = read_records(&kv, FEEDBACK_PREFIX)?;
    let export = export::thumbs_down(completions, feedback);
    write_atomically(&args.out, export.to_jsonl().as_bytes())?;
    println!(
        "wrote {} thumbs-down case(s) to {} ({} thumbs up; {} without a stored completion)",
        export.cases.len(),
        args.out.display(),
        export.up,
        export.orphaned
    );
    Ok(())
}

/// Opens `<state_dir>/key_value.db` read-only.
pub(super) fn open(state_dir: &Path) -> Result<KeyValueStores> {
    KeyValueStores::open_read_only(&state_dir.join(DB_FILE))
}

/// Every record under `prefix` in the gateway's store; unreadable ones are skipped with a
/// warning naming their key.
pub(super) fn read_records<T: DeserializeOwned>(
    kv: &KeyValueStores,
    prefix: &str,
) -> Result<Vec<T>> {
    let mut records = Vec::new();
    for entry in kv.scan(STORE, prefix)? {
        match serde_json::from_slice(&entry.value) {
            Ok(record) => records.push(record),
            Err(e) => tracing::warn!(key = %entry.key, error = %e, "skipping an unreadable record"),
        }
    }
    Ok(records)
}

/// Writes `bytes` to `path` through a temporary file in the same directory, so a failure
/// leaves no partial file.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let tmp = dir.join(format!(
        ".{}.tmp",
        path.file_name()
            .map_or("export".into(), |n| n.to_string_lossy())
    ));
    let mut file =
        std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
}
