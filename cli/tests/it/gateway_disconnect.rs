//! A client that goes away mid-answer still leaves a report: the session is judged on what
//! the provider had sent (the provider did nothing wrong, so it passes).

use std::time::Duration;

use alloy::primitives::U256;
use futures::StreamExt;

use crate::{
    common::{FAKE, Net, PRICE, PROVIDER, USER, chat_body},
    gateway_fakes::{Behaviour, FakeProvider},
};

/// Reads a streamed answer until its first text, then drops the connection.
async fn leave_after_first_words(url: String, body: serde_json::Value) {
    let client = reqwest::Client::new();
    let response = client
        .post(format!("{url}/chat/completions"))
        .json(&body)
        .send()
        .await
        .expect("the gateway answers");
    assert_eq!(response.status(), 200);
    let mut bytes = response.bytes_stream();
    let mut seen = String::new();
    while let Some(chunk) = bytes.next().await {
        seen.push_str(&String::from_utf8_lossy(&chunk.expect("bytes")));
        let text = seen
            .match_indices("\"content\":\"")
            .any(|(i, m)| seen[i + m.len()..].chars().next().is_some_and(|c| c != '"'));
        if text {
            break;
        }
    }
    drop(bytes);
    drop(client);
}

#[tokio::test]
async fn a_client_that_leaves_mid_stream_still_gets_its_session_reported() {
    let mut net = Net::start(true).await;
    net.add_worker(PROVIDER, PRICE).await;
    let gw = net.gateway(USER, |_| {}).await;

    // A long answer, left after its first words.
    leave_after_first_words(gw.v1(), chat_body("Tell me a long story", 2_000, true)).await;
    let info = net.wait_for_reports(net.address(PROVIDER), 1).await;
    assert_eq!(info.reputation.completed, 1, "{info:?}");
    assert!(info.record.tokens > 0, "{info:?}");
    gw.assert_outbox_empty().await;
    gw.stop().await;
    net.stop().await;
}

#[tokio::test]
async fn a_client_that_leaves_while_the_provider_pauses_is_reported_at_once() {
    // The provider sends its first words and then nothing until the test says: the gateway
    // must see the client go while it waits on the provider, not only when it next writes.
    let net = Net::start(false).await;
    let gate = std::sync::Arc::new(tokio::sync::Notify::new());
    let fake = FakeProvider::start(Behaviour::Gated(gate.clone())).await;
    net.provide(FAKE, &fake.url, PRICE).await;
    let gw = net.gateway(USER, |_| {}).await;

    leave_after_first_words(gw.v1(), chat_body("Say hi", 8, true)).await;
    let info = net.wait_for_reports(net.address(FAKE), 1).await;
    assert_eq!(info.reputation.completed, 1, "{info:?}");
    assert_eq!(
        info.record.tokens, 1,
        "the one chunk of text seen: {info:?}"
    );
    assert_eq!(info.reputation.earned, U256::from(PRICE));
    gate.notify_one();
    tokio::time::sleep(Duration::from_millis(100)).await;
    gw.stop().await;
    net.stop().await;
}
