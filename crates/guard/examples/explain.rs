//! Shows how a question is decided and matched: `cargo run -p kefu-guard --example explain --
//! data/prepared/knowledge.jsonl "怎么退款？" [ENTRY_ID]`: the decision, then term by term
//! how the question matches the best entries (or the given one). For tuning the lexicon.

use kefu_guard::{Guard, GuardConfig, Knowledge, Message};

fn main() {
    let mut args = std::env::args().skip(1);
    let path = args.next().expect("usage: explain KB QUESTION");
    let question = args.next().expect("usage: explain KB QUESTION [ENTRY_ID]");
    let id = args.next();
    let kb = Knowledge::load(&std::fs::read(&path).expect("read knowledge base"))
        .expect("valid knowledge base");
    let config = GuardConfig::default();
    let guard = Guard::new(&kb, config.clone());
    let plan = guard.plan(&[Message::user(question.as_str())]);
    let cue = kefu_guard::decide::decide(&plan.masked_question, None, &kb, &config).cue;
    println!(
        "{} ({}), coverage {:.2}, citations {:?}, cue {:?}",
        plan.action.as_str(),
        plan.reason.as_str(),
        plan.coverage,
        plan.citations,
        cue
    );
    if let Some(id) = id {
        print!(
            "{}",
            kb.explain(&plan.masked_question, &id)
                .expect("known entry id")
        );
        return;
    }
    for hit in kb.search(&plan.masked_question, 3) {
        let e = &kb.entries()[hit.entry];
        println!(
            "\n{} coverage {:.2} score {:.2}: {}",
            e.id, hit.coverage, hit.score, e.question
        );
        print!(
            "{}",
            kb.explain(&plan.masked_question, &e.id).unwrap_or_default()
        );
    }
}
