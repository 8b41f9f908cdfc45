//! `POST /v1/chat/completions`, streamed (server-sent events) or not. With tools in use a
//! stream carries the call as deltas while it is written (`tool_chunks.rs`).

use axum::{
    Json,
    body::Bytes,
    extract::{State, rejection::BytesRejection},
    http::HeaderMap,
    response::{IntoResponse, Response},
};
use morpheus_sdk::openai::{
    ChatCompletionChunk, ChatCompletionRequest, ChatCompletionResponse, ChatMessage, Choice,
    ChunkChoice, Delta, ToolCall, Usage,
};
use tracing::{debug, info};

use super::{
    ApiError, AppState,
    generate::{self, Item, Meta, Whole, refused},
    tool_chunks,
    tools::{self, Tools},
};
use crate::engine::{Completion, GenerateRequest, Sampling};

pub(super) async fn completions(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let s = &state.0;
    let grant = s.auth.authorize(&headers)?;
    let req: ChatCompletionRequest = generate::parse_body(body, "chat completion request")?;
    // The rules a request is held to (`ChatCompletionRequest::check`, the same the gateway
    // applies), refused in OpenAI's body naming the field.
    req.check().map_err(refused)?;
    let format = req.response_format().map_err(refused)?;
    let n = generate::choices(&state, req.n)?;
    let tools = Tools::of(&req)?;
    if tools.is_some() && n > 1 {
        return Err(ApiError::bad_request(
            "unsupported_n",
            "`n` above 1 with tools in use is not served (one call per answer)",
        )
        .with_param("n"));
    }
    let tool_grammar = tools.as_ref().map(Tools::grammar).transpose()?;
    let shaping = generate::shaping(
        &state,
        req.logit_bias().map_err(refused)?,
        req.presence_penalty,
        req.frequency_penalty,
    )?;

    // Rendering and tokenising a prompt of up to a megabyte, and compiling a schema, take
    // milliseconds of CPU: off the async runtime's threads, so other connections keep being
    // served meanwhile.
    let mut messages = tools::for_template(&req.messages);
    if let Some(t) = &tools {
        t.show(&mut messages);
    }
    let model = s.model.clone();
    let (prompt, grammar) = tokio::task::spawn_blocking(move || {
        let text = model
            .chat
            .render(&messages)
            .map_err(|e| ApiError::bad_request("invalid_messages", e.to_string()))?;
        let prompt = model.encode(&text).map_err(ApiError::from)?;
        let grammar = match tool_grammar {
            Some(g) => Some(g),
            None => generate::grammar(&format)?,
        };
        Ok::<_, ApiError>((prompt, grammar))
    })
    .await
    .map_err(|_| ApiError::internal())??;
    let (reservation, max_new) =
        generate::reserve(&state, &grant, prompt.len(), req.requested_max_tokens(), n)?;

    let sampling = Sampling {
        temperature: req.temperature.unwrap_or(1.0),
        top_p: req.top_p.unwrap_or(1.0),
        seed: req.seed.unwrap_or_else(generate::random_seed),
    };
    let request = GenerateRequest {
        stop: req.stop.clone().map(|s| s.into_vec()).unwrap_or_default(),
        shaping,
        grammar,
        logprobs: (req.logprobs == Some(true)).then(|| req.top_logprobs.unwrap_or(0) as usize),
        ..GenerateRequest::new(prompt, max_new, sampling)
    };
    let prompt_tokens = request.prompt.len();
    let constrained = request.grammar.is_some();
    let events = generate::submit(&state, request, n)?;
    info!(target: "worker::api", session = %grant.session, prompt_tokens, max_new, stream = req.stream, constrained, "chat request accepted");
    let meta = Meta::new("chatcmpl", &s.model.meta.name);
    let with_logprobs = req.logprobs == Some(true);
    let include_usage = req.stream_options.as_ref().is_some_and(|o| o.include_usage);
    if let Some(tools) = &tools {
        if req.stream {
            let render = tool_chunks::render(state.clone(), meta, tools, include_usage);
            return Ok(generate::stream(events, 1, reservation, render).into_response());
        }
        let whole = generate::collect(events, 1, reservation).await?.remove(0);
        let calls = (whole.done.finish != crate::engine::FinishReason::Length)
            .then(|| tools.read(&whole.text))
            .flatten();
        return Ok(Json(response(&state, meta, whole, calls, with_logprobs)).into_response());
    }
    if req.stream {
        let st = state.clone();
        let render = move |item: Item<'_>| render_chunk(&st, &meta, item, include_usage);
        return Ok(generate::stream(events, n, reservation, render).into_response());
    }
    let wholes = generate::collect(events, n, reservation).await?;
    let done: Vec<Completion> = wholes.iter().map(|w| w.done).collect();
    let total = generate::total(&done);
    debug!(target: "worker::api", id = %meta.id, n, tokens = total.completion_tokens, ttft_ms = total.ttft.as_millis() as u64, "completed");
    let mut answer = ChatCompletionResponse {
        id: meta.id.clone(),
        object: "chat.completion".into(),
        created: meta.created,
        model: meta.model.clone(),
        choices: Vec::with_capacity(n),
        usage: usage(&total),
    };
    for (i, whole) in wholes.into_iter().enumerate() {
        let mut one = response(
            &state,
            Meta {
                id: String::new(),
                ..meta.clone()
            },
            whole,
            None,
            with_logprobs,
        );
        let mut choice = one.choices.remove(0);
        choice.index = i as u32;
        answer.choices.push(choice);
    }
    Ok(Json(answer).into_response())
}

