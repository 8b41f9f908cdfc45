//! Attacks on the liveness check, each from the attacker's side: a provider identity (a
//! registration, a claim, a bid) at a server it runs, answering `/v1/liveness` from what it holds
//! instead of the model's weights (docs/security.md, "Liveness"). It must get no assignment.

use std::{
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use alloy::{
    primitives::{Address, B256, U256},
    signers::local::PrivateKeySigner,
    sol_types::Eip712Domain,
};
use axum::{Json, Router, extract::State, routing::post};
use morpheus_sdk::{
    merkle::{ChunkProof, ModelTree, PIECE_SIZE, PIECES_PER_CHUNK, PieceProof},
    messages::{LivenessChallenge, LivenessResponse, Signed},
    provider::LivenessProof,
};
use morpheus_testkit::{tiny_weights, unique_b256, unix_now};
use tokio::{net::TcpListener, task::JoinHandle};

use crate::common::{Net, PRICE, PROVIDER, provide};

/// The attacker's anvil account.
const ATTACKER: usize = PROVIDER + 2;
/// Requests an attack test sends at most, each one challenge: enough for a random chunk index
/// in `[0, 3)` to have hit every chunk (a miss is under 1 in 10^10).
const TRIES: usize = 64;

/// What the attacker holds instead of the weights.
#[derive(Debug, Clone)]
enum Holding {
    /// The tree's chunk leaves (32 bytes per MiB of model), kept from one hashing pass.
    Leaves(ModelTree),
    /// Only the model's root, which the registry publishes.
    Root(B256),
}

/// The attacker's liveness server: answers every challenge from its [`Holding`], signed with
/// its provider key, and notes the chunk each challenge asked for.
#[derive(Clone)]
struct Attacker {
    holding: Holding,
    key: PrivateKeySigner,
    domain: Eip712Domain,
    challenged: Arc<Mutex<Vec<u64>>>,
}

struct Hostile {
    endpoint: String,
    challenged: Arc<Mutex<Vec<u64>>>,
    task: JoinHandle<()>,
}

impl Hostile {
    async fn start(holding: Holding, key: PrivateKeySigner, domain: Eip712Domain) -> Self {
        let challenged = Arc::new(Mutex::new(Vec::new()));
        let attacker = Attacker {
            holding,
            key,
            domain,
            challenged: challenged.clone(),
        };
        let app = Router::new()
            .route("/v1/liveness", post(answer))
            .with_state(attacker);
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let endpoint = format!("http://{}", listener.local_addr().expect("addr"));
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .await
                .expect("the hostile server");
        });
        Self {
            endpoint,
            challenged,
            task,
        }
    }

    /// The chunk indices challenged so far, in order.
    fn challenged(&self) -> Vec<u64> {
        self.challenged
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Drop for Hostile {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn answer(
    State(a): State<Attacker>,
    Json(challenge): Json<Signed<LivenessChallenge>>,
) -> Json<LivenessProof> {
    let c = challenge.message;
    let index: u64 = c.chunkIndex.try_into().expect("a chunk of the tiny model");
    a.challenged
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(index);
    let (proof, piece) = match &a.holding {
        // The chunk proof is real; the piece follows every rule it can without the bytes: the
        // challenged index, a full chunk's count (a one-piece guess for the last chunk), zeros
        // for the bytes and for the path it cannot compute.
        Holding::Leaves(tree) => {
            let last = index + 1 == tree.leaf_count();
            let piece_count = if last { 1 } else { PIECES_PER_CHUNK };
            let piece = PieceProof {
                index: LivenessProof::challenged_piece(c.challengeId, piece_count),
                piece_count,
                bytes: vec![0; PIECE_SIZE],
                siblings: vec![B256::ZERO; if last { 0 } else { 8 }],
            };
            (tree.proof(index).expect("a chunk of the tree"), piece)
        }
        // A tree of one leaf, the root: its own leaf count shapes it, and it needs no sibling.
        Holding::Root(root) => (
            ChunkProof {
                index,
                leaf_count: 1,
                leaf: *root,
                siblings: vec![],
            },
            PieceProof {
                index: 0,
                piece_count: 1,
                bytes: vec![0],
                siblings: vec![],
            },
        ),
    };
    let response = LivenessResponse {
        challengeId: c.challengeId,
        chunkHash: proof.leaf,
    };
    let response = Signed::sign(response, &a.domain, &a.key).expect("signing with a local key");
    Json(LivenessProof {
        response,
        proof,
        piece,
    })
}

/// The tiny model's tree: the model the attacker claims to serve.
fn tiny_tree() -> ModelTree {
    ModelTree::from_file(tiny_weights(), |_, _| {}).expect("model tree")
}

/// Account `index` registers the tiny model's root and chunk count as a model of its own and is
/// its only bidder, at a server answering from `holding`. Returns the server, the provider and
/// the model.
async fn sole_bidder(net: &Net, index: usize, holding: Holding) -> (Hostile, Address, B256) {
    let tree = tiny_tree();
    let server = Hostile::start(
        holding,
        net.devnet.signer(index),
        net.devnet.deployment().domain(),
    )
    .await;
    let model_id = net
        .devnet
        .protocol(index)
        .await
        .expect("connect")
        .registry()
        .register_model(
            tree.root(),
            tree.leaf_count(),
            morpheus_sdk::contracts::GGUF,
            "tiny, without the weights",
        )
        .await
        .expect("register model");
    provide(&net.devnet, index, &server.endpoint, model_id, PRICE).await;
    (server, net.devnet.signer(index).address(), model_id)
}

/// Requests `model_id` until the attacker's server has been challenged for every chunk in
/// `chunks`; each request must be refused 503 naming the attacker (`hostile`) with `reason`.
async fn refused_until_challenged(
    net: &Net,
    (server, hostile, model_id): (&Hostile, Address, B256),
    chunks: &[u64],
    reason: &str,
) {
    let expected = format!("{hostile}: liveness failed: {reason}");
    for _ in 0..TRIES {
        match net
            .router
            .request_compute(&net.request(|r| r.modelId = model_id))
            .await
        {
            Err(morpheus_sdk::Error::Http {
                peer: "router",
                status: 503,
                message,
                ..
            }) => assert!(message.contains(&expected), "{message:.400}"),
            other => panic!(
                "the attacker was not refused after challenges for chunks {:?}: {other:?}",
                server.challenged()
            ),
        }
        let seen = server.challenged();
        if chunks.iter().all(|c| seen.contains(c)) {
            return;
        }
    }
    panic!(
        "chunks {chunks:?} were not all challenged in {TRIES} requests: {:?}",
        server.challenged()
    );
}

/// The attacker kept the tiny model's chunk leaves (96 bytes for its three chunks) and deleted
/// the weights. It answers each challenge with the real leaf and chunk proof and the piece it
/// would have to read, made up. Under the old rule (a leaf was `keccak256(chunk)`, the answer
/// its proof) that passed for every chunk; now every answer, on every chunk, is refused.
#[tokio::test]
async fn attack_leaf_list_passes_liveness_without_the_weights() {
    // No cool-down: every request challenges the attacker again, on a new random chunk.
    let net = Net::with(|c| c.liveness_cooldown = Duration::ZERO).await;
    let tree = tiny_tree();
    let (server, hostile, model_id) =
        sole_bidder(&net, ATTACKER, Holding::Leaves(tree.clone())).await;
    let chunks: Vec<u64> = (0..tree.leaf_count()).collect();
    refused_until_challenged(
        &net,
        (&server, hostile, model_id),
        &chunks,
        "bad proof: not a chunk of the model",
    )
    .await;
    net.stop().await;
}

/// The attacker holds nothing but the model's registered root. Challenged for chunk 0, it
/// answers a tree of one leaf, `leaf_count = 1, leaf = root`, no siblings: when the count came
/// from the provider that passed with the public root alone. The count is the registry's now.
#[tokio::test]
async fn attack_forged_tree_shape_passes_with_the_public_root() {
    let net = Net::with(|c| c.liveness_cooldown = Duration::ZERO).await;
    let tree = tiny_tree();
    assert!(
        tree.leaf_count() > 1,
        "a one-chunk model has no shape to forge"
    );
    let (server, hostile, model_id) = sole_bidder(&net, ATTACKER, Holding::Root(tree.root())).await;
    refused_until_challenged(
        &net,
        (&server, hostile, model_id),
        &[0],
        "bad proof: wrong leafCount",
    )
    .await;
    net.stop().await;
}

/// The honest side of the same check: the devnet's worker, serving the real file, answers a
/// challenge for every chunk (the short last one included) with a proof that verifies against
/// the root and chunk count the registry holds, and the router assigns it.
#[tokio::test]
async fn the_worker_serving_the_file_passes_every_chunk() {
    let net = Net::start().await;
    let worker = net.worker.as_ref().expect("the devnet's worker");
    let model = net
        .devnet
        .protocol(PROVIDER)
        .await
        .expect("connect")
        .registry()
        .model(net.model_id)
        .await
        .expect("the registered model");
    let chunks: u64 = model.chunkCount.try_into().expect("a small count");
    assert!(chunks > 1, "the tiny model has several chunks");
    let domain = net.devnet.deployment().domain();
    for chunk in 0..chunks {
        let challenge = LivenessChallenge {
            challengeId: unique_b256(),
            provider: worker.provider,
            modelId: net.model_id,
            chunkIndex: U256::from(chunk),
            deadline: U256::from(unix_now() + 60),
        };
        let signed =
            Signed::sign(challenge.clone(), &domain, &net.devnet.router_signer()).expect("sign");
        worker
            .client()
            .liveness(&signed)
            .await
            .expect("an answer")
            .verify(&challenge, model.merkleRoot, chunks, &domain)
            .unwrap_or_else(|e| panic!("chunk {chunk}: {e}"));
    }
    assert_eq!(net.assignment().await.message.provider, worker.provider);
    net.stop().await;
}
