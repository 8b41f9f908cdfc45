//! `GET /v1/models`.

use axum::{Json, extract::State};
use morpheus_sdk::openai::{Model, ModelList};

use super::AppState;

pub(super) async fn list(State(state): State<AppState>) -> Json<ModelList> {
    Json(ModelList {
        object: "list".into(),
        data: vec![Model {
            id: state.0.model.meta.name.clone(),
            object: "model".into(),
            created: state.0.created,
            owned_by: state.0.protocol.signer.address().to_string(),
        }],
    })
}
