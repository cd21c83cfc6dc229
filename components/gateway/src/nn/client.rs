//! The calls into the host's `wasi:nn`: one [`Generation`] per chat completion.
//!
//! Owns the graph and its execution context; dropping a [`Generation`] drops the context
//! first, which cancels the generation on the host and frees its KV slot.

use super::{INPUT_OPTIONS, INPUT_PROMPT, NnError, NnErrorCode, Options, Step, Utf8Buffer};

mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "kefu:gateway/gateway",
        generate_all,
    });
}

use bindings::wasi::nn::errors::{Error, ErrorCode};
use bindings::wasi::nn::graph::{Graph, load_by_name};
use bindings::wasi::nn::inference::GraphExecutionContext;
use bindings::wasi::nn::tensor::{Tensor, TensorType};

impl From<Error> for NnError {
    fn from(error: Error) -> Self {
        let code = match error.code() {
            ErrorCode::InvalidArgument => NnErrorCode::InvalidArgument,
            ErrorCode::InvalidEncoding => NnErrorCode::InvalidEncoding,
            ErrorCode::Timeout => NnErrorCode::Timeout,
            ErrorCode::RuntimeError => NnErrorCode::RuntimeError,
            ErrorCode::UnsupportedOperation => NnErrorCode::UnsupportedOperation,
            ErrorCode::TooLarge => NnErrorCode::TooLarge,
            ErrorCode::NotFound => NnErrorCode::NotFound,
            ErrorCode::Security => NnErrorCode::Security,
            ErrorCode::Unknown => NnErrorCode::Unknown,
        };
        NnError {
            code,
            data: error.data(),
        }
    }
}

/// A u8 tensor of shape `[len]`.
fn bytes_tensor(data: &[u8]) -> Result<Tensor, NnError> {
    let len = u32::try_from(data.len())
        .map_err(|_| NnError::protocol(format!("tensor of {} bytes is too large", data.len())))?;
    Ok(Tensor::new(&[len], TensorType::U8, data))
}

/// Loads `model` by name: checks that the host knows it and granted it to this component.
pub fn load(model: &str) -> Result<Graph, NnError> {
    Ok(load_by_name(model)?)
}

/// One running generation.
pub struct Generation {
    // Declared before `_graph`: fields drop in order, so the context goes first.
    ctx: GraphExecutionContext,
    _graph: Graph,
    utf8: Utf8Buffer,
    done: bool,
}

impl Generation {
    /// Starts generating from `prompt` on `model` and returns the first step.
    pub fn start(model: &str, prompt: &str, options: &Options) -> Result<(Self, Step), NnError> {
        let graph = load(model)?;
        let ctx = graph.init_execution_context()?;
        let inputs = vec![
            (INPUT_PROMPT.to_owned(), bytes_tensor(prompt.as_bytes())?),
            (INPUT_OPTIONS.to_owned(), bytes_tensor(&options.to_json())?),
        ];
        let mut generation = Self {
            ctx,
            _graph: graph,
            utf8: Utf8Buffer::default(),
            done: false,
        };
        let step = generation.compute(inputs)?;
        Ok((generation, step))
    }

    /// The next step; an error once the generation has ended.
    pub fn next_step(&mut self) -> Result<Step, NnError> {
        if self.done {
            return Err(NnError::protocol("next step requested after `done`"));
        }
        self.compute(Vec::new())
    }

    fn compute(&mut self, inputs: Vec<(String, Tensor)>) -> Result<Step, NnError> {
        let outputs = self.ctx.compute(inputs)?;
        let step = super::decode_step(
            outputs
                .into_iter()
                .map(|(name, tensor)| (name, tensor.data())),
            &mut self.utf8,
        )?;
        self.done = step.done.is_some();
        Ok(step)
    }
}
