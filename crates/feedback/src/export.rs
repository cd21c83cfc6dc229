//! Thumbs-down cases as instruction JSONL, for review and the next fine-tune.
//!
//! Each line is one [`Case`]: `instruction` (the masked question), `input` and `output` (empty,
//! for the reviewer to fill with the correct answer), `bad_output` (what kefu answered), the
//! client's `comment`, and where it came from. The `instruction`/`input`/`output` fields are
//! those of `kefu data prepare`'s train.jsonl, so a reviewed file feeds `kefu data prepare
//! --input FILE` (rows whose `output` is still empty are dropped there as `empty_answer`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{CompletionRecord, FeedbackRecord, Rating};

/// One exported case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Case {
    /// The completion's id.
    pub id: String,
    /// When the completion was made (Unix seconds).
    pub created: u64,
    pub instruction: String,
    pub input: String,
    /// The correct answer, to be written by a reviewer.
    pub output: String,
    /// The answer the client rated down.
    pub bad_output: String,
    pub comment: String,
    pub action: String,
    pub citations: Vec<String>,
    pub model: String,
}

/// The result of joining completions with feedback.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Export {
    /// Thumbs-down cases, oldest first.
    pub cases: Vec<Case>,
    /// Thumbs-down feedback whose completion is no longer stored (pruned).
    pub orphaned: usize,
    /// Feedback records with a thumbs up.
    pub up: usize,
}

impl Export {
    /// The cases as JSON Lines.
    pub fn to_jsonl(&self) -> String {
        let mut out = String::new();
        for case in &self.cases {
            out.push_str(&serde_json::to_string(case).expect("a case serialises"));
            out.push('\n');
        }
        out
    }
}

/// Joins `feedback` with `completions` by completion id and keeps the thumbs-down cases.
pub fn thumbs_down(
    completions: impl IntoIterator<Item = CompletionRecord>,
    feedback: impl IntoIterator<Item = FeedbackRecord>,
) -> Export {
    let completions: BTreeMap<String, CompletionRecord> =
        completions.into_iter().map(|c| (c.id.clone(), c)).collect();
    let mut export = Export::default();
    for f in feedback {
        if f.rating == Rating::Up {
            export.up += 1;
            continue;
        }
        let Some(c) = completions.get(&f.request_id) else {
            export.orphaned += 1;
            continue;
        };
        export.cases.push(Case {
            id: c.id.clone(),
            created: c.created,
            instruction: c.question.clone(),
            input: String::new(),
            output: String::new(),
            bad_output: c.answer.clone(),
            comment: f.comment,
            action: c.action.clone(),
            citations: c.citations.clone(),
            model: c.model.clone(),
        });
    }
    export
        .cases
        .sort_by(|a, b| (a.created, &a.id).cmp(&(b.created, &b.id)));
    export
}

#[cfg(test)]
mod tests {
    use super::*;

    fn completion(id: &str, created: u64) -> CompletionRecord {
        CompletionRecord {
            id: id.into(),
            created,
            model: "m".into(),
            question: format!("question {id}"),
            answer: format!("answer {id}"),
            action: "answer".into(),
            grounded: true,
            citations: vec!["faq-1".into()],
            prompt_tokens: 10,
            completion_tokens: 5,
            stream: false,
            finish_reason: "stop".into(),
        }
    }

    fn feedback(id: &str, rating: Rating, comment: &str) -> FeedbackRecord {
        FeedbackRecord {
            request_id: id.into(),
            rating,
            comment: comment.into(),
            created: 9,
        }
    }

    #[test]
    fn keeps_thumbs_down_joined_with_their_completion() {
        let export = thumbs_down(
            [completion("c", 3), completion("a", 1), completion("b", 2)],
            [
                feedback("c", Rating::Down, "wrong price"),
                feedback("a", Rating::Up, ""),
                feedback("b", Rating::Down, ""),
                feedback("gone", Rating::Down, "pruned"),
            ],
        );
        assert_eq!((export.up, export.orphaned), (1, 1));
        let ids: Vec<_> = export.cases.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, ["b", "c"]);
        let c = &export.cases[1];
        assert_eq!(c.instruction, "question c");
        assert_eq!(c.bad_output, "answer c");
        assert_eq!(c.comment, "wrong price");
        assert_eq!((c.input.as_str(), c.output.as_str()), ("", ""));

        let jsonl = export.to_jsonl();
        assert_eq!(jsonl.lines().count(), 2);
        let line: serde_json::Value = serde_json::from_str(jsonl.lines().next().unwrap()).unwrap();
        for field in [
            "instruction",
            "input",
            "output",
            "bad_output",
            "comment",
            "id",
            "created",
        ] {
            assert!(line.get(field).is_some(), "{field} missing: {line}");
        }
    }
}
