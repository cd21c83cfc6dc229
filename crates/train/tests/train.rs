//! Training on the real default model: gradients reach every trainable tensor, the loss counts
//! answer tokens only, LoRA merging is exact, a tiny run lowers the loss and exports a GGUF the
//! engine generates from, resuming continues where it stopped, and bad input is refused.

use std::collections::HashMap;
use std::io::Write;

use candle_core::quantized::gguf_file::{self, Value};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{D, Device, Tensor};
use kefu_engine::{Engine, EngineConfig, Event, GenerateRequest, SamplingOptions};
use kefu_train::data::{self, Encoded};
use kefu_train::gguf::GgufModel;
use kefu_train::lora::LoraSpec;
use kefu_train::model::Llama;
use kefu_train::optim::{AdamW, GradAccum};
use kefu_train::tokenizer::GgufTokenizer;
use kefu_train::{ExportType, TrainArgs, train};

fn load() -> (GgufModel, GgufTokenizer) {
    let base = GgufModel::load(&kefu_testkit::default_model(), &Device::Cpu).unwrap();
    let tok = GgufTokenizer::from_metadata(&base.metadata).unwrap();
    (base, tok)
}

fn short_example(tok: &GgufTokenizer) -> Encoded {
    let ex = data::Example {
        id: "x".into(),
        question: "专业版多少钱？".into(),
        answer: "¥30/月。".into(),
        line: 1,
    };
    data::encode(vec![ex], tok, 64).unwrap().encoded.remove(0)
}

fn nonzero_finite(t: &Tensor) -> (bool, bool) {
    let v: Vec<f32> = t.flatten_all().unwrap().to_vec1().unwrap();
    (v.iter().any(|x| *x != 0.0), v.iter().all(|x| x.is_finite()))
}

#[test]
fn every_trainable_tensor_gets_a_gradient() {
    let (base, tok) = load();
    let e = short_example(&tok);
    let batch = data::make_batch(&[&e], tok.eot, &Device::Cpu).unwrap();

    let full = Llama::new(&base, None, 1).unwrap();
    assert_eq!(full.trainable.len(), 2 + 9 * full.config.n_layer);
    let loss = full
        .nll_sum(&batch.ids, &batch.positions, &batch.targets)
        .unwrap();
    let grads = loss.backward().unwrap();
    for (name, var) in &full.trainable {
        let g = grads
            .get(var.as_tensor())
            .unwrap_or_else(|| panic!("{name}: no gradient"));
        assert_eq!(nonzero_finite(g), (true, true), "{name}");
    }
    drop((full, grads));

    // LoRA: B starts at zero, so A's gradient is zero until the first step moves B.
    let lora = Llama::new(
        &base,
        Some(LoraSpec {
            rank: 4,
            alpha: 8.0,
        }),
        1,
    )
    .unwrap();
    assert_eq!(lora.trainable.len(), 2 * 7 * lora.config.n_layer);
    let mut opt = AdamW::new(&lora.trainable, 0.0).unwrap();
    for _ in 0..2 {
        let loss = lora
            .nll_sum(&batch.ids, &batch.positions, &batch.targets)
            .unwrap();
        let store = loss.backward().unwrap();
        let mut acc = GradAccum::new(lora.trainable.len());
        acc.add(&lora.trainable, &store).unwrap();
        let grads = acc.take(&lora.trainable).unwrap();
        for ((name, _), g) in lora.trainable.iter().zip(&grads) {
            let (nonzero, finite) = nonzero_finite(g);
            assert!(finite, "{name}");
            if opt.steps > 0 || name.ends_with("lora_b") {
                assert!(nonzero, "{name} has a zero gradient");
            }
        }
        opt.step(&lora.trainable, &grads, 1e-3).unwrap();
    }
}

