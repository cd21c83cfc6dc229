//! End-to-end behaviour of `prepare` on small inputs: report fields, outputs, split
//! determinism, encodings, errors.

use std::path::{Path, PathBuf};

use kefu_data::{
    ApproxTokenCounter, DropReason, InstructionExample, KnowledgeEntry, PrepareArgs, Report,
    prepare,
};

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

fn lines<T: serde::de::DeserializeOwned>(path: &Path) -> Vec<T> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

const JSONL: &str = r#"{"question":"如何退款？","answer":"1. 打开设置 2. 申请退款，3-5 个工作日到账。","tags":"退款,账单","updated_at":"2024-01-01"}
{"question":"如何退款？","answer":"1. 打开设置 2. 申请退款，3-5 个工作日到账。","updated_at":"2024-01-01"}
{"question":"如何退款","answer":"1.  打开设置  2. 申请退款，3-5 个工作日到账","updated_at":"2024-01-02"}
{"question":"专业版多少钱？","answer":"¥30/月","updated_at":"2023-01-01"}
{"question":"专业版多少钱？","answer":"¥35/月","updated_at":"2024-06-01"}
["not", "an", "object"]
{"question":"","answer":"没有问题的答案"}
{"question":"发票？","answer":"<p>&nbsp;</p>"}
{"question":"在吗","answer":"在"}
{"question":"客服电话？","answer":"热线 400-820-1234，经理手机 13912345678，邮箱 boss@qq.com"}
{"question":"Is data encrypted?","answer":"Yes: AES-256 at rest, TLS 1.3 in transit."}
{broken json
"#;

fn small(dir: &Path) -> (PrepareArgs, Report) {
    let input = write(dir, "faq.jsonl", JSONL.as_bytes());
    let args = PrepareArgs::new(input, dir.join("out"));
    let report = prepare(&args, &ApproxTokenCounter).unwrap();
    (args, report)
}

#[test]
fn report_lists_every_dropped_row_with_reason_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let (_, r) = small(dir.path());
    let got: Vec<(usize, DropReason)> = r
        .dropped
        .iter()
        .map(|d| (d.source.line.unwrap(), d.reason))
        .collect();
    use DropReason::*;
    assert_eq!(
        got,
        vec![
            (2, ExactDuplicate),
            (3, NearDuplicate),
            (4, ConflictingDuplicate),
            (6, Malformed),
            (7, EmptyQuestion),
            (8, EmptyAnswer),
            (9, TooShort),
            (12, Malformed),
        ]
    );
    assert_eq!(r.dropped[0].duplicate_of.unwrap().line, Some(1));
    assert_eq!(r.dropped[2].duplicate_of.unwrap().line, Some(5));
    assert_eq!(r.counts.rows_in, 12);
    assert_eq!(r.counts.malformed, 2);
    assert_eq!((r.counts.kept, r.counts.dropped), (4, 8));
    assert_eq!(r.drops_by_reason[&Malformed], 2);
    assert_eq!(
        (r.redactions.phone, r.redactions.email, r.redactions.total()),
        (1, 1, 2)
    );

    let kb: Vec<KnowledgeEntry> = lines(&r.outputs.knowledge);
    let answers: Vec<&str> = kb.iter().map(|e| e.answer.as_str()).collect();
    assert_eq!(
        answers,
        vec![
            "1. 打开设置 2. 申请退款，3-5 个工作日到账。",
            "¥35/月",
            "热线 400-820-1234，经理手机 [电话]，邮箱 [邮箱]",
            "Yes: AES-256 at rest, TLS 1.3 in transit.",
        ]
    );
    assert_eq!(kb[0].tags, vec!["退款", "账单"]);
    assert!(kb[1].tags.is_empty());

    // report.json on disk is the returned report.
    let on_disk: Report =
        serde_json::from_str(&std::fs::read_to_string(&r.outputs.report).unwrap()).unwrap();
    assert_eq!(on_disk, r);
    let raw: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&r.outputs.report).unwrap()).unwrap();
    for key in [
        "input",
        "counts",
        "drops_by_reason",
        "dropped",
        "conflicts",
        "redactions",
        "tokens",
        "split",
    ] {
        assert!(raw.get(key).is_some(), "report.json lacks {key}");
    }
    for key in [
        "p50",
        "p90",
        "p99",
        "max",
        "recommended_max_seq_length",
        "truncated_fraction",
    ] {
        assert!(raw["tokens"].get(key).is_some(), "tokens lacks {key}");
    }
    assert_eq!(raw["drops_by_reason"]["near_duplicate"], 1);

    let summary = r.summary();
    assert!(summary.contains("kept 4, dropped 8"), "{summary}");
    assert!(summary.contains("malformed 2"), "{summary}");
    assert!(summary.contains("max_seq_length"), "{summary}");
}

