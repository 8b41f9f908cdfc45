//! The speed rule and failed reports: no credit, a worse record.

use alloy::primitives::{B256, U256};
use morpheus_sdk::router::Outcome;

use crate::common::{Net, PRICE, PROVIDER};

#[tokio::test]
async fn slow_and_failed_reports_earn_nothing() {
    let net = Net::start().await;
    let provider = net.devnet.signer(PROVIDER).address();

    // 100 tokens in 100 ms: 1 ms/token, the model's first report, credited.
    let first = session(&net).await;
    let r = net
        .router
        .report_usage(&net.report_as(&net.user(), first, 100, 100, true))
        .await
        .expect("report");
    assert_eq!(r.outcome, Outcome::Credited, "{}", r.detail);

    // 100 tokens in 1000 ms: 10 ms/token, more than 50 % above the mean of 1: nothing.
    let slow = session(&net).await;
    let r = net
        .router
        .report_usage(&net.report_as(&net.user(), slow, 100, 1000, true))
        .await
        .expect("report");
    assert_eq!(r.outcome, Outcome::Slow, "{}", r.detail);
    assert_eq!(r.amount, U256::ZERO);
    assert!(r.detail.contains("ms/token"), "{}", r.detail);

    // The user says it failed: nothing.
    let failed = session(&net).await;
    let r = net
        .router
        .report_usage(&net.report_as(&net.user(), failed, 100, 100, false))
        .await
        .expect("report");
    assert_eq!(r.outcome, Outcome::Failed);
    assert_eq!(r.amount, U256::ZERO);

    let voucher = net
        .router
        .voucher(provider)
        .await
        .expect("voucher")
        .expect("credited once");
    assert_eq!(voucher.message.cumulativeAmount, U256::from(100 * PRICE));
    assert_eq!(voucher.message.sessions, U256::from(3));
    assert_eq!(voucher.message.failed, U256::from(2));
    let record = &net
        .router
        .providers(net.model_id)
        .await
        .expect("list")
        .providers[0]
        .record;
    assert_eq!((record.sessions, record.failed), (3, 2));
    assert!(record.bad_record, "2 of its last 3 reports earned nothing");
    // A bad record puts a provider behind every other live one; alone, it is still assigned.
    session(&net).await;
    net.stop().await;
}

async fn session(net: &Net) -> B256 {
    net.assignment().await.message.sessionId
}
