//! The differentiable LLaMA forward pass over GGUF-layout weights.
//!
//! Invariants that keep it equal to llama.cpp's: weights stay in GGUF `(out, in)` layout and
//! are applied as 2-D matmuls; Q/K rows are stored permuted for llama.cpp's rope, so the
//! interleaved rope (`rope_i`) is the right one; the LM head is `token_embd` when the model ties
//! them. Only ops with a backward pass are used (`rms_norm_slow`, `rope_i_slow`, the generic
//! softmax): candle's fused kernels would silently drop gradients.

use std::collections::HashMap;

use anyhow::{Context, Result};
use candle_core::{D, DType, Device, Tensor, Var};
use candle_nn::ops::{log_softmax, rms_norm_slow, softmax};
use candle_nn::rotary_emb::rope_i_slow;
use rand::SeedableRng;
use rand::rngs::StdRng;

use crate::gguf::{GgufModel, LlamaConfig};
use crate::lora::{Adapter, Linear, LoraSpec};

struct Layer {
    attn_norm: Tensor,
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    ffn_norm: Tensor,
    gate: Linear,
    up: Linear,
    down: Linear,
}

/// The model plus the variables training updates (named like GGUF tensors, or
/// `blk.N.attn_q.lora_a` / `.lora_b` for adapters).
pub struct Llama {
    pub config: LlamaConfig,
    embd: Tensor,
    layers: Vec<Layer>,
    norm: Tensor,
    head: Option<Tensor>,
    pub trainable: Vec<(String, Var)>,
    pub lora: Option<LoraSpec>,
    device: Device,
}

/// Projections that get LoRA adapters (attention and MLP).
const PROJECTIONS: [&str; 7] = [
    "attn_q",
    "attn_k",
    "attn_v",
    "attn_output",
    "ffn_gate",
    "ffn_up",
    "ffn_down",
];

