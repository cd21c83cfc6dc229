//! What the gateway remembers about a completion: its id and the record stored for the
//! feedback loop (`kefu-feedback`'s [`CompletionRecord`]).
//!
//! The completion id is `chatcmpl-<x-request-id>` when the host (or the client) sent a usable
//! `x-request-id`, so logs, the response and feedback share one id; otherwise it is random.
//! The stored question is the guard's masked question and the stored answer is masked with the
//! same masker: the record never holds personal data the guard recognises.

use kefu_feedback::{CompletionRecord, ID_PREFIX, valid_request_id};
use kefu_guard::{Final, Plan, mask_pii};

/// The completion id for a request: from its `x-request-id` header when that is usable
/// ([`valid_request_id`]), else from `random_hex`.
pub fn completion_id(request_id: Option<&str>, random_hex: impl FnOnce() -> String) -> String {
    match request_id.map(str::trim) {
        Some(id) if valid_request_id(id) => format!("{ID_PREFIX}{id}"),
        _ => format!("{ID_PREFIX}{}", random_hex()),
    }
}

/// What [`completion_record`] needs besides the guard's plan and verdict.
#[derive(Debug, Clone)]
pub struct Meta<'a> {
    pub id: &'a str,
    pub created: u64,
    pub model: &'a str,
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
    pub stream: bool,
    pub finish_reason: &'a str,
    /// E-mail domains left unmasked (the guard's `pii_allow_domains`).
    pub allow_domains: &'a [String],
}

/// The record of one completion: `plan`'s masked question and `done`'s text, masked.
pub fn completion_record(meta: &Meta<'_>, plan: &Plan, done: &Final) -> CompletionRecord {
    CompletionRecord {
        id: meta.id.to_owned(),
        created: meta.created,
        model: meta.model.to_owned(),
        question: plan.masked_question.clone(),
        answer: mask_pii(&done.text, plan.lang, meta.allow_domains).text,
        action: done.action.as_str().to_owned(),
        grounded: done.grounded,
        citations: done.citations.clone(),
        prompt_tokens: meta.prompt_tokens,
        completion_tokens: meta.completion_tokens,
        stream: meta.stream,
        finish_reason: meta.finish_reason.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kefu_guard::{Guard, GuardConfig, Knowledge, Message, Role};

    #[test]
    fn id_from_request_id_or_random() {
        let random = || "00ff".to_owned();
        assert_eq!(completion_id(Some("abc-1"), random), "chatcmpl-abc-1");
        assert_eq!(completion_id(Some(" abc "), random), "chatcmpl-abc");
        assert_eq!(completion_id(Some("a b"), random), "chatcmpl-00ff");
        assert_eq!(completion_id(Some(""), random), "chatcmpl-00ff");
        assert_eq!(completion_id(None, random), "chatcmpl-00ff");
    }

    #[test]
    fn record_masks_question_and_answer() {
        let kb = Knowledge::load(
            br#"{"id":"faq-1","question":"How do I get a refund?","answer":"Refunds take 7 days."}"#,
        )
        .unwrap();
        let guard = Guard::new(&kb, GuardConfig::default());
        let plan = guard.plan(&[Message::new(
            Role::User,
            "How do I get a refund? My phone is 13812345678".to_owned(),
        )]);
        let mut done = guard.finalize(&plan, "");
        done.text = "We will call 13812345678 or mail a@b.com; hotline 400-800-1234.".into();
        let meta = Meta {
            id: "chatcmpl-1",
            created: 7,
            model: "m",
            prompt_tokens: 12,
            completion_tokens: 3,
            stream: true,
            finish_reason: "stop",
            allow_domains: &[],
        };
        let record = completion_record(&meta, &plan, &done);
        assert!(
            !record.question.contains("13812345678"),
            "{}",
            record.question
        );
        assert!(record.question.contains("[PHONE]"), "{}", record.question);
        assert!(!record.answer.contains("13812345678"), "{}", record.answer);
        assert!(!record.answer.contains("a@b.com"), "{}", record.answer);
        assert!(record.answer.contains("400-800-1234"), "{}", record.answer);
        assert_eq!(record.action, done.action.as_str());
        assert_eq!((record.prompt_tokens, record.completion_tokens), (12, 3));
        assert!(record.stream);
    }
}