/// A whole answer: its text, or the calls it makes (`finish_reason: "tool_calls"`).
fn response(
    state: &AppState,
    meta: Meta,
    whole: Whole,
    calls: Option<Vec<ToolCall>>,
    with_logprobs: bool,
) -> ChatCompletionResponse {
    let logprobs = with_logprobs.then(|| generate::chat_logprobs(state, &whole.logprobs));
    let finish = if calls.is_some() {
        "tool_calls"
    } else {
        whole.done.finish.as_str()
    };
    let message = match calls {
        Some(calls) => ChatMessage {
            role: "assistant".into(),
            tool_calls: Some(calls),
            ..Default::default()
        },
        None => ChatMessage::assistant(whole.text),
    };
    ChatCompletionResponse {
        id: meta.id,
        object: "chat.completion".into(),
        created: meta.created,
        model: meta.model,
        choices: vec![Choice {
            index: 0,
            message,
            finish_reason: Some(finish.into()),
            logprobs,
        }],
        usage: usage(&whole.done),
    }
}

pub(super) fn usage(c: &Completion) -> Usage {
    Usage {
        prompt_tokens: c.prompt_tokens,
        completion_tokens: c.completion_tokens,
        total_tokens: c.prompt_tokens + c.completion_tokens,
    }
}

pub(super) fn chunk(
    meta: &Meta,
    index: u32,
    delta: Delta,
    finish: Option<&str>,
) -> ChatCompletionChunk {
    ChatCompletionChunk {
        id: meta.id.clone(),
        object: "chat.completion.chunk".into(),
        created: meta.created,
        model: meta.model.clone(),
        choices: vec![ChunkChoice {
            index,
            delta,
            finish_reason: finish.map(str::to_string),
            logprobs: None,
        }],
        usage: None,
    }
}

/// A role chunk, content chunks (with their tokens' log-probabilities when asked for), a
/// finish chunk, the usage chunk if asked.
pub(super) fn render_chunk(
    state: &AppState,
    meta: &Meta,
    item: Item<'_>,
    include_usage: bool,
) -> Vec<String> {
    let chunks = match item {
        Item::Start(i) => vec![chunk(
            meta,
            i,
            Delta {
                role: Some("assistant".into()),
                content: Some(String::new()),
                ..Default::default()
            },
            None,
        )],
        Item::Text(i, text, logprobs) => {
            let mut c = chunk(
                meta,
                i,
                Delta {
                    content: Some(text),
                    ..Default::default()
                },
                None,
            );
            if !logprobs.is_empty() {
                c.choices[0].logprobs = Some(generate::chat_logprobs(state, logprobs));
            }
            vec![c]
        }
        Item::Done(i, done) => vec![chunk(meta, i, Delta::default(), Some(done.finish.as_str()))],
        Item::End(total) if include_usage => {
            let mut u = chunk(meta, 0, Delta::default(), None);
            u.choices.clear();
            u.usage = Some(usage(total));
            vec![u]
        }
        Item::End(_) => Vec::new(),
    };
    generate::to_data(&chunks)
}
