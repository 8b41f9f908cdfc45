//! `POST /v1/receipt`: closes a session and answers with the provider's signed count of the
//! tokens it charged the session (`ServiceReceipt`), the count the router refunds a user's
//! reservation against (docs/protocol.md, Router, "tokens counted").
//!
//! Whoever holds the session's assignment may ask (the user when it is done, the router when
//! the user reports or the assignment expires), also after the assignment expired. The receipt
//! is final: the session is refused from then on, so the count cannot grow after it is signed.
//!
//! `POST /v1/receipts` does the same for up to 256 sessions at once: a router's signed
//! `ReceiptRequest` (the sessions' assignments, one signature) in, one signed `ServiceReceipts`
//! out, the closes stored in one transaction, so a router settling many sessions costs the
//! provider one signature check and one signature per batch.

use axum::{Json, body::Bytes, extract::State, http::HeaderMap};
use morpheus_sdk::messages::{ReceiptRequest, ServiceReceipt, ServiceReceipts, Signed};
use tracing::info;

use super::{ApiError, AppState};

pub(super) async fn close(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Signed<ServiceReceipt>>, ApiError> {
    let s = &state.0;
    let grant = s.auth.authorize_issued(&headers)?;
    let tokens = s.auth.close(&grant)?;
    let receipt = ServiceReceipt {
        sessionId: grant.session,
        tokens: alloy::primitives::U256::from(tokens),
    };
    let signed = Signed::sign(receipt, &s.auth.policy().domain, &s.signer).map_err(|e| {
        tracing::error!(target: "worker::receipt", error = %e, "signing failed");
        ApiError::internal()
    })?;
    info!(target: "worker::receipt", session = %grant.session, router = %grant.router, tokens, "receipt signed");
    Ok(Json(signed))
}

pub(super) async fn close_many(
    State(state): State<AppState>,
    body: Bytes,
) -> Result<Json<Signed<ServiceReceipts>>, ApiError> {
    let s = &state.0;
    let request: Signed<ReceiptRequest> = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request("invalid_json", format!("not a signed receipt request: {e}"))
    })?;
    let grants = s.auth.authorize_receipts(&request)?;
    let counts = s.auth.close_all(&grants)?;
    let receipts = ServiceReceipts {
        receipts: grants
            .iter()
            .zip(&counts)
            .map(|(g, &tokens)| ServiceReceipt {
                sessionId: g.session,
                tokens: alloy::primitives::U256::from(tokens),
            })
            .collect(),
    };
    let signed = Signed::sign(receipts, &s.auth.policy().domain, &s.signer).map_err(|e| {
        tracing::error!(target: "worker::receipt", error = %e, "signing failed");
        ApiError::internal()
    })?;
    info!(
        target: "worker::receipt", sessions = grants.len(), router = %grants[0].router,
        tokens = counts.iter().sum::<u64>(), "receipts signed"
    );
    Ok(Json(signed))
}
