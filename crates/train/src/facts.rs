//! Fact accuracy during training: does a greedy answer state the reference's facts? Facts and
//! their matching are kefu-eval's ([`kefu_eval::metrics::fact_score`]: quantities with units,
//! prices, numbers, Latin-script terms), so the per-epoch figure is the one `kefu eval`
//! reports. Answers are generated from the exported GGUF through kefu-engine, i.e. by
//! llama.cpp exactly as `kefu generate` would, with the serving prompt.

use std::path::Path;

use anyhow::{Result, bail};
use kefu_engine::{Engine, EngineConfig, Event, GenerateRequest, SamplingOptions};
use serde::Serialize;

use crate::data::{Example, split_rendering};

/// One evaluated question.
#[derive(Debug, Clone, Serialize)]
pub struct FactResult {
    pub id: String,
    pub question: String,
    pub answer: String,
    /// Facts of the reference.
    pub facts_total: usize,
    /// Those the answer does not state.
    pub missing: Vec<String>,
}

/// Fact accuracy over an eval set.
#[derive(Debug, Clone, Serialize)]
pub struct FactScore {
    pub facts_found: usize,
    pub facts_total: usize,
    /// Questions whose answer states every fact of the reference.
    pub questions_all_facts: usize,
    pub questions: usize,
    pub results: Vec<FactResult>,
}

impl FactScore {
    pub fn accuracy(&self) -> f64 {
        if self.facts_total == 0 {
            0.0
        } else {
            self.facts_found as f64 / self.facts_total as f64
        }
    }
}

/// Scores answers against references.
pub fn score(examples: &[Example], answers: &[String]) -> FactScore {
    let mut s = FactScore {
        facts_found: 0,
        facts_total: 0,
        questions_all_facts: 0,
        questions: examples.len(),
        results: Vec::new(),
    };
    for (ex, ans) in examples.iter().zip(answers) {
        let f = kefu_eval::metrics::fact_score(&ex.answer, ans);
        s.facts_total += f.total;
        s.facts_found += f.found;
        if f.missing.is_empty() {
            s.questions_all_facts += 1;
        }
        s.results.push(FactResult {
            id: ex.id.clone(),
            question: ex.question.clone(),
            answer: ans.clone(),
            facts_total: f.total,
            missing: f.missing,
        });
    }
    s
}

/// Greedy answers of the GGUF at `model` to every question, batched by the engine.
pub fn generate_answers(
    model: &Path,
    examples: &[Example],
    max_tokens: u32,
    threads: usize,
) -> Result<Vec<String>> {
    let mut config = EngineConfig::new(model);
    config.parallel = examples.len().clamp(1, 8) as u32;
    config.prefix_cache_slots = 0;
    config.ctx_per_seq = 1024 + max_tokens;
    config.threads = threads as i32;
    config.queue_capacity = examples.len().max(1);
    let engine = Engine::start(config)?;
    let handle = engine.handle();
    let mut gens = Vec::new();
    for ex in examples {
        let (prompt, _) = split_rendering(&ex.question, "")?;
        let options = SamplingOptions {
            max_tokens,
            temperature: 0.0,
            ..SamplingOptions::default()
        };
        gens.push(handle.submit(GenerateRequest { prompt, options })?);
    }
    let mut answers = Vec::new();
    for mut g in gens {
        let mut text = String::new();
        loop {
            match g.blocking_next() {
                Some(Event::Text(t)) => text.push_str(&t),
                Some(Event::Done { .. }) => break,
                Some(Event::Error(e)) => bail!("generation failed: {e}"),
                None => bail!("the engine stopped before an answer was complete"),
            }
        }
        answers.push(text.trim().to_string());
    }
    Ok(answers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_scored_with_kefu_evals_facts() {
        let ex = Example {
            id: "x".into(),
            question: "q".into(),
            answer: "基础版 ¥12/月，年付 ¥120".into(),
            line: 1,
        };
        let s = score(
            &[ex.clone(), ex],
            &["¥12 每月".to_string(), "¥12/月，年付 ¥120".to_string()],
        );
        assert_eq!(s.questions_all_facts, 1);
        assert!(s.facts_found < s.facts_total, "{s:?}");
        assert_eq!(
            s.results[0].missing.len(),
            s.results[0].facts_total - 1,
            "{s:?}"
        );
    }
}
