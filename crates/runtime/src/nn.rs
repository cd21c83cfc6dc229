//! `wasi:nn@0.2.0-rc-2024-10-28` over kefu's engine, with streaming and cancellation.
//!
//! wasmtime-wasi-nn's backends are synchronous and cannot stream, so the bindings are generated
//! here from the same WIT with async imports, and `compute` awaits the engine directly.
//!
//! The mapping (the contract with the gateway component):
//! - `load-by-name(name)`: a registered model the component is granted (`ai_models`);
//!   `default` names the application's default model. Unknown: `not-found`; not granted:
//!   `security`. `load` (model bytes from the guest) is `unsupported-operation`.
//! - `graph.init-execution-context()`: one context is one generation.
//! - The first `compute` takes `("prompt", u8 UTF-8)` and optionally `("options", u8 JSON
//!   SamplingOptions)`, submits the generation and returns the first chunk as `("text", u8)`.
//!   Each further `compute([])` returns the next chunk; text already waiting is coalesced into
//!   one chunk. The end is `("done", u8 JSON)` with `finish_reason`, `prompt_tokens`,
//!   `completion_tokens`, `cached_prompt_tokens` and `time_to_first_token`, possibly after a
//!   last `text` in the same output list.
//! - Dropping the context (or the whole request) drops the engine's `Generation`, which
//!   cancels the sequence.
//! - Errors: `Overloaded` → `timeout`; `PromptTooLong` → `too-large`; bad options, empty
//!   prompt, invalid UTF-8 or JSON → `invalid-argument`; `Stopped`/`Decode` → `runtime-error`.
//!   The error resource's `data()` is a message for humans.

use anyhow::Result;
use futures::FutureExt;
use kefu_engine::{
    EngineError, EngineHandle, Event, GenerateRequest, Generation, SamplingOptions, Usage,
};
use wasmtime::component::{HasSelf, Linker, Resource};

use crate::models::ModelDenied;
use crate::state::GuestState;

mod bindings {
    wasmtime::component::bindgen!({
        path: "../../wit/deps/wasi-nn",
        world: "wasi:nn/ml",
        imports: {
            "wasi:nn/inference.[method]graph-execution-context.compute": async | trappable,
            default: trappable,
        },
        with: {
            "wasi:nn/graph.graph": super::Graph,
            "wasi:nn/tensor.tensor": super::Tensor,
            "wasi:nn/inference.graph-execution-context": super::ExecutionContext,
            "wasi:nn/errors.error": super::NnError,
        },
        anyhow: true,
    });
}

use bindings::wasi::nn::errors::ErrorCode;
use bindings::wasi::nn::graph::{ExecutionTarget, GraphBuilder, GraphEncoding};
use bindings::wasi::nn::inference::NamedTensor;
use bindings::wasi::nn::tensor::{TensorData, TensorDimensions, TensorType};
use bindings::wasi::nn::{errors, graph, inference, tensor};

/// Adds the wasi-nn interfaces to `linker`.
pub(crate) fn add_to_linker(linker: &mut Linker<GuestState>) -> Result<()> {
    graph::add_to_linker::<_, HasSelf<GuestState>>(linker, |s| s)?;
    tensor::add_to_linker::<_, HasSelf<GuestState>>(linker, |s| s)?;
    inference::add_to_linker::<_, HasSelf<GuestState>>(linker, |s| s)?;
    errors::add_to_linker::<_, HasSelf<GuestState>>(linker, |s| s)?;
    Ok(())
}

/// A model the guest loaded.
pub struct Graph {
    name: String,
    engine: EngineHandle,
}

/// A tensor: only U8 tensors carry meaning here (UTF-8 text or JSON).
pub struct Tensor {
    dimensions: TensorDimensions,
    ty: TensorType,
    data: TensorData,
}

impl Tensor {
    fn bytes(data: impl Into<Vec<u8>>) -> Tensor {
        let data = data.into();
        Tensor {
            dimensions: vec![data.len() as u32],
            ty: TensorType::U8,
            data,
        }
    }
}

/// One generation.
pub struct ExecutionContext {
    model: String,
    engine: EngineHandle,
    state: Stream,
    /// Set when the generation ends, until the metrics have seen it.
    finished_usage: Option<Usage>,
}

