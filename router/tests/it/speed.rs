//! The speed rule and failed reports: no credit, a worse record (`speed_reference`/`is_slow` in
//! router/src/speed.rs, `bad_record` in router/src/record.rs).

use alloy::primitives::{B256, U256};
use morpheus_sdk::router::Outcome;

use crate::common::{Net, PRICE, PROVIDER, USER, stake};

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

    // 100 tokens in 1000 ms: 10 ms/token, more than 50 % above the reference of 1: nothing.
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

    let voucher = net.voucher(provider).await;
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
    assert!(
        !record.bad_record,
        "2 of its last 3 reports earned nothing, but all from one user (K = 3)"
    );
    net.stop().await;
}

/// A record is bad only when failures from K = 3 distinct users are most of the provider's last
/// Z reports; good reports after them restore it. A bad record puts a provider behind every other
/// live one; alone, it is still assigned, so it can earn its record back.
#[tokio::test]
async fn failures_from_k_users_make_a_bad_record_that_good_reports_restore() {
    let net = Net::start().await;
    let users = [USER, 5, 6];
    for &u in &users[1..] {
        stake(&net.devnet, u, "5").await;
    }
    let bad = || async {
        net.router
            .providers(net.model_id)
            .await
            .expect("list")
            .providers[0]
            .record
            .bad_record
    };
    let report = |user: usize, tokens, duration_ms, passed| {
        let net = &net;
        async move {
            let signer = net.devnet.signer(user);
            let request = net.request_as(&signer, |r| r.user = signer.address());
            let session = net
                .router
                .request_compute(&request)
                .await
                .expect("assignment")
                .message
                .sessionId;
            net.router
                .report_usage(&net.report_as(&signer, session, tokens, duration_ms, passed))
                .await
                .expect("report")
                .outcome
        }
    };

    // Two users fail two sessions each: every report failed, but from two users.
    for &u in &users[..2] {
        for _ in 0..2 {
            assert_eq!(report(u, 1, 10, false).await, Outcome::Failed);
        }
    }
    assert!(!bad().await, "4 of 4 failed, from 2 users");
    // A third user's failure: 5 of 5 from 3 users.
    assert_eq!(report(users[2], 1, 10, false).await, Outcome::Failed);
    assert!(bad().await, "5 of 5 failed, from 3 users");

    // Good reports restore it once failures are no longer more than half of the window.
    for _ in 0..4 {
        assert_eq!(report(USER, 100, 1_000, true).await, Outcome::Credited);
    }
    assert!(bad().await, "5 of 9 failed");
    assert_eq!(report(USER, 100, 1_000, true).await, Outcome::Credited);
    assert!(!bad().await, "5 of 10 failed: restored");
    net.stop().await;
}

async fn session(net: &Net) -> B256 {
    net.assignment().await.message.sessionId
}