#[test]
fn loss_counts_answer_tokens_only_and_lora_merges_exactly() {
    let (base, tok) = load();
    let e = short_example(&tok);
    // The answer (plus <|im_end|>) is exactly what the targets hold.
    let (_, targets) = data::loss_targets(&e, 0);
    assert_eq!(tok.decode(&targets).unwrap(), "¥30/月。<|im_end|>");
    assert_eq!(targets.len(), e.n_answer());

    let lora = Llama::new(
        &base,
        Some(LoraSpec {
            rank: 4,
            alpha: 8.0,
        }),
        3,
    )
    .unwrap();
    // Move B away from zero so the adapters matter.
    for (name, var) in &lora.trainable {
        if name.ends_with("lora_b") {
            let r = Tensor::randn(0f32, 0.02, var.shape(), &Device::Cpu).unwrap();
            var.set(&r).unwrap();
        }
    }
    let batch = data::make_batch(&[&e], tok.eot, &Device::Cpu).unwrap();
    let nll = lora
        .nll_sum(&batch.ids, &batch.positions, &batch.targets)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    // The same sum from the full logits over the answer positions only.
    let logits = lora.forward_logits(&batch.ids).unwrap().squeeze(0).unwrap();
    let logp = candle_nn::ops::log_softmax(&logits, D::Minus1).unwrap();
    let logp: Vec<Vec<f32>> = logp.to_vec2().unwrap();
    let manual: f32 = (e.n_prompt - 1..e.ids.len() - 1)
        .map(|i| -logp[i][e.ids[i + 1] as usize])
        .sum();
    assert!(
        (nll - manual).abs() < 1e-3 * manual.abs().max(1.0),
        "{nll} vs {manual}"
    );
    // The first loss position is the last prompt token, predicting the first answer token.
    assert_eq!(
        batch.positions.to_vec1::<u32>().unwrap()[0] as usize,
        e.n_prompt - 1
    );

    // LoRA merged into the weights gives the unmerged forward.
    let merged = GgufModel {
        tensors: lora.export_tensors().unwrap(),
        path: base.path.clone(),
        config: base.config.clone(),
        metadata: HashMap::new(),
        tensor_order: base.tensor_order.clone(),
    };
    let plain = Llama::new(&merged, None, 0).unwrap();
    let a = lora.forward_logits(&batch.ids).unwrap();
    let b = plain.forward_logits(&batch.ids).unwrap();
    let diff = (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert!(diff < 1e-3, "merged vs unmerged logits differ by {diff}");
}

fn write_subset(path: &std::path::Path, n: usize) {
    let text = std::fs::read_to_string(kefu_testkit::demo_prepared("train.jsonl")).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    lines.sort_by_key(|l| l.len());
    std::fs::write(path, lines[..n].join("\n") + "\n").unwrap();
}

#[test]
fn tiny_lora_run_lowers_the_loss_exports_a_servable_gguf_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("train.jsonl");
    write_subset(&data, 4);
    let out = dir.path().join("tiny.gguf");
    let mut args = TrainArgs::new(kefu_testkit::default_model(), &data, &out);
    args.eval = Some(data.clone());
    args.epochs = 3;
    args.batch_size = 2;
    args.grad_accum = 1;
    args.max_seq_length = Some(64);
    args.lora_rank = 8;
    args.lr = Some(3e-3);
    args.warmup_ratio = 0.0;
    args.fact_eval_max = 0;
    args.no_progress = true;
    args.export_type = ExportType::Q8_0;
    let s = train(&args).unwrap();
    println!("{s}");
    assert_eq!((s.steps, s.epochs_run), (6, 3));
    let base = s.base_eval_loss.unwrap();
    let best = s.best.unwrap().eval_loss;
    assert!(best < base * 0.8, "eval loss {base} -> {best}");
    assert!(s.last_train_loss.unwrap() < s.first_train_loss.unwrap());
    assert!(s.plot.as_ref().unwrap().is_file());
    let metrics = std::fs::read_to_string(&s.metrics).unwrap();
    assert_eq!(
        metrics.lines().filter(|l| l.contains("\"train\"")).count(),
        6
    );
    assert_eq!(
        metrics.lines().filter(|l| l.contains("\"eval\"")).count(),
        4
    );

    // The export keeps the base model's metadata and loads in the engine.
    let mut f = std::fs::File::open(&out).unwrap();
    let content = gguf_file::Content::read(&mut f).unwrap();
    let base_model = GgufModel::load(&kefu_testkit::default_model(), &Device::Cpu).unwrap();
    for (k, v) in &base_model.metadata {
        if k != "general.file_type" && k != "general.alignment" {
            assert_eq!(
                format!("{:?}", content.metadata.get(k)),
                format!("{:?}", Some(v)),
                "{k}"
            );
        }
    }
    assert_eq!(content.metadata["general.file_type"].to_u32().unwrap(), 7);
    drop(base_model);
    let mut config = EngineConfig::new(&out);
    config.parallel = 1;
    config.ctx_per_seq = 256;
    config.threads = 2;
    let engine = Engine::start(config).unwrap();
    let prompt = data::split_rendering("专业版多少钱？", "").unwrap().0;
    let options = SamplingOptions {
        max_tokens: 12,
        ..SamplingOptions::default()
    };
    let mut g = engine
        .handle()
        .submit(GenerateRequest { prompt, options })
        .unwrap();
    let mut text = String::new();
    while let Some(ev) = g.blocking_next() {
        match ev {
            Event::Text(t) => text.push_str(&t),
            Event::Done { .. } => break,
            Event::Error(e) => panic!("{e}"),
        }
    }
    assert!(!text.trim().is_empty());
    drop(engine);

    // Resume one more epoch from the checkpoint directory.
    args.resume = Some(s.checkpoints.clone());
    args.epochs = 4;
    let r = train(&args).unwrap();
    assert_eq!((r.steps, r.epochs_run), (8, 1));
    let metrics = std::fs::read_to_string(&r.metrics).unwrap();
    assert_eq!(
        metrics.lines().filter(|l| l.contains("\"train\"")).count(),
        8
    );
}

