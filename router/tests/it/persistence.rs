//! The router's state lives in its SQLite file: a restart keeps credits, reservations, sessions
//! and used nonces.

use alloy::primitives::U256;

use crate::common::{Net, PRICE, PROVIDER, assert_refused};

#[tokio::test]
async fn a_restarted_router_remembers_everything() {
    let mut net = Net::start().await;
    let user = net.user().address();
    let provider = net.devnet.signer(PROVIDER).address();

    let done = net.assignment().await;
    net.router
        .report_usage(&net.report_as(&net.user(), done.message.sessionId, 100, 100, true))
        .await
        .expect("report");
    let open_request = net.request(|_| {});
    let open = net
        .router
        .request_compute(&open_request)
        .await
        .expect("assignment");
    let voucher = net.voucher(provider).await;

    net.restart_router().await;

    let again = net.voucher(provider).await;
    assert_eq!(
        again.message.cumulativeAmount,
        voucher.message.cumulativeAmount
    );
    assert_eq!(again.message.cumulativeAmount, U256::from(100 * PRICE));
    assert_eq!(again.message.sessions, U256::from(1));
    let allowance = net.router.allowance(user).await.expect("allowance");
    assert_eq!(
        allowance.used,
        U256::from(100 + 256),
        "used + still reserved"
    );
    assert_refused(
        net.router.request_compute(&open_request).await,
        409,
        "nonce",
    );
    net.router
        .report_usage(&net.report_as(&net.user(), open.message.sessionId, 50, 50, true))
        .await
        .expect("the open session is reported after the restart");
    assert_refused(
        net.router
            .report_usage(&net.report_as(&net.user(), done.message.sessionId, 1, 1, true))
            .await,
        409,
        "already reported",
    );
    net.stop().await;
}
