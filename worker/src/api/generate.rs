//! What chat and text completions share: a request's sampling fields turned into the engine's
//! (shaping, constraint, log-probabilities), the answer collected whole or streamed as
//! server-sent events, and the reservation settled for the tokens that went out.

use std::{convert::Infallible, sync::Arc, time::SystemTime};

use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures::{Stream, StreamExt, stream};
use morpheus_sdk::openai::{ChoiceLogprobs, Refusal, ResponseFormat, TokenLogprob, TopLogprob};
use tokio::sync::mpsc::UnboundedReceiver;

use super::{ApiError, AppState, auth::Reservation};
use crate::engine::{
    self, Completion, Event, Shaping,
    constrain::{self, Grammar, Vocab},
};

/// A refusal of the shared rules, in OpenAI's body.
pub(super) fn refused(r: Refusal) -> ApiError {
    ApiError::bad_request(r.code, r.message).with_param(r.param)
}

/// `logit_bias` and the penalties, with each token id checked against the vocabulary.
pub(super) fn shaping(
    state: &AppState,
    bias: Vec<(u32, f32)>,
    presence: Option<f32>,
    frequency: Option<f32>,
) -> Result<Shaping, ApiError> {
    let size = state.0.engine.vocab().len();
    if let Some((id, _)) = bias.iter().find(|(id, _)| *id as usize >= size) {
        return Err(ApiError::bad_request(
            "invalid_logit_bias",
            format!("`logit_bias` names token {id}, outside this model's vocabulary of {size}"),
        )
        .with_param("logit_bias"));
    }
    Ok(Shaping {
        logit_bias: bias,
        presence_penalty: presence.unwrap_or(0.0),
        frequency_penalty: frequency.unwrap_or(0.0),
    })
}

/// The grammar a `response_format` asks for (none for text). Compiling a schema is quick, but
/// runs where the caller runs it (off the async runtime, with the prompt's tokenising).
pub(super) fn grammar(format: &ResponseFormat) -> Result<Option<Arc<Grammar>>, ApiError> {
    Ok(match format {
        ResponseFormat::Text => None,
        ResponseFormat::JsonObject => Some(Arc::new(Grammar::json_object())),
        ResponseFormat::JsonSchema { schema, .. } => {
            let g = constrain::compile(schema).map_err(|e| {
                let mut param = "response_format.json_schema.schema".to_string();
                if !e.path.is_empty() {
                    param = format!("{param}.{}", e.path);
                }
                ApiError::bad_request("unsupported_schema", format!("the JSON schema {e}"))
                    .with_param(param)
            })?;
            Some(Arc::new(g))
        }
    })
}

/// Identity of one answer.
pub(super) struct Meta {
    pub(super) id: String,
    pub(super) created: u64,
    pub(super) model: String,
}

impl Meta {
    pub(super) fn new(prefix: &str, model: &str) -> Self {
        Self {
            id: completion_id(prefix),
            created: unix_now(),
            model: model.to_string(),
        }
    }
}

/// A whole answer.
pub(super) struct Whole {
    pub(super) text: String,
    pub(super) logprobs: Vec<engine::TokenLogprob>,
    pub(super) done: Completion,
}

/// Collects the answer. Dropped mid-way (the client went away), the reservation settles for
/// the tokens generated so far.
pub(super) async fn collect(
    mut events: UnboundedReceiver<Event>,
    mut reservation: Reservation,
) -> Result<Whole, ApiError> {
    let mut text = String::new();
    let mut logprobs = Vec::new();
    while let Some(ev) = events.recv().await {
        match ev {
            Event::Text {
                text: t,
                tokens,
                logprobs: l,
            } => {
                reservation.delivered(tokens);
                text.push_str(&t);
                logprobs.extend(l);
            }
            Event::Done(done) => {
                reservation.finished(done.prompt_tokens, done.completion_tokens);
                return Ok(Whole {
                    text,
                    logprobs,
                    done,
                });
            }
            Event::Failed(_) => break,
        }
    }
    Err(ApiError::internal())
}

