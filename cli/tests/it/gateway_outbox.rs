//! The router down when a session ends: the report waits in the outbox and is sent once the
//! router is back, by the running gateway or by the next one to start on that outbox.

use std::{sync::Arc, time::Duration};

use alloy::primitives::U256;
use futures::StreamExt;
use tokio::sync::Notify;

use crate::{
    common::{FAKE, Net, PRICE, TestGateway, USER, chat_body, sse_data},
    gateway_fakes::{Behaviour, FakeProvider, GATED_TOKENS},
};

/// Starts a streamed chat through `gw` with the gated fake, stops the router once the first
/// words came, lets the fake finish, and reads the answer to its end; returns the events.
async fn answer_with_the_router_down(
    net: &mut Net,
    gw: &TestGateway,
    gate: &Notify,
) -> Vec<String> {
    let response = gw.post(&chat_body("Say hi", 8, true)).await;
    assert_eq!(response.status(), 200);
    let mut bytes = response.bytes_stream();
    let mut body = String::new();
    while !body.contains("Hello") {
        let chunk = bytes.next().await.expect("more").expect("bytes");
        body.push_str(&String::from_utf8_lossy(&chunk));
    }
    net.stop_router().await;
    gate.notify_one();
    while let Some(chunk) = bytes.next().await {
        body.push_str(&String::from_utf8_lossy(&chunk.expect("bytes")));
    }
    sse_data(&body)
}

/// Waits (up to 10 s) until the outbox holds `n` reports.
async fn wait_for_outbox(
    gw: &TestGateway,
    n: usize,
) -> Vec<morpheus_cli::gateway::outbox::Pending> {
    let mut pending = Vec::new();
    for _ in 0..100 {
        pending = gw.gateway.outbox().pending().await.expect("outbox");
        if pending.len() == n {
            return pending;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "the outbox holds {} reports, not {n}: {pending:?}",
        pending.len()
    );
}

#[tokio::test]
async fn a_report_waits_in_the_outbox_until_the_router_is_back() {
    let mut net = Net::start(false).await;
    let gate = Arc::new(Notify::new());
    let fake = FakeProvider::start(Behaviour::Gated(gate.clone())).await;
    net.provide(FAKE, &fake.url, PRICE).await;
    let gw = net
        .gateway(USER, |c| {
            c.outbox_retry_interval = Duration::from_millis(300)
        })
        .await;

    let events = answer_with_the_router_down(&mut net, &gw, &gate).await;
    assert_eq!(
        events.last().map(String::as_str),
        Some("[DONE]"),
        "the client saw no failure"
    );
    // Kept, and tried again while the router stays down.
    let pending = wait_for_outbox(&gw, 1).await;
    assert_eq!(pending[0].report.message.tokens, U256::from(GATED_TOKENS));
    assert!(pending[0].report.message.passed);
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let pending = wait_for_outbox(&gw, 1).await;
    assert!(pending[0].attempts >= 2, "{pending:?}");
    assert!(
        pending[0]
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("router")),
        "{pending:?}"
    );

    net.start_router().await;
    wait_for_outbox(&gw, 0).await;
    let info = net.wait_for_reports(net.address(FAKE), 1).await;
    assert_eq!(info.reputation.completed, 1, "{info:?}");
    assert_eq!(info.reputation.earned, U256::from(GATED_TOKENS * PRICE));
    gw.stop().await;
    net.stop().await;
}

#[tokio::test]
async fn reports_left_in_the_outbox_are_sent_when_the_next_gateway_starts() {
    let mut net = Net::start(false).await;
    let gate = Arc::new(Notify::new());
    let fake = FakeProvider::start(Behaviour::Gated(gate.clone())).await;
    net.provide(FAKE, &fake.url, PRICE).await;
    // No retry while it runs: only the start of the next one sends the report.
    let hour = Duration::from_secs(3_600);
    let gw = net.gateway(USER, |c| c.outbox_retry_interval = hour).await;
    answer_with_the_router_down(&mut net, &gw, &gate).await;
    wait_for_outbox(&gw, 1).await;
    let outbox = gw.gateway.outbox().path().to_path_buf();
    let dir = gw.stop().await;

    net.start_router().await;
    let next = net
        .gateway_with_outbox(USER, outbox, dir, |c| c.outbox_retry_interval = hour)
        .await;
    wait_for_outbox(&next, 0).await;
    let info = net.wait_for_reports(net.address(FAKE), 1).await;
    assert_eq!(info.reputation.completed, 1, "{info:?}");
    next.stop().await;
    net.stop().await;
}