#[test]
fn instruction_files_hold_every_entry_once() {
    let dir = tempfile::tempdir().unwrap();
    let (args, r) = small(dir.path());
    let train: Vec<InstructionExample> = lines(&args.out.join("train.jsonl"));
    let test: Vec<InstructionExample> = lines(&args.out.join("test.jsonl"));
    assert_eq!((train.len(), test.len()), (r.counts.train, r.counts.test));
    assert_eq!(test.len(), 1);
    let kb: Vec<KnowledgeEntry> = lines(&r.outputs.knowledge);
    let mut ids: Vec<&str> = train.iter().chain(&test).map(|e| e.id.as_str()).collect();
    ids.sort();
    let mut kb_ids: Vec<&str> = kb.iter().map(|e| e.id.as_str()).collect();
    kb_ids.sort();
    assert_eq!(ids, kb_ids);
    for ex in train.iter().chain(&test) {
        let entry = kb.iter().find(|e| e.id == ex.id).unwrap();
        assert_eq!(
            (
                ex.instruction.as_str(),
                ex.input.as_str(),
                ex.output.as_str()
            ),
            (entry.question.as_str(), "", entry.answer.as_str())
        );
    }
}

#[test]
fn split_is_deterministic_by_seed() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::new();
    for i in 0..40 {
        text.push_str(&format!(
            "{{\"question\":\"问题 {i}\",\"answer\":\"答案编号 {i}\"}}\n"
        ));
    }
    let input = write(dir.path(), "many.jsonl", text.as_bytes());
    let run = |seed: u64, out: &str| {
        let mut args = PrepareArgs::new(&input, dir.path().join(out));
        args.seed = seed;
        args.test_ratio = 0.25;
        let r = prepare(&args, &ApproxTokenCounter).unwrap();
        (
            r.split.test_ids.clone(),
            std::fs::read(dir.path().join(out).join("test.jsonl")).unwrap(),
        )
    };
    let (a, a_bytes) = run(7, "a");
    let (b, b_bytes) = run(7, "b");
    let (c, _) = run(8, "c");
    assert_eq!(a.len(), 10);
    assert_eq!((a.clone(), a_bytes), (b, b_bytes));
    assert_ne!(a, c);
}

#[test]
fn prepared_knowledge_is_a_fixed_point() {
    let dir = tempfile::tempdir().unwrap();
    let (_, r) = small(dir.path());
    let again = prepare(
        &PrepareArgs::new(&r.outputs.knowledge, dir.path().join("again")),
        &ApproxTokenCounter,
    )
    .unwrap();
    assert_eq!(again.counts.dropped, 0);
    assert_eq!(again.redactions.total(), 0);
    assert_eq!(
        std::fs::read_to_string(&r.outputs.knowledge).unwrap(),
        std::fs::read_to_string(&again.outputs.knowledge).unwrap()
    );
}

#[test]
fn the_index_file_holds_the_knowledge_base_it_was_made_from() {
    let dir = tempfile::tempdir().unwrap();
    let (_, r) = small(dir.path());
    let jsonl = std::fs::read(&r.outputs.knowledge).unwrap();
    let index = std::fs::read(&r.outputs.index).unwrap();
    assert!(kefu_guard::Knowledge::index_matches(&index, &jsonl));
    let from_index = kefu_guard::Knowledge::load(&index).unwrap();
    let from_jsonl = kefu_guard::Knowledge::from_jsonl(&jsonl).unwrap();
    assert_eq!(from_index.entries(), from_jsonl.entries());
}

