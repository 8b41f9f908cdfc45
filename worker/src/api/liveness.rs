//! `POST /v1/liveness`: the router's signed challenge, answered with the requested chunk's leaf
//! (signed by the provider), its Merkle proof, and the piece the challenge picks, read from the
//! model's published weights file (the GGUF the build was made from, not the build) with its
//! path to the chunk leaf.
//!
//! In memory: the chunk leaves and one level of each chunk's piece tree (`merkle::PieceIndex`,
//! 16 hashes per MiB); the piece comes from one read of its 64 KiB group, which must still hash
//! to the node recorded at start-up, so an answer is proved from the file as it was hashed and
//! costs a sixteenth of hashing the chunk.

use axum::{Json, body::Bytes, extract::State};
use morpheus_sdk::{
    Error,
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
    let piece = LivenessProof::challenged_piece(c.challengeId, s.pieces.piece_count(index));
    let read = state.clone();
    let piece = tokio::task::spawn_blocking(move || {
        let s = &read.0;
        s.pieces.prove(s.model.weights_path(), index, piece)
    })
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
    let response = Signed::sign(response, &s.auth.policy().domain, &s.signer).map_err(|e| {
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