enum Stream {
    NotStarted,
    Running(Generation),
    /// The engine reported an error after text that was already handed out; the next
    /// `compute` reports it.
    Failed(NnError),
    Finished,
}

/// The `error` resource.
#[derive(Debug, Clone)]
pub struct NnError {
    code: ErrorCode,
    message: String,
}

impl NnError {
    fn new(code: ErrorCode, message: impl Into<String>) -> NnError {
        NnError {
            code,
            message: message.into(),
        }
    }

    fn invalid(message: impl Into<String>) -> NnError {
        NnError::new(ErrorCode::InvalidArgument, message)
    }
}

/// The wasi-nn error code for an engine error.
pub(crate) fn error_code(e: &EngineError) -> ErrorCode {
    match e {
        EngineError::Overloaded { .. } => ErrorCode::Timeout,
        EngineError::PromptTooLong { .. } => ErrorCode::TooLarge,
        EngineError::EmptyPrompt | EngineError::InvalidOptions(_) => ErrorCode::InvalidArgument,
        EngineError::Stopped | EngineError::Decode(_) => ErrorCode::RuntimeError,
    }
}

impl From<EngineError> for NnError {
    fn from(e: EngineError) -> NnError {
        NnError::new(error_code(&e), e.to_string())
    }
}

impl From<ModelDenied> for NnError {
    fn from(e: ModelDenied) -> NnError {
        let code = match e {
            ModelDenied::NotFound(_) => ErrorCode::NotFound,
            ModelDenied::NotGranted(_) => ErrorCode::Security,
        };
        NnError::new(code, e.to_string())
    }
}

impl GuestState {
    fn nn_fail<T>(&mut self, error: NnError) -> Result<Result<T, Resource<NnError>>> {
        tracing::debug!(component = %self.config.id, code = ?error.code, message = %error.message, "wasi-nn error");
        Ok(Err(self.table.push(error)?))
    }
}

impl graph::Host for GuestState {
    fn load(
        &mut self,
        _builder: Vec<GraphBuilder>,
        _encoding: GraphEncoding,
        _target: ExecutionTarget,
    ) -> Result<Result<Resource<Graph>, Resource<NnError>>> {
        self.nn_fail(NnError::new(
            ErrorCode::UnsupportedOperation,
            "models come from the host: use load-by-name with a model granted in ai_models",
        ))
    }

    fn load_by_name(&mut self, name: String) -> Result<Result<Resource<Graph>, Resource<NnError>>> {
        match self.config.models.resolve(&name) {
            Ok((name, engine)) => Ok(Ok(self.table.push(Graph { name, engine })?)),
            Err(denied) => self.nn_fail(denied.into()),
        }
    }
}

impl graph::HostGraph for GuestState {
    fn init_execution_context(
        &mut self,
        graph: Resource<Graph>,
    ) -> Result<Result<Resource<ExecutionContext>, Resource<NnError>>> {
        let graph = self.table.get(&graph)?;
        let context = ExecutionContext {
            model: graph.name.clone(),
            engine: graph.engine.clone(),
            state: Stream::NotStarted,
            finished_usage: None,
        };
        Ok(Ok(self.table.push(context)?))
    }

    fn drop(&mut self, graph: Resource<Graph>) -> Result<()> {
        self.table.delete(graph)?;
        Ok(())
    }
}

impl inference::Host for GuestState {}

impl inference::HostGraphExecutionContext for GuestState {
    async fn compute(
        &mut self,
        context: Resource<ExecutionContext>,
        inputs: Vec<NamedTensor>,
    ) -> Result<Result<Vec<NamedTensor>, Resource<NnError>>> {
        let mut named = Vec::with_capacity(inputs.len());
        for (name, tensor) in inputs {
            named.push((name, self.table.delete(tensor)?));
        }
        let component = self.config.id.clone();
        let context = self.table.get_mut(&context)?;
        let outcome = compute(context, named, &component).await;
        if let Some(usage) = context.finished_usage.take() {
            let model = context.model.clone();
            self.generation_done(&model, &usage);
        }
        match outcome {
            Ok(outputs) => {
                let mut list = Vec::with_capacity(outputs.len());
                for (name, tensor) in outputs {
                    list.push((name, self.table.push(tensor)?));
                }
                Ok(Ok(list))
            }
            Err(e) => self.nn_fail(e),
        }
    }

