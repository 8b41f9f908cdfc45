//! `POST /v1/receipt`: the provider's signed, final count of a session's tokens.

use alloy::primitives::U256;
use morpheus_testkit::{TestWorker, unix_now};

use crate::common::request;

#[tokio::test]
async fn the_receipt_counts_what_was_served_and_closes_the_session() {
    let worker = TestWorker::start().await;
    let client = worker.client();
    let assignment = worker.assignment(512);
    let answer = client
        .chat(&assignment, &request("Hello there", 8, 1))
        .await
        .expect("chat");
    let served = answer.usage.total_tokens;

    let receipt = client.receipt(&assignment).await.expect("receipt");
    receipt
        .verify(&worker.domain, worker.provider)
        .expect("signed by the provider");
    assert_eq!(receipt.message.sessionId, assignment.message.sessionId);
    assert_eq!(receipt.message.tokens, U256::from(served));

    // Final: no more requests in the session, and asking again counts the same.
    morpheus_testkit::assert_refused(
        client.chat(&assignment, &request("More", 8, 2)).await,
        "provider",
        403,
        "closed",
    );
    let again = client.receipt(&assignment).await.expect("receipt again");
    assert_eq!(again.message.tokens, U256::from(served));
    worker.stop().await;
}

#[tokio::test]
async fn a_session_never_used_is_counted_zero_also_after_it_expired() {
    let worker = TestWorker::start().await;
    let expired = worker.assignment_with(|a| a.expiresAt = U256::from(unix_now() - 10), 100);
    let receipt = worker
        .client()
        .receipt(&expired)
        .await
        .expect("an expired session's receipt");
    assert_eq!(receipt.message.tokens, U256::ZERO);
    worker.stop().await;
}

#[tokio::test]
async fn a_receipt_is_refused_without_a_trusted_assignment() {
    let worker = TestWorker::start().await;
    let other = TestWorker::start().await;
    // An assignment for another provider, signed by another router.
    let foreign = other.assignment(100);
    morpheus_testkit::assert_refused(
        worker.client().receipt(&foreign).await,
        "provider",
        403,
        "not an authorised router",
    );
    // No assignment at all.
    let status = reqwest::Client::new()
        .post(format!("{}/v1/receipt", worker.url))
        .send()
        .await
        .expect("post")
        .status();
    assert_eq!(status, 401);
    worker.stop().await;
    other.stop().await;
}

/// `POST /v1/receipts`: several sessions closed under one router signature, counted under one
/// provider signature, in the request's order.
#[tokio::test]
async fn several_receipts_come_in_one_signed_answer_in_the_request_s_order() {
    use morpheus_sdk::{
        messages::{ReceiptRequest, Signed},
        provider::receipt_counts,
    };

    let worker = TestWorker::start().await;
    let client = worker.client();
    let (used, unused) = (worker.assignment(512), worker.assignment(100));
    let expired = worker.assignment_with(|a| a.expiresAt = U256::from(unix_now() - 10), 100);
    let served = client
        .chat(&used, &request("Hello there", 8, 1))
        .await
        .expect("chat")
        .usage
        .total_tokens;

    let request_of = |assignments: Vec<&Signed<morpheus_sdk::messages::Assignment>>,
                      signer: &alloy::signers::local::PrivateKeySigner| {
        let message = ReceiptRequest {
            assignments: assignments.into_iter().map(|a| a.message.clone()).collect(),
        };
        Signed::sign(message, &worker.domain, signer).expect("sign")
    };
    let asked = request_of(vec![&unused, &used, &expired], &worker.router);
    let receipts = client.receipts(&asked).await.expect("receipts");
    let counts = receipt_counts(&asked.message, &receipts, &worker.domain, worker.provider)
        .expect("the provider's signature over the three, in order");
    assert_eq!(counts, vec![0, u64::from(served), 0]);

    // Each is closed, as one receipt closes it, and a single receipt counts the same.
    morpheus_testkit::assert_refused(
        client.chat(&unused, &request("More", 8, 2)).await,
        "provider",
        403,
        "closed",
    );
    let single = client.receipt(&used).await.expect("receipt");
    assert_eq!(single.message.tokens, U256::from(served));

    // Refused whole: another router's signature, or a session of another provider among them.
    let other = TestWorker::start().await;
    morpheus_testkit::assert_refused(
        client
            .receipts(&request_of(vec![&unused], &other.router))
            .await,
        "provider",
        403,
        "not an authorised router",
    );
    let foreign = other.assignment(100);
    morpheus_testkit::assert_refused(
        client
            .receipts(&request_of(vec![&unused, &foreign], &worker.router))
            .await,
        "provider",
        403,
        "provider",
    );
    morpheus_testkit::assert_refused(
        client.receipts(&request_of(vec![], &worker.router)).await,
        "provider",
        403,
        "1 to 256",
    );
    // Not a signed request at all.
    let status = reqwest::Client::new()
        .post(format!("{}/v1/receipts", worker.url))
        .body("{}")
        .send()
        .await
        .expect("post")
        .status();
    assert_eq!(status, 400);
    worker.stop().await;
    other.stop().await;
}
