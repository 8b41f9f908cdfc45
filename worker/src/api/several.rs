//! Several models behind one endpoint (`morpheus-worker run` with `[[models]]`): the provider
//! registers one endpoint on-chain, so every model it bids on is served at it. Each request is
//! handed, unchanged, to the API of the model it is for, with that model's own engine, session
//! ledger and Merkle tree:
//! - a request carrying an assignment (chat, completions, receipts): the model the signed
//!   assignment names (a model not served here is refused as one model's API refuses it);
//! - a liveness challenge: the model the signed challenge names;
//! - a request for several receipts: the model its first assignment names (one model per
//!   request: the model's API refuses a mixed one);
//! - otherwise the model the body's `model` names, else the first (whose API then refuses what
//!   it lacks, an assignment first of all).
//!
//! `/v1/models` lists every model; `/metrics` shows the node's figures, the models' together.

use std::sync::Arc;

use alloy::primitives::B256;
use axum::{
    Json, Router,
    body::{Body, Bytes},
    extract::{DefaultBodyLimit, Request, State},
    http::HeaderMap,
    response::{IntoResponse, Response},
    routing::{get, post},
};
use morpheus_sdk::{
    messages::{LivenessChallenge, ReceiptRequest, Signed},
    openai::ModelList,
    provider::{ASSIGNMENT_HEADER, decode_assignment},
};
use tower::ServiceExt;

use super::{ApiError, AppState, MAX_BODY_BYTES};
use crate::{Error, Result};

/// The served models, each with its own API.
struct Served {
    models: Vec<(AppState, Router)>,
}

/// The routes of several models' APIs behind one endpoint.
pub(super) fn router(states: Vec<AppState>) -> Result<Router> {
    let mut ids = std::collections::HashSet::new();
    for s in &states {
        match s.0.auth.model_id() {
            Some(id) if ids.insert(id) => {}
            Some(id) => return Err(Error::Config(format!("model {id} is served twice"))),
            None => {
                return Err(Error::Config(
                    "several models are served only under their registered model ids".into(),
                ));
            }
        }
    }
    let served = Arc::new(Served {
        models: states
            .into_iter()
            .map(|s| (s.clone(), super::router(s)))
            .collect(),
    });
    Ok(Router::new()
        .route("/v1/chat/completions", post(dispatch))
        .route("/v1/completions", post(dispatch))
        .route("/v1/liveness", post(dispatch))
        .route("/v1/receipt", post(dispatch))
        .route("/v1/receipts", post(dispatch))
        .route("/v1/models", get(list))
        .route("/metrics", get(metrics))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(served))
}

impl Served {
    /// The API of the model `id`, if served.
    fn by_id(&self, id: B256) -> Option<&Router> {
        self.models
            .iter()
            .find(|(s, _)| s.0.auth.model_id() == Some(id))
            .map(|(_, r)| r)
    }

    /// The API a request goes to (see the module's comment).
    fn pick(&self, path: &str, headers: &HeaderMap, body: &[u8]) -> &Router {
        let first = &self.models[0].1;
        let named = if let Some(value) = headers.get(ASSIGNMENT_HEADER) {
            // An assignment that does not decode is refused by whichever API gets it.
            value
                .to_str()
                .ok()
                .and_then(|v| decode_assignment(v).ok())
                .map(|a| a.message.modelId)
        } else if path == "/v1/liveness" {
            serde_json::from_slice::<Signed<LivenessChallenge>>(body)
                .ok()
                .map(|c| c.message.modelId)
        } else if path == "/v1/receipts" {
            serde_json::from_slice::<Signed<ReceiptRequest>>(body)
                .ok()
                .and_then(|r| Some(r.message.assignments.first()?.modelId))
        } else {
            let name = serde_json::from_slice::<serde_json::Value>(body)
                .ok()
                .and_then(|v| v.get("model")?.as_str().map(str::to_owned));
            return name
                .and_then(|name| {
                    self.models
                        .iter()
                        .find(|(s, _)| s.0.model.meta.name == name)
                })
                .map_or(first, |(_, r)| r);
        };
        // A model id served here goes to its API; one that is not goes to the first, whose
        // check of the model refuses it (403 `wrong_model`, naming both).
        named.and_then(|id| self.by_id(id)).unwrap_or(first)
    }
}

async fn dispatch(State(served): State<Arc<Served>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body: Bytes = match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
        Ok(bytes) => bytes,
        Err(e) => {
            return ApiError::new(
                axum::http::StatusCode::PAYLOAD_TOO_LARGE,
                "invalid_request_error",
                "body_too_large",
                format!("the body could not be read within {MAX_BODY_BYTES} bytes: {e}"),
            )
            .into_response();
        }
    };
    let api = served.pick(parts.uri.path(), &parts.headers, &body).clone();
    match api
        .oneshot(Request::from_parts(parts, Body::from(body)))
        .await
    {
        Ok(response) => response,
        Err(never) => match never {},
    }
}

async fn list(State(served): State<Arc<Served>>) -> Json<ModelList> {
    let mut data = Vec::new();
    for (state, _) in &served.models {
        data.extend(super::models::list(State(state.clone())).await.0.data);
    }
    Json(ModelList {
        object: "list".into(),
        data,
    })
}

async fn metrics(State(served): State<Arc<Served>>) -> String {
    // One set of figures, shared by the models' engines (`AppState::load_sharing`).
    served.models[0].0.0.metrics.render()
}
