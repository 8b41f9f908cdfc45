//! `POST /v1/chat/completions`, streamed (server-sent events) or not.

use std::{convert::Infallible, time::SystemTime};

use axum::{
    Json,
    body::Bytes,
    extract::{State, rejection::BytesRejection},
    http::HeaderMap,
    response::{
        IntoResponse, Response,
        sse::{Event as SseEvent, KeepAlive, Sse},
    },
};
use futures::{Stream, StreamExt, stream};
use morpheus_sdk::openai::{
    ChatCompletionChunk, ChatCompletionRequest, ChatCompletionResponse, ChatMessage, Choice,
    ChunkChoice, Delta, Usage,
};
use tokio::sync::mpsc::UnboundedReceiver;
use tracing::{debug, info};

use super::{ApiError, AppState, auth::Reservation};
use crate::engine::{Completion, Event, GenerateRequest, Sampling};

pub(super) async fn completions(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let s = &state.0;
    let grant = s.auth.authorize(&headers)?;
    let body = body.map_err(|e| {
        ApiError::new(
            e.status(),
            "invalid_request_error",
            "invalid_body",
            e.body_text(),
        )
    })?;
    let req: ChatCompletionRequest = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(
            "invalid_json",
            format!("not a chat completion request: {e}"),
        )
    })?;
    validate(&req)?;

    // Rendering and tokenising a prompt of up to a megabyte takes milliseconds of CPU: off the
    // async runtime's threads, so other connections keep being served meanwhile.
    let (model, messages) = (s.model.clone(), req.messages.clone());
    let prompt = tokio::task::spawn_blocking(move || {
        let text = model
            .chat
            .render(&messages)
            .map_err(|e| ApiError::bad_request("invalid_messages", e.to_string()))?;
        model.encode(&text).map_err(ApiError::from)
    })
    .await
    .map_err(|_| ApiError::internal())??;
    let context = s.engine.info().max_context;
    if prompt.len() >= context {
        return Err(ApiError::bad_request(
            "context_length_exceeded",
            format!(
                "the prompt has {} tokens; this model takes at most {context} (prompt + completion)",
                prompt.len()
            ),
        ));
    }
    let room = (context - prompt.len()) as u64;
    let want = req
        .requested_max_tokens()
        .map_or(room, |m| u64::from(m).min(room));
    let (reservation, max_new) = s.auth.reserve(&grant, prompt.len() as u64, want)?;

    let sampling = Sampling {
        temperature: req.temperature.unwrap_or(1.0),
        top_p: req.top_p.unwrap_or(1.0),
        seed: req.seed.unwrap_or_else(random_seed),
    };
    let request = GenerateRequest {
        prompt,
        max_new_tokens: max_new,
        sampling,
        stop: req.stop.clone().map(|s| s.into_vec()).unwrap_or_default(),
        ignore_eos: false,
    };
    let prompt_tokens = request.prompt.len();
    // A refusal drops the reservation, which gives its tokens back.
    let events = match s.engine.submit(request) {
        Ok(rx) => rx,
        Err(e) => {
            s.metrics.request_finished("refused");
            return Err(e.into());
        }
    };
    info!(target: "worker::api", session = %grant.session, prompt_tokens, max_new, stream = req.stream, "chat request accepted");
    let meta = Meta {
        id: completion_id(),
        created: unix_now(),
        model: s.model.meta.name.clone(),
    };
    if req.stream {
        let usage = req.stream_options.as_ref().is_some_and(|o| o.include_usage);
        Ok(stream_response(meta, events, reservation, usage).into_response())
    } else {
        whole_response(meta, events, reservation)
            .await
            .map(|r| Json(r).into_response())
    }
}

/// The rules a request is held to (`ChatCompletionRequest::check`, the same the gateway
/// applies), refused in OpenAI's body naming the field.
fn validate(req: &ChatCompletionRequest) -> Result<(), ApiError> {
    req.check()
        .map_err(|r| ApiError::bad_request(r.code, r.message).with_param(r.param))
}

struct Meta {
    id: String,
    created: u64,
    model: String,
}

fn usage(c: &Completion) -> Usage {
    Usage {
        prompt_tokens: c.prompt_tokens,
        completion_tokens: c.completion_tokens,
        total_tokens: c.prompt_tokens + c.completion_tokens,
    }
}

