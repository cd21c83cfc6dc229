//! Training data: reads `train.jsonl` / `test.jsonl` (kefu-data's instruction format),
//! renders each pair with kefu-data's [`render_chatml`] (the exact text the serving side
//! prompts with), tokenizes it, marks the answer tokens that carry loss, and packs batches.
//!
//! Masking: the prompt (everything up to and including `<|im_start|>assistant\n`) carries no
//! loss; the answer and its closing `<|im_end|>` do, so a trained model stops where it should.
//! The prompt and answer are tokenized separately, as the engine sees them at generation time.

use std::path::Path;

use anyhow::{Context, Result, bail};
use candle_core::{Device, Tensor};
use kefu_data::{InstructionExample, render_chatml};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use crate::tokenizer::GgufTokenizer;

/// One question/answer pair and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Example {
    pub id: String,
    pub question: String,
    pub answer: String,
    /// 1-based line in the JSONL file.
    pub line: usize,
}

/// Reads a JSONL file of [`InstructionExample`]s. Malformed lines and empty questions or
/// answers are refused with their line numbers (all of them, up to 20); blank lines are skipped.
pub fn read_examples(path: &Path) -> Result<Vec<Example>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the dataset {}", path.display()))?;
    let mut examples = Vec::new();
    let mut errors = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<InstructionExample>(line) {
            Err(e) => errors.push(format!(
                "line {n}: not an example object with id, instruction, input, output ({e})"
            )),
            Ok(ex) => {
                let question = if ex.input.trim().is_empty() {
                    ex.instruction.trim().to_string()
                } else {
                    format!("{}\n\n{}", ex.instruction.trim(), ex.input.trim())
                };
                let answer = ex.output.trim().to_string();
                if question.is_empty() {
                    errors.push(format!("line {n}: `instruction` is empty"));
                } else if answer.is_empty() {
                    errors.push(format!("line {n}: `output` is empty"));
                } else {
                    examples.push(Example {
                        id: ex.id,
                        question,
                        answer,
                        line: n,
                    });
                }
            }
        }
    }
    if !errors.is_empty() {
        let shown: Vec<&String> = errors.iter().take(20).collect();
        let more = errors.len().saturating_sub(shown.len());
        bail!(
            "{}: {} malformed line(s), nothing trained:\n  {}{}",
            path.display(),
            errors.len(),
            shown
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join("\n  "),
            if more > 0 {
                format!("\n  … and {more} more")
            } else {
                String::new()
            }
        );
    }
    if examples.is_empty() {
        bail!("{}: no examples (the file is empty)", path.display());
    }
    Ok(examples)
}

/// The serving prompt and the answer text of a pair, split from [`render_chatml`]: the prompt
/// ends with the open assistant turn, the answer is what the model must generate.
pub fn split_rendering(question: &str, answer: &str) -> Result<(String, String)> {
    let full = render_chatml(question, answer);
    let tail = format!("{answer}<|im_end|>\n");
    let prompt = full
        .strip_suffix(&tail)
        .context("kefu-data's rendering no longer ends with the answer and <|im_end|>")?;
    Ok((prompt.to_string(), answer.to_string()))
}

/// Token ids of one example and how many of them are prompt.
#[derive(Debug, Clone, PartialEq)]
pub struct Encoded {
    pub ids: Vec<u32>,
    pub n_prompt: usize,
}

impl Encoded {
    /// Tokens that carry loss (answer plus end-of-turn).
    pub fn n_answer(&self) -> usize {
        self.ids.len() - self.n_prompt
    }
}

/// Tokenized dataset with what truncation did.
#[derive(Debug, Clone)]
pub struct Dataset {
    pub examples: Vec<Example>,
    pub encoded: Vec<Encoded>,
    /// Examples cut at `max_seq_length` (their answer's tail is lost).
    pub truncated: usize,
    /// Examples whose prompt alone fills `max_seq_length` (left out).
    pub skipped: usize,
}

/// Tokenizes `examples`, cutting each at `max_len` tokens.
pub fn encode(examples: Vec<Example>, tok: &GgufTokenizer, max_len: usize) -> Result<Dataset> {
    let mut kept = Vec::new();
    let mut encoded = Vec::new();
    let (mut truncated, mut skipped) = (0, 0);
    for ex in examples {
        let (prompt, answer) = split_rendering(&ex.question, &ex.answer)?;
        let mut ids = tok.encode_prompt(&prompt)?;
        let n_prompt = ids.len();
        ids.extend(tok.encode(&answer)?);
        ids.push(tok.eot);
        if n_prompt + 1 >= max_len {
            skipped += 1;
            continue;
        }
        if ids.len() > max_len {
            ids.truncate(max_len);
            truncated += 1;
        }
        encoded.push(Encoded { ids, n_prompt });
        kept.push(ex);
    }
    Ok(Dataset {
        examples: kept,
        encoded,
        truncated,
        skipped,
    })
}

/// A padded batch: `ids` `(b, t)`, and the flat positions whose next token is an answer token
/// with those targets.
pub struct Batch {
    pub ids: Tensor,
    pub positions: Tensor,
    pub targets: Tensor,
    /// Tokens that carry loss.
    pub n_loss: usize,
    /// Real (unpadded) tokens.
    pub n_tokens: usize,
}

