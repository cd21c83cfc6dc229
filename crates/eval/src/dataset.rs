//! The evaluation set: `test.jsonl` from `kefu data prepare` (one `{id, instruction, input,
//! output}` object a line), rendered into the exact prompt the model is served and trained
//! with: one user turn (the instruction, then the input when there is one) through the model's
//! own chat template, no system prompt unless asked for.

use std::path::Path;

use anyhow::{Context, Result, bail};
use kefu_data::InstructionExample;
use kefu_engine::{ChatMessage, Tokenizer};

/// One question ready to evaluate.
#[derive(Debug, Clone)]
pub struct EvalItem {
    pub id: String,
    /// The user's message.
    pub question: String,
    /// The reference answer.
    pub reference: String,
    /// The templated prompt, ending where the assistant's answer starts.
    pub prompt: String,
    /// The reference answer as the template writes the assistant turn, through its
    /// end-of-turn marker (`…<|im_end|>`): the tokens whose likelihood is measured.
    pub answer_text: String,
}

/// Reads instruction examples from a JSON Lines file (blank lines are skipped).
pub fn load_examples(path: &Path) -> Result<Vec<InstructionExample>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the evaluation set {}", path.display()))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let ex: InstructionExample = serde_json::from_str(line).with_context(|| {
            format!(
                "{} line {}: not an instruction example",
                path.display(),
                i + 1
            )
        })?;
        out.push(ex);
    }
    if out.is_empty() {
        bail!("{} holds no examples", path.display());
    }
    Ok(out)
}

/// The user message of an example.
pub fn question(ex: &InstructionExample) -> String {
    if ex.input.trim().is_empty() {
        ex.instruction.clone()
    } else {
        format!("{}\n\n{}", ex.instruction, ex.input)
    }
}

/// Renders examples with `tokenizer`'s chat template (and an optional system message).
pub fn render(
    examples: &[InstructionExample],
    tokenizer: &Tokenizer,
    system: Option<&str>,
) -> Result<Vec<EvalItem>> {
    examples
        .iter()
        .map(|ex| {
            let question = question(ex);
            let mut messages = Vec::new();
            if let Some(s) = system {
                messages.push(ChatMessage::new("system", s));
            }
            messages.push(ChatMessage::new("user", question.clone()));
            let prompt = tokenizer.apply_chat_template(&messages, true)?;
            messages.push(ChatMessage::new("assistant", ex.output.clone()));
            let full = tokenizer.apply_chat_template(&messages, false)?;
            let Some(answer) = full.strip_prefix(&prompt) else {
                bail!(
                    "example {}: the chat template renders the answer turn in a way that does not \
                     extend the prompt",
                    ex.id
                );
            };
            Ok(EvalItem {
                id: ex.id.clone(),
                question,
                reference: ex.output.clone(),
                answer_text: answer.trim_end().to_string(),
                prompt,
            })
        })
        .collect()
}
