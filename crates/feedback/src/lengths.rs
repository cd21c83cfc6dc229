//! Request lengths from stored completions, the input of `kefu stats`.
//!
//! Only completions that called the model count (refusals, hand-offs and extractive answers
//! read no prompt). The statistics themselves (percentiles, the `max_seq_length`
//! recommendation) are `kefu-data`'s, computed by the caller.

use crate::CompletionRecord;

/// Token counts per completion that used the model, in input order.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Lengths {
    pub prompt: Vec<usize>,
    pub completion: Vec<usize>,
    /// Prompt plus completion: what one sequence of the engine held.
    pub total: Vec<usize>,
    /// Completions that needed no model call.
    pub without_model: usize,
}

impl Lengths {
    /// Collects the lengths of `records`.
    pub fn collect<'a>(records: impl IntoIterator<Item = &'a CompletionRecord>) -> Lengths {
        let mut lengths = Lengths::default();
        for r in records {
            if !r.used_model() {
                lengths.without_model += 1;
                continue;
            }
            let (p, c) = (r.prompt_tokens as usize, r.completion_tokens as usize);
            lengths.prompt.push(p);
            lengths.completion.push(c);
            lengths.total.push(p + c);
        }
        lengths
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_only_model_calls() {
        let record = |p, c| CompletionRecord {
            id: "x".into(),
            created: 0,
            model: "m".into(),
            question: String::new(),
            answer: String::new(),
            action: "answer".into(),
            grounded: true,
            citations: vec![],
            prompt_tokens: p,
            completion_tokens: c,
            stream: false,
            finish_reason: String::new(),
        };
        let records = [record(100, 20), record(0, 0), record(300, 40)];
        let l = Lengths::collect(&records);
        assert_eq!(l.prompt, [100, 300]);
        assert_eq!(l.completion, [20, 40]);
        assert_eq!(l.total, [120, 340]);
        assert_eq!(l.without_model, 1);
    }
}
