//! Under concurrent load the router talks to a provider in batches: requests that need its
//! liveness proof while a challenge is in flight share that challenge's answer, and reports
//! that need its receipts while a request for receipts is out go together in the next one
//! (`select/liveness.rs`, `receipts.rs`). Each session is still counted by its own receipt.

use alloy::primitives::U256;
use morpheus_router::RateLimit;

use crate::common::{Net, PRICE, PROVIDER, forward_slowly};

/// The value of the unlabelled metric `name`.
fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} in /metrics"))
}

#[tokio::test]
async fn concurrent_requests_and_reports_share_challenges_and_receipt_requests() {
    const N: usize = 16;
    let net = Net::with(|c| {
        c.user_rate_limit = RateLimit::OFF;
        c.ip_rate_limit = RateLimit::OFF;
    })
    .await;
    net.bid(U256::from(PRICE), N as u64).await;
    // The provider answers 300 ms late, so the requests sent together certainly overlap with
    // its first challenge and the reports with its first receipts.
    let worker = net
        .worker
        .as_ref()
        .expect("the provider's worker")
        .url
        .clone();
    let (slow, _forwarder) = forward_slowly(&worker, std::time::Duration::from_millis(300));
    net.devnet
        .protocol(PROVIDER)
        .await
        .expect("connect")
        .registry()
        .update_endpoint(&slow)
        .await
        .expect("move the endpoint");
    let user = net.user().address();
    let before = net.router.allowance(user).await.expect("allowance").used;

    let requests: Vec<_> = (0..N).map(|_| net.request(|_| {})).collect();
    let assignments =
        futures::future::try_join_all(requests.iter().map(|r| net.router.request_compute(r)))
            .await
            .expect("every request assigned");
    let reserved = net.router.allowance(user).await.expect("allowance").used;
    assert_eq!(
        reserved - before,
        U256::from(256 * N),
        "each holds its tokenMax"
    );

    // Never used: each session's receipt counts 0, so every report gives its reservation back.
    let reports: Vec<_> = assignments
        .iter()
        .map(|a| net.report_as(&net.user(), a.message.sessionId, 0, 100, true))
        .collect();
    let receipts =
        futures::future::try_join_all(reports.iter().map(|r| net.router.report_usage(r)))
            .await
            .expect("every report accepted");
    for (receipt, a) in receipts.iter().zip(&assignments) {
        assert_eq!(receipt.session_id, a.message.sessionId);
        assert_eq!(
            receipt.counted,
            U256::ZERO,
            "counted by the provider's receipt"
        );
    }
    let after = net.router.allowance(user).await.expect("allowance").used;
    assert_eq!(after, before, "every reservation came back");

    let text = net.metrics().await;
    let challenges = metric(&text, "morpheus_router_liveness_calls_total");
    let asks = metric(&text, "morpheus_router_receipts_calls_total");
    // One each would be 16; sharing gives 1 (all within the first's 300 ms) or 2.
    assert!(
        (1.0..=4.0).contains(&challenges),
        "{challenges} challenges for {N} concurrent requests"
    );
    assert!(
        (1.0..=4.0).contains(&asks),
        "{asks} receipt requests for {N} concurrent reports"
    );
    eprintln!("{N} requests: {challenges} challenges; {N} reports: {asks} receipt requests");
    net.stop().await;
}
