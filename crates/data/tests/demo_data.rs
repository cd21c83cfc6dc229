//! The demo FAQ in data/ prepares to the same knowledge base from all three of its forms.

use std::path::{Path, PathBuf};

use kefu_data::{ApproxTokenCounter, DropReason, KnowledgeEntry, PrepareArgs, Report, prepare};

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data")
}

fn run(file: &str, out: &Path) -> (Report, String) {
    let args = PrepareArgs::new(data_dir().join(file), out.join(file));
    let report = prepare(&args, &ApproxTokenCounter).expect("prepare");
    let kb = std::fs::read_to_string(&report.outputs.knowledge).unwrap();
    (report, kb)
}

#[test]
fn json_csv_and_sqlite_give_the_same_knowledge_base() {
    let out = tempfile::tempdir().unwrap();
    let (json, kb_json) = run("faq.json", out.path());
    let (csv, kb_csv) = run("faq.csv", out.path());
    let (sqlite, kb_sqlite) = run("faq.sqlite", out.path());
    println!("{}", json.summary());

    assert_eq!(kb_json, kb_csv, "faq.json and faq.csv differ");
    assert_eq!(kb_json, kb_sqlite, "faq.json and faq.sqlite differ");
    assert_eq!(json.split, csv.split);
    assert_eq!(json.split, sqlite.split);
    assert_eq!(json.redactions, sqlite.redactions);
    assert_eq!(json.tokens, csv.tokens);
    assert_eq!(csv.input.encoding.as_deref(), Some("UTF-8"));
    for file in ["train.jsonl", "test.jsonl"] {
        let read =
            |r: &Report| std::fs::read_to_string(r.outputs.knowledge.with_file_name(file)).unwrap();
        assert_eq!(read(&json), read(&csv), "{file}");
        assert_eq!(read(&json), read(&sqlite), "{file}");
    }

    // The JSON array's non-object element is the CSV's broken-quoting row; SQLite has neither.
    for r in [&json, &csv] {
        let malformed: Vec<_> = r
            .dropped
            .iter()
            .filter(|d| d.reason == DropReason::Malformed)
            .map(|d| d.source.line)
            .collect();
        assert_eq!(malformed.len(), 1, "{:?}", r.input.path);
        assert!(malformed[0].is_some());
    }
    assert_eq!(sqlite.counts.malformed, 0);
    assert_eq!(json.counts.rows_in, sqlite.counts.rows_in + 1);
}

#[test]
fn demo_report_accounts_for_every_dirty_row() {
    let out = tempfile::tempdir().unwrap();
    let (r, kb) = run("faq.json", out.path());
    let c = &r.counts;
    assert_eq!(c.rows_in, 81);
    assert_eq!(c.kept + c.dropped, c.rows_in);
    assert_eq!(c.train + c.test, c.kept);
    assert_eq!(r.dropped.len(), c.dropped);
    let by = |reason| r.drops_by_reason.get(&reason).copied().unwrap_or(0);
    assert_eq!(by(DropReason::Malformed), 1);
    assert_eq!(by(DropReason::ExactDuplicate), 2);
    assert_eq!(by(DropReason::NearDuplicate), 3);
    assert_eq!(by(DropReason::ConflictingDuplicate), 1);
    assert_eq!(by(DropReason::EmptyAnswer), 2);
    assert_eq!(by(DropReason::TooShort), 1);
    assert_eq!(c.kept, 71);
    assert_eq!(
        (
            r.redactions.phone,
            r.redactions.email,
            r.redactions.id_card,
            r.redactions.bank_card
        ),
        (1, 1, 1, 1)
    );
    assert_eq!(r.conflicts.len(), 1);

    let entries: Vec<KnowledgeEntry> = kb
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let find = |q: &str| {
        entries
            .iter()
            .find(|e| e.question == q)
            .unwrap_or_else(|| panic!("{q}"))
    };
    // Newest of the conflicting answers wins.
    assert!(
        find("专业版有多少存储空间？")
            .answer
            .starts_with("专业版提供 2TB")
    );
    // Company contact points stay, personal data goes.
    let refund = &find("退款政策是什么？").answer;
    assert!(refund.contains("400-820-1234") && refund.contains("support@cloudsail.example"));
    assert!(
        refund.contains("[电话]") && refund.contains("[邮箱]"),
        "{refund}"
    );
    assert!(!kb.contains("13812345678") && !kb.contains("wangxs1988"));
    assert!(!kb.contains("310104198507153218") && !kb.contains("6222021234567890128"));
    assert!(
        find("如何查询订单号？")
            .answer
            .contains("202403150000123456")
    );
    // Cleaning: HTML, full-width, brackets, repeated marks, emoji.
    assert_eq!(
        find("如何开启两步验证？").answer,
        "为了账户安全，建议开启两步验证：\n1. 打开 设置\n2. 进入 账户与安全 > 两步验证\n3. 选择短信验证码或验证器 App，按提示完成绑定"
    );
    assert!(
        find("VIP会员和专业版是一回事吗？")
            .answer
            .ends_with("提供2TB空间。")
    );
    assert!(
        find("基础版包含多少存储空间？")
            .answer
            .starts_with("基础版提供 1TB")
    );
    assert!(
        find("为什么我上传文件总是失败？")
            .answer
            .starts_with("上传失败通常有以下原因！\n1. ")
    );
    assert!(
        find("手机相册可以自动备份吗？")
            .answer
            .starts_with("可以 打开")
    );
    assert!(
        find("How many devices can I sign in on?")
            .answer
            .starts_with("Free: 3 devices")
    );
    assert!(find("文件可以在线预览吗？").answer.contains("2GB"));
    let ids: std::collections::BTreeSet<_> = entries.iter().map(|e| &e.id).collect();
    assert_eq!(ids.len(), entries.len());
}
