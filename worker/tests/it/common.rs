//! What the worker's tests add to the kit: a chat request and its answer, a worker serving
//! SmolLM2, and a worker with no room left.

use futures::StreamExt;
use morpheus_sdk::{
    messages::{Assignment, Signed},
    openai::{ChatCompletionRequest, ChatCompletionResponse, ChatMessage},
    provider::ChatStream,
};
use morpheus_testkit::{TestWorker, WorkerOptions, smollm2_model};
use tokio::task::JoinHandle;

/// A chat request with one user message (sampled: temperature 0.8, top-p 0.95).
pub(crate) fn request(text: &str, max_tokens: u32, seed: u64) -> ChatCompletionRequest {
    ChatCompletionRequest {
        model: "tiny-llama-test".into(),
        messages: vec![ChatMessage::user(text)],
        max_tokens: Some(max_tokens),
        temperature: Some(0.8),
        top_p: Some(0.95),
        seed: Some(seed),
        ..Default::default()
    }
}

/// The answer of `server` to `req` (under an assignment of 10,000 tokens).
pub(crate) async fn chat(
    server: &TestWorker,
    req: &ChatCompletionRequest,
) -> ChatCompletionResponse {
    server
        .client()
        .chat(&server.assignment(10_000), req)
        .await
        .expect("answer")
}

/// A worker serving SmolLM2 (two slots).
pub(crate) async fn smollm2_worker() -> TestWorker {
    TestWorker::with(WorkerOptions {
        model: Some(smollm2_model()),
        max_batch: 2,
        ..Default::default()
    })
    .await
}

/// A worker with one slot and one queue place, and room for very long answers.
pub(crate) async fn one_slot_worker() -> TestWorker {
    TestWorker::with(WorkerOptions {
        max_batch: 1,
        max_queue: 1,
        max_context: 32768,
        ..Default::default()
    })
    .await
}

/// Fills a [`one_slot_worker`]: a stream that would run for 30,000
/// tokens holds the only slot (its first token read), and a short request waits in the only
/// queue place. Dropping the stream lets the queued request run; the task gives its answer.
pub(crate) async fn fill_slot_and_queue(
    server: &TestWorker,
) -> (
    ChatStream,
    JoinHandle<morpheus_sdk::Result<ChatCompletionResponse>>,
) {
    let client = server.client();
    // The tiny model has no end-of-sequence token: only its cap ends the stream.
    let mut long = request("keep going", 30_000, 9);
    long.temperature = Some(0.0);
    let mut running = client
        .chat_stream(&server.assignment(100_000), &long)
        .await
        .expect("the stream starts");
    running.next().await.expect("role chunk").expect("ok");
    running.next().await.expect("first token").expect("ok");
    let queued_assignment = server.assignment(10_000);
    let queued = tokio::spawn(async move {
        client
            .chat(&queued_assignment, &request("wait", 4, 2))
            .await
    });
    server
        .wait_for_metric("morpheus_worker_queue_depth 1")
        .await;
    (running, queued)
}

/// Streams `req` on `assignment`, reads the role chunk and the first token, then goes away as a
/// client would; returns once the worker has counted the request cancelled.
pub(crate) async fn leave_after_first_token(
    server: &TestWorker,
    assignment: &Signed<Assignment>,
    req: &ChatCompletionRequest,
) {
    let mut stream = server
        .client()
        .chat_stream(assignment, req)
        .await
        .expect("stream");
    stream.next().await.expect("role chunk").expect("ok");
    stream.next().await.expect("first token").expect("ok");
    drop(stream);
    server
        .wait_for_metric("morpheus_worker_requests_total{outcome=\"cancelled\"} 1")
        .await;
}

/// The text of an engine's answer, until it is done (panics on a failure).
pub(crate) async fn answer_text(
    mut rx: tokio::sync::mpsc::UnboundedReceiver<morpheus_worker::engine::Event>,
) -> String {
    use morpheus_worker::engine::Event;
    let mut out = String::new();
    while let Some(ev) = rx.recv().await {
        match ev {
            Event::Text { text, .. } => out.push_str(&text),
            Event::Done(_) => return out,
            Event::Failed(m) => panic!("generation failed: {m}"),
        }
    }
    panic!("the engine stopped")
}

/// `prompt` answered greedily by the engine for `max_new` tokens, end of sequence ignored.
pub(crate) fn greedy_tokens_request(
    prompt: Vec<u32>,
    max_new: u32,
) -> morpheus_worker::engine::GenerateRequest {
    use morpheus_worker::engine::{GenerateRequest, Sampling};
    GenerateRequest {
        ignore_eos: true,
        ..GenerateRequest::new(
            prompt,
            max_new,
            Sampling {
                temperature: 0.0,
                top_p: 1.0,
                seed: 0,
            },
        )
    }
}

/// The value of the metric `name` (a series without labels) in the engine's `metrics`.
pub(crate) fn engine_metric(metrics: &morpheus_worker::metrics::Metrics, name: &str) -> f64 {
    metrics
        .render()
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no metric {name}"))
}
