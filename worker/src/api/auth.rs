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
use axum::http::{HeaderMap, StatusCode};
use morpheus_sdk::{
    messages::{Assignment, ReceiptRequest, Signed},
    provider::{ASSIGNMENT_HEADER, AssignmentPolicy, decode_assignment},
};
use tracing::{debug, error, info, warn};

use super::error::ApiError;
use crate::store::{Store, StoredSession};

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

/// The sessions' accounts in memory, written through to the worker's database: a reservation
/// is stored before the request is served and a close before the receipt is signed, so after a
/// crash and a restart every session's count is at least what it served (a request in flight
/// at the crash counts its whole reservation) and a closed session stays closed.
#[derive(Debug)]
struct Accounts {
    sessions: HashMap<B256, SessionEntry>,
    store: Store,
}

impl Accounts {
    fn persist(&self, id: B256, e: SessionEntry) -> crate::Result<()> {
        self.store.put_session(&StoredSession {
            id,
            used: e.used,
            expires_at: e.expires_at,
            closed: e.closed,
        })
    }

    /// Forgets the sessions whose receipts can no longer be asked for.
    fn prune(&mut self, now: u64) {
        let before = self.sessions.len();
        self.sessions
            .retain(|_, e| e.expires_at.saturating_add(RECEIPT_RETENTION_SECS) >= now);
        if self.sessions.len() < before
            && let Err(e) = self
                .store
                .prune_sessions(now.saturating_sub(RECEIPT_RETENTION_SECS))
        {
            warn!(target: "worker::auth", error = %e, "could not prune expired sessions");
        }
    }
}

type Ledger = Arc<Mutex<Accounts>>;

