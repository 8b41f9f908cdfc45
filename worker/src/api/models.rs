//! `GET /v1/models`: the served model under the name users know, with the format and Merkle
//! root of the published weights file it is registered by, the context length served, and the
//! model id when configured.

use axum::{Json, extract::State};
use morpheus_sdk::openai::{Model, ModelList};

use super::AppState;

pub(super) async fn list(State(state): State<AppState>) -> Json<ModelList> {
    let s = &state.0;
    Json(ModelList {
        object: "list".into(),
        data: vec![Model {
            id: s.model.meta.name.clone(),
            object: "model".into(),
            created: s.created,
            owned_by: s.protocol.signer.address().to_string(),
            context_length: Some(s.engine.info().max_context as u64),
            format: Some(s.model.meta.weights_format()),
            // The root the worker proves against, hashed at start-up from the file it reads.
            merkle_root: Some(s.tree.root()),
            model_id: s.auth.model_id(),
        }],
    })
}
