//! A user whose day's allowance is used up is refused 429 with what is left, and nothing is
//! reserved for the refused request.

use std::time::Duration;

use alloy::primitives::U256;
use morpheus_cli::gateway::tokens;
use morpheus_sdk::openai::ChatMessage;

use crate::common::{Net, PRICE, PROVIDER, USER, chat_body};

/// Anvil account of a user with a small stake.
const SMALL_USER: usize = 6;

#[tokio::test]
async fn an_allowance_used_up_is_refused_429_with_what_is_left() {
    let mut net = Net::start(true).await;
    net.add_worker(PROVIDER, PRICE).await;
    // A stake worth about 1,000 tokens a day: userMax is linear in the stake.
    let five = net
        .router
        .allowance(net.address(USER))
        .await
        .expect("allowance")
        .user_max;
    let stake = U256::from(5_000_000_000_000_000_000u128) * U256::from(1_000) / five;
    net.devnet
        .protocol(SMALL_USER)
        .await
        .expect("connect")
        .session_router()
        .stake(stake)
        .await
        .expect("stake");
    let small = net.address(SMALL_USER);
    let day = net.router.allowance(small).await.expect("allowance");
    assert!(
        day.user_max > U256::from(300) && day.user_max < U256::from(3_000),
        "{day:?}"
    );
    let gw = net.gateway(SMALL_USER, |_| {}).await;

    // A first chat takes part of the day.
    let response = gw.post(&chat_body("Say hi", 16, false)).await;
    assert_eq!(response.status(), 200);
    net.wait_for_reports(net.address(PROVIDER), 1).await;
    // The session counts its whole tokenMax until the provider's receipt says less.
    let token_max = tokens::token_max(&[ChatMessage::user("Say hi")], Some(16), 512, u64::MAX);
    let mut left = net.router.allowance(small).await.expect("allowance");
    for _ in 0..100 {
        if left.used < U256::from(token_max) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        left = net.router.allowance(small).await.expect("allowance");
    }
    assert!(left.used < U256::from(token_max), "{left:?}");
    assert!(
        left.remaining < day.user_max && left.remaining > U256::ZERO,
        "{left:?}"
    );

    // Asking for more than is left: 429, with the figure left, streamed or not.
    let max_tokens = u32::try_from(left.remaining).expect("small");
    for stream in [false, true] {
        let response = gw.post(&chat_body("Say hi", max_tokens, stream)).await;
        assert_eq!(response.status(), 429, "stream {stream}");
        let body: serde_json::Value = response.json().await.expect("json");
        assert_eq!(body["error"]["code"], "allowance_exceeded", "{body}");
        assert_eq!(body["error"]["type"], "rate_limit_error", "{body}");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains(&format!("has {} left today", left.remaining)),
            "{message}"
        );
    }
    let after = net.router.allowance(small).await.expect("allowance");
    assert_eq!(
        after.used, left.used,
        "the refused requests reserved nothing"
    );
    gw.stop().await;
    net.stop().await;
}
