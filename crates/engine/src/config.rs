//! Engine settings.

use std::path::PathBuf;

/// How the engine loads its model and shapes its batches.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// The GGUF file.
    pub model_path: PathBuf,
    /// Sequences decoded together (llama.cpp `n_seq_max` less the prefix-cache sequences).
    pub parallel: u32,
    /// Token budget of one sequence: prompt plus generated tokens.
    pub ctx_per_seq: u32,
    /// Most tokens fed to one `decode` call; long prompts are prefilled in chunks of this size
    /// while other sequences keep decoding.
    pub batch_size: u32,
    /// CPU threads for llama.cpp (generation and prompt processing).
    pub threads: i32,
    /// Requests that may wait for a free sequence before `submit` answers `Overloaded`.
    pub queue_capacity: usize,
    /// Prompts kept in KV after their sequence ends, so later requests with the same prefix
    /// (a shared system prompt) copy it instead of prefilling it again. 0 disables the cache;
    /// sharing between live sequences still happens.
    pub prefix_cache_slots: u32,
    /// Shortest shared prefix worth copying.
    pub min_shared_prefix: u32,
}

impl EngineConfig {
    pub fn new(model_path: impl Into<PathBuf>) -> Self {
        Self {
            model_path: model_path.into(),
            parallel: 8,
            ctx_per_seq: 2048,
            batch_size: 512,
            threads: default_threads(),
            queue_capacity: 64,
            prefix_cache_slots: 2,
            min_shared_prefix: 16,
        }
    }
}

/// All available cores. Measured on a 2-core machine under HTTP load (see README "Serve"):
/// leaving a core for the HTTP side did not pay, because llama.cpp's compute dominates.
/// `OMP_WAIT_POLICY=PASSIVE` (set by the binary unless the user chose) keeps idle OpenMP threads
/// from spinning when another process shares the cores.
pub fn default_threads() -> i32 {
    std::thread::available_parallelism().map_or(1, |n| n.get() as i32)
}
