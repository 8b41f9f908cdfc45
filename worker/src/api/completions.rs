//! `POST /v1/completions`: a prompt continued as it is, with no chat template (OpenAI's text
//! completions), streamed or whole.

use axum::{
    Json,
    body::Bytes,
    extract::{State, rejection::BytesRejection},
    http::HeaderMap,
    response::{IntoResponse, Response},
};
use morpheus_sdk::openai::{
    CompletionChoice, CompletionChunk, CompletionLogprobs, CompletionRequest, CompletionResponse,
    Prompt,
};
use tracing::info;

use super::{
    ApiError, AppState,
    chat::usage,
    generate::{self, Item, Meta, refused},
};
use crate::engine::{GenerateRequest, Sampling, TokenLogprob};

/// OpenAI's default `max_tokens` of a text completion.
const DEFAULT_MAX_TOKENS: u32 = 16;

pub(super) async fn completions(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let s = &state.0;
    let grant = s.auth.authorize(&headers)?;
    let req: CompletionRequest = generate::parse_body(body, "completion request")?;
    req.check().map_err(refused)?;
    let n = generate::choices(&state, req.n)?;
    let shaping = generate::shaping(
        &state,
        req.logit_bias().map_err(refused)?,
        req.presence_penalty,
        req.frequency_penalty,
    )?;
    let prompt = match req.prompt.clone() {
        Prompt::Tokens(ids) => ids,
        Prompt::TokenLists(mut lists) => lists.pop().unwrap_or_default(),
        Prompt::Text(text) => encode(&state, text).await?,
        Prompt::Texts(mut texts) => encode(&state, texts.pop().unwrap_or_default()).await?,
    };
    let vocab = s.engine.vocab().len();
    if prompt.is_empty() {
        return Err(
            ApiError::bad_request("invalid_prompt", "`prompt` is empty").with_param("prompt")
        );
    }
    if let Some(bad) = prompt.iter().find(|&&t| t as usize >= vocab) {
        return Err(ApiError::bad_request(
            "invalid_prompt",
            format!("`prompt` has token {bad}, outside this model's vocabulary of {vocab}"),
        )
        .with_param("prompt"));
    }
    let requested = Some(req.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS));
    let (reservation, max_new) = generate::reserve(&state, &grant, prompt.len(), requested, n)?;
    let sampling = Sampling {
        temperature: req.temperature.unwrap_or(1.0),
        top_p: req.top_p.unwrap_or(1.0),
        seed: req.seed.unwrap_or_else(generate::random_seed),
    };
    let request = GenerateRequest {
        stop: req.stop.clone().map(|s| s.into_vec()).unwrap_or_default(),
        shaping,
        logprobs: req.logprobs.map(|n| n as usize),
        ..GenerateRequest::new(prompt, max_new, sampling)
    };
    let prompt_tokens = request.prompt.len();
    let events = generate::submit(&state, request, n)?;
    info!(target: "worker::api", session = %grant.session, prompt_tokens, max_new, stream = req.stream, "completion request accepted");
    let meta = Meta::new("cmpl", &s.model.meta.name);
    let with_logprobs = req.logprobs.is_some();
    if req.stream {
        let usage = req.stream_options.as_ref().is_some_and(|o| o.include_usage);
        let st = state.clone();
        // Where each choice's next token starts in its text.
        let offsets = std::sync::Mutex::new(vec![0u32; n]);
        let render = move |item: Item<'_>| {
            let piece = |i: u32, text: String, finish: Option<&str>, lp: &[TokenLogprob]| {
                let mut at = offsets.lock().unwrap_or_else(|p| p.into_inner());
                let logprobs = with_logprobs.then(|| legacy_logprobs(&st, lp, &mut at[i as usize]));
                chunk(&meta, i, text, finish, logprobs)
            };
            let chunks = match item {
                Item::Start(_) => Vec::new(),
                Item::Text(i, text, lp) => vec![piece(i, text, None, lp)],
                Item::Done(i, done) => {
                    vec![piece(i, String::new(), Some(done.finish.as_str()), &[])]
                }
                Item::End(total) if usage => {
                    let mut u = chunk(&meta, 0, String::new(), None, None);
                    u.choices.clear();
                    u.usage = Some(super::chat::usage(total));
                    vec![u]
                }
                Item::End(_) => Vec::new(),
            };
            generate::to_data(&chunks)
        };
        return Ok(generate::stream(events, n, reservation, render).into_response());
    }
    let wholes = generate::collect(events, n, reservation).await?;
    let done: Vec<_> = wholes.iter().map(|w| w.done).collect();
    let choices = wholes
        .into_iter()
        .enumerate()
        .map(|(i, whole)| CompletionChoice {
            logprobs: with_logprobs.then(|| legacy_logprobs(&state, &whole.logprobs, &mut 0)),
            text: whole.text,
            index: i as u32,
            finish_reason: Some(whole.done.finish.as_str().into()),
        })
        .collect();
    Ok(Json(CompletionResponse {
        id: meta.id,
        object: "text_completion".into(),
        created: meta.created,
        model: meta.model,
        choices,
        usage: usage(&generate::total(&done)),
    })
    .into_response())
}

/// Tokenises a text prompt off the async runtime (the model's BOS added when it wants one).
async fn encode(state: &AppState, text: String) -> Result<Vec<u32>, ApiError> {
    let model = state.0.model.clone();
    tokio::task::spawn_blocking(move || model.encode(&text).map_err(ApiError::from))
        .await
        .map_err(|_| ApiError::internal())?
}

fn chunk(
    meta: &Meta,
    index: u32,
    text: String,
    finish: Option<&str>,
    logprobs: Option<CompletionLogprobs>,
) -> CompletionChunk {
    CompletionChunk {
        id: meta.id.clone(),
        object: "text_completion".into(),
        created: meta.created,
        model: meta.model.clone(),
        choices: vec![CompletionChoice {
            text,
            index,
            logprobs,
            finish_reason: finish.map(str::to_string),
        }],
        usage: None,
    }
}

/// OpenAI's legacy shape; `offset` is where the first token starts in the completion's text
/// (bytes), advanced past these tokens.
fn legacy_logprobs(
    state: &AppState,
    tokens: &[TokenLogprob],
    offset: &mut u32,
) -> CompletionLogprobs {
    let vocab = state.0.engine.vocab();
    let mut out = CompletionLogprobs::default();
    for t in tokens {
        let (text, bytes) = generate::token_piece(state, vocab, t.token);
        out.tokens.push(text);
        out.token_logprobs.push(t.logprob);
        out.text_offset.push(*offset);
        *offset += bytes.len() as u32;
        out.top_logprobs.push(
            t.top
                .iter()
                .map(|&(id, lp)| {
                    (
                        generate::token_piece(state, vocab, id).0,
                        serde_json::json!(lp),
                    )
                })
                .collect(),
        );
    }
    out
}
