//! Resumable checkpoints: a directory holding the trainable tensors with their AdamW moments
//! (`trainable.safetensors`), the best tensors by eval loss (`best.safetensors`) and where
//! training stands (`state.json`). Files are written beside their final names and renamed, so
//! an interrupted save leaves the previous checkpoint intact.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

/// Settings that must match for a checkpoint to be resumed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunIdentity {
    pub model: PathBuf,
    pub lora_rank: usize,
    pub lora_alpha: f64,
    pub batch_size: usize,
    pub grad_accum: usize,
    pub max_seq_length: usize,
    pub seed: u64,
    pub train_examples: usize,
}

/// The best epoch so far.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Best {
    pub epoch: usize,
    pub step: usize,
    pub eval_loss: f64,
}

/// Where training stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct State {
    pub identity: RunIdentity,
    /// Epoch in progress (0-based); equals the epoch count when training finished.
    pub epoch: usize,
    /// Optimizer steps already done within `epoch`.
    pub step_in_epoch: usize,
    /// Optimizer steps done in total.
    pub global_step: usize,
    pub best: Option<Best>,
    /// Eval loss of the previous epoch (overfitting notes).
    pub last_eval_loss: Option<f64>,
    /// Answer tokens trained on so far.
    pub tokens_seen: usize,
}

pub const STATE: &str = "state.json";
pub const TRAINABLE: &str = "trainable.safetensors";
pub const BEST: &str = "best.safetensors";

fn write_atomic(path: &Path, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let tmp = path.with_extension("partial");
    write(&tmp).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot move {}", tmp.display()))
}

fn save_tensors(path: &Path, tensors: &HashMap<String, Tensor>) -> Result<()> {
    let cpu: HashMap<String, Tensor> = tensors
        .iter()
        .map(|(k, v)| Ok((k.clone(), v.to_device(&Device::Cpu)?)))
        .collect::<Result<_>>()?;
    write_atomic(path, |tmp| Ok(candle_core::safetensors::save(&cpu, tmp)?))
}

/// Saves the current tensors (with optimizer moments) and state.
pub fn save(dir: &Path, state: &State, tensors: &HashMap<String, Tensor>) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    save_tensors(&dir.join(TRAINABLE), tensors)?;
    let json = serde_json::to_string_pretty(state)?;
    write_atomic(&dir.join(STATE), |tmp| Ok(std::fs::write(tmp, json)?))
}

/// Saves the best tensors.
pub fn save_best(dir: &Path, tensors: &HashMap<String, Tensor>) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    save_tensors(&dir.join(BEST), tensors)
}

/// Loads a checkpoint and checks it belongs to this run.
pub fn load(dir: &Path, identity: &RunIdentity) -> Result<(State, HashMap<String, Tensor>)> {
    let state_path = dir.join(STATE);
    let text = std::fs::read_to_string(&state_path)
        .with_context(|| format!("{} is not a checkpoint directory", dir.display()))?;
    let state: State = serde_json::from_str(&text)
        .with_context(|| format!("cannot parse {}", state_path.display()))?;
    if &state.identity != identity {
        bail!(
            "checkpoint {} was made with different settings:\n  saved: {:?}\n  now:   {:?}",
            dir.display(),
            state.identity,
            identity
        );
    }
    let tensors = candle_core::safetensors::load(dir.join(TRAINABLE), &Device::Cpu)
        .with_context(|| format!("cannot read {}", dir.join(TRAINABLE).display()))?;
    Ok((state, tensors))
}

/// The best tensors saved in `dir`, if any.
pub fn load_best(dir: &Path) -> Result<Option<HashMap<String, Tensor>>> {
    let path = dir.join(BEST);
    if !path.is_file() {
        return Ok(None);
    }
    Ok(Some(
        candle_core::safetensors::load(&path, &Device::Cpu)
            .with_context(|| format!("cannot read {}", path.display()))?,
    ))
}
