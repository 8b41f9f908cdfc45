//! The HTTP API: `POST /v1/chat/completions` and `POST /v1/completions` (streamed or not),
//! `GET /v1/models`,
//! `GET /v1/models/{model}`, `GET /health`. Any API key is accepted (the user's key signs).

use std::{convert::Infallible, future::Future, time::Duration};

use axum::{
    Json,
    body::Bytes,
    extract::{DefaultBodyLimit, Path, State, rejection::BytesRejection},
    http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header},
    response::{
        IntoResponse, Response,
        sse::{Event, KeepAlive, Sse},
    },
    routing::{get, post},
};
use futures::{StreamExt, stream};
use morpheus_sdk::openai::{ChatCompletionChunk, ChatCompletionResponse};
use tokio::net::TcpListener;
use tracing::{info, warn};

use super::{
    Answer, Gateway, completions,
    refusal::{Refusal, refusal},
    request::parse_request,
};
use crate::{Error, Result};

/// The gateway's request id, on every answer of a chat.
const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// The provider answering.
const PROVIDER: HeaderName = HeaderName::from_static("x-morpheus-provider");
/// The router's session.
const SESSION: HeaderName = HeaderName::from_static("x-morpheus-session");

/// The gateway's routes.
pub fn router(gateway: Gateway) -> axum::Router {
    let limit = gateway.config().max_body_bytes;
    axum::Router::new()
        .route("/v1/chat/completions", post(chat))
        .route("/v1/completions", post(complete))
        .route("/v1/models", get(models))
        .route("/v1/models/{*model}", get(model))
        .route("/health", get(|| async { "ok" }))
        .fallback(|| async {
            reply(&Error::BadRequest {
                message: "no such route (the gateway serves /v1/chat/completions, /v1/completions \
                          and /v1/models)"
                    .into(),
                param: None,
            })
        })
        .layer(DefaultBodyLimit::max(limit))
        .with_state(gateway)
}

/// Serves the gateway on `listener` until `shutdown` resolves; running answers finish, then
/// every report is sent or kept. Reports in the outbox are sent again every
/// `outbox_retry_interval`.
pub async fn run(
    listener: TcpListener,
    gateway: Gateway,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let addr = listener
        .local_addr()
        .map_err(|e| Error::io("the gateway's listener", e))?;
    info!(target: "gateway::api", %addr, user = %gateway.config().signer.address(), router = %gateway.config().router_url, "serving");
    let resender = tokio::spawn(resend_forever(gateway.clone()));
    let served = axum::serve(
        // Small writes (an SSE chunk, a short JSON answer) go out at once: with Nagle's
        // algorithm the first token waits for the client's delayed ACK, 40 ms on Linux.
        axum::serve::ListenerExt::tap_io(listener, |tcp| {
            let _ = tcp.set_nodelay(true);
        }),
        router(gateway.clone()),
    )
    .with_graceful_shutdown(shutdown)
    .await;
    resender.abort();
    gateway.drain().await;
    served.map_err(|e| Error::io("the gateway's listener", e))?;
    info!(target: "gateway::api", %addr, "stopped");
    Ok(())
}

async fn resend_forever(gateway: Gateway) {
    let every = gateway
        .config()
        .outbox_retry_interval
        .max(Duration::from_millis(10));
    loop {
        tokio::time::sleep(every).await;
        gateway.resend_outbox().await;
    }
}

fn reply(error: &Error) -> Response {
    respond(&refusal(error))
}

fn respond(r: &Refusal) -> Response {
    if r.status >= 500 {
        warn!(target: "gateway::api", status = r.status, code = r.code, reason = %r.message, "request failed");
    }
    let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        r.body(),
    )
        .into_response();
    if let Some(seconds) = r.retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}

/// A body that could not be read (too large, cut off), refused as axum read it.
fn unread(e: &BytesRejection) -> Response {
    respond(&Refusal {
        status: e.status().as_u16(),
        kind: "invalid_request_error",
        code: "invalid_body",
        message: e.body_text(),
        param: None,
        retry_after: None,
    })
}

