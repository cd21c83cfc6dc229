//! Fact accuracy: does a greedy answer state the reference's facts? A fact is a number
//! (`¥30`, `2TB`, `7 天` give 30, 2, 7; `1,000` gives 1000) or a Latin-script term of three or
//! more letters (`WeChat`, `AES`). Answers are generated from the exported GGUF through
//! kefu-engine, i.e. by llama.cpp exactly as `kefu generate` would, with the serving prompt.

use std::path::Path;

use anyhow::{Result, bail};
use kefu_engine::{Engine, EngineConfig, Event, GenerateRequest, SamplingOptions};
use serde::Serialize;

use crate::data::{Example, split_rendering};

/// Numbers and Latin terms of `text`, lower-cased, deduplicated, in order.
pub fn key_facts(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let start = i;
        let fact = if c.is_ascii_digit() {
            let mut s = String::new();
            while i < chars.len() {
                let ch = chars[i];
                let joins = matches!(ch, ',' | '.')
                    && chars.get(i + 1).is_some_and(|n| n.is_ascii_digit())
                    && i > start;
                if ch.is_ascii_digit() {
                    s.push(ch);
                } else if joins {
                    if ch == '.' {
                        s.push('.');
                    }
                } else {
                    break;
                }
                i += 1;
            }
            Some(s)
        } else if c.is_ascii_alphabetic() {
            while i < chars.len() && chars[i].is_ascii_alphabetic() {
                i += 1;
            }
            let w: String = chars[start..i].iter().collect();
            (w.len() >= 3).then(|| w.to_ascii_lowercase())
        } else {
            i += 1;
            None
        };
        if let Some(f) = fact
            && !out.contains(&f)
        {
            out.push(f);
        }
    }
    out
}

/// One evaluated question.
#[derive(Debug, Clone, Serialize)]
pub struct FactResult {
    pub id: String,
    pub question: String,
    pub answer: String,
    pub facts: Vec<String>,
    pub found: Vec<String>,
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
        let facts = key_facts(&ex.answer);
        let have = key_facts(ans);
        let found: Vec<String> = facts.iter().filter(|f| have.contains(f)).cloned().collect();
        s.facts_total += facts.len();
        s.facts_found += found.len();
        if found.len() == facts.len() {
            s.questions_all_facts += 1;
        }
        s.results.push(FactResult {
            id: ex.id.clone(),
            question: ex.question.clone(),
            answer: ans.clone(),
            facts,
            found,
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
    fn facts_are_numbers_and_latin_terms() {
        assert_eq!(
            key_facts("专业版（2TB，¥30/月），1,000 次，WeChat 或 AES-256；v1.5"),
            vec!["2", "30", "1000", "wechat", "aes", "256", "1.5"]
        );
        let ex = Example {
            id: "x".into(),
            question: "q".into(),
            answer: "基础版 ¥12/月，年付 ¥120".into(),
            line: 1,
        };
        let s = score(
            &[ex.clone(), ex],
            &["¥12 每月".to_string(), "¥12，年付 ¥120".to_string()],
        );
        assert_eq!((s.facts_found, s.facts_total), (3, 4));
        assert_eq!(s.questions_all_facts, 1);
    }
}