impl Llama {
    /// Builds the model from dequantized weights: every tensor trainable when `lora` is `None`,
    /// else frozen weights with fresh adapters (seeded by `seed`).
    pub fn new(base: &GgufModel, lora: Option<LoraSpec>, seed: u64) -> Result<Self> {
        let device = base
            .tensors
            .values()
            .next()
            .context("the model has no tensors")?
            .device()
            .clone();
        let mut rng = StdRng::seed_from_u64(seed);
        let mut trainable = Vec::new();
        let take = |name: &str, trainable: &mut Vec<(String, Var)>| -> Result<Tensor> {
            let t = base
                .tensors
                .get(name)
                .with_context(|| format!("missing tensor {name}"))?;
            if lora.is_none() {
                let var = Var::from_tensor(t)?;
                let t = var.as_tensor().clone();
                trainable.push((name.to_string(), var));
                Ok(t)
            } else {
                Ok(t.detach())
            }
        };
        let embd = take("token_embd.weight", &mut trainable)?;
        let mut layers = Vec::new();
        for l in 0..base.config.n_layer {
            let mut lin = |p: &str, trainable: &mut Vec<(String, Var)>| -> Result<Linear> {
                let name = format!("blk.{l}.{p}.weight");
                let weight = take(&name, trainable)?;
                let adapter = match lora {
                    Some(spec) if PROJECTIONS.contains(&p) => {
                        let (out, inp) = weight.dims2()?;
                        let ad = Adapter::new(out, inp, spec, &mut rng, &device)?;
                        trainable.push((format!("blk.{l}.{p}.lora_a"), ad.a.clone()));
                        trainable.push((format!("blk.{l}.{p}.lora_b"), ad.b.clone()));
                        Some(ad)
                    }
                    _ => None,
                };
                Ok(Linear { weight, adapter })
            };
            let attn_norm = take(&format!("blk.{l}.attn_norm.weight"), &mut trainable)?;
            let q = lin("attn_q", &mut trainable)?;
            let k = lin("attn_k", &mut trainable)?;
            let v = lin("attn_v", &mut trainable)?;
            let o = lin("attn_output", &mut trainable)?;
            let ffn_norm = take(&format!("blk.{l}.ffn_norm.weight"), &mut trainable)?;
            let gate = lin("ffn_gate", &mut trainable)?;
            let up = lin("ffn_up", &mut trainable)?;
            let down = lin("ffn_down", &mut trainable)?;
            layers.push(Layer {
                attn_norm,
                q,
                k,
                v,
                o,
                ffn_norm,
                gate,
                up,
                down,
            });
        }
        let norm = take("output_norm.weight", &mut trainable)?;
        let head = if base.config.tied_embeddings {
            None
        } else {
            Some(take("output.weight", &mut trainable)?)
        };
        Ok(Llama {
            config: base.config.clone(),
            embd,
            layers,
            norm,
            head,
            trainable,
            lora,
            device,
        })
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Trainable parameter count.
    pub fn trainable_params(&self) -> usize {
        self.trainable.iter().map(|(_, v)| v.elem_count()).sum()
    }

    fn rope_tables(&self, t: usize) -> Result<(Tensor, Tensor)> {
        let hd = self.config.head_dim;
        let inv: Vec<f32> = (0..hd / 2)
            .map(|i| 1.0 / (self.config.rope_base.powf(2.0 * i as f64 / hd as f64)) as f32)
            .collect();
        let mut angles = Vec::with_capacity(t * hd / 2);
        for p in 0..t {
            angles.extend(inv.iter().map(|f| p as f32 * f));
        }
        let angles = Tensor::from_vec(angles, (t, hd / 2), &self.device)?;
        Ok((angles.cos()?, angles.sin()?))
    }

    fn causal_mask(&self, t: usize) -> Result<Tensor> {
        let mask: Vec<f32> = (0..t * t)
            .map(|i| {
                if i % t > i / t {
                    f32::NEG_INFINITY
                } else {
                    0.0
                }
            })
            .collect();
        Ok(Tensor::from_vec(mask, (t, t), &self.device)?)
    }

    /// Final hidden states `(b, t, hidden)` (after the output norm) of `ids` `(b, t)`.
    /// Padding belongs at the end of a row: the causal mask keeps it from earlier tokens.
    pub fn hidden(&self, ids: &Tensor) -> Result<Tensor> {
        let c = &self.config;
        let (b, t) = ids.dims2()?;
        let eps = c.rms_eps as f32;
        let (cos, sin) = self.rope_tables(t)?;
        let mask = self.causal_mask(t)?;
        let n_rep = c.n_head / c.n_kv_head;
        let scale = 1.0 / (c.head_dim as f64).sqrt();
        let mut x = self
            .embd
            .index_select(&ids.flatten_all()?, 0)?
            .reshape((b, t, c.hidden))?;
        for layer in &self.layers {
            let h = rms_norm_slow(&x, &layer.attn_norm, eps)?.reshape((b * t, c.hidden))?;
            let heads = |lin: &Linear, n: usize| -> Result<Tensor> {
                Ok(lin
                    .forward(&h)?
                    .reshape((b, t, n, c.head_dim))?
                    .transpose(1, 2)?
                    .contiguous()?)
            };
            let q = rope_i_slow(&heads(&layer.q, c.n_head)?, &cos, &sin)?;
            let k = rope_i_slow(&heads(&layer.k, c.n_kv_head)?, &cos, &sin)?;
            let v = heads(&layer.v, c.n_kv_head)?;
            let (k, v) = (repeat_kv(k, n_rep)?, repeat_kv(v, n_rep)?);
            let att = (q.matmul(&k.t()?.contiguous()?)? * scale)?.broadcast_add(&mask)?;
            let att = softmax(&att, D::Minus1)?;
            let y = att
                .matmul(&v)?
                .transpose(1, 2)?
                .reshape((b * t, c.hidden))?;
            x = (x + layer.o.forward(&y)?.reshape((b, t, c.hidden))?)?;
            let h = rms_norm_slow(&x, &layer.ffn_norm, eps)?.reshape((b * t, c.hidden))?;
            let g = layer.gate.forward(&h)?.silu()?;
            let u = layer.up.forward(&h)?;
            let d = layer.down.forward(&(g * u)?)?;
            x = (x + d.reshape((b, t, c.hidden))?)?;
        }
        Ok(rms_norm_slow(&x, &self.norm, eps)?)
    }

    /// Logits `(n, vocab)` of hidden rows `(n, hidden)`.
    pub fn logits(&self, hidden_rows: &Tensor) -> Result<Tensor> {
        let head = self.head.as_ref().unwrap_or(&self.embd);
        Ok(hidden_rows.matmul(&head.t()?)?)
    }

    /// Logits of every position, `(b, t, vocab)`.
    pub fn forward_logits(&self, ids: &Tensor) -> Result<Tensor> {
        let (b, t) = ids.dims2()?;
        let h = self.hidden(ids)?.reshape((b * t, self.config.hidden))?;
        Ok(self.logits(&h)?.reshape((b, t, self.config.vocab))?)
    }

    /// Sum of the negative log-likelihoods of `targets` at flat `positions` (indices into the
    /// `b·t` rows of `ids`): only the positions that carry loss reach the LM head.
    pub fn nll_sum(&self, ids: &Tensor, positions: &Tensor, targets: &Tensor) -> Result<Tensor> {
        let (b, t) = ids.dims2()?;
        let h = self.hidden(ids)?.reshape((b * t, self.config.hidden))?;
        let rows = h.index_select(positions, 0)?;
        let logp = log_softmax(&self.logits(&rows)?, D::Minus1)?;
        let picked = logp.gather(&targets.unsqueeze(1)?, 1)?;
        Ok(picked.sum_all()?.neg()?)
    }

    /// Every GGUF tensor with training applied (adapters merged), for export.
    pub fn export_tensors(&self) -> Result<HashMap<String, Tensor>> {
        let mut out = HashMap::new();
        out.insert("token_embd.weight".into(), self.embd.detach());
        out.insert("output_norm.weight".into(), self.norm.detach());
        if let Some(h) = &self.head {
            out.insert("output.weight".into(), h.detach());
        }
        for (l, layer) in self.layers.iter().enumerate() {
            let name = |p: &str| format!("blk.{l}.{p}.weight");
            out.insert(name("attn_norm"), layer.attn_norm.detach());
            out.insert(name("ffn_norm"), layer.ffn_norm.detach());
            for (p, lin) in [
                ("attn_q", &layer.q),
                ("attn_k", &layer.k),
                ("attn_v", &layer.v),
                ("attn_output", &layer.o),
                ("ffn_gate", &layer.gate),
                ("ffn_up", &layer.up),
                ("ffn_down", &layer.down),
            ] {
                out.insert(name(p), lin.merged()?);
            }
        }
        Ok(out)
    }

    /// Current values of the trainable variables (detached copies).
    pub fn snapshot(&self) -> Result<HashMap<String, Tensor>> {
        self.trainable
            .iter()
            .map(|(n, v)| Ok((n.clone(), v.as_tensor().copy()?)))
            .collect()
    }

    /// Sets the trainable variables from a [`Self::snapshot`] (or a checkpoint).
    pub fn restore(&self, values: &HashMap<String, Tensor>) -> Result<()> {
        for (n, v) in &self.trainable {
            let t = values
                .get(n)
                .with_context(|| format!("checkpoint has no tensor {n}"))?;
            v.set(&t.to_device(&self.device)?.to_dtype(DType::F32)?)
                .with_context(|| format!("restoring {n}"))?;
        }
        Ok(())
    }
}

/// Repeats each KV head `n` times so head `h` of Q reads KV head `h / n` (llama.cpp's GQA).
fn repeat_kv(x: Tensor, n: usize) -> Result<Tensor> {
    if n == 1 {
        return Ok(x);
    }
    let (b, kv, t, d) = x.dims4()?;
    Ok(x.unsqueeze(2)?
        .broadcast_as((b, kv, n, t, d))?
        .reshape((b, kv * n, t, d))?)
}
