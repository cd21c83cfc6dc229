//! Facts from a GGUF file's header (no weights are read): its declared file type and whether
//! any tensor is already quantized. Uses ggml's own GGUF reader from llama-cpp-sys-2.

use std::collections::BTreeMap;
use std::ffi::{CStr, CString};
use std::path::Path;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

/// What a GGUF file holds, by tensor type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GgufInfo {
    /// `general.file_type` as llama.cpp names it ("Q4_1", "F16", "Q4_K - Medium"), when present.
    pub file_type: Option<String>,
    /// Number of tensors.
    pub tensors: usize,
    /// Tensors per ggml type name ("q4_1", "f32", ...).
    pub tensor_types: BTreeMap<String, usize>,
    /// Whether any tensor has a quantized (block) type.
    pub quantized: bool,
}

impl GgufInfo {
    /// A short label: the declared file type, or the most common tensor type.
    pub fn label(&self) -> String {
        if let Some(t) = &self.file_type {
            return t.clone();
        }
        self.tensor_types
            .iter()
            .max_by_key(|(_, n)| **n)
            .map(|(t, _)| t.to_uppercase())
            .unwrap_or_else(|| "unknown".into())
    }
}

/// Reads the header of the GGUF file at `path`.
pub fn inspect(path: &Path) -> Result<GgufInfo> {
    let c_path = CString::new(path.as_os_str().as_encoded_bytes())
        .with_context(|| format!("path {} contains a NUL byte", path.display()))?;
    let params = llama_cpp_sys_2::gguf_init_params {
        no_alloc: true,
        ctx: std::ptr::null_mut(),
    };
    // SAFETY: a valid C string and params without a ggml context to fill; the returned
    // context is freed below on every path.
    let ctx = unsafe { llama_cpp_sys_2::gguf_init_from_file(c_path.as_ptr(), params) };
    if ctx.is_null() {
        bail!("{} is not a readable GGUF file", path.display());
    }
    let info = unsafe { read(ctx) };
    unsafe { llama_cpp_sys_2::gguf_free(ctx) };
    Ok(info)
}

/// # Safety
/// `ctx` must be a live GGUF context.
unsafe fn read(ctx: *mut llama_cpp_sys_2::gguf_context) -> GgufInfo {
    let key = c"general.file_type";
    let file_type = unsafe {
        let id = llama_cpp_sys_2::gguf_find_key(ctx, key.as_ptr());
        (id >= 0).then(|| {
            let ftype = llama_cpp_sys_2::gguf_get_val_u32(ctx, id);
            c_str(llama_cpp_sys_2::llama_ftype_name(ftype))
        })
    };
    let n = unsafe { llama_cpp_sys_2::gguf_get_n_tensors(ctx) }.max(0);
    let mut tensor_types = BTreeMap::new();
    let mut quantized = false;
    for i in 0..n {
        let ty = unsafe { llama_cpp_sys_2::gguf_get_tensor_type(ctx, i) };
        quantized |= unsafe { llama_cpp_sys_2::ggml_is_quantized(ty) };
        let name = c_str(unsafe { llama_cpp_sys_2::ggml_type_name(ty) });
        *tensor_types.entry(name).or_insert(0) += 1;
    }
    GgufInfo {
        file_type,
        tensors: n as usize,
        tensor_types,
        quantized,
    }
}

fn c_str(p: *const std::os::raw::c_char) -> String {
    if p.is_null() {
        return "unknown".into();
    }
    // SAFETY: llama.cpp returns static NUL-terminated names.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}