    fn drop(&mut self, context: Resource<ExecutionContext>) -> Result<()> {
        // Dropping the `Generation` inside cancels the sequence in the engine.
        self.table.delete(context)?;
        Ok(())
    }
}

/// One `compute` call: start the generation or continue it.
async fn compute(
    context: &mut ExecutionContext,
    inputs: Vec<(String, Tensor)>,
    component: &str,
) -> Result<Vec<(String, Tensor)>, NnError> {
    match std::mem::replace(&mut context.state, Stream::Finished) {
        Stream::NotStarted => {
            let request = parse_inputs(inputs)?;
            tracing::debug!(
                component,
                model = %context.model,
                prompt_bytes = request.prompt.len(),
                "starting a generation"
            );
            let generation = context.engine.submit(request)?;
            context.state = Stream::Running(generation);
        }
        Stream::Running(generation) => {
            if !inputs.is_empty() {
                context.state = Stream::Running(generation);
                return Err(NnError::invalid(
                    "the generation has started: call compute with no inputs for the next chunk",
                ));
            }
            context.state = Stream::Running(generation);
        }
        Stream::Failed(e) => return Err(e),
        Stream::Finished => {
            return Err(NnError::invalid(
                "the generation is over: start another with a new execution context",
            ));
        }
    }
    next_chunk(context).await
}

/// Reads the prompt and options of a first `compute`.
fn parse_inputs(inputs: Vec<(String, Tensor)>) -> Result<GenerateRequest, NnError> {
    let mut prompt = None;
    let mut options = SamplingOptions::default();
    for (name, tensor) in inputs {
        if tensor.ty != TensorType::U8 {
            return Err(NnError::invalid(format!(
                "input `{name}` must be a u8 tensor, got {:?}",
                tensor.ty
            )));
        }
        match name.as_str() {
            "prompt" => {
                let text = String::from_utf8(tensor.data)
                    .map_err(|e| NnError::invalid(format!("prompt is not valid UTF-8: {e}")))?;
                prompt = Some(text);
            }
            "options" => {
                options = serde_json::from_slice(&tensor.data)
                    .map_err(|e| NnError::invalid(format!("options: {e}")))?;
            }
            other => {
                return Err(NnError::invalid(format!(
                    "unknown input `{other}`: expected `prompt` and optionally `options`"
                )));
            }
        }
    }
    let prompt = prompt.ok_or_else(|| NnError::invalid("missing input `prompt`"))?;
    Ok(GenerateRequest { prompt, options })
}

/// Waits for the next event, then takes every event already queued behind it, so a slow
/// reader gets fewer, larger chunks instead of falling behind.
async fn next_chunk(context: &mut ExecutionContext) -> Result<Vec<(String, Tensor)>, NnError> {
    let Stream::Running(generation) = &mut context.state else {
        unreachable!("next_chunk is only called on a running generation");
    };
    let mut text = String::new();
    let mut event = generation.next().await;
    loop {
        match event {
            Some(Event::Text(piece)) => {
                text.push_str(&piece);
                match generation.next().now_or_never() {
                    Some(next) => event = next,
                    None => {
                        return Ok(vec![("text".into(), Tensor::bytes(text))]);
                    }
                }
            }
            Some(Event::Done {
                finish_reason,
                usage,
            }) => {
                context.state = Stream::Finished;
                context.finished_usage = Some(usage.clone());
                let done = serde_json::json!({
                    "finish_reason": finish_reason.as_str(),
                    "prompt_tokens": usage.prompt_tokens,
                    "completion_tokens": usage.completion_tokens,
                    "cached_prompt_tokens": usage.cached_prompt_tokens,
                    "time_to_first_token": usage.time_to_first_token,
                });
                let mut outputs = Vec::with_capacity(2);
                if !text.is_empty() {
                    outputs.push(("text".into(), Tensor::bytes(text)));
                }
                outputs.push(("done".into(), Tensor::bytes(done.to_string())));
                return Ok(outputs);
            }
            Some(Event::Error(e)) => {
                let error = NnError::from(e);
                if text.is_empty() {
                    context.state = Stream::Finished;
                    return Err(error);
                }
                context.state = Stream::Failed(error);
                return Ok(vec![("text".into(), Tensor::bytes(text))]);
            }
            None => {
                let error = NnError::new(
                    ErrorCode::RuntimeError,
                    "the engine ended the generation without a result",
                );
                if text.is_empty() {
                    context.state = Stream::Finished;
                    return Err(error);
                }
                context.state = Stream::Failed(error);
                return Ok(vec![("text".into(), Tensor::bytes(text))]);
            }
        }
    }
}

