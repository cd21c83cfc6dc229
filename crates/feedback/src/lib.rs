//! The records kefu keeps about its conversations, and the offline views over them.
//!
//! Owns the one definition of what the gateway component stores in its key-value store
//! (`default`) and what the host's offline commands read back from the SQLite file:
//!
//! - `completion:<id>` → [`CompletionRecord`]: one chat completion, question and answer
//!   PII-masked, with the guard's action, citations and token counts;
//! - `feedback:<id>` → [`FeedbackRecord`]: a client's thumbs up or down on that completion.
//!
//! `<id>` is the completion's `id` (`chatcmpl-…`). The [`export`] module turns thumbs-down
//! cases into instruction JSONL for review and the next fine-tune; [`lengths`] collects token
//! counts for request-length statistics.
//!
//! Not here: storage (the host's `kefu_runtime::kv`), masking (`kefu-guard`), HTTP.

use serde::{Deserialize, Serialize};

pub mod export;
pub mod lengths;

/// Key-value store the gateway writes its records to.
pub const STORE: &str = "default";
/// Key prefix of completion records.
pub const COMPLETION_PREFIX: &str = "completion:";
/// Key prefix of feedback records.
pub const FEEDBACK_PREFIX: &str = "feedback:";
/// Prefix of every completion id.
pub const ID_PREFIX: &str = "chatcmpl-";

/// The key of completion `id`'s record.
pub fn completion_key(id: &str) -> String {
    format!("{COMPLETION_PREFIX}{id}")
}

/// The key of the feedback on completion `id`.
pub fn feedback_key(id: &str) -> String {
    format!("{FEEDBACK_PREFIX}{id}")
}

/// One chat completion as stored. Texts are PII-masked before they are stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompletionRecord {
    /// The completion's `id` (`chatcmpl-…`).
    pub id: String,
    /// Unix seconds.
    pub created: u64,
    pub model: String,
    /// The last user message, masked.
    pub question: String,
    /// The text sent to the client, masked.
    pub answer: String,
    /// `answer`, `refuse` or `handoff`.
    pub action: String,
    pub grounded: bool,
    /// FAQ ids behind the answer.
    #[serde(default)]
    pub citations: Vec<String>,
    /// Prompt tokens the model read (0 when no model call was needed).
    pub prompt_tokens: u32,
    /// Tokens the model generated (0 when no model call was needed).
    pub completion_tokens: u32,
    #[serde(default)]
    pub stream: bool,
    #[serde(default)]
    pub finish_reason: String,
}

impl CompletionRecord {
    /// Whether the model was called for this completion.
    pub fn used_model(&self) -> bool {
        self.prompt_tokens > 0
    }
}

/// Thumbs up or down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Rating {
    Up,
    Down,
}

impl Rating {
    /// `up` or `down` (case-insensitive), as clients send it.
    pub fn parse(s: &str) -> Option<Rating> {
        match s.trim().to_ascii_lowercase().as_str() {
            "up" => Some(Rating::Up),
            "down" => Some(Rating::Down),
            _ => None,
        }
    }
}

/// A client's feedback on one completion; a later one replaces it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeedbackRecord {
    /// The completion's `id`.
    pub request_id: String,
    pub rating: Rating,
    /// The client's comment, masked; empty when none.
    #[serde(default)]
    pub comment: String,
    /// Unix seconds.
    pub created: u64,
}

/// The completion id a client's `request_id` names: ids are used as given when they carry
/// [`ID_PREFIX`], otherwise the prefix is added (a client may send its own `x-request-id`).
pub fn completion_id_for(request_id: &str) -> String {
    let id = request_id.trim();
    if id.starts_with(ID_PREFIX) {
        id.to_owned()
    } else {
        format!("{ID_PREFIX}{id}")
    }
}

/// Whether `id` (an `x-request-id` value) can become part of a completion id and a key:
/// 1 to 128 characters from `A-Z a-z 0-9 - _ . :`.
pub fn valid_request_id(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_ids() {
        assert_eq!(completion_key("chatcmpl-1"), "completion:chatcmpl-1");
        assert_eq!(feedback_key("chatcmpl-1"), "feedback:chatcmpl-1");
        assert_eq!(completion_id_for("abc"), "chatcmpl-abc");
        assert_eq!(completion_id_for(" chatcmpl-abc "), "chatcmpl-abc");
        assert!(valid_request_id("0b8e6c1a-4f2d-4e9b-9a7e-1c2d3e4f5a6b"));
        assert!(!valid_request_id(""));
        assert!(!valid_request_id("a b"));
        assert!(!valid_request_id("x\n"));
        assert!(!valid_request_id(&"a".repeat(129)));
    }

    #[test]
    fn records_round_trip() {
        let record = CompletionRecord {
            id: "chatcmpl-1".into(),
            created: 1,
            model: "m".into(),
            question: "我的手机号是[电话]".into(),
            answer: "a".into(),
            action: "answer".into(),
            grounded: true,
            citations: vec!["faq-1".into()],
            prompt_tokens: 10,
            completion_tokens: 5,
            stream: false,
            finish_reason: "stop".into(),
        };
        let json = serde_json::to_vec(&record).unwrap();
        assert_eq!(
            serde_json::from_slice::<CompletionRecord>(&json).unwrap(),
            record
        );
        let feedback: FeedbackRecord =
            serde_json::from_str(r#"{"request_id":"chatcmpl-1","rating":"down","created":2}"#)
                .unwrap();
        assert_eq!(feedback.rating, Rating::Down);
        assert_eq!(feedback.comment, "");
        assert_eq!(Rating::parse(" Up"), Some(Rating::Up));
        assert_eq!(Rating::parse("meh"), None);
    }
}
