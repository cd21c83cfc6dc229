//! `POST /v1/feedback`: parsing and validating `{"request_id", "rating", "comment"}`.
//!
//! `request_id` is the `id` of a chat completion (`chatcmpl-…`; a bare `x-request-id` is
//! accepted too), `rating` is `up` or `down`, `comment` is optional text. The comment is
//! PII-masked before it is stored, like the question and answer it refers to.

use kefu_feedback::{FeedbackRecord, Rating, completion_id_for, valid_request_id};
use kefu_guard::{mask_pii, text::detect_lang};
use serde_json::Value;

use crate::errors::ApiError;

/// Longest comment accepted, in characters.
pub const MAX_COMMENT_CHARS: usize = 4000;

/// A validated feedback request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedbackRequest {
    /// The completion id it rates.
    pub completion_id: String,
    pub rating: Rating,
    /// The comment as sent (not yet masked).
    pub comment: String,
}

impl FeedbackRequest {
    /// The record to store, with the comment masked.
    pub fn into_record(self, created: u64, allow_domains: &[String]) -> FeedbackRecord {
        let comment = if self.comment.is_empty() {
            String::new()
        } else {
            mask_pii(&self.comment, detect_lang(&self.comment), allow_domains).text
        };
        FeedbackRecord {
            request_id: self.completion_id,
            rating: self.rating,
            comment,
            created,
        }
    }
}

/// Parses a feedback body; every problem is a 400 naming the field.
pub fn parse_feedback_request(body: &[u8]) -> Result<FeedbackRequest, ApiError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::invalid_request(
            "invalid_json",
            format!("The request body is not valid JSON: {e}."),
        )
    })?;
    let Value::Object(fields) = value else {
        return Err(ApiError::invalid_request(
            "invalid_json",
            "The request body must be a JSON object.",
        ));
    };
    let string = |name: &str, required: bool| -> Result<Option<&str>, ApiError> {
        match fields.get(name) {
            None | Some(Value::Null) if !required => Ok(None),
            None | Some(Value::Null) => Err(ApiError::invalid_param(
                "missing_required_parameter",
                name,
                format!("`{name}` is required."),
            )),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(ApiError::invalid_param(
                "invalid_type",
                name,
                format!("`{name}` must be a string."),
            )),
        }
    };

    let request_id = string("request_id", true)?.unwrap_or_default();
    let completion_id = completion_id_for(request_id);
    if !valid_request_id(&completion_id) {
        return Err(ApiError::invalid_param(
            "invalid_value",
            "request_id",
            "`request_id` must be the `id` of a chat completion.",
        ));
    }
    let rating = string("rating", true)?.unwrap_or_default();
    let rating = Rating::parse(rating).ok_or_else(|| {
        ApiError::invalid_param(
            "invalid_value",
            "rating",
            "`rating` must be \"up\" or \"down\".",
        )
    })?;
    let comment = string("comment", false)?.unwrap_or_default().trim();
    if comment.chars().count() > MAX_COMMENT_CHARS {
        return Err(ApiError::invalid_param(
            "invalid_value",
            "comment",
            format!("`comment` is longer than {MAX_COMMENT_CHARS} characters."),
        ));
    }
    Ok(FeedbackRequest {
        completion_id,
        rating,
        comment: comment.to_owned(),
    })
}

/// 404 for feedback on a completion that is unknown (or past its retention window).
pub fn unknown_completion(id: &str) -> ApiError {
    let mut error = ApiError::not_found(
        "completion_not_found",
        format!("No chat completion with id `{id}` is on record."),
    );
    error.param = Some("request_id".into());
    error
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: &str) -> Result<FeedbackRequest, ApiError> {
        parse_feedback_request(body.as_bytes())
    }

    #[test]
    fn valid_requests() {
        let r =
            parse(r#"{"request_id":"chatcmpl-abc","rating":"down","comment":" wrong "}"#).unwrap();
        assert_eq!(r.completion_id, "chatcmpl-abc");
        assert_eq!(r.rating, Rating::Down);
        assert_eq!(r.comment, "wrong");
        let r = parse(r#"{"request_id":"abc","rating":"UP","comment":null}"#).unwrap();
        assert_eq!(r.completion_id, "chatcmpl-abc");
        assert_eq!((r.rating, r.comment.as_str()), (Rating::Up, ""));
    }

    #[test]
    fn invalid_requests_are_400_naming_the_field() {
        for (body, param) in [
            (r#"{"rating":"up"}"#, Some("request_id")),
            (r#"{"request_id":5,"rating":"up"}"#, Some("request_id")),
            (r#"{"request_id":"a b","rating":"up"}"#, Some("request_id")),
            (r#"{"request_id":"x"}"#, Some("rating")),
            (r#"{"request_id":"x","rating":"meh"}"#, Some("rating")),
            (
                r#"{"request_id":"x","rating":"up","comment":1}"#,
                Some("comment"),
            ),
            ("[1]", None),
            ("{", None),
        ] {
            let e = parse(body).unwrap_err();
            assert_eq!(e.status, 400, "{body}");
            assert_eq!(e.param.as_deref(), param, "{body}");
            let json: Value = serde_json::from_str(&e.to_json()).unwrap();
            assert!(json["error"]["message"].is_string());
        }
        let long = format!(
            r#"{{"request_id":"x","rating":"down","comment":"{}"}}"#,
            "a".repeat(MAX_COMMENT_CHARS + 1)
        );
        assert_eq!(parse(&long).unwrap_err().param.as_deref(), Some("comment"));
    }

    #[test]
    fn comment_is_masked_in_the_record() {
        let r = parse(r#"{"request_id":"x","rating":"down","comment":"call me at 13812345678"}"#)
            .unwrap();
        let record = r.into_record(5, &[]);
        assert!(
            !record.comment.contains("13812345678"),
            "{}",
            record.comment
        );
        assert_eq!(record.request_id, "chatcmpl-x");
        assert_eq!(record.created, 5);
        assert_eq!(unknown_completion("chatcmpl-x").status, 404);
    }
}