/// 503 when a session's count cannot be stored: serving it unrecorded could let a restart
/// serve the session beyond its `tokenMax`.
fn not_recorded(e: &crate::Error) -> ApiError {
    error!(target: "worker::auth", error = %e, "could not store a session's count");
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "server_error",
        "ledger_unavailable",
        "the provider cannot record the session's tokens right now; retry later",
    )
}

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
        if let Some(e) = ledger.sessions.get_mut(&self.session) {
            e.used = e.used.saturating_sub(unused);
            let e = *e;
            // A count that fails to store stays higher on disk than served: safe for tokenMax.
            if unused > 0
                && let Err(err) = ledger.persist(self.session, e)
            {
                warn!(target: "worker::auth", session = %self.session, error = %err, "could not store a settled count");
            }
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
    /// Checks for `policy`, keeping the sessions' counts in `store` (those stored by an earlier
    /// run whose receipts can still be asked for are read back).
    pub(crate) fn new(
        policy: AssignmentPolicy,
        model_id: Option<B256>,
        store: Store,
    ) -> crate::Result<Self> {
        let since = now().saturating_sub(RECEIPT_RETENTION_SECS);
        let sessions: HashMap<B256, SessionEntry> = store
            .sessions(since)?
            .into_iter()
            .map(|s| {
                (
                    s.id,
                    SessionEntry {
                        used: s.used,
                        expires_at: s.expires_at,
                        closed: s.closed,
                    },
                )
            })
            .collect();
        if !sessions.is_empty() {
            info!(target: "worker::auth", sessions = sessions.len(), "sessions' counts read back");
        }
        Ok(Self {
            policy,
            model_id,
            ledger: Arc::new(Mutex::new(Accounts { sessions, store })),
            removed: RwLock::default(),
        })
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
        ledger.prune(now());
        let entry = ledger.sessions.get(&grant.session).copied();
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
        let reserved = SessionEntry {
            used: used + prompt + completion,
            expires_at: entry.map_or(grant.expires_at, |e| e.expires_at),
            closed: false,
        };
        ledger
            .persist(grant.session, reserved)
            .map_err(|e| not_recorded(&e))?;
        ledger.sessions.insert(grant.session, reserved);
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
    /// the same count or less, never more. 503 when the close cannot be stored (a receipt for
    /// a session a restart would reopen is not signed).
    pub(crate) fn close(&self, grant: &Grant) -> Result<u64, ApiError> {
        let counts = self.close_all(std::slice::from_ref(grant))?;
        Ok(counts.first().copied().unwrap_or_default())
    }

    /// The grants of a router's signed request for several sessions' receipts: 403 when the
    /// request is refused as a whole (not a trusted router's, another provider's session, more
    /// than one model or a model not served here, none or too many assignments).
    pub(crate) fn authorize_receipts(
        &self,
        request: &Signed<ReceiptRequest>,
    ) -> Result<Vec<Grant>, ApiError> {
        let (router, model) = self
            .policy
            .check_receipt_request(request)
            .map_err(|e| ApiError::forbidden("receipt_request_refused", e.to_string()))?;
        self.check_not_removed(router)?;
        if let Some(id) = self.model_id
            && model != id
        {
            return Err(ApiError::forbidden(
                "wrong_model",
                format!("the assignments are for model {model}, this provider serves {id}"),
            ));
        }
        Ok(request
            .message
            .assignments
            .iter()
            .map(|a| Grant {
                session: a.sessionId,
                router,
                token_max: a.tokenMax.try_into().unwrap_or(u64::MAX),
                expires_at: a.expiresAt.try_into().unwrap_or(u64::MAX),
            })
            .collect())
    }

    /// Closes every granted session as [`close`](Self::close) closes one, their closes stored in
    /// one transaction; returns their counts in order.
    pub(crate) fn close_all(&self, grants: &[Grant]) -> Result<Vec<u64>, ApiError> {
        let mut ledger = self.ledger.lock().unwrap_or_else(PoisonError::into_inner);
        let mut stored = Vec::with_capacity(grants.len());
        for grant in grants {
            let entry = ledger
                .sessions
                .entry(grant.session)
                .or_insert(SessionEntry {
                    used: 0,
                    expires_at: grant.expires_at,
                    closed: false,
                });
            // Closed in memory at once: whatever the disk says, this run serves it no more.
            entry.closed = true;
            stored.push(StoredSession {
                id: grant.session,
                used: entry.used,
                expires_at: entry.expires_at,
                closed: true,
            });
        }
        ledger
            .store
            .put_sessions(&stored)
            .map_err(|e| not_recorded(&e))?;
        debug!(target: "worker::auth", sessions = grants.len(), "sessions closed");
        Ok(stored
            .iter()
            .zip(grants)
            .map(|(s, g)| s.used.min(g.token_max))
            .collect())
    }

    /// Tokens reserved or charged in `session` (for tests).
    #[cfg(test)]
    fn in_use(&self, session: B256) -> u64 {
        let ledger = self.ledger.lock().unwrap_or_else(PoisonError::into_inner);
        ledger.sessions.get(&session).map_or(0, |e| e.used)
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
        let auth = Auth::new(policy, None, Store::in_memory().expect("store")).expect("auth");
        (auth, grant)
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
        assert_eq!(auth.close(&grant).expect("close"), 15);
        let refused = auth.reserve(&grant, 1, 1).expect_err("closed");
        assert!(
            format!("{refused:?}").contains("session_closed"),
            "{refused:?}"
        );
        assert_eq!(
            auth.close(&grant).expect("close"),
            15,
            "closing again counts the same"
        );
    }

    #[test]
    fn a_receipt_counts_requests_in_flight_in_full() {
        let (auth, grant) = auth();
        let (_in_flight, _) = auth.reserve(&grant, 10, 20).expect("room");
        assert_eq!(
            auth.close(&grant).expect("close"),
            30,
            "the whole reservation of the request in flight"
        );
    }

    #[test]
    fn a_session_never_used_closes_at_zero() {
        let (auth, grant) = auth();
        assert_eq!(auth.close(&grant).expect("close"), 0);
        assert!(auth.reserve(&grant, 1, 1).is_err());
    }

    /// The ledger on the database at `path` (created, or as a previous run left it).
    fn reopened(path: &std::path::Path) -> Auth {
        let (fresh, _) = auth();
        Auth::new(fresh.policy.clone(), None, Store::open(path).expect("open")).expect("auth")
    }

    #[test]
    fn a_restart_keeps_each_sessions_count_and_a_request_in_flight_counts_in_full() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("worker.db");
        let (auth, grant) = (reopened(&path), auth().1);
        let (mut done, _) = auth.reserve(&grant, 100, 500).expect("room");
        done.finished(100, 200);
        drop(done);
        // A request in flight when the process is killed: its reservation is never settled.
        let (in_flight, _) = auth.reserve(&grant, 50, 400).expect("room");
        std::mem::forget(in_flight);
        drop(auth);

        let auth = reopened(&path);
        assert_eq!(auth.in_use(grant.session), 300 + 450);
        let refused = auth.reserve(&grant, 250, 10).expect_err("over tokenMax");
        assert!(
            format!("{refused:?}").contains("leaves 250 of 1000"),
            "{refused:?}"
        );
        let (_, granted) = auth.reserve(&grant, 200, 500).expect("what is left");
        assert_eq!(granted, 50, "only the rest of tokenMax");
    }

    #[test]
    fn a_restart_keeps_a_closed_session_closed() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("worker.db");
        let (auth, grant) = (reopened(&path), auth().1);
        let (mut r, _) = auth.reserve(&grant, 10, 20).expect("room");
        r.finished(10, 5);
        drop(r);
        assert_eq!(auth.close(&grant).expect("close"), 15);
        drop(auth);

        let auth = reopened(&path);
        let refused = auth.reserve(&grant, 1, 1).expect_err("closed");
        assert!(
            format!("{refused:?}").contains("session_closed"),
            "{refused:?}"
        );
        assert_eq!(auth.close(&grant).expect("close"), 15, "the same receipt");
    }

    #[test]
    fn a_count_that_cannot_be_stored_refuses_the_request() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("worker.db");
        let (fresh, grant) = auth();
        let store = Store::open(&path).expect("open");
        let auth = Auth::new(fresh.policy.clone(), None, store.clone()).expect("auth");
        // Another connection holds the write lock: this one cannot commit within its timeout.
        let other = rusqlite::Connection::open(&path).expect("second connection");
        other.execute_batch("BEGIN IMMEDIATE").expect("lock");
        store.set_busy_timeout_for_tests(std::time::Duration::from_millis(50));
        let refused = auth.reserve(&grant, 10, 20).expect_err("not recorded");
        assert_eq!(
            refused.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{refused:?}"
        );
        assert_eq!(refused.code, "ledger_unavailable");
        assert_eq!(
            auth.in_use(grant.session),
            0,
            "nothing reserved in memory either"
        );
        other.execute_batch("ROLLBACK").expect("unlock");
        auth.reserve(&grant, 10, 20).expect("recorded again");
    }
}
