//! The router's liveness challenge: a signed chunk leaf with its Merkle proof and the challenged
//! piece's bytes, read from the published weights file (the GGUF kept beside the build); and the
//! root those proofs lead to, as `model prepare` records it: the same for every build of a file.

use alloy::{
    primitives::{U256, keccak256},
    signers::local::PrivateKeySigner,
};
use morpheus_sdk::{
    merkle::{CHUNK_SIZE, ModelTree, PIECE_SIZE, TREE_VERSION},
    messages::{LivenessChallenge, Signed},
    provider::LivenessProof,
};
use morpheus_testkit::{
    TestWorker, assert_refused, python, tiny_model, tiny_model_onnxruntime, tiny_weights,
    unique_b256, unix_now,
};
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

/// Every chunk of the weights file, the last (short) one included, is answered with the piece its
/// challenge picks, byte for byte the GGUF's, and the answer verifies against the model's root
/// and chunk count.
#[tokio::test]
async fn answers_every_chunk_with_the_challenged_piece() {
    let server = TestWorker::start().await;
    let weights = tiny_weights();
    assert!(
        weights.extension().is_some_and(|e| e == "gguf"),
        "{}",
        weights.display()
    );
    let file = std::fs::read(&weights).expect("weights file");
    assert_eq!(&file[..4], b"GGUF", "the published file, not the build");
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

/// A copy of the kit's tiny directory (build, tokenizer, metadata and weights) whose
/// `morpheus.json` is edited by `edit`; returns the directory and its model file's mtime.
fn stale_copy(
    dir: &tempfile::TempDir,
    edit: impl FnOnce(&mut serde_json::Map<String, serde_json::Value>),
) -> (std::path::PathBuf, std::time::SystemTime) {
    let kit = tiny_model();
    let out = dir.path().join("tiny");
    std::fs::create_dir(&out).expect("mkdir");
    for file in [
        "model.onnx",
        "model.onnx.data",
        "tokenizer.json",
        "morpheus.json",
        "weights.gguf",
    ] {
        std::fs::copy(kit.join(file), out.join(file)).expect("copy the kit's model");
    }
    let meta = out.join("morpheus.json");
    let mut doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&meta).expect("read")).expect("json");
    edit(doc.as_object_mut().expect("an object"));
    std::fs::write(&meta, doc.to_string()).expect("write");
    (out.clone(), mtime(&out.join("model.onnx")))
}

fn mtime(path: &std::path::Path) -> std::time::SystemTime {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .expect("mtime")
}

fn prepare_tiny(out: &std::path::Path, kernels: Kernels) -> ModelMeta {
    prepare::prepare(&PrepareOptions {
        source: "tiny".into(),
        out: out.to_path_buf(),
        python: Some(python().expect("the project's venv")),
        python_dir: None,
        force: false,
        kernels,
    })
    .expect("prepare")
}

/// A prepared directory whose `morpheus.json` holds a root from the older rule (a chunk's leaf
/// was `keccak256(chunk)`, no `merkle_version`), with the build untouched so the converter skips
/// it: `model prepare` recomputes the root under the current rule instead of trusting it.
#[test]
fn a_root_from_an_older_tree_rule_is_recomputed() {
    let file = std::fs::read(tiny_weights()).expect("weights file");
    let old_rule = ModelTree::from_leaves(file.chunks(CHUNK_SIZE).map(keccak256).collect())
        .expect("non-empty")
        .root();
    let dir = tempfile::tempdir().expect("tempdir");
    let (out, before) = stale_copy(&dir, |doc| {
        doc.insert("merkle_root".into(), old_rule.to_string().into());
        doc.remove("merkle_version");
    });

    let prepared = prepare_tiny(&out, Kernels::Morpheus);
    assert_eq!(
        mtime(&out.join("model.onnx")),
        before,
        "the converter kept the build"
    );
    let root = ModelTree::from_bytes(&file).expect("tree").root();
    assert_ne!(root, old_rule);
    assert_eq!(prepared.merkle_root, Some(root.to_string()));
    assert_eq!(prepared.merkle_version, Some(TREE_VERSION));
    let reread = ModelMeta::read(&out).expect("morpheus.json");
    assert_eq!(reread.merkle_root, Some(root.to_string()));
    assert!(reread.merkle_root_is_current());
}

/// A directory from before a model was its published weights: its root, current rule and all,
/// is that of `model.onnx` (no `merkle_file`). `model prepare` recomputes it over the GGUF
/// rather than keep registering the build.
#[test]
fn a_root_of_the_build_is_recomputed_over_the_weights() {
    let kit = tiny_model();
    let build_root = ModelTree::from_file(kit.join("model.onnx"), |_, _| {})
        .expect("tree")
        .root();
    let dir = tempfile::tempdir().expect("tempdir");
    let (out, before) = stale_copy(&dir, |doc| {
        doc.insert("merkle_root".into(), build_root.to_string().into());
        doc.insert("merkle_version".into(), TREE_VERSION.into());
        doc.remove("merkle_file");
    });
    assert!(
        !ModelMeta::read(&out)
            .expect("meta")
            .merkle_root_is_current()
    );

    let prepared = prepare_tiny(&out, Kernels::Morpheus);
    assert_eq!(
        mtime(&out.join("model.onnx")),
        before,
        "the converter kept the build"
    );
    let weights_root = ModelTree::from_file(out.join("weights.gguf"), |_, _| {})
        .expect("tree")
        .root();
    assert_ne!(weights_root, build_root);
    assert_eq!(prepared.merkle_root, Some(weights_root.to_string()));
    assert_eq!(prepared.merkle_file.as_deref(), Some("weights.gguf"));
    assert!(prepared.merkle_root_is_current());
}

/// The same GGUF built for the worker's own CPU kernels and for ONNX Runtime's (CUDA): two
/// different decoders, one weights file, one root, so one model id on-chain.
#[test]
fn builds_for_any_kernels_have_the_weights_root() {
    let (cpu, ort) = (tiny_model(), tiny_model_onnxruntime());
    let read = |dir: &std::path::Path, file: &str| std::fs::read(dir.join(file)).expect(file);
    assert_ne!(
        read(&cpu, "model.onnx"),
        read(&ort, "model.onnx"),
        "two different builds"
    );
    let (a, b) = (
        ModelMeta::read(&cpu).expect("meta"),
        ModelMeta::read(&ort).expect("meta"),
    );
    assert_eq!(
        (a.weights_file(), b.weights_file()),
        ("weights.gguf", "weights.gguf")
    );
    assert_eq!(
        (a.weights_format(), b.weights_format()),
        ("gguf".into(), "gguf".into())
    );
    assert_eq!(read(&cpu, "weights.gguf"), read(&ort, "weights.gguf"));
    let root = ModelTree::from_file(cpu.join("weights.gguf"), |_, _| {})
        .expect("tree")
        .root();
    assert_eq!(a.merkle_root, Some(root.to_string()));
    assert_eq!(b.merkle_root, Some(root.to_string()));
}
