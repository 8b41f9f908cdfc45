//! The router's liveness challenge: a signed chunk leaf with its Merkle proof and the challenged
//! piece's bytes, read from the served file; and the root those proofs lead to, as `model
//! prepare` records it.

use alloy::{
    primitives::{U256, keccak256},
    signers::local::PrivateKeySigner,
};
use morpheus_sdk::{
    merkle::{CHUNK_SIZE, ModelTree, PIECE_SIZE, TREE_VERSION},
    messages::{LivenessChallenge, Signed},
    provider::LivenessProof,
};
use morpheus_testkit::{TestWorker, assert_refused, python, tiny_model, unique_b256, unix_now};
use morpheus_worker::model::{
    ModelMeta,
    prepare::{self, Kernels, PrepareOptions},
};

fn challenge(server: &TestWorker, chunk: u64) -> LivenessChallenge {
    LivenessChallenge {
        challengeId: unique_b256(),
        provider: server.provider,
        modelId: server.model_id,
        chunkIndex: U256::from(chunk),
        deadline: U256::from(unix_now() + 60),
    }
}

/// Every chunk of the served file, the last (short) one included, is answered with the piece its
/// challenge picks, byte for byte the file's, and the answer verifies against the model's root
/// and chunk count.
#[tokio::test]
async fn answers_every_chunk_with_the_challenged_piece() {
    let server = TestWorker::start().await;
    let file = std::fs::read(tiny_model().join("model.onnx")).expect("model file");
    let tree = ModelTree::from_bytes(&file).expect("tree");
    assert!(
        tree.leaf_count() > 1 && !(file.len() % CHUNK_SIZE).is_multiple_of(PIECE_SIZE),
        "the tiny model has several chunks and a short last piece ({} bytes)",
        file.len()
    );
    for chunk in 0..tree.leaf_count() {
        let c = challenge(&server, chunk);
        let signed = Signed::sign(c.clone(), &server.domain, &server.router).expect("sign");
        let answer = server.client().liveness(&signed).await.expect("answer");
        answer
            .verify(&c, tree.root(), tree.leaf_count(), &server.domain)
            .unwrap_or_else(|e| panic!("chunk {chunk}: {e}"));
        let piece = &answer.piece;
        assert_eq!(
            piece.index,
            LivenessProof::challenged_piece(c.challengeId, piece.piece_count)
        );
        let start = chunk as usize * CHUNK_SIZE + piece.index as usize * PIECE_SIZE;
        assert_eq!(
            piece.bytes,
            file[start..file.len().min(start + PIECE_SIZE)],
            "chunk {chunk}: the piece is the file's bytes"
        );
    }
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

/// A prepared directory whose `morpheus.json` holds a root from the older rule (a chunk's leaf
/// was `keccak256(chunk)`, no `merkle_version`), with the model file untouched so the converter
/// skips it: `model prepare` recomputes the root under the current rule instead of trusting it.
#[test]
fn a_root_from_an_older_tree_rule_is_recomputed() {
    let kit = tiny_model();
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("tiny");
    std::fs::create_dir(&out).expect("mkdir");
    for file in ["model.onnx", "tokenizer.json", "morpheus.json"] {
        std::fs::copy(kit.join(file), out.join(file)).expect("copy the kit's model");
    }
    let file = std::fs::read(out.join("model.onnx")).expect("model file");
    let old_rule = ModelTree::from_leaves(file.chunks(CHUNK_SIZE).map(keccak256).collect())
        .expect("non-empty")
        .root();
    let meta = out.join("morpheus.json");
    let mut doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&meta).expect("read")).expect("json");
    doc["merkle_root"] = old_rule.to_string().into();
    doc.as_object_mut()
        .expect("an object")
        .remove("merkle_version");
    std::fs::write(&meta, doc.to_string()).expect("write");
    let modified = || {
        std::fs::metadata(out.join("model.onnx"))
            .and_then(|m| m.modified())
            .expect("mtime")
    };
    let before = modified();

    let prepared = prepare::prepare(&PrepareOptions {
        source: "tiny".into(),
        out: out.clone(),
        python: Some(python().expect("the project's venv")),
        python_dir: None,
        force: false,
        kernels: Kernels::Morpheus,
    })
    .expect("prepare");
    assert_eq!(modified(), before, "the converter kept the model file");
    let root = ModelTree::from_bytes(&file).expect("tree").root();
    assert_ne!(root, old_rule);
    assert_eq!(prepared.merkle_root, Some(root.to_string()));
    assert_eq!(prepared.merkle_version, Some(TREE_VERSION));
    let reread = ModelMeta::read(&out).expect("morpheus.json");
    assert_eq!(reread.merkle_root, Some(root.to_string()));
    assert!(reread.merkle_root_is_current());
}
