//! GGUF in and out: reads a LLaMA-architecture GGUF (any quantization) into f32 tensors plus
//! its hyperparameters, and writes trained tensors back as F32, F16 or Q8_0 with every piece of
//! the original metadata (tokenizer, merges, chat template, hyperparameters) kept.
//!
//! Owns the architecture check: anything but a plain LLaMA layout (the tensors
//! [`expected_tensor_names`] lists, nothing more) is refused before training starts.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use candle_core::quantized::gguf_file::{Content, Value};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};

/// LLaMA hyperparameters read from `llama.*` metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct LlamaConfig {
    pub n_layer: usize,
    pub hidden: usize,
    pub ffn: usize,
    pub n_head: usize,
    pub n_kv_head: usize,
    pub head_dim: usize,
    pub vocab: usize,
    pub rms_eps: f64,
    pub rope_base: f64,
    pub n_ctx_train: usize,
    /// The LM head is `token_embd.weight` (no `output.weight` tensor).
    pub tied_embeddings: bool,
}

/// A loaded base model: metadata, tensors dequantized to f32 (GGUF `(out, in)` layout), and
/// where it came from.
pub struct GgufModel {
    pub path: PathBuf,
    pub config: LlamaConfig,
    pub metadata: HashMap<String, Value>,
    /// Tensor names in file order (kept on export).
    pub tensor_order: Vec<String>,
    pub tensors: HashMap<String, Tensor>,
}

/// Layer tensor suffixes of the LLaMA layout, as llama.cpp names them.
pub const LAYER_TENSORS: [&str; 9] = [
    "attn_norm",
    "attn_q",
    "attn_k",
    "attn_v",
    "attn_output",
    "ffn_norm",
    "ffn_gate",
    "ffn_up",
    "ffn_down",
];

/// Every tensor a supported model has (`output.weight` only without tied embeddings).
pub fn expected_tensor_names(n_layer: usize, tied: bool) -> Vec<String> {
    let mut names = vec!["token_embd.weight".to_string(), "output_norm.weight".into()];
    if !tied {
        names.push("output.weight".into());
    }
    for l in 0..n_layer {
        for t in LAYER_TENSORS {
            names.push(format!("blk.{l}.{t}.weight"));
        }
    }
    names
}

fn meta_u(md: &HashMap<String, Value>, key: &str) -> Result<usize> {
    let v = md
        .get(key)
        .with_context(|| format!("the model has no `{key}` metadata"))?;
    Ok(match v {
        Value::U8(x) => *x as usize,
        Value::U16(x) => *x as usize,
        Value::U32(x) => *x as usize,
        Value::U64(x) => *x as usize,
        Value::I32(x) if *x >= 0 => *x as usize,
        Value::I64(x) if *x >= 0 => *x as usize,
        other => bail!("`{key}` is not an unsigned integer: {other:?}"),
    })
}

fn meta_f(md: &HashMap<String, Value>, key: &str) -> Option<f64> {
    match md.get(key)? {
        Value::F32(x) => Some(*x as f64),
        Value::F64(x) => Some(*x),
        _ => None,
    }
}

/// The model's `general.architecture`.
pub fn architecture(md: &HashMap<String, Value>) -> Option<String> {
    md.get("general.architecture")
        .and_then(|v| v.to_string().ok())
        .cloned()
}

