//! Pruning: what a long-running router no longer needs leaves the database, in small batches
//! (each its own short transaction, so requests are not held up behind one long delete).
//!
//! - A nonce is kept until its request's deadline is [`NONCE_GRACE`] past: until then the
//!   nonce refuses a replay, and after it the deadline does (`Error::Expired`). The grace covers
//!   routers whose clocks differ (several instances on one database) by less than it. Nonces
//!   stored before they carried a deadline are kept.
//! - A user's running total of a day (`user_days`) is kept for [`DAYS_KEPT`] days after it:
//!   reservations only ever read the chain's current day.

use super::{Store, to_i64};
use crate::Result;

/// How long past its request's deadline a nonce is kept (seconds).
pub(crate) const NONCE_GRACE: u64 = 600;

/// How many days before the chain's current one the users' running totals are kept.
pub(crate) const DAYS_KEPT: u64 = 7;

/// Rows deleted per transaction.
const BATCH: i64 = 5_000;

/// What one round of [`Store::prune`] removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Pruned {
    pub(crate) nonces: u64,
    pub(crate) user_days: u64,
}

impl Store {
    /// Removes the nonces whose deadline is [`NONCE_GRACE`] before `now` (the router's clock)
    /// and the running totals of days more than [`DAYS_KEPT`] before `today` (the chain's day).
    pub(crate) fn prune(&self, now: u64, today: u64) -> Result<Pruned> {
        let mut pruned = Pruned::default();
        let expired = to_i64(now.saturating_sub(NONCE_GRACE));
        loop {
            let n = self.conn().execute(
                "DELETE FROM nonces WHERE rowid IN
                     (SELECT rowid FROM nonces WHERE deadline < ?1 LIMIT ?2)",
                rusqlite::params![expired, BATCH],
            )?;
            pruned.nonces += n as u64;
            if (n as i64) < BATCH {
                break;
            }
        }
        let old = to_i64(today.saturating_sub(DAYS_KEPT));
        loop {
            let n = self.conn().execute(
                "DELETE FROM user_days WHERE (user, day) IN
                     (SELECT user, day FROM user_days WHERE day < ?1 LIMIT ?2)",
                rusqlite::params![old, BATCH],
            )?;
            pruned.user_days += n as u64;
            if (n as i64) < BATCH {
                break;
            }
        }
        Ok(pruned)
    }
}

#[cfg(test)]
mod tests {
    use alloy::primitives::{Address, B256, U256};

    use super::*;
    use crate::{Error, store::NewSession};

    fn session(n: u8, day: u64, deadline: u64) -> NewSession {
        NewSession {
            session_id: B256::repeat_byte(n),
            user: Address::repeat_byte(1),
            nonce: U256::from(n),
            model_id: B256::repeat_byte(9),
            day,
            token_max: 10,
            deadline,
        }
    }

    #[test]
    fn a_nonce_is_kept_while_its_request_could_be_replayed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("router.db")).expect("open");
        let max = U256::from(1_000);
        store.reserve(&session(1, 20, 1_000), max).expect("first");
        store.reserve(&session(2, 20, 5_000), max).expect("second");
        // At the deadline plus the grace, the first nonce is still kept.
        let pruned = store.prune(1_000 + NONCE_GRACE, 20).expect("prune");
        assert_eq!(pruned.nonces, 0);
        assert!(matches!(
            store.reserve(&session(1, 20, 1_000), max),
            Err(Error::NonceUsed { .. })
        ));
        // A second later it goes; the other stays and still refuses its replay.
        let pruned = store.prune(1_001 + NONCE_GRACE, 20).expect("prune");
        assert_eq!(pruned.nonces, 1);
        assert!(matches!(
            store.reserve(&session(2, 20, 5_000), max),
            Err(Error::NonceUsed { .. })
        ));
    }

    #[test]
    fn old_days_go_and_the_current_ones_keep_their_totals() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("router.db")).expect("open");
        let max = U256::from(1_000);
        store
            .reserve(&session(1, 10, u64::MAX / 4), max)
            .expect("old day");
        store
            .reserve(&session(2, 20, u64::MAX / 4), max)
            .expect("today");
        let pruned = store.prune(0, 20).expect("prune");
        assert_eq!(pruned.user_days, 1);
        let user = Address::repeat_byte(1);
        assert_eq!(store.used(user, 20).expect("today"), 10);
        assert_eq!(store.used(user, 10).expect("pruned day"), 0);
    }
}
