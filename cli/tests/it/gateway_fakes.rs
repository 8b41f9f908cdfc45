//! Providers that misbehave on purpose, registered on-chain like any other (the router's
//! liveness checks are off where they are used: they hold no weights): one answers 500, one
//! never answers, one cuts its stream after the first words, one waits for the test before
//! finishing its answer.

use std::{
    convert::Infallible,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
};

use axum::{
    body::{Body, Bytes},
    extract::State,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::post,
};
use futures::{StreamExt, stream};
use tokio::{net::TcpListener, sync::Notify};

/// What the fake does with a chat request.
#[derive(Clone)]
pub(crate) enum Behaviour {
    /// Answers 500 at once.
    Fail500,
    /// Accepts and never answers.
    Hang,
    /// Streams "Hello", then ends the stream without `[DONE]`.
    Cut,
    /// Streams "Hello", waits for the notify, then " world", the usage chunk and `[DONE]`.
    Gated(Arc<Notify>),
}

/// The usage the gated fake reports: 7 prompt tokens, 2 completion tokens.
pub(crate) const GATED_TOKENS: u64 = 9;

/// A fake provider on 127.0.0.1:0.
pub(crate) struct FakeProvider {
    /// `http://127.0.0.1:PORT`.
    pub(crate) url: String,
    /// Chat requests it got.
    pub(crate) chats: Arc<AtomicUsize>,
}

#[derive(Clone)]
struct Fake {
    behaviour: Behaviour,
    chats: Arc<AtomicUsize>,
}

impl FakeProvider {
    pub(crate) async fn start(behaviour: Behaviour) -> Self {
        let chats = Arc::new(AtomicUsize::new(0));
        let app = axum::Router::new()
            .route("/v1/chat/completions", post(chat))
            .with_state(Fake {
                behaviour,
                chats: chats.clone(),
            });
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { url, chats }
    }

    /// Chat requests it got.
    pub(crate) fn chats(&self) -> usize {
        self.chats.load(Ordering::SeqCst)
    }
}

fn event(delta: serde_json::Value, finish: Option<&str>) -> Bytes {
    let chunk = serde_json::json!({
        "id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1, "model": "fake",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    });
    Bytes::from(format!("data: {chunk}\n\n"))
}

fn usage_event() -> Bytes {
    let chunk = serde_json::json!({
        "id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1, "model": "fake",
        "choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 2, "total_tokens": GATED_TOKENS},
    });
    Bytes::from(format!("data: {chunk}\n\n"))
}

fn sse(body: Body) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/event-stream")],
        body,
    )
        .into_response()
}

async fn chat(State(fake): State<Fake>) -> Response {
    fake.chats.fetch_add(1, Ordering::SeqCst);
    let start = vec![
        event(
            serde_json::json!({"role": "assistant", "content": ""}),
            None,
        ),
        event(serde_json::json!({"content": "Hello"}), None),
    ];
    match fake.behaviour {
        Behaviour::Fail500 => (
            StatusCode::INTERNAL_SERVER_ERROR,
            r#"{"error":{"message":"inference failed","type":"server_error","code":"internal_error"}}"#,
        )
            .into_response(),
        Behaviour::Hang => std::future::pending().await,
        Behaviour::Cut => sse(Body::from_stream(
            stream::iter(start).map(Ok::<_, Infallible>),
        )),
        Behaviour::Gated(gate) => {
            let rest = stream::once(async move {
                gate.notified().await;
                stream::iter(vec![
                    event(serde_json::json!({"content": " world"}), None),
                    event(serde_json::json!({}), Some("stop")),
                    usage_event(),
                    Bytes::from_static(b"data: [DONE]\n\n"),
                ])
            })
            .flatten();
            sse(Body::from_stream(
                stream::iter(start).chain(rest).map(Ok::<_, Infallible>),
            ))
        }
    }
}
