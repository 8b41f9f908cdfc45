//! `POST /v1/liveness`: the router's signed challenge, answered with the requested chunk's leaf
//! (signed by the provider), its Merkle proof, and the piece the challenge picks, read from the
//! model's published weights file (the GGUF the build was made from, not the build) with its
//! path to the chunk leaf.
//!
//! The tree in memory holds only the chunk leaves; the piece comes from one read of the chunk
//! (at most 1 MiB, dropped once answered), so an answer costs the file, never more memory.

use std::path::Path;

use alloy::primitives::B256;
use axum::{Json, body::Bytes, extract::State};
use morpheus_sdk::{
    Error,
    merkle::{PieceProof, PieceTree, read_chunk},
    messages::{LivenessChallenge, LivenessResponse, Signed},
    provider::LivenessProof,
};
use tracing::{error, info};

use super::{ApiError, AppState, auth::now};

pub(super) async fn answer(
    State(state): State<AppState>,
    body: Bytes,
) -> Result<Json<LivenessProof>, ApiError> {
    let s = &state.0;
    let challenge: Signed<LivenessChallenge> = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(
            "invalid_json",
            format!("not a signed liveness challenge: {e}"),
        )
    })?;
    let router = s
        .auth
        .policy()
        .check_challenge(&challenge, now())
        .map_err(|e| ApiError::forbidden("challenge_refused", e.to_string()))?;
    s.auth.check_not_removed(router)?;
    let c = &challenge.message;
    if let Some(id) = s.auth.model_id()
        && c.modelId != id
    {
        return Err(ApiError::forbidden(
            "wrong_model",
            format!("challenged for model {}, serving {id}", c.modelId),
        ));
    }
    let index: u64 = c.chunkIndex.try_into().unwrap_or(u64::MAX);
    let proof = s
        .tree
        .proof(index)
        .map_err(|e| ApiError::bad_request("bad_chunk_index", e.to_string()))?;
    let (path, challenge_id, leaf) = (s.model.weights_path(), c.challengeId, proof.leaf);
    let piece = tokio::task::spawn_blocking(move || read_piece(&path, index, challenge_id, leaf))
        .await
        .map_err(|e| Error::ModelProof(format!("reading the chunk stopped: {e}")))
        .and_then(|read| read)
        .map_err(|e| {
            error!(target: "worker::liveness", chunk = index, error = %e, "cannot answer from the weights file");
            ApiError::internal()
        })?;
    let response = LivenessResponse {
        challengeId: c.challengeId,
        chunkHash: proof.leaf,
    };
    let response =
        Signed::sign(response, &s.auth.policy().domain, &s.protocol.signer).map_err(|e| {
            tracing::error!(target: "worker::liveness", error = %e, "signing failed");
            ApiError::internal()
        })?;
    info!(target: "worker::liveness", %router, chunk = index, piece = piece.index, "liveness challenge answered");
    Ok(Json(LivenessProof {
        response,
        proof,
        piece,
    }))
}

/// Reads chunk `index` of the weights file and proves the piece `challenge_id` picks. The chunk
/// must still lead to `leaf`, the leaf hashed at start-up: a file changed since then is not
/// answered from.
fn read_piece(
    path: &Path,
    index: u64,
    challenge_id: B256,
    leaf: B256,
) -> morpheus_sdk::Result<PieceProof> {
    let chunk = read_chunk(path, index)?;
    let pieces = PieceTree::new(&chunk)?;
    if pieces.root() != leaf {
        return Err(Error::ModelProof(format!(
            "chunk {index} of {} changed since start-up",
            path.display()
        )));
    }
    pieces.proof(LivenessProof::challenged_piece(
        challenge_id,
        pieces.piece_count(),
    ))
}