#[test]
fn gbk_csv_from_excel_prepares_like_utf8() {
    let dir = tempfile::tempdir().unwrap();
    let text = "问题,答案,更新时间\r\n退款政策是什么？,\"7 天无理由退款，3-5 个工作日到账。\"\r\n基础版多少钱？,￥１２／月,2024/9/1\r\n";
    let text = text.replacen("到账。\"\r\n", "到账。\",\r\n", 1);
    let (gbk, _, unmappable) = encoding_rs::GBK.encode(&text);
    assert!(!unmappable);
    let gbk_path = write(dir.path(), "gbk.csv", &gbk);
    let utf8_path = write(dir.path(), "utf8.csv", text.as_bytes());
    let a = prepare(
        &PrepareArgs::new(&gbk_path, dir.path().join("a")),
        &ApproxTokenCounter,
    )
    .unwrap();
    let b = prepare(
        &PrepareArgs::new(&utf8_path, dir.path().join("b")),
        &ApproxTokenCounter,
    )
    .unwrap();
    assert_eq!(a.input.encoding.as_deref(), Some("gb18030"));
    let kb = std::fs::read_to_string(&a.outputs.knowledge).unwrap();
    assert_eq!(kb, std::fs::read_to_string(&b.outputs.knowledge).unwrap());
    assert!(kb.contains("¥12/月"), "{kb}");

    let mut args = PrepareArgs::new(&gbk_path, dir.path().join("c"));
    args.encoding = Some("utf-8".into());
    let err = format!("{:#}", prepare(&args, &ApproxTokenCounter).unwrap_err());
    assert!(err.contains("--encoding"), "{err}");
}

#[test]
fn clear_errors_for_missing_inputs() {
    let dir = tempfile::tempdir().unwrap();
    let err = format!(
        "{:#}",
        prepare(
            &PrepareArgs::new(dir.path().join("nope.json"), dir.path().join("o")),
            &ApproxTokenCounter
        )
        .unwrap_err()
    );
    assert!(
        err.contains("nope.json") && err.contains("does not exist"),
        "{err}"
    );

    let input = write(dir.path(), "x.csv", b"title,body\nq,a\n");
    let err = format!(
        "{:#}",
        prepare(
            &PrepareArgs::new(&input, dir.path().join("o")),
            &ApproxTokenCounter
        )
        .unwrap_err()
    );
    assert!(
        err.contains("no question column") && err.contains("title, body"),
        "{err}"
    );

    let mut args = PrepareArgs::new(&input, dir.path().join("o"));
    args.query = Some("SELECT 1".into());
    let err = format!("{:#}", prepare(&args, &ApproxTokenCounter).unwrap_err());
    assert!(err.contains("--query applies to SQLite"), "{err}");
}

#[test]
fn args_parse_like_the_cli() {
    use clap::Parser;
    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: PrepareArgs,
    }
    let cli = Cli::try_parse_from([
        "kefu",
        "--input",
        "faq.db",
        "--query",
        "SELECT q, a FROM t",
        "--out",
        "dir",
        "--test-ratio",
        "0.2",
        "--seed",
        "7",
        "--allow-contact",
        "138*",
        "--allow-contact",
        "*@partner.example",
        "--company-domain",
        "acme.example",
    ])
    .unwrap();
    assert_eq!(cli.args.test_ratio, 0.2);
    assert_eq!(cli.args.allow_contacts, vec!["138*", "*@partner.example"]);
    assert_eq!(cli.args.company_domains, vec!["acme.example"]);
    let defaults = PrepareArgs::new("a", "b");
    assert_eq!(
        (
            defaults.test_ratio,
            defaults.seed,
            defaults.min_answer_chars
        ),
        (0.1, 42, 4)
    );
    assert_eq!(
        defaults.company_domains,
        vec![kefu_data::DEFAULT_COMPANY_DOMAIN]
    );
    assert!(Cli::try_parse_from(["kefu", "-i", "a", "-o", "b", "--test-ratio", "1.5"]).is_err());
}

#[test]
fn token_lengths_use_the_given_counter_over_chatml() {
    let dir = tempfile::tempdir().unwrap();
    let input = write(
        dir.path(),
        "one.json",
        br#"[{"question":"Q1 here","answer":"An answer."}]"#,
    );
    let expected = kefu_data::render_chatml("Q1 here", "An answer.")
        .chars()
        .count();
    let counter = |t: &str| t.chars().count();
    let r = prepare(&PrepareArgs::new(&input, dir.path().join("o")), &counter).unwrap();
    assert_eq!(
        (r.tokens.p50, r.tokens.max, r.tokens.count),
        (expected, expected, 1)
    );
    assert_eq!(r.tokens.tokenizer, "custom");
    assert_eq!((r.counts.train, r.counts.test), (1, 0));
}
