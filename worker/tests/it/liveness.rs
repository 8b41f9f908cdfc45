//! The router's liveness challenge: a signed chunk hash with its Merkle proof.

use alloy::{primitives::U256, signers::local::PrivateKeySigner};
use morpheus_sdk::{
    merkle::ModelTree,
    messages::{LivenessChallenge, Signed},
};

use morpheus_testkit::{TestWorker, assert_refused, tiny_model, unique_b256, unix_now};

fn challenge(server: &TestWorker, chunk: u64) -> LivenessChallenge {
    LivenessChallenge {
        challengeId: unique_b256(),
        provider: server.provider,
        modelId: server.model_id,
        chunkIndex: U256::from(chunk),
        deadline: U256::from(unix_now() + 60),
    }
}

#[tokio::test]
async fn answers_with_a_valid_proof() {
    let server = TestWorker::start().await;
    let root = ModelTree::from_file(tiny_model().join("model.onnx"), |_, _| {})
        .expect("tree")
        .root();
    let c = challenge(&server, 0);
    let signed = Signed::sign(c.clone(), &server.domain, &server.router).expect("sign");
    let proof = server.client().liveness(&signed).await.expect("proof");
    proof
        .verify(&c, root, &server.domain)
        .expect("the proof verifies against the model's root");
    server.stop().await;
}

#[tokio::test]
async fn refuses_unknown_routers_and_bad_chunks() {
    let server = TestWorker::start().await;
    let stranger = PrivateKeySigner::random();
    let signed = Signed::sign(challenge(&server, 0), &server.domain, &stranger).expect("sign");
    assert_refused(
        server.client().liveness(&signed).await,
        "provider",
        403,
        &format!("{} is not an authorised router signer", stranger.address()),
    );
    let signed = Signed::sign(
        challenge(&server, 1_000_000),
        &server.domain,
        &server.router,
    )
    .expect("sign");
    assert_refused(
        server.client().liveness(&signed).await,
        "provider",
        400,
        "1000000",
    );
    server.stop().await;
}
