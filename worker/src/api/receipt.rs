//! `POST /v1/receipt`: closes a session and answers with the provider's signed count of the
//! tokens it charged the session (`ServiceReceipt`), the count the router refunds a user's
//! reservation against (docs/protocol.md, Router, "tokens counted").
//!
//! Whoever holds the session's assignment may ask (the user when it is done, the router when
//! the user reports or the assignment expires), also after the assignment expired. The receipt
//! is final: the session is refused from then on, so the count cannot grow after it is signed.

use axum::{Json, extract::State, http::HeaderMap};
use morpheus_sdk::messages::{ServiceReceipt, Signed};
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
    let signed =
        Signed::sign(receipt, &s.auth.policy().domain, &s.protocol.signer).map_err(|e| {
            tracing::error!(target: "worker::receipt", error = %e, "signing failed");
            ApiError::internal()
        })?;
    info!(target: "worker::receipt", session = %grant.session, router = %grant.router, tokens, "receipt signed");
    Ok(Json(signed))
}
