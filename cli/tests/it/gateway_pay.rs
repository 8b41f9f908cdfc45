//! What the provider is paid: exactly what the gateway's reports credited, and nothing for an
//! answer that broke off.

use alloy::primitives::U256;

use crate::{
    common::{FAKE, Net, PRICE, PROVIDER, USER, assert_error, chat_body, sse_data},
    gateway_fakes::{Behaviour, FakeProvider},
};

#[tokio::test]
async fn the_providers_claim_pays_exactly_what_its_users_were_served() {
    let mut net = Net::start(true).await;
    net.add_worker(PROVIDER, PRICE).await;
    let gw = net.gateway(USER, |_| {}).await;

    let mut served = 0;
    for (prompt, stream) in [
        ("Say hi", false),
        ("Name a colour", true),
        ("Count to 3", false),
    ] {
        let response = gw.post(&chat_body(prompt, 12, stream)).await;
        assert_eq!(response.status(), 200);
        served += if stream {
            let events = sse_data(&response.text().await.expect("body"));
            let usage: serde_json::Value =
                serde_json::from_str(&events[events.len() - 2]).expect("the usage chunk");
            usage["usage"]["total_tokens"].as_u64().expect("tokens")
        } else {
            let body: serde_json::Value = response.json().await.expect("json");
            body["usage"]["total_tokens"].as_u64().expect("tokens")
        };
    }
    let info = net.wait_for_reports(net.address(PROVIDER), 3).await;
    assert_eq!(info.reputation.completed, 3, "{info:?}");
    let credited = U256::from(served * PRICE);
    assert_eq!(info.reputation.earned, credited);

    let voucher = net
        .router
        .voucher(net.address(PROVIDER))
        .await
        .expect("voucher")
        .expect("the provider was credited");
    let chain = net.devnet.protocol(PROVIDER).await.expect("connect");
    let before = chain
        .mor()
        .balance_of(net.address(PROVIDER))
        .await
        .expect("balance");
    chain
        .session_router()
        .claim(std::slice::from_ref(&voucher))
        .await
        .expect("claim");
    let paid = chain
        .mor()
        .balance_of(net.address(PROVIDER))
        .await
        .expect("balance")
        - before;
    assert_eq!(
        paid, credited,
        "the claim pays the credited total, to the wei"
    );
    assert!(!paid.is_zero());
    gw.stop().await;
    net.stop().await;
}

#[tokio::test]
async fn an_answer_that_breaks_off_is_reported_failed_and_earns_nothing() {
    let net = Net::start(false).await;
    let cut = FakeProvider::start(Behaviour::Cut).await;
    net.provide(FAKE, &cut.url, PRICE).await;
    let gw = net.gateway(USER, |_| {}).await;

    // Streamed: the words that came, then OpenAI's error event, and no [DONE].
    let response = gw.post(&chat_body("Say hi", 8, true)).await;
    assert_eq!(response.status(), 200);
    let events = sse_data(&response.text().await.expect("body"));
    assert!(events.iter().any(|e| e.contains("Hello")), "{events:?}");
    let last: serde_json::Value =
        serde_json::from_str(events.last().expect("events")).expect("json");
    assert_eq!(last["error"]["code"], "answer_cut", "{events:?}");
    assert!(!events.iter().any(|e| e == "[DONE]"), "{events:?}");
    // Whole: 502, saying why.
    assert_error(gw.post(&chat_body("Say hi", 8, false)).await, 502, "[DONE]").await;

    let info = net.wait_for_reports(net.address(FAKE), 2).await;
    assert_eq!(
        (info.reputation.completed, info.reputation.failed),
        (0, 2),
        "{info:?}"
    );
    assert_eq!(info.reputation.earned, U256::ZERO);
    let voucher = net
        .router
        .voucher(net.address(FAKE))
        .await
        .expect("voucher")
        .expect("a voucher records the sessions");
    assert_eq!(voucher.message.cumulativeAmount, U256::ZERO);
    assert_eq!(voucher.message.failed, U256::from(2));
    gw.stop().await;
    net.stop().await;
}
