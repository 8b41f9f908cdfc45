//! The HTTP API (routes and wire types in `morpheus_sdk::router`).

use std::{collections::HashMap, future::Future, time::Duration};

use alloy::primitives::{Address, B256};
use axum::{
    Json,
    body::Bytes,
    extract::{DefaultBodyLimit, Path, Query, State, rejection::BytesRejection},
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use morpheus_sdk::{
    openai::{ErrorBody, ErrorDetail},
    router::ComputeBody,
};
use serde::de::DeserializeOwned;
use tokio::net::TcpListener;
use tracing::{error, info};

use crate::{
    AppState, Error, Result,
    request_context::{RefusalCode, request_context},
};

#[cfg(test)]
mod fuzz;

/// Largest request body accepted on any route: a signed request with 32 exclusions is under
/// 4 KiB; a bigger body is refused 413 before it is read further.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// How long `/readyz` waits for the chain and for the database, each.
const READY_WITHIN: Duration = Duration::from_secs(2);

/// The router's routes over `state`.
pub fn router(state: AppState) -> axum::Router {
    axum::Router::new()
        .route("/v1/compute", post(compute))
        .route("/v1/usage", post(usage))
        .route("/v1/vouchers/{provider}", get(voucher))
        .route("/v1/providers", get(providers))
        .route("/v1/allowance/{user}", get(allowance))
        .route("/metrics", get(metrics))
        // Liveness (the process answers) under both names; readiness checks what it needs.
        .route("/health", get(|| async { "ok" }))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .fallback(|| async { Error::BadRequest("no such route".into()).into_response() })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            request_context,
        ))
        .with_state(state)
}

/// A body within [`MAX_BODY_BYTES`], or [`Error::TooLarge`] (413 in OpenAI's body).
fn limited(bytes: std::result::Result<Bytes, BytesRejection>) -> Result<Bytes> {
    bytes.map_err(|e| match e.status() {
        StatusCode::PAYLOAD_TOO_LARGE => Error::TooLarge {
            limit: MAX_BODY_BYTES,
        },
        _ => Error::BadRequest(format!("the body could not be read: {e}")),
    })
}

/// 200 `{"ready": true, "block": N}` when the chain and the database answer within 2 s each;
/// 503 `{"ready": false, "reason": ...}` naming the one that did not.
async fn readyz(State(state): State<AppState>) -> Response {
    match state.readiness(READY_WITHIN).await {
        Ok(block) => Json(serde_json::json!({ "ready": true, "block": block })).into_response(),
        Err(reason) => {
            info!(target: "router::api", %reason, "not ready");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(serde_json::json!({ "ready": false, "reason": reason })),
            )
                .into_response()
        }
    }
}

/// Serves the router on `listener` until `shutdown` resolves, then lets running requests finish;
/// expired sessions are settled in the background meanwhile (`AppState::settle_due`).
pub async fn run(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let addr = listener.local_addr()?;
    info!(target: "router::api", %addr, router = %state.address(), "serving");
    // Settling expired sessions runs beside the server and stops with it.
    let settler = tokio::spawn(state.clone().settle_forever());
    // Following the chain's registry events between requests (`chain_index/`), too.
    let follower = tokio::spawn(state.clone().follow_chain());
    // Reconciling with the chain's claim records too: a voucher asked for meanwhile reconciles
    // its own provider first.
    let reconciling = {
        let state = state.clone();
        tokio::spawn(async move {
            if let Err(e) = state.reconcile_all().await {
                tracing::warn!(target: "router::reconcile", error = %e, "reconciling at start failed; each voucher reconciles its provider");
            }
        })
    };
    let served = axum::serve(
        // Small writes (an SSE chunk, a short JSON answer) go out at once: with Nagle's
        // algorithm the first token waits for the client's delayed ACK, 40 ms on Linux.
        axum::serve::ListenerExt::tap_io(listener, |tcp| {
            let _ = tcp.set_nodelay(true);
        }),
        // The client's address, for its rate limit (`request_context.rs`).
        router(state).into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await;
    settler.abort();
    follower.abort();
    reconciling.abort();
    served?;
    info!(target: "router::api", %addr, "stopped");
    Ok(())
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let (status, kind, code) = self.classify();
        if status >= 500 {
            error!(target: "router::api", error = %self, "request failed");
        }
        let body = ErrorBody {
            error: ErrorDetail {
                message: self.public_message(),
                kind: kind.into(),
                code: Some(code.into()),
                param: None,
            },
        };
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (status, Json(body)).into_response();
        if let Self::Busy { retry_after, .. } | Self::RateLimited { retry_after, .. } = self {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
        }
        // The middleware counts refusals by this code (`/metrics`).
        response.extensions_mut().insert(RefusalCode(code));
        response
    }
}

/// Parses a JSON body, naming what it should have been when it is not.
fn body<T: DeserializeOwned>(bytes: &Bytes, what: &str) -> Result<T> {
    serde_json::from_slice(bytes)
        .map_err(|e| Error::BadRequest(format!("the body is not a {what}: {e}")))
}

fn address(value: &str, what: &str) -> Result<Address> {
    value
        .parse()
        .map_err(|e| Error::BadRequest(format!("{what} {value:?} is not an address: {e}")))
}

async fn compute(
    State(state): State<AppState>,
    bytes: std::result::Result<Bytes, BytesRejection>,
) -> Result<impl IntoResponse> {
    let body: ComputeBody = body(&limited(bytes)?, "signed ComputeRequest")?;
    Ok(Json(state.compute(body.request, body.preferences).await?))
}

async fn usage(
    State(state): State<AppState>,
    bytes: std::result::Result<Bytes, BytesRejection>,
) -> Result<impl IntoResponse> {
    let report = body(&limited(bytes)?, "signed UsageReport")?;
    Ok(Json(state.report(report).await?))
}

async fn voucher(
    State(state): State<AppState>,
    Path(provider): Path<String>,
) -> Result<impl IntoResponse> {
    let provider = address(&provider, "provider")?;
    Ok(Json(state.voucher(provider).await?))
}

async fn providers(
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<impl IntoResponse> {
    let model = query
        .get("model")
        .ok_or_else(|| Error::BadRequest("the query parameter model=0x.. is missing".into()))?;
    let model_id: B256 = model
        .parse()
        .map_err(|e| Error::BadRequest(format!("model {model:?} is not a bytes32 id: {e}")))?;
    Ok(Json(state.providers(model_id).await?))
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        crate::metrics::render(&state.queue_figures(), state.metrics()),
    )
}

async fn allowance(
    State(state): State<AppState>,
    Path(user): Path<String>,
) -> Result<impl IntoResponse> {
    let user = address(&user, "user")?;
    Ok(Json(state.allowance(user).await?))
}
