//! Several users, each with a gateway signing with their own key, are served at once and
//! each is counted what it was served.

use std::time::Duration;

use alloy::primitives::U256;

use crate::common::{Net, PRICE, PROVIDER, USER, USER_B, USER_C, chat_body, provider_of, stake};

#[tokio::test]
async fn several_users_are_served_at_once_and_each_counted_its_own() {
    let mut net = Net::start(true).await;
    net.add_worker(PROVIDER, PRICE).await;
    stake(&net.devnet, USER_B, "3").await;
    stake(&net.devnet, USER_C, "2").await;
    let users = [USER, USER_B, USER_C];
    let mut gateways = Vec::new();
    for user in users {
        gateways.push(net.gateway(user, |_| {}).await);
    }

    let answers =
        futures::future::join_all(gateways.iter().enumerate().map(|(i, gw)| async move {
            let response = gw
                .post(&chat_body(&format!("Count to {}", i + 3), 12, false))
                .await;
            assert_eq!(response.status(), 200);
            let provider = provider_of(&response);
            let body: serde_json::Value = response.json().await.expect("json");
            (
                provider,
                body["usage"]["total_tokens"].as_u64().expect("usage"),
            )
        }))
        .await;

    for ((user, (provider, tokens)), gw) in users.iter().zip(&answers).zip(&gateways) {
        assert_eq!(*provider, net.address(PROVIDER));
        assert!(*tokens > 0);
        // Once reported (and the provider's receipt in), the user's day counts exactly what
        // it was served, no more (the reservation's rest came back) and none of the others'.
        let address = net.address(*user);
        let mut used = U256::MAX;
        for _ in 0..100 {
            used = net.router.allowance(address).await.expect("allowance").used;
            if used == U256::from(*tokens) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(used, U256::from(*tokens), "user {address}");
        gw.assert_outbox_empty().await;
    }
    let info = net.wait_for_reports(net.address(PROVIDER), 3).await;
    assert_eq!(info.reputation.completed, 3, "{info:?}");
    let total: u64 = answers.iter().map(|(_, t)| t).sum();
    assert_eq!(info.reputation.earned, U256::from(total * PRICE));
    for gw in gateways {
        gw.stop().await;
    }
    net.stop().await;
}
