//! `kefu models quantize` against the real default model (Q4_1) and real llama.cpp: every
//! target type loads and generates, and the guard rails hold.

use kefu_engine::{Engine, EngineConfig, Event, GenerateRequest, SamplingOptions};
use kefu_eval::gguf::inspect;
use kefu_eval::quantize::quantize;
use kefu_eval::{QuantType, QuantizeArgs};

/// Loads `path` in the engine and generates a few greedy tokens.
fn generates(path: &std::path::Path) -> String {
    let mut config = EngineConfig::new(path);
    config.parallel = 1;
    config.ctx_per_seq = 256;
    config.threads = 2;
    let engine = Engine::start(config).expect("the quantized model loads");
    let handle = engine.handle();
    let prompt =
        "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n";
    let mut generation = handle
        .submit(GenerateRequest {
            prompt: prompt.into(),
            options: SamplingOptions {
                max_tokens: 8,
                ..SamplingOptions::default()
            },
        })
        .unwrap();
    let mut text = String::new();
    while let Some(event) = generation.blocking_next() {
        match event {
            Event::Text(t) => text.push_str(&t),
            Event::Done { usage, .. } => {
                assert!(usage.completion_tokens >= 1);
                break;
            }
            Event::Error(e) => panic!("{e}"),
        }
    }
    text
}

#[test]
fn every_type_round_trips_loads_and_generates() {
    let input = kefu_testkit::default_model();
    let dir = tempfile::tempdir().unwrap();
    let input_bytes = std::fs::metadata(&input).unwrap().len();
    for to in QuantType::ALL {
        let out = dir.path().join(format!("model.{}.gguf", to.as_str()));
        let mut args = QuantizeArgs::new(&input, to, &out);
        args.allow_requantize = true;
        args.threads = Some(2);
        let outcome = quantize(&args).unwrap_or_else(|e| panic!("{to:?}: {e:#}"));
        assert!(outcome.requantized, "the input is Q4_1");
        assert_eq!(outcome.output_bytes, std::fs::metadata(&out).unwrap().len());
        assert!(
            !dir.path()
                .join(format!("model.{}.gguf.partial", to.as_str()))
                .exists()
        );
        let info = inspect(&out).unwrap();
        let expected = match to {
            QuantType::F16 => "F16",
            QuantType::Q8_0 => "Q8_0",
            QuantType::Q4KM => "Q4_K - Medium",
            QuantType::Q4_0 => "Q4_0",
            QuantType::Q5KM => "Q5_K - Medium",
        };
        assert_eq!(info.file_type.as_deref(), Some(expected), "{info:?}");
        match to {
            QuantType::F16 => assert!(outcome.output_bytes > 2 * input_bytes),
            QuantType::Q8_0 => assert!(outcome.output_bytes > input_bytes),
            _ => {}
        }
        let text = generates(&out);
        assert!(!text.trim().is_empty(), "{to:?} generated nothing");
        println!("{}: {} | {text:?}", to.as_str(), outcome.summary());
    }
}

#[test]
fn refuses_to_overwrite_the_input_or_silently_requantize() {
    let input = kefu_testkit::default_model();
    let before = std::fs::metadata(&input).unwrap().len();

    let mut same = QuantizeArgs::new(&input, QuantType::Q8_0, &input);
    same.allow_requantize = true;
    same.force = true;
    let err = quantize(&same).unwrap_err().to_string();
    assert!(err.contains("is the input file"), "{err}");
    assert_eq!(std::fs::metadata(&input).unwrap().len(), before);

    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("q8.gguf");
    let err = format!(
        "{:#}",
        quantize(&QuantizeArgs::new(&input, QuantType::Q8_0, &out)).unwrap_err()
    );
    assert!(err.contains("already quantized (Q4_1)"), "{err}");
    assert!(err.contains("--allow-requantize"), "{err}");
    assert!(!out.exists());

    std::fs::write(&out, b"keep me").unwrap();
    let mut args = QuantizeArgs::new(&input, QuantType::Q8_0, &out);
    args.allow_requantize = true;
    let err = quantize(&args).unwrap_err().to_string();
    assert!(err.contains("--force"), "{err}");
    assert_eq!(std::fs::read(&out).unwrap(), b"keep me");

    let err = format!(
        "{:#}",
        quantize(&QuantizeArgs::new(
            dir.path().join("missing.gguf"),
            QuantType::F16,
            dir.path().join("x.gguf")
        ))
        .unwrap_err()
    );
    assert!(err.contains("no model file"), "{err}");
}