async fn chat(
    State(gateway): State<Gateway>,
    body: std::result::Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(b) => b,
        Err(e) => return unread(&e),
    };
    let request = match parse_request(&body, gateway.config().max_choices) {
        Ok(r) => r,
        Err(e) => return reply(&e),
    };
    let stream = request.stream;
    match gateway.chat(request).await {
        Ok(answer) => deliver(answer, stream, |c| c, |w| w).await,
        Err(e) => reply(&e),
    }
}

/// `POST /v1/completions`: the chat's path, the chunks written back in the completion's shape.
async fn complete(
    State(gateway): State<Gateway>,
    body: std::result::Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(b) => b,
        Err(e) => return unread(&e),
    };
    let request = match completions::parse(&body, gateway.config().max_choices) {
        Ok(r) => r,
        Err(e) => return reply(&e),
    };
    let stream = request.stream;
    match gateway.complete(request).await {
        Ok(answer) => {
            let mut chunks = completions::CompletionChunks::default();
            let chunk = move |c| chunks.rewrite(c);
            deliver(answer, stream, chunk, completions::as_completion_response).await
        }
        Err(e) => reply(&e),
    }
}

/// The answer to the client, with its headers: streamed as events of `chunk(c)` for each chunk,
/// or gathered and sent whole as `whole(response)`.
async fn deliver<C, W>(
    answer: Answer,
    stream: bool,
    mut chunk: impl FnMut(ChatCompletionChunk) -> C + Send + 'static,
    whole: fn(ChatCompletionResponse) -> W,
) -> Response
where
    C: serde::Serialize + Send + 'static,
    W: serde::Serialize,
{
    let headers = headers(&answer);
    let mut response = if stream {
        sse(answer.map(move |c| c.map(&mut chunk))).into_response()
    } else {
        match answer.collect_response().await {
            Ok(gathered) => Json(whole(gathered)).into_response(),
            Err(e) => reply(&e),
        }
    };
    response.headers_mut().extend(headers);
    response
}

fn headers(answer: &Answer) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (name, value) in [
        (REQUEST_ID, answer.request_id.clone()),
        (PROVIDER, answer.provider.to_string()),
        (SESSION, answer.session_id.to_string()),
    ] {
        if let Ok(v) = HeaderValue::from_str(&value) {
            h.insert(name, v);
        }
    }
    h
}

/// OpenAI's stream: `data: {chunk}` events, the usage chunk when asked for, `data: [DONE]`;
/// an answer that breaks off ends with an `error` event (what OpenAI's clients raise) and no
/// `[DONE]`. For chat chunks and, written back, completion chunks alike.
fn sse<C: serde::Serialize + Send + 'static>(
    answer: impl futures::Stream<Item = Result<C>> + Send + Unpin + 'static,
) -> Sse<impl futures::Stream<Item = std::result::Result<Event, Infallible>>> {
    let events = stream::unfold(Some(answer), |state| async move {
        let mut answer = state?;
        Some(match answer.next().await {
            Some(Ok(chunk)) => {
                let data = serde_json::to_string(&chunk).unwrap_or_default();
                (Event::default().data(data), Some(answer))
            }
            // Nothing after an error event, not even `[DONE]`.
            Some(Err(e)) => (Event::default().data(refusal(&e).body()), None),
            None => (Event::default().data("[DONE]"), None),
        })
    });
    Sse::new(events.map(Ok::<Event, Infallible>)).keep_alive(KeepAlive::default())
}

async fn models(State(gateway): State<Gateway>) -> Response {
    match gateway.models().await {
        Ok(list) => Json(list).into_response(),
        Err(e) => reply(&e),
    }
}

async fn model(State(gateway): State<Gateway>, Path(name): Path<String>) -> Response {
    match gateway.models().await {
        Ok(list) => match list.data.into_iter().find(|m| m.id == name) {
            Some(m) => Json(m).into_response(),
            None => reply(&Error::UnknownModel(name)),
        },
        Err(e) => reply(&e),
    }
}
