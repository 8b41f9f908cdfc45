//! The router's liveness challenge: a signed chunk hash with its Merkle proof.

use alloy::{primitives::U256, signers::local::PrivateKeySigner};
use morpheus_sdk::{
    merkle::ModelTree,
    messages::{LivenessChallenge, Signed},
};

use crate::common::{TestServer, model_id, tiny_model, unique_id, unix_now};

fn challenge(server: &TestServer, chunk: u64) -> LivenessChallenge {
    LivenessChallenge {
        challengeId: unique_id(),
        provider: server.provider,
        modelId: model_id(),
        chunkIndex: U256::from(chunk),
        deadline: U256::from(unix_now() + 60),
    }
}

#[tokio::test]
async fn answers_with_a_valid_proof() {
    let server = TestServer::start().await;
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
    let server = TestServer::start().await;
    let stranger = PrivateKeySigner::random();
    let signed = Signed::sign(challenge(&server, 0), &server.domain, &stranger).expect("sign");
    assert!(server.client().liveness(&signed).await.is_err());
    let signed = Signed::sign(
        challenge(&server, 1_000_000),
        &server.domain,
        &server.router,
    )
    .expect("sign");
    assert!(server.client().liveness(&signed).await.is_err());
    server.stop().await;
}
