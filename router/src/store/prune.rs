//! Pruning: what a long-running router no longer needs leaves the database, in small batches
//! (each its own short transaction, so requests are not held up behind one long delete).
//!
//! - A nonce is kept until its request's deadline is [`NONCE_GRACE`] past: until then the
//!   nonce refuses a replay, and after it the deadline does (`Error::Expired`). The grace covers
//!   routers whose clocks differ (several instances on one database) by less than it. Nonces
//!   stored before they carried a deadline are kept.
//! - A user's running total of a day (`user_days`) is kept for [`DAYS_KEPT`] days after it:
//!   reservations only ever read the chain's current day.
//! - A session is kept until [`SESSION_RETENTION`] after it expired, and after that only while
//!   something may still change it: its count is not settled (the provider has not answered
//!   and the attempts are not spent) or its day's bootstrap is not computed. A session
//!   reserved and never assigned (a crash between the two) goes with its day's total. A pruned
//!   session that was cancelled (never reported, the provider signed 0) is added to its
//!   provider's `reputation.cancelled_pruned` in the same transaction, so the reputation's
//!   counts do not change. A report of a pruned session is refused as unknown: reports are
//!   taken for [`SESSION_RETENTION`] after a session expired.

use super::{Store, sql::args, to_i64};
use crate::Result;

/// How long past its request's deadline a nonce is kept (seconds).
pub(crate) const NONCE_GRACE: u64 = 600;

/// How many days before the chain's current one the users' running totals are kept.
pub(crate) const DAYS_KEPT: u64 = 7;

/// How long after it expired a session is kept at least (seconds): 30 days.
pub(crate) const SESSION_RETENTION: u64 = 30 * 86_400;

/// Rows deleted per transaction.
const BATCH: i64 = 5_000;

/// What one round of [`Store::prune`] removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Pruned {
    pub(crate) nonces: u64,
    pub(crate) user_days: u64,
    pub(crate) sessions: u64,
}

impl Store {
    /// Removes the nonces whose deadline is [`NONCE_GRACE`] before `now` (the router's clock),
    /// the running totals of days more than [`DAYS_KEPT`] before `today` (the chain's day), and
    /// the sessions that nothing can change any more, [`SESSION_RETENTION`] after they expired.
    pub(crate) fn prune(&self, now: u64, today: u64) -> Result<Pruned> {
        let nonces = self.delete_in_batches(
            r#"DELETE FROM nonces WHERE ("user", nonce) IN
                   (SELECT "user", nonce FROM nonces WHERE deadline < ?1 LIMIT ?2)"#,
            to_i64(now.saturating_sub(NONCE_GRACE)),
        )?;
        let old = to_i64(today.saturating_sub(DAYS_KEPT));
        let user_days = self.delete_in_batches(
            r#"DELETE FROM user_days WHERE ("user", day) IN
                   (SELECT "user", day FROM user_days WHERE day < ?1 LIMIT ?2)"#,
            old,
        )?;
        let mut pruned = Pruned {
            nonces,
            user_days,
            sessions: 0,
        };
        loop {
            let n = self.prune_sessions(to_i64(now.saturating_sub(SESSION_RETENTION)), old)?;
            pruned.sessions += n;
            if (n as i64) < BATCH {
                break;
            }
        }
        Ok(pruned)
    }

    /// Runs `delete` (`?1` the bound, `?2` the batch size) one batch per transaction until a
    /// batch deletes fewer than [`BATCH`] rows; returns how many it deleted.
    fn delete_in_batches(&self, delete: &str, bound: i64) -> Result<u64> {
        let mut deleted = 0;
        loop {
            let n = self.write_alone(|db| db.exec(delete, args![bound, BATCH]))?;
            deleted += n;
            if (n as i64) < BATCH {
                return Ok(deleted);
            }
        }
    }

