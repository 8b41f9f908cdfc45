//! The terms of the sessions this process booked, kept until their report: a report then
//! needs no read of the session before its provider is asked for the receipt (one call to the
//! store fewer per report). Only a shortcut: a report whose session is not here (booked by
//! another instance, before a restart, or dropped when full) reads the store, and the report's
//! own transaction checks everything again either way.

use std::{
    collections::HashMap,
    sync::{Mutex, PoisonError},
};

use alloy::primitives::{Address, B256};

use crate::store::SessionTerms;

/// At most this many sessions are kept (about 250 bytes each); past it, expired ones go first,
/// then new ones are not kept.
const MAX_KEPT: usize = 200_000;

/// Booked sessions' terms by session id.
#[derive(Debug, Default)]
pub(crate) struct Booked(Mutex<Kept>);

#[derive(Debug, Default)]
struct Kept {
    sessions: HashMap<B256, SessionTerms>,
    /// When expired sessions were last swept out: at most once a second, so that a full map
    /// of live sessions does not cost every booking a scan of it.
    swept_at: u64,
}

impl Booked {
    /// Keeps a session booked at unix time `now`.
    pub(crate) fn keep(&self, terms: SessionTerms, now: u64) {
        let mut kept = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if kept.sessions.len() >= MAX_KEPT && kept.swept_at < now {
            kept.sessions.retain(|_, t| t.expires_at >= now);
            kept.swept_at = now;
        }
        if kept.sessions.len() < MAX_KEPT {
            kept.sessions.insert(terms.session_id, terms);
        }
    }

    /// Takes the session's terms if it was kept and `signer` is its user (anyone else is left
    /// to the store, which names the refusal).
    pub(crate) fn take(&self, session_id: B256, signer: Address) -> Option<SessionTerms> {
        let mut kept = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if kept.sessions.get(&session_id)?.user != signer {
            return None;
        }
        kept.sessions.remove(&session_id)
    }
}

#[cfg(test)]
mod tests {
    use alloy::primitives::U256;

    use super::*;

    fn terms(n: u8, expires_at: u64) -> SessionTerms {
        SessionTerms {
            session_id: B256::repeat_byte(n),
            user: Address::repeat_byte(1),
            provider: Address::repeat_byte(2),
            endpoint: Some("http://127.0.0.1:1".into()),
            model_id: B256::ZERO,
            token_max: 64,
            price_per_token: U256::from(1),
            expires_at,
        }
    }

    #[test]
    fn a_session_is_taken_once_and_only_by_its_user() {
        let booked = Booked::default();
        booked.keep(terms(7, 100), 0);
        assert!(
            booked
                .take(B256::repeat_byte(7), Address::repeat_byte(9))
                .is_none()
        );
        let taken = booked.take(B256::repeat_byte(7), Address::repeat_byte(1));
        assert_eq!(taken.map(|t| t.token_max), Some(64));
        assert!(
            booked
                .take(B256::repeat_byte(7), Address::repeat_byte(1))
                .is_none()
        );
        assert!(
            booked
                .take(B256::repeat_byte(8), Address::repeat_byte(1))
                .is_none()
        );
    }
}
