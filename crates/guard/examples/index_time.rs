//! Times loading a knowledge base: `cargo run --release -p kefu-guard --example index_time --
//! data/prepared/knowledge.jsonl [ENTRIES]`. Entries are repeated with fresh ids to reach
//! ENTRIES. Prints the cost of parsing and indexing JSON Lines, of loading the precomputed
//! index file, and of one `plan`. It also builds for `wasm32-wasip1` (`rustup target add
//! wasm32-wasip1`) to measure under a Wasm engine with WASI preview 1 (a preopened dir).

use std::time::Instant;

use kefu_guard::{Guard, GuardConfig, Knowledge, Message};

fn main() {
    let mut args = std::env::args().skip(1);
    let path = args.next().expect("usage: index_time FILE.jsonl [entries]");
    let want: usize = args.next().map_or(0, |n| n.parse().expect("entries"));
    let bytes = std::fs::read(&path).expect("read knowledge base");
    let base = Knowledge::from_jsonl(&bytes).expect("valid knowledge base");
    let want = if want == 0 {
        base.entries().len()
    } else {
        want
    };
    let mut jsonl = String::new();
    for i in 0..want {
        let e = &base.entries()[i % base.entries().len()];
        let line = serde_json::json!({"id": format!("e{i}"), "question": e.question, "similar": e.similar, "answer": e.answer, "tags": e.tags});
        jsonl.push_str(&line.to_string());
        jsonl.push('\n');
    }
    let runs: u32 = 200;
    let t = Instant::now();
    std::hint::black_box(Knowledge::from_jsonl(jsonl.as_bytes()).unwrap());
    let first = t.elapsed();
    let t = Instant::now();
    for _ in 0..runs {
        std::hint::black_box(Knowledge::from_jsonl(jsonl.as_bytes()).unwrap());
    }
    let build = t.elapsed() / runs;
    let kb = Knowledge::from_jsonl(jsonl.as_bytes()).unwrap();
    let snapshot = kb.to_index_bytes();
    let t = Instant::now();
    for _ in 0..runs {
        std::hint::black_box(Knowledge::load(&snapshot).unwrap());
    }
    let load = t.elapsed() / runs;
    let guard = Guard::new(&kb, GuardConfig::default());
    let t = Instant::now();
    for _ in 0..runs {
        std::hint::black_box(guard.plan(&[Message::user("专业版一个月多少钱？")]));
    }
    let plan = t.elapsed() / runs;
    println!(
        "{want} entries ({} KiB JSON Lines): first build (with word tables) {first:?}, \
         parse + index {build:?}; \
         index file ({} KiB) load {load:?}; one plan {plan:?}",
        jsonl.len() / 1024,
        snapshot.len() / 1024
    );
}
