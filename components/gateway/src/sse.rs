//! Server-Sent Events framing of a streamed chat completion.
//!
//! Order on the wire: one chunk with `delta.role`, any number of content chunks, one final
//! chunk with `finish_reason` and the `kefu` object (and `usage` when the client asked for it
//! with `stream_options.include_usage`), then `data: [DONE]`. A failure after the stream has
//! started is sent as one `data: {"error": ..}` event and the stream ends without `[DONE]`.
//! A reply known before the response starts (no model call, or a buffered generation) is the
//! same sequence with exactly one content chunk ([`ChunkWriter::whole`]).

use crate::api::{ChatCompletionChunk, ChunkChoice, Delta, KefuMeta, Usage};
use crate::errors::ApiError;

/// The `Content-Type` of a stream.
pub const CONTENT_TYPE: &str = "text/event-stream";

/// The terminating event.
pub const DONE: &[u8] = b"data: [DONE]\n\n";

/// One `data:` event. JSON never contains a raw newline, so one line always suffices.
pub fn event(json: &str) -> Vec<u8> {
    debug_assert!(!json.contains('\n'));
    let mut out = Vec::with_capacity(json.len() + 8);
    out.extend_from_slice(b"data: ");
    out.extend_from_slice(json.as_bytes());
    out.extend_from_slice(b"\n\n");
    out
}

/// Builds the chunk events of one completion; every chunk shares id, created and model.
#[derive(Debug, Clone)]
pub struct ChunkWriter {
    pub id: String,
    pub created: u64,
    pub model: String,
}

impl ChunkWriter {
    fn chunk(&self, delta: Delta, finish_reason: Option<String>) -> ChatCompletionChunk {
        ChatCompletionChunk {
            id: self.id.clone(),
            object: "chat.completion.chunk",
            created: self.created,
            model: self.model.clone(),
            choices: vec![ChunkChoice {
                index: 0,
                delta,
                finish_reason,
                logprobs: None,
            }],
            usage: None,
            kefu: None,
        }
    }

    fn encode(chunk: &ChatCompletionChunk) -> Vec<u8> {
        event(&serde_json::to_string(chunk).expect("chunk serialises"))
    }

    /// The opening chunk: `delta: {"role": "assistant", "content": ""}`.
    pub fn role(&self) -> Vec<u8> {
        Self::encode(&self.chunk(
            Delta {
                role: Some("assistant"),
                content: Some(String::new()),
            },
            None,
        ))
    }

    /// A content chunk.
    pub fn content(&self, text: &str) -> Vec<u8> {
        Self::encode(&self.chunk(
            Delta {
                role: None,
                content: Some(text.to_owned()),
            },
            None,
        ))
    }

    /// The final chunk: empty delta, `finish_reason`, `kefu`, and `usage` if requested.
    pub fn finish(&self, finish_reason: &str, kefu: KefuMeta, usage: Option<Usage>) -> Vec<u8> {
        let mut chunk = self.chunk(Delta::default(), Some(finish_reason.to_owned()));
        chunk.usage = usage;
        chunk.kefu = Some(kefu);
        Self::encode(&chunk)
    }
}

impl ChunkWriter {
    /// A complete stream for a text known up front: role chunk, one content chunk (none when
    /// `text` is empty), the final chunk, `[DONE]`.
    pub fn whole(
        &self,
        text: &str,
        finish_reason: &str,
        kefu: KefuMeta,
        usage: Option<Usage>,
    ) -> Vec<u8> {
        let mut out = self.role();
        if !text.is_empty() {
            out.extend(self.content(text));
        }
        out.extend(self.finish(finish_reason, kefu, usage));
        out.extend_from_slice(DONE);
        out
    }
}

