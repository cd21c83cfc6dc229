//! kefu's inference engine.
//!
//! One thread owns the llama.cpp model context and runs a continuous-batching loop: every step
//! decodes all live sequences in one `llama_decode` call, new requests join between steps,
//! finished or cancelled ones leave at once and free their KV cells. Callers talk to it through
//! an [`EngineHandle`] (cheap to clone, usable from any thread or async task) and read each
//! generation as a stream of [`Event`]s from a [`Generation`].
//!
//! Not here: HTTP, WebAssembly, prompt policy. The engine takes an already templated prompt.

mod config;
mod error;
mod handle;
mod prefix;
mod request;
mod scheduler;
mod sequence;
mod stats;
mod text;
mod tokenizer;

pub use config::EngineConfig;
pub use error::EngineError;
pub use handle::{Engine, EngineHandle, Generation, ModelInfo};
pub use request::{Event, FinishReason, GenerateRequest, SamplingOptions, Usage};
pub use stats::StatsSnapshot;
pub use tokenizer::{ChatMessage, Tokenizer};

/// llama.cpp's backend may be initialised once per process; every engine and tokenizer shares
/// it, and so must other llama.cpp users in the process (evaluation, quantization). Logs are
/// silenced unless `KEFU_LLAMA_LOG` is set.
pub fn backend() -> &'static llama_cpp_2::llama_backend::LlamaBackend {
    use std::sync::OnceLock;
    static BACKEND: OnceLock<llama_cpp_2::llama_backend::LlamaBackend> = OnceLock::new();
    BACKEND.get_or_init(|| {
        let mut backend =
            llama_cpp_2::llama_backend::LlamaBackend::init().expect("llama.cpp backend init");
        if std::env::var_os("KEFU_LLAMA_LOG").is_none() {
            backend.void_logs();
        }
        backend
    })
}
