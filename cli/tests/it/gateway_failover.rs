//! Two providers at different prices: the cheaper serves while it is live; when it fails
//! before its first token, the gateway asks the router for another, excluding it, and the
//! client sees one answer. The failed session is reported failed with 0 tokens.

use std::time::Duration;

use alloy::primitives::U256;

use crate::{
    common::{
        FAKE, FAKE_B, Net, PRICE, PROVIDER, PROVIDER_B, USER, chat_body, provider_of, sse_data,
    },
    gateway_fakes::{Behaviour, FakeProvider},
};

#[tokio::test]
async fn the_cheaper_provider_serves_until_it_stops_then_the_other_does() {
    // Liveness off: the router assigns the stopped provider, so the gateway is the one that
    // finds it down and fails over.
    let mut net = Net::start(false).await;
    let cheap = net.add_worker(PROVIDER, PRICE).await;
    net.add_worker(PROVIDER_B, 2 * PRICE).await;
    let gw = net.gateway(USER, |_| {}).await;

    let response = gw.post(&chat_body("Say hi", 8, false)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        provider_of(&response),
        net.address(PROVIDER),
        "the cheaper wins"
    );
    let first: serde_json::Value = response.json().await.expect("json");
    let first_tokens = first["usage"]["total_tokens"].as_u64().expect("usage");

    net.workers.remove(cheap).stop().await;

    // Streamed: one whole answer from the other provider, to [DONE].
    let response = gw.post(&chat_body("Say hi", 8, true)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(provider_of(&response), net.address(PROVIDER_B));
    let events = sse_data(&response.text().await.expect("body"));
    assert_eq!(
        events.last().map(String::as_str),
        Some("[DONE]"),
        "{events:?}"
    );
    assert!(
        events.iter().all(|e| !e.contains("\"error\"")),
        "{events:?}"
    );
    // Whole: the same.
    let response = gw.post(&chat_body("Say hi", 8, false)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(provider_of(&response), net.address(PROVIDER_B));
    let body: serde_json::Value = response.json().await.expect("json");
    assert!(
        !body["choices"][0]["message"]["content"]
            .as_str()
            .unwrap_or("")
            .is_empty()
    );

    // The stopped provider: one credited session, two failed with nothing counted.
    let info = net.wait_for_reports(net.address(PROVIDER), 3).await;
    assert_eq!(
        (info.reputation.completed, info.reputation.failed),
        (1, 2),
        "{info:?}"
    );
    assert_eq!(
        info.record.tokens, first_tokens,
        "the failed sessions report 0 tokens"
    );
    assert_eq!(info.reputation.earned, U256::from(first_tokens * PRICE));
    let other = net.wait_for_reports(net.address(PROVIDER_B), 2).await;
    assert_eq!(
        (other.reputation.completed, other.reputation.failed),
        (2, 0),
        "{other:?}"
    );
    gw.stop().await;
    net.stop().await;
}

#[tokio::test]
async fn a_provider_that_answers_500_or_never_answers_is_left_for_the_next() {
    let mut net = Net::start(false).await;
    let failing = FakeProvider::start(Behaviour::Fail500).await;
    let hanging = FakeProvider::start(Behaviour::Hang).await;
    net.provide(FAKE, &failing.url, PRICE / 4).await;
    net.provide(FAKE_B, &hanging.url, PRICE / 2).await;
    net.add_worker(PROVIDER, PRICE).await;
    let gw = net
        .gateway(USER, |c| c.first_token_timeout = Duration::from_secs(2))
        .await;

    let response = gw.post(&chat_body("Say hi", 8, true)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(provider_of(&response), net.address(PROVIDER));
    let events = sse_data(&response.text().await.expect("body"));
    assert_eq!(
        events.last().map(String::as_str),
        Some("[DONE]"),
        "{events:?}"
    );
    assert_eq!(
        (failing.chats(), hanging.chats()),
        (1, 1),
        "each was tried once"
    );

    for fake in [FAKE, FAKE_B] {
        let info = net.wait_for_reports(net.address(fake), 1).await;
        assert_eq!(
            (info.reputation.completed, info.reputation.failed),
            (0, 1),
            "{info:?}"
        );
        assert_eq!(info.record.tokens, 0);
    }
    let info = net.wait_for_reports(net.address(PROVIDER), 1).await;
    assert_eq!(info.reputation.completed, 1, "{info:?}");

    // With every provider failing, the client is told why, with each one's reason.
    let gw_alone = net
        .gateway(USER, |c| {
            c.first_token_timeout = Duration::from_secs(1);
            c.max_attempts = 2;
        })
        .await;
    let response = gw_alone.post(&chat_body("Say hi", 8, false)).await;
    assert_eq!(response.status(), 503);
    let body: serde_json::Value = response.json().await.expect("json");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("500") && message.contains("no first token within 1s"),
        "{message}"
    );
    gw_alone.stop().await;
    gw.stop().await;
    net.stop().await;
}
