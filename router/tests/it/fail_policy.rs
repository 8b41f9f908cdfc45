//! The fail policy (docs/protocol.md, Router, "fail policy"): a failed report withholds the
//! credit always (the default), or under `by-stake` only when the user's stake exceeds the
//! provider's, and otherwise is credited and counts against the provider's record.

use alloy::primitives::U256;
use morpheus_router::FailPolicy;
use morpheus_sdk::router::{Outcome, UsageReceipt};

use crate::common::{Net, PRICE, PROVIDER, USER, stake};

/// A session reported failed with 10 tokens.
async fn fail_one(net: &Net) -> UsageReceipt {
    let assignment = net.assignment().await;
    net.router
        .report_usage(&net.report_as(&net.user(), assignment.message.sessionId, 10, 100, false))
        .await
        .expect("report")
}

#[tokio::test]
async fn by_default_every_fail_withholds_the_credit_and_still_reaches_the_chain() {
    let net = Net::start().await;
    // The user stakes 5 MOR, the provider 10: even so the fail withholds.
    let r = fail_one(&net).await;
    assert_eq!(r.outcome, Outcome::Failed, "{}", r.detail);
    assert_eq!(r.amount, U256::ZERO);

    // A provider whose sessions all failed still reaches the chain's record: its voucher pays
    // nothing and records the failure.
    let provider = net.devnet.signer(PROVIDER).address();
    let voucher = net.voucher(provider).await;
    assert_eq!(voucher.message.cumulativeAmount, U256::ZERO);
    assert_eq!(voucher.message.failed, U256::from(1));
    assert_eq!(net.claim(PROVIDER, voucher).await, U256::ZERO);
    let chain = net.devnet.protocol(USER).await.expect("connect");
    let rep = chain
        .session_router()
        .reputation(provider)
        .await
        .expect("reputation");
    assert_eq!((rep.sessions, rep.failed), (U256::from(1), U256::from(1)));
    net.stop().await;
}

#[tokio::test]
async fn by_stake_a_fail_withholds_only_from_a_larger_stake() {
    let net = Net::with(|c| c.fail_policy = FailPolicy::ByStake).await;
    let provider = net.devnet.signer(PROVIDER).address();

    // 5 MOR against the provider's 10: credited, and a point against the record.
    let r = fail_one(&net).await;
    assert_eq!(r.outcome, Outcome::Disputed, "{}", r.detail);
    assert_eq!(r.amount, U256::from(10) * U256::from(PRICE));
    let record = &net
        .router
        .providers(net.model_id)
        .await
        .expect("providers")
        .providers[0]
        .record;
    assert_eq!((record.sessions, record.failed), (1, 1));
    let voucher = net.voucher(provider).await;
    assert_eq!(voucher.message.failed, U256::from(1));
    assert_eq!(voucher.message.cumulativeAmount, r.amount);

    // 15 MOR against 10: the fail withholds.
    stake(&net.devnet, USER, "10").await;
    let r = fail_one(&net).await;
    assert_eq!(r.outcome, Outcome::Failed, "{}", r.detail);
    assert_eq!(r.amount, U256::ZERO);
    net.stop().await;
}
