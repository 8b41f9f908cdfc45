//! What chat and text completions share: a request's sampling fields turned into the engine's
//! (shaping, constraint, log-probabilities), its `n` choices sampled as separate sequences of the
//! batch, the answer collected whole or streamed as server-sent events, and the reservation
//! settled for the tokens that went out (the prompt once, every choice's completion).

use std::{convert::Infallible, pin::Pin, sync::Arc, time::SystemTime};

use axum::{
    body::Bytes,
    extract::rejection::BytesRejection,
    response::sse::{Event as SseEvent, KeepAlive, Sse},
};
use futures::{Stream, StreamExt, stream};
use morpheus_sdk::openai::{ChoiceLogprobs, Refusal, ResponseFormat, TokenLogprob, TopLogprob};
/// The events of a request's choices, each with its choice's index.
pub(super) type Events = Pin<Box<dyn Stream<Item = (u32, Event)> + Send>>;

use super::{ApiError, AppState, auth::Reservation};
use crate::engine::{
    self, Completion, Event, Shaping,
    constrain::{self, Grammar, Vocab},
};

/// The request body as `T` (`what` names it in the refusal): a body axum could not read (too
/// large: 413) or JSON that is not a `T` is refused in OpenAI's body.
pub(super) fn parse_body<T: serde::de::DeserializeOwned>(
    body: Result<Bytes, BytesRejection>,
    what: &str,
) -> Result<T, ApiError> {
    let body = body.map_err(|e| {
        ApiError::new(
            e.status(),
            "invalid_request_error",
            "invalid_body",
            e.body_text(),
        )
    })?;
    serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request("invalid_json", format!("not a {what}: {e}")))
}

/// Each chunk as an event's data.
pub(super) fn to_data<T: serde::Serialize>(chunks: &[T]) -> Vec<String> {
    chunks
        .iter()
        .map(|c| serde_json::to_string(c).unwrap_or_default())
        .collect()
}

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
#[derive(Clone)]
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

/// Counts of all choices together: the prompt once, the completions summed.
pub(super) fn total(done: &[Completion]) -> Completion {
    let mut t = done[0];
    t.completion_tokens = done.iter().map(|c| c.completion_tokens).sum();
    t
}

/// Collects every choice. Dropped mid-way (the client went away), the reservation settles for
/// the tokens generated so far.
pub(super) async fn collect(
    mut events: Events,
    n: usize,
    mut reservation: Reservation,
) -> Result<Vec<Whole>, ApiError> {
    let mut texts = vec![(String::new(), Vec::new()); n];
    let mut done: Vec<Option<Completion>> = vec![None; n];
    while let Some((i, ev)) = events.next().await {
        let i = i as usize;
        match ev {
            Event::Text {
                text: t,
                tokens,
                logprobs: l,
            } => {
                reservation.delivered(tokens);
                texts[i].0.push_str(&t);
                texts[i].1.extend(l);
            }
            Event::Done(d) => {
                done[i] = Some(d);
                if done.iter().all(Option::is_some) {
                    let done: Vec<Completion> = done.into_iter().flatten().collect();
                    let t = total(&done);
                    reservation.finished(t.prompt_tokens, t.completion_tokens);
                    return Ok(texts
                        .into_iter()
                        .zip(done)
                        .map(|((text, logprobs), done)| Whole {
                            text,
                            logprobs,
                            done,
                        })
                        .collect());
                }
            }
            Event::Failed(_) => break,
        }
    }
    Err(ApiError::internal())
}

