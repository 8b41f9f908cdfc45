//! `POST /v1/completions` through the network: a prompt in, text out. The session, the
//! fail-over, the judging and the report are the chat's; only the body and the chunks differ, so
//! a provider's completion chunks travel inside the gateway as chat chunks (the text as the
//! delta's content, the log-probabilities in the chat's shape) and are written back in the
//! completion's shape for the client (`text_offset` counted again, per choice, from the
//! completion's start).

use std::collections::HashMap;

use morpheus_sdk::openai::{
    ChatCompletionChunk, ChatCompletionResponse, ChoiceLogprobs, ChunkChoice, CompletionChoice,
    CompletionChunk, CompletionLogprobs, CompletionRequest, CompletionResponse, Delta, Prompt,
    TokenLogprob, TopLogprob,
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
/// and the gateway's: at most `max_choices` choices. Refused naming the field.
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
                logprobs: c.logprobs.map(as_chat_logprobs),
            })
            .collect(),
        usage: chunk.usage,
    }
}

/// A completion's log-probabilities in the chat's shape (the offsets are counted again on the
/// way out).
fn as_chat_logprobs(l: CompletionLogprobs) -> ChoiceLogprobs {
    ChoiceLogprobs {
        content: l
            .tokens
            .into_iter()
            .zip(l.token_logprobs)
            .zip(
                l.top_logprobs
                    .into_iter()
                    .map(Some)
                    .chain(std::iter::repeat(None)),
            )
            .map(|((token, logprob), top)| TokenLogprob {
                token,
                logprob,
                bytes: None,
                top_logprobs: top
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(token, lp)| TopLogprob {
                        token,
                        logprob: lp.as_f64().unwrap_or(f64::NEG_INFINITY) as f32,
                        bytes: None,
                    })
                    .collect(),
            })
            .collect(),
    }
}

/// Chat-shaped log-probabilities back in the completion's shape, the tokens' offsets counted
/// from `offset` (bytes into the completion's text), which is moved past them.
fn as_completion_logprobs(l: ChoiceLogprobs, offset: &mut u32) -> CompletionLogprobs {
    let mut out = CompletionLogprobs::default();
    for t in l.content {
        out.text_offset.push(*offset);
        *offset = offset.saturating_add(u32::try_from(t.token.len()).unwrap_or(u32::MAX));
        out.top_logprobs.push(
            t.top_logprobs
                .into_iter()
                .map(|top| (top.token, serde_json::json!(top.logprob)))
                .collect(),
        );
        out.tokens.push(t.token);
        out.token_logprobs.push(t.logprob);
    }
    out
}

/// Writes a stream's carried chunks back in the completion's shape, keeping each choice's
/// offset into its text from chunk to chunk.
#[derive(Debug, Default)]
pub(crate) struct CompletionChunks {
    offsets: HashMap<u32, u32>,
}

impl CompletionChunks {
    /// A carried chunk back in the completion's shape, for the client's stream.
    pub(crate) fn rewrite(&mut self, chunk: ChatCompletionChunk) -> CompletionChunk {
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
                    logprobs: c.logprobs.map(|l| {
                        as_completion_logprobs(l, self.offsets.entry(c.index).or_default())
                    }),
                    finish_reason: c.finish_reason,
                })
                .collect(),
            usage: chunk.usage,
        }
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
                logprobs: c.logprobs.map(|l| as_completion_logprobs(l, &mut 0)),
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
        assert!(parse(br#"{"model":"m","prompt":"a","logprobs":2}"#, 8).is_ok());
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

    fn logprobs(tokens: &[(&str, f32)], offset: u32) -> CompletionLogprobs {
        let mut l = CompletionLogprobs::default();
        let mut at = offset;
        for (token, lp) in tokens {
            l.tokens.push((*token).to_string());
            l.token_logprobs.push(*lp);
            l.text_offset.push(at);
            at += token.len() as u32;
            let mut top = serde_json::Map::new();
            top.insert((*token).to_string(), serde_json::json!(*lp));
            top.insert("x".into(), serde_json::json!(-9.5));
            l.top_logprobs.push(top);
        }
        l
    }

    fn chunk(text: &str, logprobs: Option<CompletionLogprobs>) -> CompletionChunk {
        CompletionChunk {
            id: "cmpl-1".into(),
            object: "text_completion".into(),
            created: 7,
            model: "m".into(),
            choices: vec![CompletionChoice {
                text: text.into(),
                index: 1,
                logprobs,
                finish_reason: Some("length".into()),
            }],
            usage: None,
        }
    }

    #[test]
    fn chunks_go_through_the_gateway_and_back_unchanged_log_probabilities_included() {
        let plain = chunk(" upon", None);
        let mut back = CompletionChunks::default();
        assert_eq!(back.rewrite(as_chat_chunk(plain.clone())), plain);

        // Two chunks of one choice: the second's offsets go on from where the first's ended.
        let mut back = CompletionChunks::default();
        let first = chunk(
            " upon a",
            Some(logprobs(&[(" upon", -0.5), (" a", -1.0)], 0)),
        );
        let second = chunk(" time", Some(logprobs(&[(" time", -0.25)], 7)));
        assert_eq!(back.rewrite(as_chat_chunk(first.clone())), first);
        assert_eq!(back.rewrite(as_chat_chunk(second.clone())), second);
    }
}