impl GgufModel {
    /// Reads and dequantizes `path`; refuses other architectures and unexpected tensors.
    pub fn load(path: &Path, device: &Device) -> Result<Self> {
        let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        let mut reader = BufReader::new(file);
        let content = Content::read(&mut reader)
            .with_context(|| format!("{} is not a readable GGUF file", path.display()))?;
        let md = &content.metadata;
        match architecture(md).as_deref() {
            Some("llama") => {}
            Some(other) => bail!(
                "{}: architecture `{other}` is not supported for training (supported: llama, \
                 e.g. SmolLM2, TinyLlama, Llama 2/3 without rope scaling)",
                path.display()
            ),
            None => bail!("{}: no general.architecture metadata", path.display()),
        }
        if let Some(Value::String(kind)) = md.get("llama.rope.scaling.type")
            && kind != "none"
        {
            bail!(
                "{}: rope scaling `{kind}` is not supported for training",
                path.display()
            );
        }
        let n_layer = meta_u(md, "llama.block_count")?;
        let hidden = meta_u(md, "llama.embedding_length")?;
        let n_head = meta_u(md, "llama.attention.head_count")?;
        let n_kv_head = meta_u(md, "llama.attention.head_count_kv").unwrap_or(n_head);
        let head_dim = hidden / n_head;
        if let Ok(rope_dims) = meta_u(md, "llama.rope.dimension_count")
            && rope_dims != head_dim
        {
            bail!("partial rotary embeddings ({rope_dims} of {head_dim} dims) are not supported");
        }
        let tied = !content.tensor_infos.contains_key("output.weight");
        let expected = expected_tensor_names(n_layer, tied);
        let unexpected: Vec<&String> = content
            .tensor_infos
            .keys()
            .filter(|k| !expected.contains(k))
            .collect();
        if !unexpected.is_empty() {
            bail!(
                "{}: tensors outside the supported LLaMA layout: {unexpected:?}",
                path.display()
            );
        }
        let missing: Vec<&String> = expected
            .iter()
            .filter(|k| !content.tensor_infos.contains_key(*k))
            .collect();
        if !missing.is_empty() {
            bail!("{}: missing tensors {missing:?}", path.display());
        }
        let embd = &content.tensor_infos["token_embd.weight"];
        let vocab = embd.shape.dims()[0];
        let ffn = meta_u(md, "llama.feed_forward_length")?;
        let config = LlamaConfig {
            n_layer,
            hidden,
            ffn,
            n_head,
            n_kv_head,
            head_dim,
            vocab,
            rms_eps: meta_f(md, "llama.attention.layer_norm_rms_epsilon").unwrap_or(1e-5),
            rope_base: meta_f(md, "llama.rope.freq_base").unwrap_or(10_000.0),
            n_ctx_train: meta_u(md, "llama.context_length").unwrap_or(2048),
            tied_embeddings: tied,
        };
        let mut order: Vec<(&String, u64)> = content
            .tensor_infos
            .iter()
            .map(|(k, v)| (k, v.offset))
            .collect();
        order.sort_by_key(|(_, off)| *off);
        let tensor_order: Vec<String> = order.into_iter().map(|(k, _)| k.clone()).collect();
        let mut tensors = HashMap::new();
        for name in &tensor_order {
            let q = content
                .tensor(&mut reader, name, &Device::Cpu)
                .with_context(|| format!("reading tensor {name}"))?;
            let t = q
                .dequantize(&Device::Cpu)
                .with_context(|| format!("dequantizing {name} ({:?})", q.dtype()))?
                .to_device(device)?;
            tensors.insert(name.clone(), t);
        }
        Ok(GgufModel {
            path: path.to_path_buf(),
            config,
            metadata: content.metadata,
            tensor_order,
            tensors,
        })
    }
}

/// Tensor encoding of an exported GGUF.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ExportType {
    F32,
    F16,
    #[value(name = "q8_0")]
    #[serde(rename = "q8_0")]
    Q8_0,
}

impl ExportType {
    /// llama.cpp's `general.file_type` (`LLAMA_FTYPE_*`).
    fn file_type(self) -> u32 {
        match self {
            ExportType::F32 => 0,
            ExportType::F16 => 1,
            ExportType::Q8_0 => 7,
        }
    }

    /// Encoding of one tensor: norms (1-D) stay F32 as llama.cpp expects; rows that do not
    /// fill whole Q8_0 blocks fall back to F16.
    fn dtype_for(self, t: &Tensor) -> GgmlDType {
        let dims = t.dims();
        if dims.len() < 2 || self == ExportType::F32 {
            return GgmlDType::F32;
        }
        match self {
            ExportType::Q8_0
                if dims[dims.len() - 1].is_multiple_of(GgmlDType::Q8_0.block_size()) =>
            {
                GgmlDType::Q8_0
            }
            _ => GgmlDType::F16,
        }
    }
}

/// Writes `tensors` (every name of `tensor_order`, f32) to `out` with `metadata`, updating
/// `general.file_type` and the alignment candle's writer uses. Written to a temporary file
/// first, so a failed export never leaves a truncated model behind.
pub fn export(
    out: &Path,
    metadata: &HashMap<String, Value>,
    tensor_order: &[String],
    tensors: &HashMap<String, Tensor>,
    export_type: ExportType,
) -> Result<()> {
    let mut md = metadata.clone();
    md.insert(
        "general.file_type".into(),
        Value::U32(export_type.file_type()),
    );
    // candle's writer aligns tensor data to 32 bytes.
    md.insert("general.alignment".into(), Value::U32(32));
    let mut keys: Vec<&String> = md.keys().collect();
    keys.sort();
    let md_list: Vec<(&str, &Value)> = keys.iter().map(|k| (k.as_str(), &md[*k])).collect();
    let mut q = Vec::with_capacity(tensor_order.len());
    for name in tensor_order {
        let t = tensors
            .get(name)
            .with_context(|| format!("export is missing tensor {name}"))?;
        let t = t.to_device(&Device::Cpu)?;
        let qt = QTensor::quantize(&t, export_type.dtype_for(&t))
            .with_context(|| format!("encoding {name}"))?;
        q.push((name.as_str(), qt));
    }
    let q_refs: Vec<(&str, &QTensor)> = q.iter().map(|(n, t)| (*n, t)).collect();
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let tmp = out.with_extension("gguf.partial");
    let write = || -> Result<()> {
        let mut w = BufWriter::new(File::create(&tmp)?);
        candle_core::quantized::gguf_file::write(&mut w, &md_list, &q_refs)?;
        use std::io::Write;
        w.flush()?;
        Ok(())
    };
    if let Err(e) = write() {
        let _ = std::fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("cannot write {}", out.display()));
    }
    std::fs::rename(&tmp, out).with_context(|| format!("cannot move {}", tmp.display()))?;
    Ok(())
}
