//! `POST /v1/completions` through the network: a prompt in, text out. The session, the
//! fail-over, the judging and the report are the chat's; only the body and the chunks differ, so
//! a provider's completion chunks travel inside the gateway as chat chunks (the text as the
//! delta's content) and are written back in the completion's shape for the client.

use morpheus_sdk::openai::{
    ChatCompletionChunk, ChatCompletionResponse, ChunkChoice, CompletionChoice, CompletionChunk,
    CompletionRequest, CompletionResponse, Delta, Prompt,
};

use crate::{Error, Result};

/// Tokens a tokenizer may add around a raw prompt (a begin-of-text marker, at most a few).
pub const PROMPT_MARKERS: u64 = 8;

/// Parses a `POST /v1/completions` body, naming the field that does not parse, then checks it
/// ([`validate`]).
pub fn parse(body: &[u8], max_choices: u32) -> Result<CompletionRequest> {
    let request = super::request::parse_body(body, "a completion request")?;
    validate(&request, max_choices)?;
    Ok(request)
}

/// The providers' rules (`CompletionRequest::check`: one prompt, no `echo`, no `suffix`, ...)
/// and the gateway's: at most `max_choices` choices, and no `logprobs` (a completion's
/// log-probabilities are not carried through the gateway yet). Refused naming the field.
pub fn validate(request: &CompletionRequest, max_choices: u32) -> Result<()> {
    request.check().map_err(|r| Error::BadRequest {
        message: r.message,
        param: Some(r.param),
    })?;
    let n = request.n.unwrap_or(1);
    if n > max_choices {
        return Err(Error::BadRequest {
            message: format!(
                "`n` is {n}; this gateway serves at most {max_choices} choices a request"
            ),
            param: Some("n".into()),
        });
    }
    if request.logprobs.is_some() {
        return Err(Error::BadRequest {
            message: "`logprobs` on /v1/completions is not served through the gateway (it is on \
                      /v1/chat/completions)"
                .into(),
            param: Some("logprobs".into()),
        });
    }
    Ok(())
}

/// An upper bound of the prompt's tokens: its UTF-8 bytes (no tokenizer makes a token of less
/// than a byte) or its token ids, plus [`PROMPT_MARKERS`].
pub fn prompt_bound(prompt: &Prompt) -> u64 {
    let n = match prompt {
        Prompt::Text(t) => t.len(),
        Prompt::Texts(v) => v.iter().map(String::len).sum(),
        Prompt::Tokens(ids) => ids.len(),
        Prompt::TokenLists(v) => v.iter().map(Vec::len).sum(),
    };
    (n as u64).saturating_add(PROMPT_MARKERS)
}

/// A provider's completion chunk as the gateway carries it: its text as a chat delta.
pub(crate) fn as_chat_chunk(chunk: CompletionChunk) -> ChatCompletionChunk {
    ChatCompletionChunk {
        id: chunk.id,
        object: "chat.completion.chunk".into(),
        created: chunk.created,
        model: chunk.model,
        choices: chunk
            .choices
            .into_iter()
            .map(|c| ChunkChoice {
                index: c.index,
                delta: Delta {
                    content: Some(c.text),
                    ..Delta::default()
                },
                finish_reason: c.finish_reason,
                logprobs: None,
            })
            .collect(),
        usage: chunk.usage,
    }
}

/// A carried chunk back in the completion's shape, for the client's stream.
pub(crate) fn as_completion_chunk(chunk: ChatCompletionChunk) -> CompletionChunk {
    CompletionChunk {
        id: chunk.id,
        object: "text_completion".into(),
        created: chunk.created,
        model: chunk.model,
        choices: chunk
            .choices
            .into_iter()
            .map(|c| CompletionChoice {
                text: c.delta.content.unwrap_or_default(),
                index: c.index,
                logprobs: None,
                finish_reason: c.finish_reason,
            })
            .collect(),
        usage: chunk.usage,
    }
}

/// A gathered answer back in the completion's shape, for a client that did not stream.
pub(crate) fn as_completion_response(whole: ChatCompletionResponse) -> CompletionResponse {
    CompletionResponse {
        id: whole.id,
        object: "text_completion".into(),
        created: whole.created,
        model: whole.model,
        choices: whole
            .choices
            .into_iter()
            .map(|c| CompletionChoice {
                text: c.message.content,
                index: c.index,
                logprobs: None,
                finish_reason: c.finish_reason,
            })
            .collect(),
        usage: whole.usage,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(body: &str) -> Option<String> {
        match parse(body.as_bytes(), 8) {
            Err(Error::BadRequest { param, .. }) => param,
            other => panic!("{body}: expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn what_is_not_served_is_refused_naming_the_field() {
        assert!(parse(br#"{"model":"m","prompt":"Once"}"#, 8).is_ok());
        assert_eq!(refused(r#"{"model":"m"}"#).as_deref(), Some("prompt"));
        assert_eq!(
            refused(r#"{"model":"m","prompt":"a","echo":true}"#).as_deref(),
            Some("echo")
        );
        assert_eq!(
            refused(r#"{"model":"m","prompt":"a","suffix":"b"}"#).as_deref(),
            Some("suffix")
        );
        assert_eq!(
            refused(r#"{"model":"m","prompt":"a","n":9}"#).as_deref(),
            Some("n")
        );
        assert_eq!(
            refused(r#"{"model":"m","prompt":"a","logprobs":2}"#).as_deref(),
            Some("logprobs")
        );
        assert_eq!(
            refused(r#"{"model":"m","prompt":"a","max_tokens":"x"}"#).as_deref(),
            Some("max_tokens")
        );
        assert_eq!(refused("not json"), None);
    }

    #[test]
    fn the_prompt_bound_counts_bytes_or_ids_and_the_markers() {
        assert_eq!(
            prompt_bound(&Prompt::Text("caf\u{e9}".into())),
            5 + PROMPT_MARKERS
        );
        assert_eq!(
            prompt_bound(&Prompt::Tokens(vec![1, 2, 3])),
            3 + PROMPT_MARKERS
        );
    }

    #[test]
    fn a_chunk_goes_through_the_gateway_and_back_unchanged() {
        let chunk = CompletionChunk {
            id: "cmpl-1".into(),
            object: "text_completion".into(),
            created: 7,
            model: "m".into(),
            choices: vec![CompletionChoice {
                text: " upon".into(),
                index: 1,
                logprobs: None,
                finish_reason: Some("length".into()),
            }],
            usage: None,
        };
        assert_eq!(as_completion_chunk(as_chat_chunk(chunk.clone())), chunk);
    }
}
