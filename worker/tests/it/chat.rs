//! Chat completions: determinism, streaming, usage, stop sequences, the model list.

use futures::StreamExt;
use morpheus_sdk::{merkle::ModelTree, openai::Stop};

use morpheus_testkit::{TestWorker, tiny_weights};

use crate::common::request;

#[tokio::test]
async fn same_seed_same_answer() {
    let server = TestWorker::start().await;
    let client = server.client();
    let a = client
        .chat(
            &server.assignment(10_000),
            &request("Tell me a story", 24, 7),
        )
        .await
        .expect("first");
    let b = client
        .chat(
            &server.assignment(10_000),
            &request("Tell me a story", 24, 7),
        )
        .await
        .expect("second");
    assert_eq!(a.choices[0].message.content, b.choices[0].message.content);
    assert_eq!(a.usage, b.usage);
    let u = a.usage;
    assert!(u.prompt_tokens > 0 && u.completion_tokens > 0 && u.completion_tokens <= 24);
    assert_eq!(u.total_tokens, u.prompt_tokens + u.completion_tokens);
    assert_eq!(a.object, "chat.completion");
    assert_eq!(a.choices[0].message.role, "assistant");
    server.stop().await;
}

#[tokio::test]
async fn streaming_gives_the_same_text() {
    let server = TestWorker::start().await;
    let client = server.client();
    let whole = client
        .chat(&server.assignment(10_000), &request("hello there", 20, 3))
        .await
        .expect("whole");
    let mut req = request("hello there", 20, 3);
    req.stream_options = Some(morpheus_sdk::openai::StreamOptions {
        include_usage: true,
    });
    let mut stream = client
        .chat_stream(&server.assignment(10_000), &req)
        .await
        .expect("stream");
    let (mut text, mut finish, mut usage, mut role) = (String::new(), None, None, None);
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.expect("chunk");
        assert_eq!(chunk.object, "chat.completion.chunk");
        if let Some(u) = chunk.usage {
            usage = Some(u);
        }
        for c in chunk.choices {
            role = role.or(c.delta.role);
            text.push_str(c.delta.content.as_deref().unwrap_or(""));
            finish = finish.or(c.finish_reason);
        }
    }
    assert_eq!(role.as_deref(), Some("assistant"));
    assert_eq!(text, whole.choices[0].message.content);
    assert_eq!(finish, whole.choices[0].finish_reason);
    assert_eq!(usage, Some(whole.usage));
    server.stop().await;
}

#[tokio::test]
async fn raw_sse_ends_with_done() {
    let server = TestWorker::start().await;
    let mut req = request("hi", 5, 1);
    req.stream = true;
    let resp = reqwest::Client::new()
        .post(format!("{}/v1/chat/completions", server.url))
        .header(
            morpheus_sdk::provider::ASSIGNMENT_HEADER,
            morpheus_sdk::provider::encode_assignment(&server.assignment(10_000)),
        )
        .json(&req)
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .expect("ascii")
            .starts_with("text/event-stream")
    );
    let body = resp.text().await.expect("body");
    assert!(body.trim_end().ends_with("data: [DONE]"), "{body}");
    server.stop().await;
}

#[tokio::test]
async fn stop_sequence_cuts_the_answer() {
    let server = TestWorker::start().await;
    let client = server.client();
    let mut req = request("abc", 40, 11);
    req.temperature = Some(0.0);
    let full = client
        .chat(&server.assignment(10_000), &req)
        .await
        .expect("full")
        .choices[0]
        .message
        .content
        .clone();
    let chars: Vec<char> = full.chars().collect();
    assert!(
        chars.len() >= 6,
        "the tiny model answered too little: {full:?}"
    );
    let stop: String = chars[chars.len() / 2..chars.len() / 2 + 2].iter().collect();
    req.stop = Some(Stop::One(stop.clone()));
    let cut = client
        .chat(&server.assignment(10_000), &req)
        .await
        .expect("cut");
    let expected = &full[..full.find(&stop).expect("stop occurs")];
    assert_eq!(cut.choices[0].message.content, expected);
    assert_eq!(cut.choices[0].finish_reason.as_deref(), Some("stop"));
    server.stop().await;
}

#[tokio::test]
async fn models_lists_the_served_model() {
    let server = TestWorker::start().await;
    let list = server.client().models().await.expect("models");
    assert_eq!(list.object, "list");
    assert_eq!(list.data.len(), 1);
    let model = &list.data[0];
    assert_eq!(model.id, "tiny-llama-test");
    // What the registry knows it by: the published GGUF's format and root, and the id served.
    assert_eq!(model.format.as_deref(), Some("gguf"));
    let root = ModelTree::from_file(tiny_weights(), |_, _| {})
        .expect("tree")
        .root();
    assert_eq!(model.merkle_root, Some(root));
    assert_eq!(model.model_id, Some(server.model_id));
    server.stop().await;
}
