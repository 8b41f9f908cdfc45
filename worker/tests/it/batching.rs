//! Continuous batching: concurrent requests share steps, a client that leaves frees its slot,
//! a full queue is refused, shutdown drains running work.

use futures::StreamExt;

use morpheus_testkit::{TestWorker, WorkerOptions};

use crate::common::{fill_slot_and_queue, leave_after_first_token, one_slot_worker, request};

#[tokio::test]
async fn concurrent_requests_share_decode_steps() {
    // N streams of T tokens each take about T decode steps together; one after the other they
    // would take N x T (less the N first tokens, which come from prefill). Long answers keep the
    // few steps one stream runs alone, before the others arrive, small beside T.
    const STREAMS: u32 = 4;
    const TOKENS: u32 = 128;
    let server = TestWorker::start().await;
    let client = server.client();
    let mut tasks = Vec::new();
    for seed in 0..STREAMS {
        let (client, a) = (client.clone(), server.assignment(10_000));
        let mut req = request("count with me", TOKENS, u64::from(seed));
        req.temperature = Some(0.9);
        tasks.push(tokio::spawn(async move { client.chat(&a, &req).await }));
    }
    let mut tokens = 0;
    for t in tasks {
        let usage = t.await.expect("task").expect("answer").usage;
        // The tiny model has no end-of-sequence token: every stream runs to its cap.
        assert_eq!(usage.completion_tokens, TOKENS);
        tokens += usage.completion_tokens;
    }
    let metrics = server.metrics().await;
    let steps: u32 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("morpheus_worker_decode_steps_total "))
        .and_then(|v| v.parse().ok())
        .expect("steps metric");
    let shared = tokens / STREAMS;
    assert!(
        steps <= shared * 3 / 2,
        "{steps} decode steps for {STREAMS} streams of {TOKENS} tokens: batched, about {shared} \
         (at most {}); one at a time, {}",
        shared * 3 / 2,
        tokens - STREAMS
    );
    // Every request was answered: the gauges settle at nothing queued and nothing decoding (the
    // scheduler updates the batch gauge just after sending a sequence's last event).
    let settled = |m: &str| {
        [
            "morpheus_worker_queue_depth 0",
            "morpheus_worker_batch_size 0",
        ]
        .iter()
        .all(|gauge| m.lines().any(|l| l == *gauge))
    };
    let mut metrics = metrics;
    for _ in 0..50 {
        if settled(&metrics) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        metrics = server.metrics().await;
    }
    assert!(settled(&metrics), "gauges did not settle at 0:\n{metrics}");
    server.stop().await;
}

#[tokio::test]
async fn disconnect_frees_the_slot() {
    // Long enough (the tiny model has no end-of-sequence token) that the answer cannot finish
    // before the server sees the client go.
    let server = TestWorker::with(WorkerOptions {
        max_batch: 1,
        max_context: 32768,
        ..Default::default()
    })
    .await;
    let client = server.client();
    let mut req = request("go on forever", 32000, 5);
    req.temperature = Some(0.0);
    leave_after_first_token(&server, &server.assignment(100_000), &req).await;
    server.wait_for_metric("morpheus_worker_batch_size 0").await;
    // The only slot serves the next request.
    let next = client
        .chat(&server.assignment(10_000), &request("next", 4, 1))
        .await
        .expect("next answer");
    assert!(next.usage.completion_tokens > 0);
    server.stop().await;
}

#[tokio::test]
async fn full_queue_is_refused_with_503() {
    let server = one_slot_worker().await;
    let (running, queued) = fill_slot_and_queue(&server).await;
    let refused = reqwest::Client::new()
        .post(format!("{}/v1/chat/completions", server.url))
        .header(
            morpheus_sdk::provider::ASSIGNMENT_HEADER,
            morpheus_sdk::provider::encode_assignment(&server.assignment(10_000)),
        )
        .json(&request("third", 4, 1))
        .send()
        .await
        .expect("send");
    assert_eq!(refused.status(), 503);
    let body: serde_json::Value = refused.json().await.expect("json");
    assert_eq!(body["error"]["code"], "busy");
    drop(running);
    queued
        .await
        .expect("task")
        .expect("the queued request is served");
    server.stop().await;
}

#[tokio::test]
async fn shutdown_drains_running_streams() {
    let server = TestWorker::start().await;
    let client = server.client();
    let mut req = request("a long answer", 60, 2);
    req.temperature = Some(0.0);
    let mut stream = client
        .chat_stream(&server.assignment(10_000), &req)
        .await
        .expect("stream");
    stream.next().await.expect("first chunk").expect("ok");
    let reader = tokio::spawn(async move {
        let mut finish = None;
        while let Some(chunk) = stream.next().await {
            for c in chunk.expect("chunk").choices {
                finish = finish.or(c.finish_reason);
            }
        }
        finish
    });
    let engine = server.engine.clone();
    server.stop().await;
    assert!(
        reader.await.expect("reader").is_some(),
        "the stream was cut instead of finished"
    );
    let after = engine.submit(morpheus_worker::engine::GenerateRequest::new(
        vec![1, 2],
        1,
        Default::default(),
    ));
    assert!(
        matches!(after, Err(morpheus_worker::Error::EngineStopped)),
        "a stopped engine takes no work: {after:?}"
    );
}
