//! Authorisation of chat requests: a router-signed assignment addressed to this provider, and
//! the session's token budget (`tokenMax`, prompt + completion, across the session's requests).
//!
//! The ledger also closes sessions: the provider's signed receipt of a session's tokens
//! ([`Auth::close`]) is final, so a closed session is refused from then on, and its entry is
//! kept for [`RECEIPT_RETENTION_SECS`] after the assignment expires so a receipt asked for late
//! still counts what was served.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex, PoisonError, RwLock},
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

/// How long after its assignment expires a session's count is kept for its receipt: the router
/// asks for receipts of expired sessions within a few minutes (docs/protocol.md, Router).
pub(crate) const RECEIPT_RETENTION_SECS: u64 = 3600;

/// One session's account.
#[derive(Debug, Clone, Copy)]
struct SessionEntry {
    /// Tokens reserved by requests in flight or charged.
    used: u64,
    /// The assignment's `expiresAt`.
    expires_at: u64,
    /// A receipt was signed: no more requests.
    closed: bool,
}

type Ledger = Arc<Mutex<HashMap<B256, SessionEntry>>>;

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
            e.used = e.used.saturating_sub(unused);
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
    /// Configured routers the chain says are no longer authorised (`routers.rs`).
    removed: RwLock<HashSet<Address>>,
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
            removed: RwLock::default(),
        }
    }

    /// Sets the configured routers that the chain no longer authorises.
    pub(crate) fn set_removed(&self, removed: HashSet<Address>) {
        *self.removed.write().unwrap_or_else(PoisonError::into_inner) = removed;
    }

    /// 403 when `router` was removed on-chain: its assignments and challenges are no longer
    /// honoured (its credit up to the removal stays claimable for the contract's grace).
    pub(crate) fn check_not_removed(&self, router: Address) -> Result<(), ApiError> {
        if self
            .removed
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(&router)
        {
            return Err(ApiError::forbidden(
                "router_removed",
                format!("router {router} is no longer authorised in SessionRouter"),
            ));
        }
        Ok(())
    }

    pub(crate) fn policy(&self) -> &AssignmentPolicy {
        &self.policy
    }

    pub(crate) fn model_id(&self) -> Option<B256> {
        self.model_id
    }

    /// The assignment in the request's header, checked: 401 when missing, 403 when invalid or
    /// expired.
    pub(crate) fn authorize(&self, headers: &HeaderMap) -> Result<Grant, ApiError> {
        self.grant(headers, Some(now()))
    }

    /// The assignment in the request's header, checked as [`authorize`](Self::authorize) does
    /// but also after it expired: a receipt is asked for when the session is over.
    pub(crate) fn authorize_issued(&self, headers: &HeaderMap) -> Result<Grant, ApiError> {
        self.grant(headers, None)
    }

    fn grant(&self, headers: &HeaderMap, now: Option<u64>) -> Result<Grant, ApiError> {
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
        let router = match now {
            Some(now) => self.policy.check(&signed, now),
            None => self.policy.check_issued(&signed),
        }
        .map_err(|e| ApiError::forbidden("assignment_refused", e.to_string()))?;
        self.check_not_removed(router)?;
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
        ledger.retain(|_, e| e.expires_at.saturating_add(RECEIPT_RETENTION_SECS) >= t);
        let entry = ledger.get(&grant.session).copied();
        if entry.is_some_and(|e| e.closed) {
            return Err(ApiError::forbidden(
                "session_closed",
                format!(
                    "session {} is closed: its receipt was signed, so it serves no more requests",
                    grant.session
                ),
            ));
        }
        let used = entry.map_or(0, |e| e.used);
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
        let entry = ledger.entry(grant.session).or_insert(SessionEntry {
            used: 0,
            expires_at: grant.expires_at,
            closed: false,
        });
        entry.used += prompt + completion;
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

    /// Closes the session and returns the tokens it was charged, counting the reservations of
    /// requests still in flight in full (they may charge up to that; the count never falls
    /// short of what was served). A session never used is closed at 0. Closing again returns
    /// the same count or less, never more.
    pub(crate) fn close(&self, grant: &Grant) -> u64 {
        let mut ledger = self.ledger.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = ledger.entry(grant.session).or_insert(SessionEntry {
            used: 0,
            expires_at: grant.expires_at,
            closed: false,
        });
        entry.closed = true;
        debug!(target: "worker::auth", session = %grant.session, tokens = entry.used, "session closed");
        entry.used.min(grant.token_max)
    }

    /// Tokens reserved or charged in `session` (for tests).
    #[cfg(test)]
    fn in_use(&self, session: B256) -> u64 {
        let ledger = self.ledger.lock().unwrap_or_else(PoisonError::into_inner);
        ledger.get(&session).map_or(0, |e| e.used)
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

    #[test]
    fn a_closed_session_is_refused_and_its_count_is_final() {
        let (auth, grant) = auth();
        let (mut r, _) = auth.reserve(&grant, 10, 20).expect("room");
        r.delivered(5);
        r.finished(10, 5);
        drop(r);
        assert_eq!(auth.close(&grant), 15);
        let refused = auth.reserve(&grant, 1, 1).expect_err("closed");
        assert!(
            format!("{refused:?}").contains("session_closed"),
            "{refused:?}"
        );
        assert_eq!(auth.close(&grant), 15, "closing again counts the same");
    }

    #[test]
    fn a_receipt_counts_requests_in_flight_in_full() {
        let (auth, grant) = auth();
        let (_in_flight, _) = auth.reserve(&grant, 10, 20).expect("room");
        assert_eq!(
            auth.close(&grant),
            30,
            "the whole reservation of the request in flight"
        );
    }

    #[test]
    fn a_session_never_used_closes_at_zero() {
        let (auth, grant) = auth();
        assert_eq!(auth.close(&grant), 0);
        assert!(auth.reserve(&grant, 1, 1).is_err());
    }
}