    /// One batch of sessions: settled, expired before `expired`, their day's bootstrap computed;
    /// or never assigned and of a day before `old_day`. Their cancelled ones are counted into
    /// the reputation first.
    fn prune_sessions(&self, expired: i64, old_day: i64) -> Result<u64> {
        self.write_alone(|db| {
            let due = db.query(
                "SELECT session_id, provider, model_id,
                     CASE WHEN reported = 0 AND receipt = 0 THEN 1 ELSE 0 END
                 FROM sessions
                 WHERE (settled = 1 AND expires_at < ?1
                        AND day IN (SELECT day FROM bootstrap_days))
                    OR (provider IS NULL AND day < ?2)
                 LIMIT ?3",
                args![expired, old_day, BATCH],
            )?;
            for row in &due {
                if let (true, Some(provider)) = (row.get::<bool>(3)?, row.get::<Option<String>>(1)?)
                {
                    db.exec(
                        "INSERT INTO reputation
                             (provider, model_id, completed, failed, earned, cancelled_pruned)
                         VALUES (?1, ?2, 0, 0, '0', 1)
                         ON CONFLICT (provider, model_id)
                         DO UPDATE SET cancelled_pruned = reputation.cancelled_pruned + 1",
                        args![provider, row.get::<String>(2)?],
                    )?;
                }
                db.exec(
                    "DELETE FROM sessions WHERE session_id = ?1",
                    args![row.get::<String>(0)?],
                )?;
            }
            Ok(due.len() as u64)
        })
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
        let store = crate::store::TestDb::new().open();
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
    fn settled_sessions_go_after_the_retention_and_cancelled_ones_stay_counted() {
        use morpheus_sdk::messages::UsageReport;

        let store = crate::store::TestDb::new().open();
        let (provider, model) = (Address::repeat_byte(2), B256::repeat_byte(9));
        let user = Address::repeat_byte(1);
        for n in 1..=3 {
            store
                .reserve(&session(n, 20, u64::MAX / 4), U256::from(1_000))
                .expect("reserve");
            store
                .book(
                    B256::repeat_byte(n),
                    provider,
                    "http://provider.test",
                    U256::from(10),
                    U256::from(3),
                    0,
                    100,
                )
                .expect("book");
        }
        // 1: cancelled (never reported, the provider signed 0); 2: reported, its receipt in;
        // 3: neither (not settled).
        store
            .settle(B256::repeat_byte(1), Some(0), 6)
            .expect("settle");
        let report = UsageReport {
            sessionId: B256::repeat_byte(2),
            tokens: U256::from(5),
            ttftMs: U256::from(1),
            durationMs: U256::from(50),
            passed: true,
        };
        let rule = crate::speed::SpeedRule {
            slow_threshold_pct: 50,
            window: 20,
            min_ms_per_token: 1.0,
            max_ms_per_token: 10_000.0,
        };
        store
            .record_report(&report, user, rule, Some(5), true)
            .expect("report");
        let cancelled = |store: &Store| {
            store
                .read(|db| super::super::reputation::model_reputation(db, provider, model, 20))
                .expect("reputation")
                .cancelled
        };
        assert_eq!(cancelled(&store), 1);
        let after_retention = 101 + SESSION_RETENTION;
        assert_eq!(
            store.prune(after_retention, 21).expect("prune").sessions,
            0,
            "the day's bootstrap is not computed"
        );
        store
            .write(|db| {
                db.exec(
                    "INSERT INTO bootstrap_days
                         (day, share, reserve, days_left, share_bps, outstanding, computed_at)
                     VALUES (20, '0', '0', 0, 0, '0', 0)",
                    args![],
                )
            })
            .expect("day computed");
        assert_eq!(
            store
                .prune(after_retention - 1, 21)
                .expect("prune")
                .sessions,
            0,
            "within the retention"
        );
        assert_eq!(store.prune(after_retention, 21).expect("prune").sessions, 2);
        assert_eq!(
            cancelled(&store),
            1,
            "the pruned cancelled session still counts"
        );
        assert!(matches!(
            store.report_target(B256::repeat_byte(2), user),
            Err(Error::UnknownSession(_))
        ));
        store
            .report_target(B256::repeat_byte(3), user)
            .expect("the unsettled session stays");
    }

    #[test]
    fn old_days_go_and_the_current_ones_keep_their_totals() {
        let store = crate::store::TestDb::new().open();
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
