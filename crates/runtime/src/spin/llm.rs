//! `fermyon:spin/llm@2.0.0` over the engine: `infer` runs one whole generation and returns
//! its text (Spin's interface does not stream; wasi-nn does). Model names and grants work as
//! for wasi-nn. `generate-embeddings` is not supported.

use anyhow::Result;
use kefu_engine::{EngineError, Event, GenerateRequest, SamplingOptions};

use super::bindings::fermyon::spin::llm::{
    EmbeddingsResult, Error, Host, InferencingParams, InferencingResult, InferencingUsage,
};
use crate::state::GuestState;

/// Spin's defaults when a guest passes no parameters.
fn default_params() -> InferencingParams {
    InferencingParams {
        max_tokens: 100,
        repeat_penalty: 1.1,
        repeat_penalty_last_n_token_count: 64,
        temperature: 0.8,
        top_k: 40,
        top_p: 0.9,
    }
}

fn options(params: InferencingParams) -> SamplingOptions {
    SamplingOptions {
        max_tokens: params.max_tokens,
        temperature: params.temperature,
        top_p: params.top_p,
        top_k: i32::try_from(params.top_k).unwrap_or(i32::MAX),
        repeat_penalty: params.repeat_penalty,
        repeat_last_n: i32::try_from(params.repeat_penalty_last_n_token_count).unwrap_or(i32::MAX),
        ..SamplingOptions::default()
    }
}

fn llm_error(e: EngineError) -> Error {
    if e.is_client_error() {
        Error::InvalidInput(e.to_string())
    } else {
        Error::RuntimeError(e.to_string())
    }
}

impl Host for GuestState {
    async fn infer(
        &mut self,
        model: String,
        prompt: String,
        params: Option<InferencingParams>,
    ) -> Result<Result<InferencingResult, Error>> {
        let (name, engine) = match self.config.models.resolve(&model) {
            Ok(resolved) => resolved,
            Err(denied) => {
                tracing::debug!(component = %self.config.id, %denied, "llm infer refused");
                return Ok(Err(Error::ModelNotSupported));
            }
        };
        let request = GenerateRequest {
            prompt,
            options: options(params.unwrap_or_else(default_params)),
        };
        let mut generation = match engine.submit(request) {
            Ok(g) => g,
            Err(e) => return Ok(Err(llm_error(e))),
        };
        let mut text = String::new();
        loop {
            match generation.next().await {
                Some(Event::Text(piece)) => text.push_str(&piece),
                Some(Event::Done { usage, .. }) => {
                    self.generation_done(&name, &usage);
                    return Ok(Ok(InferencingResult {
                        text,
                        usage: InferencingUsage {
                            prompt_token_count: usage.prompt_tokens,
                            generated_token_count: usage.completion_tokens,
                        },
                    }));
                }
                Some(Event::Error(e)) => return Ok(Err(llm_error(e))),
                None => {
                    return Ok(Err(Error::RuntimeError(
                        "the engine ended the generation without a result".into(),
                    )));
                }
            }
        }
    }

    fn generate_embeddings(
        &mut self,
        _model: String,
        _text: Vec<String>,
    ) -> Result<Result<EmbeddingsResult, Error>> {
        Ok(Err(Error::RuntimeError(
            "embeddings are not supported by this host".into(),
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spin_params_become_sampling_options() {
        let o = options(default_params());
        assert_eq!(o.max_tokens, 100);
        assert_eq!(o.top_k, 40);
        assert_eq!(o.repeat_last_n, 64);
        assert!(o.validate().is_ok());
    }
}
