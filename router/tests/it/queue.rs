//! Priority by the user's MOR under load (the specification's step 3): with every place of a
//! model's providers taken, requests wait in a queue ordered by the user's stake, ties by
//! arrival, for a bounded time; then a 503 with `Retry-After`. The queue's depth is a metric.

use std::time::{Duration, Instant};

use alloy::primitives::U256;

use crate::common::{Net, PRICE, assert_refused, stake};

/// Account of a user staking little.
const LOW: usize = 4;
/// Account of a user staking much.
const HIGH: usize = 5;

/// Waits until the router's queue holds `depth` requests (at most 20 s).
async fn until_depth(net: &Net, depth: usize) {
    let line = format!("morpheus_router_queue_depth_total {depth}\n");
    let until = Instant::now() + Duration::from_secs(20);
    while !net.metrics().await.contains(&line) {
        assert!(Instant::now() < until, "the queue never held {depth}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_every_place_taken_the_higher_stake_is_assigned_first() {
    let net = Net::with(|c| c.queue_wait = Duration::from_secs(30)).await;
    net.bid(U256::from(PRICE), 1).await;
    stake(&net.devnet, LOW, "2").await;
    stake(&net.devnet, HIGH, "50").await;
    // The user (5 MOR) takes the provider's only place.
    let first = net.assignment().await;

    // The small stake asks first and waits; the large stake asks after it.
    let (low, high) = (net.devnet.signer(LOW), net.devnet.signer(HIGH));
    let low_request = net.request_as(&low, |r| r.user = low.address());
    let high_request = net.request_as(&high, |r| r.user = high.address());
    let router = net.router.clone();
    let low_task = tokio::spawn(async move { router.request_compute(&low_request).await });
    until_depth(&net, 1).await;
    let router = net.router.clone();
    let high_task = tokio::spawn(async move { router.request_compute(&high_request).await });
    until_depth(&net, 2).await;
    let text = net.metrics().await;
    assert!(
        text.contains(&format!(
            "morpheus_router_queue_depth{{model=\"{}\"}} 2\n",
            net.model_id
        )),
        "{text}"
    );
    assert!(!low_task.is_finished() && !high_task.is_finished());

    // The place frees up: the large stake, which came last, gets it.
    net.router
        .report_usage(&net.report_as(&net.user(), first.message.sessionId, 20, 40, true))
        .await
        .expect("report");
    let high_assignment = tokio::time::timeout(Duration::from_secs(10), high_task)
        .await
        .expect("the larger stake is assigned within 10 s")
        .expect("task")
        .expect("assignment");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !low_task.is_finished(),
        "the smaller stake still waits: the one place went to the larger"
    );
    until_depth(&net, 1).await;

    // Then the small stake's turn.
    net.router
        .report_usage(&net.report_as(&high, high_assignment.message.sessionId, 20, 40, true))
        .await
        .expect("report");
    tokio::time::timeout(Duration::from_secs(10), low_task)
        .await
        .expect("the smaller stake is assigned next")
        .expect("task")
        .expect("assignment");
    let text = net.metrics().await;
    assert!(
        text.contains("morpheus_router_queue_depth_total 0\n"),
        "{text}"
    );
    assert!(
        text.contains("morpheus_router_queue_served_total 2\n"),
        "{text}"
    );
    net.stop().await;
}

#[tokio::test]
async fn a_request_that_waits_too_long_is_refused_with_retry_after() {
    let net = Net::with(|c| c.queue_wait = Duration::from_secs(1)).await;
    net.bid(U256::from(PRICE), 1).await;
    let _first = net.assignment().await;

    let started = Instant::now();
    let response = reqwest::Client::new()
        .post(net.router_url("/v1/compute"))
        .json(&net.request(|_| {}))
        .send()
        .await
        .expect("request");
    let waited = started.elapsed();
    assert_eq!(response.status(), 503);
    assert_eq!(
        response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("1")
    );
    let body: serde_json::Value = response.json().await.expect("error body");
    assert_eq!(body["error"]["code"], "busy", "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("waited") && message.contains("full"),
        "{message}"
    );
    assert!(
        waited >= Duration::from_secs(1) && waited < Duration::from_secs(6),
        "refused after {waited:?}"
    );
    assert!(
        net.metrics()
            .await
            .contains("morpheus_router_queue_timeouts_total 1\n")
    );

    // The refused request's reservation is back: the day counts only the first session.
    let allowance = net
        .router
        .allowance(net.user().address())
        .await
        .expect("allowance");
    assert_eq!(allowance.used, U256::from(256));

    // Through the SDK the refusal carries the wait.
    let refused = net.router.request_compute(&net.request(|_| {})).await;
    match &refused {
        Err(morpheus_sdk::Error::Http {
            retry_after: Some(1),
            ..
        }) => {}
        other => panic!("expected a 503 with Retry-After 1, got {other:?}"),
    }
    assert_refused(refused, 503, "busy");
    net.stop().await;
}

#[tokio::test]
async fn without_a_queue_a_full_model_is_refused_at_once() {
    let net = Net::with(|c| c.queue_wait = Duration::ZERO).await;
    net.bid(U256::from(PRICE), 1).await;
    let _first = net.assignment().await;
    let started = Instant::now();
    assert_refused(
        net.router.request_compute(&net.request(|_| {})).await,
        503,
        "full",
    );
    assert!(started.elapsed() < Duration::from_secs(1));
    assert!(
        net.metrics()
            .await
            .contains("morpheus_router_queue_depth_total 0\n")
    );
    net.stop().await;
}
