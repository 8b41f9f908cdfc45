//! Authorisation of chat requests: a router-signed assignment addressed to this provider, and
//! the session's token budget (`tokenMax`, prompt + completion, across the session's requests).

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
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

/// session -> (tokens reserved or charged, expiry)
type Ledger = Arc<Mutex<HashMap<B256, (u64, u64)>>>;

/// Tokens reserved for one request from its session's budget: the prompt and the completion cap.
///
/// The request is charged its prompt and the tokens it delivered, from its first delivered
/// token on ([`Reservation::delivered`]; [`Reservation::finished`] sets the engine's exact count);
/// a request that delivered nothing is charged nothing. Dropping the reservation gives back the
/// rest, so every ending settles the same way: done, failed, refused, or the client gone.
#[derive(Debug)]
pub(crate) struct Reservation {
    ledger: Ledger,
    session: B256,
    prompt: u64,
    reserved: u64,
    charged: u64,
}

impl Reservation {
    /// `tokens` more completion tokens reached the client (the first also charges the prompt).
    pub(crate) fn delivered(&mut self, tokens: u32) {
        if self.charged == 0 {
            self.charged = self.prompt;
        }
        self.charged = (self.charged + u64::from(tokens)).min(self.reserved);
    }

    /// The engine finished with these exact counts.
    pub(crate) fn finished(&mut self, prompt: u32, completion: u32) {
        self.charged = (u64::from(prompt) + u64::from(completion)).min(self.reserved);
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let unused = self.reserved - self.charged;
        let mut ledger = self.ledger.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(e) = ledger.get_mut(&self.session) {
            e.0 = e.0.saturating_sub(unused);
        }
        debug!(target: "worker::auth", session = %self.session, charged = self.charged, unused, "tokens settled");
    }
}

/// Checks assignments and keeps each session within its `tokenMax`.
#[derive(Debug)]
pub(crate) struct Auth {
    policy: AssignmentPolicy,
    model_id: Option<B256>,
    ledger: Ledger,
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
            ledger: Arc::default(),
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
        let mut ledger = self.ledger.lock().unwrap_or_else(PoisonError::into_inner);
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
                ledger: self.ledger.clone(),
                session: grant.session,
                prompt,
                reserved: prompt + completion,
                charged: 0,
            },
            completion as u32,
        ))
    }

    /// Tokens reserved or charged in `session` (for tests).
    #[cfg(test)]
    fn in_use(&self, session: B256) -> u64 {
        let ledger = self.ledger.lock().unwrap_or_else(PoisonError::into_inner);
        ledger.get(&session).map_or(0, |e| e.0)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use alloy::primitives::Address;
    use morpheus_sdk::messages::protocol_domain;

    use super::*;

    fn auth() -> (Auth, Grant) {
        let policy = AssignmentPolicy {
            domain: protocol_domain(31337, Address::ZERO),
            provider: Address::ZERO,
            routers: HashSet::new(),
        };
        let grant = Grant {
            session: B256::repeat_byte(7),
            router: Address::ZERO,
            token_max: 1000,
            expires_at: u64::MAX,
        };
        (Auth::new(policy, None), grant)
    }

    #[test]
    fn done_charges_the_engines_count() {
        let (auth, grant) = auth();
        let (mut r, granted) = auth.reserve(&grant, 10, 500).expect("room");
        assert_eq!((granted, auth.in_use(grant.session)), (500, 510));
        r.delivered(3);
        r.finished(10, 4);
        drop(r);
        assert_eq!(auth.in_use(grant.session), 14);
    }

    #[test]
    fn a_failure_or_a_client_gone_charges_what_was_delivered() {
        let (auth, grant) = auth();
        let (mut r, _) = auth.reserve(&grant, 10, 500).expect("room");
        r.delivered(2);
        r.delivered(1);
        drop(r);
        assert_eq!(auth.in_use(grant.session), 13);
    }

    #[test]
    fn a_request_that_delivered_nothing_is_charged_nothing() {
        let (auth, grant) = auth();
        let (_kept, _) = auth.reserve(&grant, 5, 5).expect("room");
        let (r, _) = auth.reserve(&grant, 10, 500).expect("room");
        drop(r);
        assert_eq!(
            auth.in_use(grant.session),
            10,
            "only the first reservation stays"
        );
    }

    #[test]
    fn charges_never_exceed_the_reservation() {
        let (auth, grant) = auth();
        let (mut r, _) = auth.reserve(&grant, 10, 20).expect("room");
        r.delivered(100);
        r.finished(10, 100);
        drop(r);
        assert_eq!(auth.in_use(grant.session), 30);
    }
}