/// The whole answer at once. Dropped mid-way (the client went away), the reservation settles
/// for the tokens generated so far.
async fn whole_response(
    meta: Meta,
    mut events: UnboundedReceiver<Event>,
    mut reservation: Reservation,
) -> Result<ChatCompletionResponse, ApiError> {
    let mut text = String::new();
    while let Some(ev) = events.recv().await {
        match ev {
            Event::Text { text: t, tokens } => {
                reservation.delivered(tokens);
                text.push_str(&t);
            }
            Event::Done(c) => {
                reservation.finished(c.prompt_tokens, c.completion_tokens);
                debug!(target: "worker::api", id = %meta.id, tokens = c.completion_tokens, ttft_ms = c.ttft.as_millis() as u64, "completed");
                return Ok(ChatCompletionResponse {
                    id: meta.id,
                    object: "chat.completion".into(),
                    created: meta.created,
                    model: meta.model,
                    choices: vec![Choice {
                        index: 0,
                        message: ChatMessage {
                            role: "assistant".into(),
                            content: text,
                        },
                        finish_reason: Some(c.finish.as_str().into()),
                    }],
                    usage: usage(&c),
                });
            }
            Event::Failed(_) => break,
        }
    }
    Err(ApiError::internal())
}

fn chunk(meta: &Meta, delta: Delta, finish: Option<&str>) -> ChatCompletionChunk {
    ChatCompletionChunk {
        id: meta.id.clone(),
        object: "chat.completion.chunk".into(),
        created: meta.created,
        model: meta.model.clone(),
        choices: vec![ChunkChoice {
            index: 0,
            delta,
            finish_reason: finish.map(str::to_string),
        }],
        usage: None,
    }
}

fn sse(c: &ChatCompletionChunk) -> SseEvent {
    SseEvent::default().data(serde_json::to_string(c).unwrap_or_default())
}

/// SSE: a role chunk, content chunks, a finish chunk, the usage chunk if asked, `[DONE]`.
/// Dropping the stream (client gone) drops the event receiver, which cancels the sequence, and
/// the reservation, which settles for the tokens sent.
fn stream_response(
    meta: Meta,
    events: UnboundedReceiver<Event>,
    reservation: Reservation,
    include_usage: bool,
) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    let first = sse(&chunk(
        &meta,
        Delta {
            role: Some("assistant".into()),
            content: Some(String::new()),
        },
        None,
    ));
    let body = stream::unfold(Some((reservation, meta, events)), move |st| async move {
        let (mut reservation, meta, mut events) = st?;
        match events.recv().await {
            Some(Event::Text { text, tokens }) => {
                reservation.delivered(tokens);
                let ev = sse(&chunk(&meta, Delta { role: None, content: Some(text) }, None));
                Some((vec![ev], Some((reservation, meta, events))))
            }
            Some(Event::Done(c)) => {
                reservation.finished(c.prompt_tokens, c.completion_tokens);
                let mut out = vec![sse(&chunk(&meta, Delta::default(), Some(c.finish.as_str())))];
                if include_usage {
                    let mut u = chunk(&meta, Delta::default(), None);
                    u.choices.clear();
                    u.usage = Some(usage(&c));
                    out.push(sse(&u));
                }
                out.push(SseEvent::default().data("[DONE]"));
                Some((out, None))
            }
            Some(Event::Failed(_)) | None => {
                let err = serde_json::json!({"error": {"message": "inference failed", "type": "server_error", "code": "internal_error"}});
                Some((vec![SseEvent::default().data(err.to_string())], None))
            }
        }
    })
    .flat_map(|evs| stream::iter(evs.into_iter().map(Ok)));
    Sse::new(stream::once(async move { Ok(first) }).chain(body)).keep_alive(KeepAlive::default())
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn random_seed() -> u64 {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    nanos ^ (std::process::id() as u64).rotate_left(32)
}

fn completion_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    format!(
        "chatcmpl-{:x}{:06x}",
        random_seed() & 0xffff_ffff_ffff,
        COUNTER.fetch_add(1, Ordering::Relaxed) & 0xff_ffff
    )
}
