//! Sessions' token counts: written through on every reservation, settlement and close, read
//! back on start (`api::auth`).

use alloy::primitives::B256;
use rusqlite::params;

use super::{Store, int, uint};
use crate::Result;

/// One session's account as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredSession {
    /// The assignment's `sessionId`.
    pub id: B256,
    /// Tokens reserved by requests in flight or charged.
    pub used: u64,
    /// The assignment's `expiresAt`.
    pub expires_at: u64,
    /// Its receipt was signed: it serves no more requests.
    pub closed: bool,
}

impl Store {
    /// Writes `session`'s account, replacing the stored one.
    pub fn put_session(&self, session: &StoredSession) -> Result<()> {
        self.with(|c| {
            c.prepare_cached(
                "INSERT INTO sessions (id, used, expires_at, closed) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (id) DO UPDATE SET used = ?2, expires_at = ?3, closed = ?4",
            )?
            .execute(params![
                session.id.as_slice(),
                int(session.used),
                int(session.expires_at),
                session.closed
            ])
            .map(drop)
        })
    }

    /// Writes several sessions' accounts in one transaction: all of them or none.
    pub fn put_sessions(&self, sessions: &[StoredSession]) -> Result<()> {
        self.with(|c| {
            let tx = c.unchecked_transaction()?;
            {
                let mut put = tx.prepare_cached(
                    "INSERT INTO sessions (id, used, expires_at, closed) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (id) DO UPDATE SET used = ?2, expires_at = ?3, closed = ?4",
                )?;
                for session in sessions {
                    put.execute(params![
                        session.id.as_slice(),
                        int(session.used),
                        int(session.expires_at),
                        session.closed
                    ])?;
                }
            }
            tx.commit()
        })
    }

    /// The sessions expiring at `since` or later.
    pub fn sessions(&self, since: u64) -> Result<Vec<StoredSession>> {
        self.with(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT id, used, expires_at, closed FROM sessions WHERE expires_at >= ?1",
            )?;
            let rows = stmt.query_map(params![int(since)], |r| {
                let id: Vec<u8> = r.get(0)?;
                Ok(StoredSession {
                    id: B256::try_from(id.as_slice()).unwrap_or_default(),
                    used: uint(r.get(1)?),
                    expires_at: uint(r.get(2)?),
                    closed: r.get(3)?,
                })
            })?;
            rows.collect()
        })
    }

    /// Forgets the sessions that expired before `before`; returns how many.
    pub fn prune_sessions(&self, before: u64) -> Result<usize> {
        self.with(|c| {
            c.prepare_cached("DELETE FROM sessions WHERE expires_at < ?1")?
                .execute(params![int(before)])
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(byte: u8, used: u64, expires_at: u64) -> StoredSession {
        StoredSession {
            id: B256::repeat_byte(byte),
            used,
            expires_at,
            closed: false,
        }
    }

    #[test]
    fn a_session_is_replaced_and_pruned_once_expired() {
        let store = Store::in_memory().expect("store");
        store.put_session(&session(1, 10, 100)).expect("write");
        store
            .put_session(&StoredSession {
                closed: true,
                ..session(1, 25, 100)
            })
            .expect("replace");
        store.put_session(&session(2, 5, 50)).expect("write");
        store.put_session(&session(3, 7, u64::MAX)).expect("write");
        let mut live = store.sessions(60).expect("read");
        live.sort_by_key(|s| s.id);
        assert_eq!(live.len(), 2);
        assert_eq!(
            (live[0].used, live[0].closed),
            (25, true),
            "the last write wins"
        );
        assert_eq!(
            live[1].expires_at,
            i64::MAX.cast_unsigned(),
            "a far expiry stays far"
        );
        assert_eq!(store.prune_sessions(60).expect("prune"), 1);
        assert_eq!(store.sessions(0).expect("read").len(), 2);
    }
}
