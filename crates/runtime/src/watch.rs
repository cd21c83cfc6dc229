//! Watching the files an application is made of: each component's `.wasm` and the sources of
//! its staged `files` patterns. A change swaps the component in (see `swap`).
//!
//! Events are debounced: editors and build tools write a file in several steps (truncate,
//! write, rename), so changes are collected until the files have been quiet for
//! [`QUIET`], then each affected component is swapped once. A file that is half-written when
//! read fails to compile, is rejected, and the next event retries it.
//! Directory placements (`{ source, destination }`) are mounted as they are, so their
//! changes are visible without any reload.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;

use crate::app::App;
use crate::manifest::FilesMount;
use crate::swap::NewVersion;

/// How long files must be quiet before a swap.
const QUIET: Duration = Duration::from_millis(300);

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Change {
    Source(String),
    Files(String),
}

/// What to watch and what a change there means.
struct Target {
    path: PathBuf,
    /// The directory watched (the file's parent, or a pattern's base directory).
    dir: PathBuf,
    recursive: bool,
    change: Change,
}

/// Keeps the watch running; dropping it stops watching.
pub(crate) struct WatchHandle {
    _watcher: notify::RecommendedWatcher,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for WatchHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts watching every component of `app`.
pub(crate) fn spawn(app: Arc<App>) -> Result<WatchHandle> {
    let targets = targets(&app);
    let (tx, mut rx) = mpsc::unbounded_channel::<PathBuf>();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Ok(event) = event
            && !matches!(event.kind, notify::EventKind::Access(_))
        {
            for path in event.paths {
                let _ = tx.send(path);
            }
        }
    })
    .context("starting the file watcher")?;
    let mut watched = BTreeSet::new();
    for t in &targets {
        if watched.insert((t.dir.clone(), t.recursive)) {
            let mode = if t.recursive {
                RecursiveMode::Recursive
            } else {
                RecursiveMode::NonRecursive
            };
            watcher
                .watch(&t.dir, mode)
                .with_context(|| format!("watching {}", t.dir.display()))?;
        }
    }
    tracing::info!(
        files = targets.len(),
        "watching components and staged files for changes"
    );
    let task = tokio::spawn(async move {
        while let Some(first) = rx.recv().await {
            let mut changes = BTreeSet::new();
            let mut note = |path: &Path| {
                for t in &targets {
                    let hit = match t.change {
                        Change::Source(_) => path == t.path,
                        Change::Files(_) if t.recursive => path.starts_with(&t.dir),
                        Change::Files(_) => path.parent() == Some(t.dir.as_path()),
                    };
                    if hit {
                        changes.insert(t.change.clone());
                    }
                }
            };
            note(&first);
            // Collect until quiet.
            while let Ok(Some(path)) = tokio::time::timeout(QUIET, rx.recv()).await {
                note(&path);
            }
            for change in changes {
                apply(&app, change).await;
            }
        }
    });
    Ok(WatchHandle {
        _watcher: watcher,
        task,
    })
}

async fn apply(app: &App, change: Change) {
    // Failures are logged and counted by the swap itself.
    let _ = match &change {
        Change::Source(id) => app.swap_component(id, NewVersion::SourceFile).await,
        Change::Files(id) => app.reload_files(id).await,
    };
}

fn targets(app: &App) -> Vec<Target> {
    let mut targets = Vec::new();
    for (id, slot) in &app.components {
        let source = slot.current.load().source.clone();
        let source = source.canonicalize().unwrap_or(source);
        if let Some(dir) = source.parent() {
            targets.push(Target {
                dir: dir.to_path_buf(),
                path: source.clone(),
                recursive: false,
                change: Change::Source(id.clone()),
            });
        }
        let component = &app.manifest.components[id];
        for mount in &component.files {
            if let FilesMount::Pattern(pattern) = mount {
                let base = literal_base(pattern);
                let dir = app.manifest.resolve_path(base);
                let dir = dir.canonicalize().unwrap_or(dir);
                if dir.is_dir() {
                    targets.push(Target {
                        path: dir.clone(),
                        dir,
                        // The manifest's own directory holds build outputs: only its top.
                        recursive: base != ".",
                        change: Change::Files(id.clone()),
                    });
                }
            }
        }
    }
    targets
}

/// The directory part of a glob pattern before its first wildcard: `kb/**/*.jsonl` → `kb`.
fn literal_base(pattern: &str) -> &str {
    let wild = pattern.find(['*', '?', '[', '{']).unwrap_or(pattern.len());
    match pattern[..wild].rfind('/') {
        Some(slash) => &pattern[..slash],
        None => ".",
    }
}

#[cfg(test)]
mod tests {
    use super::literal_base;

    #[test]
    fn pattern_bases() {
        assert_eq!(literal_base("kb/**/*.jsonl"), "kb");
        assert_eq!(
            literal_base("data/prepared/knowledge.jsonl"),
            "data/prepared"
        );
        assert_eq!(literal_base("*.txt"), ".");
        assert_eq!(literal_base("a/b/c?.md"), "a/b");
    }
}
