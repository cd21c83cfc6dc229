//! From per-question results to per-model summaries and to comparisons against the reference
//! model: paired bootstrap deltas per metric and the questions that flipped.

use std::collections::BTreeMap;

use crate::bootstrap::{BootstrapConfig, paired_delta};
use crate::report::{Comparison, Flip, ModelAnswer, QuestionResult};

/// A per-question metric compared between models.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// Mean NLL of the reference answer (lower is better).
    Nll,
    /// Share of reference facts stated (questions with facts only).
    FactRecall,
    /// 1 for a right answer, 0 otherwise.
    Right,
    RougeL,
    Chrf,
    ExactMatch,
}

impl Metric {
    pub const ALL: [Metric; 6] = [
        Metric::Nll,
        Metric::FactRecall,
        Metric::Right,
        Metric::RougeL,
        Metric::Chrf,
        Metric::ExactMatch,
    ];

    /// Key in report.json.
    pub fn key(self) -> &'static str {
        match self {
            Metric::Nll => "nll",
            Metric::FactRecall => "fact_accuracy",
            Metric::Right => "right",
            Metric::RougeL => "rouge_l",
            Metric::Chrf => "chrf",
            Metric::ExactMatch => "exact_match",
        }
    }

    pub fn higher_is_better(self) -> bool {
        !matches!(self, Metric::Nll)
    }

    /// The metric's value for one answer.
    pub fn value(self, a: &ModelAnswer) -> Option<f64> {
        match self {
            Metric::Nll => Some(a.nll),
            Metric::FactRecall => a.scores.facts.recall(),
            Metric::Right => Some(f64::from(u8::from(a.scores.right))),
            Metric::RougeL => Some(a.scores.rouge_l),
            Metric::Chrf => Some(a.scores.chrf),
            Metric::ExactMatch => Some(f64::from(u8::from(a.scores.exact))),
        }
    }
}

/// The metric's values for model `m` over all questions.
pub fn values(questions: &[QuestionResult], m: usize, metric: Metric) -> Vec<Option<f64>> {
    questions
        .iter()
        .map(|q| metric.value(&q.answers[m]))
        .collect()
}

/// Mean of the present values.
pub fn mean(values: &[Option<f64>]) -> Option<f64> {
    let present: Vec<f64> = values.iter().flatten().copied().collect();
    (!present.is_empty()).then(|| present.iter().sum::<f64>() / present.len() as f64)
}

/// Model `m` against model `reference` (indices into each question's answers).
pub fn compare(
    questions: &[QuestionResult],
    reference: usize,
    m: usize,
    config: &BootstrapConfig,
) -> Comparison {
    let mut deltas = BTreeMap::new();
    for metric in Metric::ALL {
        let r = values(questions, reference, metric);
        let o = values(questions, m, metric);
        if let Some(d) = paired_delta(&r, &o, config) {
            deltas.insert(metric.key().to_string(), d);
        }
    }
    let flip = |q: &QuestionResult| Flip {
        id: q.id.clone(),
        question: q.question.clone(),
        reference_answer: q.reference.clone(),
        before: q.answers[reference].answer.clone(),
        after: q.answers[m].answer.clone(),
        missing_facts: q.answers[m].scores.facts.missing.clone(),
    };
    let mut right_to_wrong = Vec::new();
    let mut wrong_to_right = Vec::new();
    for q in questions {
        match (q.answers[reference].scores.right, q.answers[m].scores.right) {
            (true, false) => right_to_wrong.push(flip(q)),
            (false, true) => wrong_to_right.push(flip(q)),
            _ => {}
        }
    }
    Comparison {
        model: questions
            .first()
            .map(|q| q.answers[m].model.clone())
            .unwrap_or_default(),
        reference: questions
            .first()
            .map(|q| q.answers[reference].model.clone())
            .unwrap_or_default(),
        deltas,
        right_to_wrong,
        wrong_to_right,
        changed_answers: questions
            .iter()
            .filter(|q| q.answers[m].answer != q.answers[reference].answer)
            .count(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::score;

    fn answer(model: &str, reference: &str, text: &str, nll: f64) -> ModelAnswer {
        ModelAnswer {
            model: model.into(),
            answer: text.into(),
            scores: score(reference, text),
            nll,
            answer_tokens: 10,
            prompt_tokens: 20,
            completion_tokens: 10,
            finish_reason: "stop".into(),
        }
    }

    #[test]
    fn flips_and_deltas() {
        let refs = ["专业版 ¥30/月", "基础版 ¥12/月"];
        let questions: Vec<QuestionResult> = refs
            .iter()
            .enumerate()
            .map(|(i, r)| QuestionResult {
                id: format!("q{i}"),
                question: "多少钱？".into(),
                reference: r.to_string(),
                facts: vec![],
                answers: vec![
                    answer("a", r, if i == 0 { "30元每月" } else { "不知道" }, 1.0),
                    answer("b", r, if i == 0 { "25元每月" } else { "12元每月" }, 1.5),
                ],
            })
            .collect();
        let c = compare(&questions, 0, 1, &BootstrapConfig::default());
        assert_eq!(c.right_to_wrong.len(), 1);
        assert_eq!(c.right_to_wrong[0].id, "q0");
        assert_eq!(c.right_to_wrong[0].missing_facts, ["30元"]);
        assert_eq!(c.wrong_to_right.len(), 1);
        assert_eq!(c.changed_answers, 2);
        assert!((c.deltas["nll"].delta - 0.5).abs() < 1e-12);
        assert_eq!(c.deltas["right"].delta, 0.0);
    }
}
