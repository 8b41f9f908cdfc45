//! Continuous batching: concurrent requests share steps, a client that leaves frees its slot,
//! a full queue is refused, shutdown drains running work.

use futures::StreamExt;

use crate::common::{Options, TestServer, request, wait_for_metric};

#[tokio::test]
async fn concurrent_requests_share_decode_steps() {
    let server = TestServer::start().await;
    let client = server.client();
    let mut tasks = Vec::new();
    for seed in 0..4 {
        let (client, a) = (client.clone(), server.assignment(10_000));
        let mut req = request("count with me", 30, seed);
        req.temperature = Some(0.9);
        tasks.push(tokio::spawn(async move { client.chat(&a, &req).await }));
    }
    let mut tokens = 0;
    for t in tasks {
        tokens += t
            .await
            .expect("task")
            .expect("answer")
            .usage
            .completion_tokens;
    }
    let metrics = server.metrics().await;
    let steps: u32 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("morpheus_worker_decode_steps_total "))
        .and_then(|v| v.parse().ok())
        .expect("steps metric");
    assert!(
        steps < tokens,
        "{steps} decode steps for {tokens} tokens: requests did not share steps"
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
    let server = TestServer::with(Options {
        max_batch: 1,
        max_context: 32768,
        ..Default::default()
    })
    .await;
    let client = server.client();
    let mut req = request("go on forever", 32000, 5);
    req.temperature = Some(0.0);
    let mut stream = client
        .chat_stream(&server.assignment(100_000), &req)
        .await
        .expect("stream");
    stream.next().await.expect("role chunk").expect("ok");
    stream.next().await.expect("first token").expect("ok");
    drop(stream);
    wait_for_metric(
        &server,
        "morpheus_worker_requests_total{outcome=\"cancelled\"} 1",
    )
    .await;
    wait_for_metric(&server, "morpheus_worker_batch_size 0").await;
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
    let server = TestServer::with(Options {
        max_batch: 1,
        max_queue: 1,
        max_context: 32768,
        ..Default::default()
    })
    .await;
    let client = server.client();
    let mut long = request("keep going", 32000, 9);
    long.temperature = Some(0.0);
    // The tiny model has no end-of-sequence token: the first request holds the only slot for
    // 32000 steps, long enough for the next two to arrive.
    let mut running = client
        .chat_stream(&server.assignment(100_000), &long)
        .await
        .expect("first");
    running.next().await.expect("role chunk").expect("ok");
    running.next().await.expect("first token").expect("ok");
    let (c2, a2, l2) = (
        client.clone(),
        server.assignment(10_000),
        request("second", 8, 2),
    );
    let queued = tokio::spawn(async move { c2.chat(&a2, &l2).await });
    wait_for_metric(&server, "morpheus_worker_queue_depth 1").await;
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
    let server = TestServer::start().await;
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
    assert!(
        engine
            .submit(morpheus_worker::engine::GenerateRequest {
                prompt: vec![1, 2],
                max_new_tokens: 1,
                sampling: Default::default(),
                stop: vec![],
                ignore_eos: false,
            })
            .is_err()
    );
}