/// What a stream's events are made from.
pub(super) enum Item<'a> {
    /// Before the first token (once for each choice).
    Start(u32),
    /// New text of a choice and its tokens' log-probabilities.
    Text(u32, String, &'a [engine::TokenLogprob]),
    /// A choice ended.
    Done(u32, &'a Completion),
    /// Every choice ended: their counts together.
    End(&'a Completion),
}

/// SSE: what `render` makes of the start, each piece of text and the end, then `[DONE]`; an
/// error event if inference fails. Dropping the stream (client gone) drops the event receiver,
/// which cancels the sequence, and the reservation, which settles for the tokens sent.
pub(super) fn stream<R>(
    events: Events,
    n: usize,
    reservation: Reservation,
    render: R,
) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>>
where
    R: Fn(Item<'_>) -> Vec<String> + Send + Sync + 'static,
{
    let render = Arc::new(render);
    let first: Vec<SseEvent> = (0..n as u32)
        .flat_map(|i| render(Item::Start(i)))
        .map(data)
        .collect();
    let done: Vec<Option<Completion>> = vec![None; n];
    let body = stream::unfold(
        Some((reservation, events, render, done)),
        move |st| async move {
            let (mut reservation, mut events, render, mut done) = st?;
            match events.next().await {
                Some((
                    i,
                    Event::Text {
                        text,
                        tokens,
                        logprobs,
                    },
                )) => {
                    reservation.delivered(tokens);
                    let out = render(Item::Text(i, text, &logprobs));
                    Some((out, Some((reservation, events, render, done))))
                }
                Some((i, Event::Done(c))) => {
                    let mut out = render(Item::Done(i, &c));
                    done[i as usize] = Some(c);
                    if !done.iter().all(Option::is_some) {
                        return Some((out, Some((reservation, events, render, done))));
                    }
                    let t = total(&done.into_iter().flatten().collect::<Vec<_>>());
                    reservation.finished(t.prompt_tokens, t.completion_tokens);
                    out.extend(render(Item::End(&t)));
                    out.push("[DONE]".into());
                    Some((out, None))
                }
                Some((_, Event::Failed(_))) | None => {
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
            let name = state.0.model.tokenizer.piece(id).unwrap_or_default();
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

/// Reserves room for `n` answers to a prompt of `prompt` tokens: what the client asked for
/// (`requested`, else all the context leaves) for each, within the context and the assignment's
/// budget (the prompt counted once). Returns each answer's most tokens.
pub(super) fn reserve(
    state: &AppState,
    grant: &super::auth::Grant,
    prompt: usize,
    requested: Option<u32>,
    n: usize,
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
    let (reservation, granted) = state
        .0
        .auth
        .reserve(grant, prompt as u64, want * n as u64)?;
    let each = granted / n as u32;
    if each == 0 {
        return Err(ApiError::forbidden(
            "token_max_exceeded",
            format!(
                "the session has room for {granted} more tokens, fewer than one per choice of {n}"
            ),
        ));
    }
    Ok((reservation, each))
}

/// Queues `n` sequences of `request` (choice `i` sampled with seed `seed + i`); a refusal
/// drops the ones queued (cancelled) and the reservation, which gives its tokens back.
pub(super) fn submit(
    state: &AppState,
    request: engine::GenerateRequest,
    n: usize,
) -> Result<Events, ApiError> {
    let mut streams = Vec::with_capacity(n);
    for i in 0..n {
        let mut r = request.clone();
        r.sampling.seed = r.sampling.seed.wrapping_add(i as u64);
        let rx = state.0.engine.submit(r).map_err(|e| {
            state.0.metrics.request_finished("refused");
            ApiError::from(e)
        })?;
        let index = i as u32;
        streams.push(Box::pin(stream::unfold(rx, move |mut rx| async move {
            rx.recv().await.map(|e| ((index, e), rx))
        })));
    }
    Ok(Box::pin(stream::select_all(streams)))
}

/// `n` as asked (1 when absent), at most the engine's batch: the choices are sequences of one
/// batch.
pub(super) fn choices(state: &AppState, n: Option<u32>) -> Result<usize, ApiError> {
    let n = n.unwrap_or(1) as usize;
    let most = state.0.engine.info().max_batch;
    if n == 0 || n > most {
        return Err(ApiError::bad_request(
            "unsupported_n",
            format!("`n` must be between 1 and {most} (this provider's batch)"),
        )
        .with_param("n"));
    }
    Ok(n)
}