/// What a stream's events are made from.
pub(super) enum Item<'a> {
    /// Before the first token.
    Start,
    /// New text and its tokens' log-probabilities.
    Text(String, &'a [engine::TokenLogprob]),
    /// The end.
    Done(&'a Completion),
}

/// SSE: what `render` makes of the start, each piece of text and the end, then `[DONE]`; an
/// error event if inference fails. Dropping the stream (client gone) drops the event receiver,
/// which cancels the sequence, and the reservation, which settles for the tokens sent.
pub(super) fn stream<R>(
    events: UnboundedReceiver<Event>,
    reservation: Reservation,
    render: R,
) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>>
where
    R: Fn(Item<'_>) -> Vec<String> + Send + Sync + 'static,
{
    let render = Arc::new(render);
    let first: Vec<SseEvent> = render(Item::Start).into_iter().map(data).collect();
    let body = stream::unfold(
        Some((reservation, events, render)),
        move |st| async move {
            let (mut reservation, mut events, render) = st?;
            match events.recv().await {
                Some(Event::Text {
                    text,
                    tokens,
                    logprobs,
                }) => {
                    reservation.delivered(tokens);
                    let out = render(Item::Text(text, &logprobs));
                    Some((out, Some((reservation, events, render))))
                }
                Some(Event::Done(c)) => {
                    reservation.finished(c.prompt_tokens, c.completion_tokens);
                    let mut out = render(Item::Done(&c));
                    out.push("[DONE]".into());
                    Some((out, None))
                }
                Some(Event::Failed(_)) | None => {
                    let err = serde_json::json!({"error": {"message": "inference failed", "type": "server_error", "code": "internal_error"}});
                    Some((vec![err.to_string()], None))
                }
            }
        },
    )
    .flat_map(|evs| stream::iter(evs.into_iter().map(|d| Ok(data(d)))));
    Sse::new(stream::iter(first.into_iter().map(Ok)).chain(body)).keep_alive(KeepAlive::default())
}

fn data(d: String) -> SseEvent {
    SseEvent::default().data(d)
}

/// A token's text and bytes as OpenAI shows them (a special token by its name).
pub(super) fn token_piece(state: &AppState, vocab: &Vocab, id: u32) -> (String, Vec<u8>) {
    match vocab.bytes(id) {
        Some(b) => (String::from_utf8_lossy(b).into_owned(), b.to_vec()),
        None => {
            let name = state.0.model.tokenizer.id_to_token(id).unwrap_or_default();
            let bytes = name.as_bytes().to_vec();
            (name, bytes)
        }
    }
}

/// Chat's `logprobs.content` for these tokens.
pub(super) fn chat_logprobs(state: &AppState, tokens: &[engine::TokenLogprob]) -> ChoiceLogprobs {
    let vocab = state.0.engine.vocab();
    ChoiceLogprobs {
        content: tokens
            .iter()
            .map(|t| {
                let (token, bytes) = token_piece(state, vocab, t.token);
                TokenLogprob {
                    token,
                    logprob: t.logprob,
                    bytes: Some(bytes),
                    top_logprobs: t
                        .top
                        .iter()
                        .map(|&(id, logprob)| {
                            let (token, bytes) = token_piece(state, vocab, id);
                            TopLogprob {
                                token,
                                logprob,
                                bytes: Some(bytes),
                            }
                        })
                        .collect(),
                }
            })
            .collect(),
    }
}

pub(super) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

pub(super) fn random_seed() -> u64 {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    nanos ^ (std::process::id() as u64).rotate_left(32)
}

fn completion_id(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    format!(
        "{prefix}-{:x}{:06x}",
        random_seed() & 0xffff_ffff_ffff,
        COUNTER.fetch_add(1, Ordering::Relaxed) & 0xff_ffff
    )
}

/// Reserves room for the answer to a prompt of `prompt` tokens: what the client asked for
/// (`requested`, else all the context leaves), within the context and the assignment's budget.
pub(super) fn reserve(
    state: &AppState,
    grant: &super::auth::Grant,
    prompt: usize,
    requested: Option<u32>,
) -> Result<(Reservation, u32), ApiError> {
    let context = state.0.engine.info().max_context;
    if prompt >= context {
        return Err(ApiError::bad_request(
            "context_length_exceeded",
            format!(
                "the prompt has {prompt} tokens; this model takes at most {context} (prompt + completion)"
            ),
        ));
    }
    let room = (context - prompt) as u64;
    let want = requested.map_or(room, |m| u64::from(m).min(room));
    state.0.auth.reserve(grant, prompt as u64, want)
}

/// Queues `request`; a refusal drops the reservation, which gives its tokens back.
pub(super) fn submit(
    state: &AppState,
    request: engine::GenerateRequest,
) -> Result<UnboundedReceiver<Event>, ApiError> {
    state.0.engine.submit(request).map_err(|e| {
        state.0.metrics.request_finished("refused");
        e.into()
    })
}