impl tensor::Host for GuestState {}

impl tensor::HostTensor for GuestState {
    fn new(
        &mut self,
        dimensions: TensorDimensions,
        ty: TensorType,
        data: TensorData,
    ) -> Result<Resource<Tensor>> {
        Ok(self.table.push(Tensor {
            dimensions,
            ty,
            data,
        })?)
    }

    fn dimensions(&mut self, tensor: Resource<Tensor>) -> Result<TensorDimensions> {
        Ok(self.table.get(&tensor)?.dimensions.clone())
    }

    fn ty(&mut self, tensor: Resource<Tensor>) -> Result<TensorType> {
        Ok(self.table.get(&tensor)?.ty)
    }

    fn data(&mut self, tensor: Resource<Tensor>) -> Result<TensorData> {
        Ok(self.table.get(&tensor)?.data.clone())
    }

    fn drop(&mut self, tensor: Resource<Tensor>) -> Result<()> {
        self.table.delete(tensor)?;
        Ok(())
    }
}

impl errors::Host for GuestState {}

impl errors::HostError for GuestState {
    fn code(&mut self, error: Resource<NnError>) -> Result<ErrorCode> {
        Ok(self.table.get(&error)?.code)
    }

    fn data(&mut self, error: Resource<NnError>) -> Result<String> {
        Ok(self.table.get(&error)?.message.clone())
    }

    fn drop(&mut self, error: Resource<NnError>) -> Result<()> {
        self.table.delete(error)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tensor(text: &str) -> Tensor {
        Tensor::bytes(text.as_bytes().to_vec())
    }

    #[test]
    fn parses_prompt_and_options() {
        let r = parse_inputs(vec![
            ("prompt".into(), tensor("hi")),
            (
                "options".into(),
                tensor(r#"{"max_tokens": 7, "stop": ["\n"]}"#),
            ),
        ])
        .unwrap();
        assert_eq!(r.prompt, "hi");
        assert_eq!(r.options.max_tokens, 7);
        assert_eq!(r.options.stop, ["\n"]);
    }

    #[test]
    fn bad_inputs_are_invalid_arguments() {
        let cases = vec![
            vec![],
            vec![("prompt".into(), Tensor::bytes(vec![0xff, 0xfe]))],
            vec![
                ("prompt".into(), tensor("x")),
                ("options".into(), tensor("{not json")),
            ],
            vec![
                ("prompt".into(), tensor("x")),
                ("options".into(), tensor(r#"{"max_tokenz": 3}"#)),
            ],
            vec![("text".into(), tensor("x"))],
            vec![(
                "prompt".into(),
                Tensor {
                    dimensions: vec![1],
                    ty: TensorType::Fp32,
                    data: vec![0; 4],
                },
            )],
        ];
        for inputs in cases {
            let e = parse_inputs(inputs).unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidArgument, "{}", e.message);
        }
    }

    #[test]
    fn engine_errors_map_to_the_gateway_contract() {
        let cases = [
            (EngineError::Overloaded { capacity: 1 }, ErrorCode::Timeout),
            (
                EngineError::PromptTooLong {
                    prompt_tokens: 10,
                    max_tokens: 10,
                    context: 16,
                },
                ErrorCode::TooLarge,
            ),
            (EngineError::EmptyPrompt, ErrorCode::InvalidArgument),
            (
                EngineError::InvalidOptions("x".into()),
                ErrorCode::InvalidArgument,
            ),
            (EngineError::Stopped, ErrorCode::RuntimeError),
            (EngineError::Decode("x".into()), ErrorCode::RuntimeError),
        ];
        for (e, code) in cases {
            assert_eq!(error_code(&e), code, "{e}");
        }
        assert_eq!(
            NnError::from(ModelDenied::NotFound("x".into())).code,
            ErrorCode::NotFound
        );
        assert_eq!(
            NnError::from(ModelDenied::NotGranted("x".into())).code,
            ErrorCode::Security
        );
    }
}
