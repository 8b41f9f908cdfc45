//! Pruning: what a long-running router no longer needs leaves the database, in small batches
//! (each its own short transaction, so requests are not held up behind one long delete).
//!
//! - A nonce is kept until its request's deadline is [`NONCE_GRACE`] past: until then the
//!   nonce refuses a replay, and after it the deadline does (`Error::Expired`). The grace covers
//!   routers whose clocks differ (several instances on one database) by less than it. Nonces
//!   stored before they carried a deadline are kept.
//! - A user's running total of a day (`user_days`) is kept for [`DAYS_KEPT`] days after it:
//!   reservations only ever read the chain's current day. A provider's credit of a day
//!   (`provider_days`) as long, and after that until the day's bootstrap is computed from it.
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

/// Rows deleted per transaction. Each batch is one call on the store's thread, so requests run
/// between batches: a batch must be short (a few milliseconds on SQLite) even while a long
/// backlog is pruned, such as a database restored after weeks.
const BATCH: i64 = 500;

/// A batch of nonces past their grace (`?1` the bound, `?2` the batch).
const PRUNE_NONCES: &str = r#"DELETE FROM nonces WHERE ("user", nonce) IN
    (SELECT "user", nonce FROM nonces WHERE deadline < ?1 LIMIT ?2)"#;

/// A batch of providers' running credits of computed days before `?1` (what a day's bootstrap
/// is computed from: not needed once it is).
const PRUNE_PROVIDER_DAYS: &str = "DELETE FROM provider_days WHERE (day, provider) IN
    (SELECT day, provider FROM provider_days
     WHERE day < ?1 AND day IN (SELECT day FROM bootstrap_days) LIMIT ?2)";

/// A batch of users' running totals of days before `?1`.
const PRUNE_USER_DAYS: &str = r#"DELETE FROM user_days WHERE ("user", day) IN
    (SELECT "user", day FROM user_days WHERE day < ?1 LIMIT ?2)"#;

/// Settled sessions expired before `?1` whose day's bootstrap is computed, with whether each was
/// cancelled (never reported, the provider signed 0).
const DUE_SETTLED: &str = "SELECT session_id, provider, model_id,
        CASE WHEN reported = 0 AND receipt = 0 THEN 1 ELSE 0 END
    FROM sessions
    WHERE settled = 1 AND expires_at < ?1 AND day IN (SELECT day FROM bootstrap_days)
    LIMIT ?2";

/// Sessions reserved and never assigned, of days before `?1` (in [`DUE_SETTLED`]'s columns).
const DUE_UNASSIGNED: &str = "SELECT session_id, provider, model_id, 0 FROM sessions
    WHERE provider IS NULL AND day < ?1
    LIMIT ?2";

/// What [`Store::prune_batch`] or a whole round removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Pruned {
    pub(crate) nonces: u64,
    pub(crate) user_days: u64,
    pub(crate) provider_days: u64,
    pub(crate) sessions: u64,
}

impl Pruned {
    /// Whether nothing was removed.
    pub(crate) fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// `other` added to these counts.
    pub(crate) fn plus(self, other: Self) -> Self {
        Self {
            nonces: self.nonces + other.nonces,
            user_days: self.user_days + other.user_days,
            provider_days: self.provider_days + other.provider_days,
            sessions: self.sessions + other.sessions,
        }
    }
}

impl Store {
    /// Removes at most one batch of what is due, each kind in a short transaction of its own:
    /// the nonces whose deadline is [`NONCE_GRACE`] before `now` (the router's clock), else the
    /// running totals of days more than [`DAYS_KEPT`] before `today` (the chain's day; a
    /// provider's only once the day's bootstrap is computed), else the sessions that nothing
    /// can change any more, [`SESSION_RETENTION`] after they expired. Returns what it removed:
    /// nothing once nothing is due. Every query is an index range (`sessions_due`,
    /// `sessions_unassigned`, `nonces_deadline`, `user_days_day`, `provider_days`' key), never
    /// a scan of the table.
    pub(crate) fn prune_batch(&self, now: u64, today: u64) -> Result<Pruned> {
        let old = to_i64(today.saturating_sub(DAYS_KEPT));
        let nonces = self.write_alone(|db| {
            db.exec(
                PRUNE_NONCES,
                args![to_i64(now.saturating_sub(NONCE_GRACE)), BATCH],
            )
        })?;
        if nonces > 0 {
            return Ok(Pruned {
                nonces,
                ..Pruned::default()
            });
        }
        let user_days = self.write_alone(|db| db.exec(PRUNE_USER_DAYS, args![old, BATCH]))?;
        let provider_days =
            self.write_alone(|db| db.exec(PRUNE_PROVIDER_DAYS, args![old, BATCH]))?;
        if user_days + provider_days > 0 {
            return Ok(Pruned {
                user_days,
                provider_days,
                ..Pruned::default()
            });
        }
        let sessions = self.prune_sessions(to_i64(now.saturating_sub(SESSION_RETENTION)), old)?;
        Ok(Pruned {
            sessions,
            ..Pruned::default()
        })
    }

