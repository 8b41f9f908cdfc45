//! A session's `tokenMax` across its requests: each request reserves its prompt and completion
//! cap, and every ending gives back what was not delivered (done early, refused, client gone).
//! Each test measures what is left by a last request that asks for more than can remain: the
//! tiny model never ends on its own, so it generates exactly what the budget leaves.

use morpheus_sdk::{
    messages::{Assignment, Signed},
    provider::ProviderClient,
};
use morpheus_testkit::{TestWorker, WorkerOptions};

use crate::common::{fill_slot_and_queue, leave_after_first_token, one_slot_worker, request};

/// Prompt tokens of `request("hi", ..)` (the chat template around it included).
async fn prompt_tokens(server: &TestWorker) -> u64 {
    let probe = server
        .client()
        .chat(&server.assignment(10_000), &request("hi", 1, 1))
        .await
        .expect("probe");
    u64::from(probe.usage.prompt_tokens)
}

/// Completion tokens the session `a` still has room for, spending them.
async fn left(client: &ProviderClient, a: &Signed<Assignment>) -> u64 {
    let mut req = request("hi", 100_000, 3);
    req.temperature = Some(0.0);
    let answer = client.chat(a, &req).await.expect("the last request");
    u64::from(answer.usage.completion_tokens)
}

#[tokio::test]
async fn a_request_that_stops_early_gives_back_its_unused_cap() {
    let server = TestWorker::start().await;
    let (client, p) = (server.client(), prompt_tokens(&server).await);
    let session = server.assignment(2 * p + 300);
    // Greedy text, then the same request stopped at its fourth character: it ends long before
    // its cap of 200 tokens.
    let mut greedy = request("hi", 8, 1);
    greedy.temperature = Some(0.0);
    let text = client
        .chat(&server.assignment(10_000), &greedy)
        .await
        .expect("greedy")
        .choices[0]
        .message
        .content
        .clone();
    let stop: String = text.chars().skip(3).take(2).collect();
    assert_eq!(stop.chars().count(), 2, "{text:?}");
    let mut stopped = greedy.clone();
    stopped.max_tokens = Some(200);
    stopped.stop = Some(morpheus_sdk::openai::Stop::One(stop));
    let first = client
        .chat(&session, &stopped)
        .await
        .expect("stopped early");
    let used = u64::from(first.usage.completion_tokens);
    assert!(used <= 8, "stopped after {used} tokens");
    assert_eq!(
        left(&client, &session).await,
        300 - used,
        "the 200-token cap was reserved, {used} were used, the rest came back"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_client_gone_mid_stream_is_charged_what_it_was_sent() {
    let server = TestWorker::with(WorkerOptions {
        max_context: 32768,
        ..Default::default()
    })
    .await;
    let (client, p) = (server.client(), prompt_tokens(&server).await);
    let session = server.assignment(2 * p + 3_000);
    let mut long = request("hi", 2_500, 1);
    long.temperature = Some(0.0);
    leave_after_first_token(&server, &session, &long).await;
    // Sent before the worker saw the client go: a few steps' worth, far from the 2,500.
    let remaining = left(&client, &session).await;
    assert!(
        remaining > 3_000 - 200,
        "{remaining} tokens left: the cancelled request kept its reservation"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_refused_request_gives_back_its_whole_reservation() {
    let server = one_slot_worker().await;
    let (client, p) = (server.client(), prompt_tokens(&server).await);
    // With the only slot and the only queue place taken, the next request is refused (503).
    let (running, queued) = fill_slot_and_queue(&server).await;
    let session = server.assignment(p + 500);
    let refused = client.chat(&session, &request("hi", 400, 2)).await;
    match refused {
        Err(morpheus_sdk::Error::Http { status: 503, .. }) => {}
        other => panic!("expected a 503 while the only slot is busy, got {other:?}"),
    }
    drop(running);
    queued
        .await
        .expect("task")
        .expect("the queued request is served");
    assert_eq!(
        left(&client, &session).await,
        500,
        "the refusal kept tokens"
    );
    server.stop().await;
}
