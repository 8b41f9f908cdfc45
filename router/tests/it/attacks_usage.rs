//! Attacks on the allowance through usage reports (docs/security.md, "The router"): a user's
//! own count never gives its reservation back; only the provider's signed receipt does.

use std::time::Duration;

use alloy::primitives::U256;
use morpheus_sdk::{
    messages::{Assignment, Signed},
    openai::{ChatCompletionRequest, ChatMessage},
    provider::ProviderClient,
    router::Outcome,
};

use crate::common::{Net, assert_refused};

/// The user is served a real answer with `assignment`; returns the tokens the worker counted.
async fn be_served(assignment: &Signed<Assignment>) -> u64 {
    let client = ProviderClient::new(&assignment.message.endpoint).expect("provider client");
    let model = client.models().await.expect("models").data[0].id.clone();
    let answer = client.chat(assignment, &chat(model)).await.expect("chat");
    let tokens = u64::from(answer.usage.total_tokens);
    assert!(tokens > 0, "the worker served something");
    tokens
}

fn chat(model: String) -> ChatCompletionRequest {
    ChatCompletionRequest {
        model,
        messages: vec![ChatMessage::user("Count to twenty")],
        max_tokens: Some(16),
        temperature: Some(0.0),
        ..Default::default()
    }
}

/// Polls until the user's allowance shows `used`, or fails after `within`.
async fn wait_for_used(net: &Net, used: u64, within: Duration) {
    let user = net.user().address();
    let start = std::time::Instant::now();
    loop {
        let now = net.router.allowance(user).await.expect("allowance").used;
        if now == U256::from(used) {
            return;
        }
        assert!(
            start.elapsed() < within,
            "after {within:?} the user's day counts {now} tokens, not {used}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The attacker is a staked user. It asks for a session of 256 tokens, is served, and reports
/// 0 tokens (passed or failed, it makes no difference to it), again and again: were its own
/// report to give the reservation back, it would be served without limit while the provider
/// earned nothing. It must be charged what the provider served, and its session must be over
/// at the provider (no more requests on the same assignment, so capacity holds).
#[tokio::test]
async fn attack_zero_token_report_refunds_the_reservation() {
    let net = Net::start().await;
    let mut served_total = 0;
    for round in 0..3 {
        let assignment = net.assignment().await;
        let served = be_served(&assignment).await;
        served_total += served;
        let id = assignment.message.sessionId;
        let receipt = net
            .router
            .report_usage(&net.report_as(&net.user(), id, 0, 100, round % 2 == 0))
            .await
            .expect("report");
        assert_eq!(
            receipt.provider_count,
            Some(U256::from(served)),
            "the router got the provider's signed count"
        );
        assert_eq!(receipt.counted, U256::from(served));
        assert_eq!(
            receipt.amount,
            U256::ZERO,
            "the user's own report decides the credit"
        );
        // Must not get: the reservation back while it was served.
        wait_for_used(&net, served_total, Duration::ZERO).await;

        // Must not get: more from the same assignment after its report.
        let client = ProviderClient::new(&assignment.message.endpoint).expect("client");
        let model = client.models().await.expect("models").data[0].id.clone();
        morpheus_testkit::assert_refused(
            client.chat(&assignment, &chat(model)).await,
            "provider",
            403,
            "closed",
        );
    }
    net.stop().await;
}

/// A user whose provider failed before answering gets its whole reservation back at once, on
/// the provider's signed count of 0.
#[tokio::test]
async fn a_failed_provider_signs_zero_and_the_reservation_comes_back() {
    let net = Net::start().await;
    let assignment = net.assignment().await;
    wait_for_used(&net, 256, Duration::ZERO).await;
    let receipt = net
        .router
        .report_usage(&net.report_as(&net.user(), assignment.message.sessionId, 0, 0, false))
        .await
        .expect("report");
    assert_eq!(receipt.outcome, Outcome::Failed);
    assert_eq!(receipt.provider_count, Some(U256::ZERO));
    wait_for_used(&net, 0, Duration::ZERO).await;
    net.stop().await;
}

/// A provider that does not answer for a session holds the user's reservation only until the
/// session expires and the router has asked for the receipt `receipt_attempts` times; then the
/// user's report settles it. A provider that answers late is believed.
#[tokio::test]
async fn an_unanswering_provider_holds_the_reservation_until_expiry() {
    let mut net = Net::with(|c| {
        c.assignment_lifetime = Duration::from_secs(2);
        c.settle_interval = Duration::from_millis(300);
        c.receipt_attempts = 2;
    })
    .await;
    // One session served and never reported: settled by the provider's receipt after expiry.
    let served = net.assignment().await;
    be_served(&served).await;
    // One session reported 0 while the provider is gone.
    let lost = net.assignment().await;
    net.worker.take().expect("worker").stop().await;
    let receipt = net
        .router
        .report_usage(&net.report_as(&net.user(), lost.message.sessionId, 0, 0, false))
        .await
        .expect("report");
    assert_eq!(receipt.provider_count, None, "the provider is gone");
    assert_eq!(receipt.counted, U256::from(256), "the reservation holds");
    wait_for_used(&net, 512, Duration::ZERO).await;
    // After expiry: the lost session by the report (0); the served one... its provider is gone
    // too, and it was never reported, so its reservation holds.
    wait_for_used(&net, 256, Duration::from_secs(15)).await;
    net.stop().await;
}

/// An assignment's receipt can be asked for after it expired, and then counts what was served.
#[tokio::test]
async fn an_expired_session_is_settled_by_the_providers_receipt() {
    let net = Net::with(|c| {
        c.assignment_lifetime = Duration::from_secs(2);
        c.settle_interval = Duration::from_millis(300);
    })
    .await;
    let assignment = net.assignment().await;
    let tokens = be_served(&assignment).await;
    wait_for_used(&net, 256, Duration::ZERO).await;
    // Never reported: once expired, the router asks the provider, which signs what it served.
    wait_for_used(&net, tokens, Duration::from_secs(15)).await;
    // The session is settled: a late report credits as before and changes nothing counted.
    let receipt = net
        .router
        .report_usage(&net.report_as(&net.user(), assignment.message.sessionId, tokens, 100, true))
        .await
        .expect("a late report");
    assert_eq!(receipt.outcome, Outcome::Credited, "{}", receipt.detail);
    wait_for_used(&net, tokens, Duration::ZERO).await;
    assert_refused(
        net.router
            .report_usage(&net.report_as(&net.user(), assignment.message.sessionId, 1, 1, true))
            .await,
        409,
        "already",
    );
    net.stop().await;
}
