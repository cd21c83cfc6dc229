//! `kefu eval` against the real default model on a few questions of the demo test split:
//! likelihood scoring is deterministic, and a run writes a report that parses back.

use kefu_engine::Tokenizer;
use kefu_eval::dataset::{load_examples, render};
use kefu_eval::{EvalArgs, Report, evaluate};

#[test]
fn perplexity_of_a_file_is_identical_across_runs() {
    let model = kefu_testkit::default_model();
    let mut examples = load_examples(&kefu_testkit::demo_prepared("test.jsonl")).unwrap();
    examples.truncate(3);
    let items = render(&examples, &Tokenizer::load(&model).unwrap(), None).unwrap();
    assert!(
        items[0].answer_text.ends_with("<|im_end|>"),
        "{:?}",
        items[0].answer_text
    );
    let first = kefu_eval::nll::score(&model, &items, 2, &mut || {}).unwrap();
    let second = kefu_eval::nll::score(&model, &items, 2, &mut || {}).unwrap();
    assert_eq!(first.answers, second.answers);
    for a in &first.answers {
        assert!(a.answer_tokens > 1 && a.prompt_tokens > 1, "{a:?}");
        assert!(a.mean().is_finite() && a.mean() > 0.0, "{a:?}");
    }
    let (nll, ppl) = kefu_eval::nll::corpus_nll(&first.answers);
    println!(
        "mean NLL {nll:.4}, perplexity {ppl:.2} on {} answers",
        items.len()
    );
}

/// Equal JSON trees, floats within a relative 1e-12 (serde_json's parser may be one ulp off).
fn same_json(a: &serde_json::Value, b: &serde_json::Value, at: &str) {
    use serde_json::Value;
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            assert!(
                (x - y).abs() <= 1e-12 * x.abs().max(1.0),
                "{at}: {x} != {y}"
            );
        }
        (Value::Array(x), Value::Array(y)) => {
            assert_eq!(x.len(), y.len(), "{at}");
            for (i, (x, y)) in x.iter().zip(y).enumerate() {
                same_json(x, y, &format!("{at}[{i}]"));
            }
        }
        (Value::Object(x), Value::Object(y)) => {
            assert_eq!(
                x.keys().collect::<Vec<_>>(),
                y.keys().collect::<Vec<_>>(),
                "{at}"
            );
            for (k, v) in x {
                same_json(v, &y[k], &format!("{at}.{k}"));
            }
        }
        _ => assert_eq!(a, b, "{at}"),
    }
}

#[test]
fn report_files_are_written_and_parse() {
    let model = kefu_testkit::default_model();
    let dir = tempfile::tempdir().unwrap();
    // The same model twice: every likelihood delta must be exactly zero.
    let mut args = EvalArgs::new(
        vec![model.clone(), model],
        kefu_testkit::demo_prepared("test.jsonl"),
        dir.path(),
    );
    args.limit = Some(2);
    args.max_tokens = 24;
    args.threads = Some(2);
    args.bootstrap = 200;
    let report = evaluate(&args).unwrap();

    let parsed = Report::read_json(&dir.path().join("report.json")).unwrap();
    same_json(
        &serde_json::to_value(&parsed).unwrap(),
        &serde_json::to_value(&report).unwrap(),
        "report",
    );
    assert_eq!(report.examples, 2);
    assert_eq!(report.models.len(), 2);
    assert_eq!(
        report.models[1].name,
        format!("{}-2", report.models[0].name)
    );
    assert_eq!(report.models[0].file_type, "Q4_1");
    assert!(report.models[0].speed.decode_tokens_per_second > 0.0);
    assert!(report.models[0].perplexity > 1.0);
    let c = &report.comparisons[0];
    assert_eq!(c.deltas["nll"].delta, 0.0);
    assert!(c.right_to_wrong.is_empty());

    let md = std::fs::read_to_string(dir.path().join("report.md")).unwrap();
    assert!(md.starts_with("# Evaluation report"));
    assert!(md.contains(&report.models[1].name));
    let scatter = format!("scatter_{}.png", report.models[1].name);
    for png in ["metrics.png", "size_speed.png", scatter.as_str()] {
        let bytes = std::fs::read(dir.path().join(png)).unwrap();
        assert!(
            bytes.starts_with(b"\x89PNG\r\n\x1a\n"),
            "{png} is not a PNG"
        );
        assert!(bytes.len() > 5_000, "{png} is suspiciously small");
    }
}
