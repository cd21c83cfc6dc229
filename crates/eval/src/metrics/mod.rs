//! Scores of one generated answer against its reference answer. Pure functions over text, so
//! they are tested on hand-computed examples and usable without a model.
//!
//! - [`facts`]: the checkable facts of the reference (numbers, prices, units, key terms) and
//!   which of them the answer states.
//! - [`rouge`]: ROUGE-L over characters (CJK) and words (Latin script).
//! - [`chrf`]: chrF, character n-gram F-score.
//! - [`text`]: the normalisation all of them share, and exact match.

pub mod chrf;
pub mod facts;
pub mod rouge;
pub mod text;

use serde::{Deserialize, Serialize};

pub use chrf::chrf;
pub use facts::{Fact, FactScore, extract_facts, fact_score};
pub use rouge::rouge_l;
pub use text::exact_match;

/// Every text metric of one answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnswerScores {
    /// Facts of the reference and which the answer states.
    pub facts: FactScore,
    /// ROUGE-L F1 in [0, 1].
    pub rouge_l: f64,
    /// chrF in [0, 100].
    pub chrf: f64,
    /// Same text after normalisation.
    pub exact: bool,
    /// The answer counts as right: every reference fact present; for a reference without
    /// facts, ROUGE-L at least [`RIGHT_ROUGE_WITHOUT_FACTS`].
    pub right: bool,
}

/// ROUGE-L that makes an answer "right" when its reference has no checkable facts.
pub const RIGHT_ROUGE_WITHOUT_FACTS: f64 = 0.5;

/// Scores `answer` against `reference`.
pub fn score(reference: &str, answer: &str) -> AnswerScores {
    let facts = fact_score(reference, answer);
    let rouge_l = rouge_l(reference, answer);
    let right = if facts.total == 0 {
        rouge_l >= RIGHT_ROUGE_WITHOUT_FACTS
    } else {
        facts.found == facts.total
    };
    AnswerScores {
        rouge_l,
        chrf: chrf(reference, answer),
        exact: exact_match(reference, answer),
        right,
        facts,
    }
}