/// Loss positions and targets of one row starting at flat offset `base`: position `i`
/// predicts token `i + 1`, which counts only when it is an answer token.
pub fn loss_targets(e: &Encoded, base: usize) -> (Vec<u32>, Vec<u32>) {
    (e.n_prompt.saturating_sub(1)..e.ids.len() - 1)
        .map(|i| ((base + i) as u32, e.ids[i + 1]))
        .unzip()
}

/// Packs `rows` right-padded with `pad`.
pub fn make_batch(rows: &[&Encoded], pad: u32, device: &Device) -> Result<Batch> {
    let t = rows.iter().map(|e| e.ids.len()).max().unwrap_or(1);
    let mut ids = Vec::with_capacity(rows.len() * t);
    let (mut positions, mut targets) = (Vec::new(), Vec::new());
    let mut n_tokens = 0;
    for (r, e) in rows.iter().enumerate() {
        ids.extend(&e.ids);
        ids.extend(std::iter::repeat_n(pad, t - e.ids.len()));
        let (p, tg) = loss_targets(e, r * t);
        positions.extend(p);
        targets.extend(tg);
        n_tokens += e.ids.len();
    }
    let n_loss = positions.len();
    Ok(Batch {
        ids: Tensor::from_vec(ids, (rows.len(), t), device)?,
        positions: Tensor::from_vec(positions, n_loss, device)?,
        targets: Tensor::from_vec(targets, n_loss, device)?,
        n_loss,
        n_tokens,
    })
}

/// Batches of example indices: grouped by length (less padding), the groups in a seeded random
/// order per epoch (`shuffle_seed: None` keeps them sorted, for evaluation).
pub fn plan_batches(data: &[Encoded], batch: usize, shuffle_seed: Option<u64>) -> Vec<Vec<usize>> {
    let mut idx: Vec<usize> = (0..data.len()).collect();
    if let Some(seed) = shuffle_seed {
        // Shuffle first so equal lengths do not always meet in the same batch.
        idx.shuffle(&mut StdRng::seed_from_u64(seed ^ 0x5eed));
    }
    idx.sort_by_key(|&i| data[i].ids.len());
    let mut batches: Vec<Vec<usize>> = idx.chunks(batch.max(1)).map(|c| c.to_vec()).collect();
    if let Some(seed) = shuffle_seed {
        batches.shuffle(&mut StdRng::seed_from_u64(seed));
    }
    batches
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rendering_splits_at_the_answer() {
        let (p, a) = split_rendering("Q?", "A.").unwrap();
        assert_eq!(p, "<|im_start|>user\nQ?<|im_end|>\n<|im_start|>assistant\n");
        assert_eq!(a, "A.");
    }

    #[test]
    fn malformed_lines_are_refused_with_line_numbers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.jsonl");
        std::fs::write(
            &path,
            "{\"id\":\"a\",\"instruction\":\"q\",\"input\":\"\",\"output\":\"a\"}\n\
             \n\
             {not json}\n\
             {\"id\":\"b\",\"instruction\":\"q\",\"input\":\"\",\"output\":\"  \"}\n",
        )
        .unwrap();
        let e = format!("{:#}", read_examples(&path).unwrap_err());
        assert!(e.contains("2 malformed line(s)"), "{e}");
        assert!(e.contains("line 3: not an example"), "{e}");
        assert!(e.contains("line 4: `output` is empty"), "{e}");

        std::fs::write(&path, "\n\n").unwrap();
        let e = format!("{:#}", read_examples(&path).unwrap_err());
        assert!(e.contains("no examples"), "{e}");
        let e = format!("{:#}", read_examples(&dir.path().join("none")).unwrap_err());
        assert!(e.contains("cannot read the dataset"), "{e}");
    }

    #[test]
    fn loss_covers_only_answer_tokens() {
        let e = Encoded {
            ids: vec![10, 11, 12, 20, 21, 99],
            n_prompt: 3,
        };
        let (pos, tg) = loss_targets(&e, 100);
        assert_eq!(tg, vec![20, 21, 99]);
        assert_eq!(pos, vec![102, 103, 104]);
        let b = make_batch(
            &[
                &e,
                &Encoded {
                    ids: vec![1, 2, 3],
                    n_prompt: 2,
                },
            ],
            0,
            &Device::Cpu,
        )
        .unwrap();
        assert_eq!(b.ids.dims(), &[2, 6]);
        assert_eq!(b.positions.to_vec1::<u32>().unwrap(), vec![2, 3, 4, 7]);
        assert_eq!(b.targets.to_vec1::<u32>().unwrap(), vec![20, 21, 99, 3]);
        assert_eq!((b.n_loss, b.n_tokens), (4, 9));
    }

    #[test]
    fn batches_cover_every_example_once() {
        let data: Vec<Encoded> = (0..10)
            .map(|i| Encoded {
                ids: vec![0; 3 + i % 4],
                n_prompt: 1,
            })
            .collect();
        let mut seen: Vec<usize> = plan_batches(&data, 3, Some(7)).concat();
        seen.sort();
        assert_eq!(seen, (0..10).collect::<Vec<_>>());
        assert_eq!(
            plan_batches(&data, 3, Some(7)),
            plan_batches(&data, 3, Some(7))
        );
    }
}
