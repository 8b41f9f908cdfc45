//! `POST /v1/liveness`: the router's signed challenge, answered with the requested chunk's hash
//! (signed by the provider) and its Merkle proof against the served model file.

use axum::{Json, body::Bytes, extract::State};
use morpheus_sdk::{
    messages::{LivenessChallenge, LivenessResponse, Signed},
    provider::LivenessProof,
};
use tracing::info;

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
    let response = LivenessResponse {
        challengeId: c.challengeId,
        chunkHash: proof.leaf,
    };
    let response =
        Signed::sign(response, &s.auth.policy().domain, &s.protocol.signer).map_err(|e| {
            tracing::error!(target: "worker::liveness", error = %e, "signing failed");
            ApiError::internal()
        })?;
    info!(target: "worker::liveness", %router, chunk = index, "liveness challenge answered");
    Ok(Json(LivenessProof { response, proof }))
}
