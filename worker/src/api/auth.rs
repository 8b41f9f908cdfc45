//! Authorisation of chat requests: a router-signed assignment addressed to this provider, and
//! the session's token budget (`tokenMax`, prompt + completion, across the session's requests).

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{SystemTime, UNIX_EPOCH},
};

use alloy::primitives::{Address, B256};
use axum::http::HeaderMap;
use morpheus_sdk::{
    messages::{Assignment, Signed},
    provider::{ASSIGNMENT_HEADER, AssignmentPolicy, decode_assignment},
};
use tracing::debug;

use super::error::ApiError;

/// A checked assignment.
#[derive(Debug, Clone)]
pub(crate) struct Grant {
    pub(crate) session: B256,
    pub(crate) router: Address,
    pub(crate) token_max: u64,
    expires_at: u64,
}

/// Tokens reserved for one request; give back the unused part with [`Auth::settle`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Reservation {
    session: B256,
    tokens: u64,
}

/// Checks assignments and keeps each session within its `tokenMax`.
#[derive(Debug)]
pub(crate) struct Auth {
    policy: AssignmentPolicy,
    model_id: Option<B256>,
    /// session -> (tokens reserved or used, expiry)
    ledger: Mutex<HashMap<B256, (u64, u64)>>,
}

pub(crate) fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Auth {
    pub(crate) fn new(policy: AssignmentPolicy, model_id: Option<B256>) -> Self {
        Self {
            policy,
            model_id,
            ledger: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) fn policy(&self) -> &AssignmentPolicy {
        &self.policy
    }

    pub(crate) fn model_id(&self) -> Option<B256> {
        self.model_id
    }

    /// The assignment in the request's header, checked: 401 when missing, 403 when invalid.
    pub(crate) fn authorize(&self, headers: &HeaderMap) -> Result<Grant, ApiError> {
        let value = headers.get(ASSIGNMENT_HEADER).ok_or_else(|| {
            ApiError::unauthorized(format!(
                "a router assignment is required in the `{ASSIGNMENT_HEADER}` header"
            ))
        })?;
        let value = value.to_str().map_err(|_| {
            ApiError::forbidden("invalid_assignment", "the assignment header is not ASCII")
        })?;
        let signed: Signed<Assignment> = decode_assignment(value)
            .map_err(|e| ApiError::forbidden("invalid_assignment", e.to_string()))?;
        let router = self
            .policy
            .check(&signed, now())
            .map_err(|e| ApiError::forbidden("assignment_refused", e.to_string()))?;
        let a = &signed.message;
        if let Some(id) = self.model_id
            && a.modelId != id
        {
            return Err(ApiError::forbidden(
                "wrong_model",
                format!(
                    "the assignment is for model {}, this provider serves {id}",
                    a.modelId
                ),
            ));
        }
        Ok(Grant {
            session: a.sessionId,
            router,
            token_max: a.tokenMax.try_into().unwrap_or(u64::MAX),
            expires_at: a.expiresAt.try_into().unwrap_or(u64::MAX),
        })
    }

    /// Reserves the prompt and up to `want` completion tokens from the session's budget;
    /// returns the reservation and the completion tokens granted.
    pub(crate) fn reserve(
        &self,
        grant: &Grant,
        prompt: u64,
        want: u64,
    ) -> Result<(Reservation, u32), ApiError> {
        let mut ledger = self.ledger.lock().map_err(|_| ApiError::internal())?;
        let t = now();
        ledger.retain(|_, (_, exp)| *exp >= t);
        let used = ledger.get(&grant.session).map_or(0, |e| e.0);
        let left = grant.token_max.saturating_sub(used);
        if prompt >= left {
            return Err(ApiError::forbidden(
                "token_max_exceeded",
                format!(
                    "the prompt has {prompt} tokens; the assignment's tokenMax leaves {left} of {} for this session",
                    grant.token_max
                ),
            ));
        }
        let completion = want.min(left - prompt).min(u64::from(u32::MAX));
        let entry = ledger.entry(grant.session).or_insert((0, grant.expires_at));
        entry.0 += prompt + completion;
        debug!(target: "worker::auth", session = %grant.session, router = %grant.router, prompt, completion, left, "tokens reserved");
        Ok((
            Reservation {
                session: grant.session,
                tokens: prompt + completion,
            },
            completion as u32,
        ))
    }

    /// Gives back what a finished request did not use.
    pub(crate) fn settle(&self, r: Reservation, used: u64) {
        if let Ok(mut ledger) = self.ledger.lock()
            && let Some(e) = ledger.get_mut(&r.session)
        {
            e.0 = e.0.saturating_sub(r.tokens.saturating_sub(used));
        }
    }
}
