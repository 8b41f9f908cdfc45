//! Bad input is refused with a clear reason, and changes nothing.

use alloy::{primitives::U256, signers::local::PrivateKeySigner};

use morpheus_testkit::unix_now;

use crate::common::{Net, PROVIDER, assert_refused};

#[tokio::test]
async fn bad_requests_are_refused() {
    let net = Net::start().await;
    let user = net.user().address();

    // Signed by someone else than the user it names.
    let stranger = PrivateKeySigner::random();
    assert_refused(
        net.router
            .request_compute(&net.request_as(&stranger, |_| {}))
            .await,
        401,
        "is signed by",
    );
    // A signature that does not match the message (the message changed after signing).
    let mut tampered = net.request(|_| {});
    tampered.message.tokenMax = U256::from(1);
    assert_refused(net.router.request_compute(&tampered).await, 401, "");

    // Expired deadline.
    assert_refused(
        net.router
            .request_compute(&net.request(|r| r.deadline = U256::from(unix_now() - 10)))
            .await,
        400,
        "deadline",
    );

    // Replayed nonce.
    let request = net.request(|_| {});
    net.router
        .request_compute(&request)
        .await
        .expect("first use");
    assert_refused(net.router.request_compute(&request).await, 409, "nonce");

    // Over the allowance.
    let allowance = net.router.allowance(user).await.expect("allowance");
    assert_refused(
        net.router
            .request_compute(&net.request(|r| r.tokenMax = allowance.remaining + U256::from(1)))
            .await,
        429,
        "left today",
    );
    assert_refused(
        net.router
            .request_compute(&net.request(|r| r.tokenMax = U256::ZERO))
            .await,
        400,
        "tokenMax",
    );

    // Unknown model, and a registered model nobody bids on.
    assert_refused(
        net.router
            .request_compute(&net.request(|r| r.modelId = [7u8; 32].into()))
            .await,
        404,
        "not registered",
    );
    let unbid = net
        .devnet
        .protocol(5)
        .await
        .expect("connect")
        .registry()
        .register_model(
            [9u8; 32].into(),
            3,
            morpheus_sdk::contracts::GGUF,
            "nobody serves this",
        )
        .await
        .expect("register model");
    let before = net.router.allowance(user).await.expect("allowance");
    assert_refused(
        net.router
            .request_compute(&net.request(|r| r.modelId = unbid))
            .await,
        503,
        "no active bids",
    );
    let after = net.router.allowance(user).await.expect("allowance");
    assert_eq!(
        before.used, after.used,
        "a refused request reserves nothing"
    );

    // Not JSON at all.
    let response = reqwest_post(&net, "/v1/compute", "{\"message\": 1}").await;
    assert_eq!(response.0, 400);
    assert!(
        response.1.contains("signed ComputeRequest"),
        "{}",
        response.1
    );

    // Nothing earned yet.
    assert!(
        net.router
            .voucher(net.devnet.signer(PROVIDER).address())
            .await
            .expect("voucher query")
            .is_none()
    );
    net.stop().await;
}

#[tokio::test]
async fn bad_reports_are_refused() {
    let net = Net::start().await;
    let assignment = net.assignment().await;
    let session = assignment.message.sessionId;

    // From someone other than the session's user.
    let other = net.devnet.signer(6);
    assert_refused(
        net.router
            .report_usage(&net.report_as(&other, session, 10, 100, true))
            .await,
        403,
        "belongs to",
    );
    // A session the router never assigned.
    assert_refused(
        net.router
            .report_usage(&net.report_as(&net.user(), [3u8; 32].into(), 10, 100, true))
            .await,
        404,
        "unknown session",
    );
    // The first report counts (tokens capped at tokenMax); a second one is refused.
    let receipt = net
        .router
        .report_usage(&net.report_as(&net.user(), session, 10_000, 100, true))
        .await
        .expect("report");
    assert_eq!(receipt.tokens, U256::from(256), "capped at tokenMax");
    assert_refused(
        net.router
            .report_usage(&net.report_as(&net.user(), session, 10, 100, true))
            .await,
        409,
        "already reported",
    );
    net.stop().await;
}

/// Posts a raw body to the router, returning the status and body text.
async fn reqwest_post(net: &Net, path: &str, body: &str) -> (u16, String) {
    let url = net.router_url(path);
    let response = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .expect("post");
    let status = response.status().as_u16();
    (status, response.text().await.expect("text"))
}
