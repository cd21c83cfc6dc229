//! Access to llama.cpp's process-wide backend.
//!
//! `kefu-engine` initialises the backend once per process (and silences llama.cpp's logs unless
//! `KEFU_LLAMA_LOG` is set). llama-cpp-2 asks for a `&LlamaBackend` only as proof that this
//! happened, and refuses a second `init`. So this crate makes the engine initialise it (loading
//! a vocabulary does) and then holds a proof value that is never dropped: dropping a
//! `LlamaBackend` would free the backend under the engine's feet.

use std::path::Path;
use std::sync::OnceLock;

use anyhow::Result;
use llama_cpp_2::llama_backend::LlamaBackend;

/// The backend, initialised through `kefu-engine`. `model` is any GGUF file; loading its
/// vocabulary is what triggers the engine's initialisation.
pub(crate) fn backend(model: &Path) -> Result<&'static LlamaBackend> {
    static PROOF: OnceLock<LlamaBackend> = OnceLock::new();
    if let Some(proof) = PROOF.get() {
        return Ok(proof);
    }
    kefu_engine::Tokenizer::load(model)?;
    // The engine's backend is initialised now; the value below only stands for that fact and
    // lives in a static, so its `Drop` (which would free the backend) never runs.
    Ok(PROOF.get_or_init(|| LlamaBackend {}))
}