#[test]
fn bad_input_is_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.jsonl");
    let mut f = std::fs::File::create(&bad).unwrap();
    writeln!(
        f,
        r#"{{"id":"a","instruction":"q","input":"","output":"an answer"}}"#
    )
    .unwrap();
    writeln!(f, r#"{{"id":"b","instruction":"q""#).unwrap();
    drop(f);
    let args = TrainArgs::new(
        kefu_testkit::default_model(),
        &bad,
        dir.path().join("o.gguf"),
    );
    let e = format!("{:#}", train(&args).unwrap_err());
    assert!(e.contains("line 2"), "{e}");

    let empty = dir.path().join("empty.jsonl");
    std::fs::write(&empty, "").unwrap();
    let args = TrainArgs::new(
        kefu_testkit::default_model(),
        &empty,
        dir.path().join("o.gguf"),
    );
    let e = format!("{:#}", train(&args).unwrap_err());
    assert!(e.contains("no examples"), "{e}");

    // A GGUF of another architecture.
    let gemma = dir.path().join("gemma.gguf");
    let t = QTensor::quantize(
        &Tensor::zeros((4, 32), candle_core::DType::F32, &Device::Cpu).unwrap(),
        GgmlDType::F32,
    )
    .unwrap();
    let arch = Value::String("gemma3".into());
    let mut w = std::fs::File::create(&gemma).unwrap();
    gguf_file::write(
        &mut w,
        &[("general.architecture", &arch)],
        &[("token_embd.weight", &t)],
    )
    .unwrap();
    drop(w);
    let good = dir.path().join("good.jsonl");
    write_subset(&good, 1);
    let args = TrainArgs::new(&gemma, &good, dir.path().join("o.gguf"));
    let e = format!("{:#}", train(&args).unwrap_err());
    assert!(e.contains("architecture `gemma3` is not supported"), "{e}");
}