/// An error event for a failure after the stream started.
pub fn error(error: &ApiError) -> Vec<u8> {
    event(&error.to_json())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn writer() -> ChunkWriter {
        ChunkWriter {
            id: "chatcmpl-x".into(),
            created: 7,
            model: "m".into(),
        }
    }

    fn payload(bytes: &[u8]) -> Value {
        let s = std::str::from_utf8(bytes).unwrap();
        let json = s
            .strip_prefix("data: ")
            .unwrap()
            .strip_suffix("\n\n")
            .unwrap();
        assert!(!json.contains('\n'));
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn framing() {
        assert_eq!(event("{}"), b"data: {}\n\n");
        assert_eq!(DONE, b"data: [DONE]\n\n");
    }

    #[test]
    fn role_then_content_then_finish() {
        let w = writer();
        assert_eq!(
            payload(&w.role()),
            json!({"id": "chatcmpl-x", "object": "chat.completion.chunk", "created": 7,
                   "model": "m", "choices": [{"index": 0,
                   "delta": {"role": "assistant", "content": ""},
                   "finish_reason": null, "logprobs": null}]})
        );
        let c = payload(&w.content("line1\nline2 \"q\""));
        assert_eq!(
            c["choices"][0]["delta"],
            json!({"content": "line1\nline2 \"q\""})
        );
        assert!(c.get("kefu").is_none() && c.get("usage").is_none());

        let f = payload(&w.finish("stop", meta(), None));
        assert_eq!(f["choices"][0]["delta"], json!({}));
        assert_eq!(f["choices"][0]["finish_reason"], "stop");
        assert_eq!(
            f["kefu"],
            json!({"action": "refuse", "grounded": false, "citations": [], "replaced": false})
        );
        assert!(f.get("usage").is_none());

        let f = payload(&w.finish("length", meta(), Some(Usage::new(5, 2, 0))));
        assert_eq!(f["usage"]["total_tokens"], 7);
    }

    fn meta() -> KefuMeta {
        KefuMeta {
            action: "refuse",
            grounded: false,
            citations: Vec::new(),
            replaced: false,
        }
    }

    /// Splits a byte stream into its events' JSON payloads (`[DONE]` as a string).
    fn events(bytes: &[u8]) -> Vec<Value> {
        let s = std::str::from_utf8(bytes).unwrap();
        assert!(s.ends_with("\n\n"));
        s.split_terminator("\n\n")
            .map(|e| {
                let data = e.strip_prefix("data: ").unwrap();
                serde_json::from_str(data).unwrap_or_else(|_| Value::String(data.into()))
            })
            .collect()
    }

    #[test]
    fn whole_reply_is_one_content_chunk_then_the_verdict() {
        let w = writer();
        let kefu = KefuMeta {
            action: "handoff",
            grounded: true,
            citations: vec!["human-1".into()],
            replaced: false,
        };
        let e = events(&w.whole(
            "Call 400-820-1234.",
            "stop",
            kefu,
            Some(Usage::new(0, 0, 0)),
        ));
        assert_eq!(e.len(), 4, "{e:?}");
        assert_eq!(e[0]["choices"][0]["delta"]["role"], "assistant");
        assert_eq!(
            e[1]["choices"][0]["delta"],
            json!({"content": "Call 400-820-1234."})
        );
        assert!(e[1].get("kefu").is_none());
        assert_eq!(e[2]["choices"][0]["finish_reason"], "stop");
        assert_eq!(
            e[2]["kefu"],
            json!({"action": "handoff", "grounded": true, "citations": ["human-1"],
                   "replaced": false})
        );
        assert_eq!(e[2]["usage"]["total_tokens"], 0);
        assert_eq!(e[3], "[DONE]");
        // All chunks of one completion share id, created and model.
        for chunk in &e[..3] {
            assert_eq!(
                (&chunk["id"], &chunk["created"], &chunk["model"]),
                (&json!("chatcmpl-x"), &json!(7), &json!("m"))
            );
        }
        let e = events(&w.whole("", "stop", meta(), None));
        assert_eq!(e.len(), 3, "no empty content chunk");
        assert!(e[1].get("usage").is_none());
    }

    #[test]
    fn error_event() {
        let e = ApiError::overloaded("busy");
        let v = payload(&error(&e));
        assert_eq!(v["error"]["code"], "server_overloaded");
    }
}
