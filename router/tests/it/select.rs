//! Which provider the router picks: liveness, capacity, and the user's retry after a refusal.

use alloy::primitives::U256;

use crate::common::{Net, PRICE, PROVIDER, USER, assert_refused, provide, stake};

#[tokio::test]
async fn a_provider_that_fails_liveness_is_skipped() {
    let net = Net::start().await;
    // A cheaper provider that is not running: the router must fall through to the live one.
    let dead = net.devnet.signer(4).address();
    provide(
        &net.devnet,
        4,
        "http://127.0.0.1:9",
        net.model_id,
        PRICE / 2,
    )
    .await;
    let list = net.router.providers(net.model_id).await.expect("providers");
    assert_eq!(list.providers.len(), 2);
    assert_eq!(list.providers[0].provider, dead, "cheapest first");

    let assignment = net.assignment().await;
    assert_eq!(
        assignment.message.provider,
        net.devnet.signer(PROVIDER).address()
    );
    assert_eq!(assignment.message.pricePerToken, U256::from(PRICE));
    net.stop().await;
}

#[tokio::test]
async fn a_full_provider_gets_no_more_sessions_until_one_ends() {
    // Refused at once rather than queued (`queue.rs` has the queue's tests).
    let net = Net::with(|c| c.queue_wait = std::time::Duration::ZERO).await;
    net.devnet
        .protocol(PROVIDER)
        .await
        .expect("connect")
        .registry()
        .update_bid(net.model_id, U256::from(PRICE), U256::from(1))
        .await
        .expect("capacity 1");
    let first = net.assignment().await;
    let waiting = net.request(|_| {});
    assert_refused(net.router.request_compute(&waiting).await, 503, "full");

    // The first session ends; the refused request (its nonce released) now gets the provider.
    net.router
        .report_usage(&net.report_as(&net.user(), first.message.sessionId, 20, 40, true))
        .await
        .expect("report");
    net.router
        .request_compute(&waiting)
        .await
        .expect("the same signed request, retried");
    net.stop().await;
}

/// The router reads the chain once per block (`chain_view.rs`): what a new block changes (a
/// bid, a user's stake, a bid withdrawn) is what the very next request sees.
#[tokio::test]
async fn a_change_on_chain_is_seen_by_the_next_request() {
    let net = Net::start().await;
    let user = net.user().address();
    assert_eq!(
        net.assignment().await.message.pricePerToken,
        U256::from(PRICE)
    );
    net.bid(U256::from(2 * PRICE), 16).await;
    assert_eq!(
        net.assignment().await.message.pricePerToken,
        U256::from(2 * PRICE),
        "the bid changed in the block before"
    );

    let before = net.router.allowance(user).await.expect("allowance");
    stake(&net.devnet, USER, "10").await;
    let after = net.router.allowance(user).await.expect("allowance");
    assert!(
        after.user_max > before.user_max,
        "a stake is counted at once: {} then {}",
        before.user_max,
        after.user_max
    );

    net.devnet
        .protocol(PROVIDER)
        .await
        .expect("connect")
        .registry()
        .delete_bid(net.model_id)
        .await
        .expect("delete the bid");
    assert_refused(
        net.router.request_compute(&net.request(|_| {})).await,
        503,
        "no active bids",
    );
    net.stop().await;
}