    /// Everything [`prune_batch`](Self::prune_batch) finds due, batch after batch, on the
    /// calling thread (the service sends each batch to the store's thread on its own instead).
    #[cfg(test)]
    pub(crate) fn prune(&self, now: u64, today: u64) -> Result<Pruned> {
        let mut pruned = Pruned::default();
        loop {
            let batch = self.prune_batch(now, today)?;
            if batch.is_empty() {
                return Ok(pruned);
            }
            pruned = pruned.plus(batch);
        }
    }

    /// One batch of sessions: settled, expired before `expired`, their day's bootstrap computed;
    /// then, to fill the batch, those never assigned of a day before `old_day`. Their cancelled
    /// ones are counted into the reputation first.
    fn prune_sessions(&self, expired: i64, old_day: i64) -> Result<u64> {
        self.write_alone(|db| {
            // Two queries, not one with OR: each is a range of its own index.
            let mut due = db.query(DUE_SETTLED, args![expired, BATCH])?;
            let room = BATCH - due.len() as i64;
            if room > 0 {
                due.extend(db.query(DUE_UNASSIGNED, args![old_day, room])?);
            }
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
    fn the_background_rounds_never_scan_a_table() {
        let store = crate::store::TestDb::new().open();
        let postgres = store.backend() == "postgres";
        for sql in [
            PRUNE_NONCES,
            PRUNE_USER_DAYS,
            PRUNE_PROVIDER_DAYS,
            super::super::bootstrap::OPEN_OF_DAY,
            DUE_SETTLED,
            DUE_UNASSIGNED,
            super::super::receipts::DUE_RECEIPTS,
        ] {
            let steps: Vec<String> = store
                .write(|db| {
                    if postgres {
                        // The tables are empty, where a scan is cheapest: with scans priced
                        // out, the plan shows a scan only where no index serves the query.
                        db.exec("SET LOCAL enable_seqscan = off", args![])?;
                        db.query(&format!("EXPLAIN {sql}"), args![0i64, 1i64])?
                            .iter()
                            .map(|r| r.get::<String>(0))
                            .collect()
                    } else {
                        db.query(&format!("EXPLAIN QUERY PLAN {sql}"), args![0i64, 1i64])?
                            .iter()
                            .map(|r| r.get::<String>(3))
                            .collect()
                    }
                })
                .expect("plan");
            // SQLite's "SCAN t" and PostgreSQL's "Seq Scan on t" read the whole table (or a
            // whole index of it); "SEARCH t" and "Index Scan" a range. bootstrap_days has a
            // row a day: reading it whole is fine.
            for step in &steps {
                let scan = step.starts_with("SCAN") || step.contains("Seq Scan");
                assert!(
                    !scan || step.contains("bootstrap_days"),
                    "{step} in the plan of {sql}: {steps:?}"
                );
            }
        }
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

    #[test]
    fn a_providers_credit_of_a_day_stays_until_the_days_bootstrap_is_computed() {
        let store = crate::store::TestDb::new().open();
        let credit = |day: i64, provider: &str, amount: u64| {
            store
                .write(|db| {
                    super::super::bootstrap::credit_day(db, day, provider, U256::from(amount))
                })
                .expect("credit")
        };
        credit(10, "p", 7);
        credit(10, "p", 5);
        credit(10, "q", 1);
        credit(11, "p", 3);
        credit(20, "p", 2);
        let rows = |store: &Store| {
            store
                .read(|db| {
                    db.query(
                        "SELECT day, credited FROM provider_days WHERE provider = 'p' ORDER BY day",
                        args![],
                    )
                })
                .expect("rows")
                .iter()
                .map(|r| {
                    (
                        r.get::<i64>(0).expect("day"),
                        r.get::<String>(1).expect("sum"),
                    )
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(
            rows(&store),
            [(10, "12".into()), (11, "3".into()), (20, "2".into())]
        );
        assert_eq!(
            store.prune(0, 20).expect("prune").provider_days,
            0,
            "none computed"
        );
        store
            .write(|db| {
                db.exec(
                    "INSERT INTO bootstrap_days
                         (day, share, reserve, days_left, share_bps, outstanding, computed_at)
                     VALUES (10, '0', '0', 0, 0, '0', 0), (20, '0', '0', 0, 0, '0', 0)",
                    args![],
                )
            })
            .expect("days computed");
        // Day 10 is computed and past the days kept; 11 is not computed, 20 is today.
        assert_eq!(store.prune(0, 20).expect("prune").provider_days, 2);
        assert_eq!(rows(&store), [(11, "3".into()), (20, "2".into())]);
    }
}
