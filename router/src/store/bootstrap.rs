//! The bootstrap days the router computed and what each allotted (`bootstrap.rs` holds the
//! rule; this file its inputs: the MOR credited per provider and day, and the allotments so far).
//!
//! A provider's credit on day D is the `amount` of its sessions requested on D (`sessions.day`,
//! the chain's UTC day) that earned. Day D is *closed* once the chain's day is past D and none of
//! D's assigned sessions is open (unreported and not yet expired by the router's clock); it is
//! then computed once, in one transaction, and never again: credit reported after that (a late
//! report of an expired session, a session booked after the close) does not change the day.
//!
//! The credit is kept as a running total per day and provider (`provider_days`, added to in the
//! report's transaction), so computing a day reads a row per provider, not the day's sessions:
//! on a router with millions of sessions a day, that read would hold the store's one thread (and
//! every request behind it) for seconds.

use std::collections::HashMap;

use alloy::primitives::{Address, U256};
use rusqlite::Connection;

use super::{
    Store, key, read_address, read_u64, read_u256,
    sql::{Db, args},
    to_i64,
};
use crate::{
    Result,
    bootstrap::{bootstrap_day_share, bootstrap_days_left, bootstrap_outstanding, bootstrap_split},
};

const SCHEMA: &str = "
-- One row per computed day: what it could allot and the chain's figures it was computed from.
CREATE TABLE IF NOT EXISTS bootstrap_days (
    day         INTEGER PRIMARY KEY,
    share       TEXT NOT NULL,    -- bootstrap_day_share: the most the day could allot
    reserve     TEXT NOT NULL,    -- ComputePool.reserve() when computed
    days_left   INTEGER NOT NULL, -- bootstrap_days_left(day, bootstrapEnd)
    share_bps   INTEGER NOT NULL, -- this router's budget share when computed
    outstanding TEXT NOT NULL,    -- allotted before, not yet paid on-chain
    computed_at INTEGER NOT NULL  -- the router's clock
);
CREATE TABLE IF NOT EXISTS bootstrap_allotments (
    day      INTEGER NOT NULL,
    provider TEXT NOT NULL,
    credited TEXT NOT NULL, -- the MOR credited to it that day, which ranked it
    amount   TEXT NOT NULL, -- its part of the day's share
    PRIMARY KEY (day, provider)
);
CREATE INDEX IF NOT EXISTS bootstrap_allotments_provider ON bootstrap_allotments (provider);
CREATE INDEX IF NOT EXISTS sessions_day ON sessions (day);
";

/// Creates the bootstrap tables (after `sessions`, which one index is on).
pub(super) fn create_tables(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(SCHEMA)
}

/// The chain's figures a day is computed from, read just before.
#[derive(Debug, Clone, Default)]
pub(crate) struct BootstrapChain {
    /// `ComputePool.reserve()`.
    pub(crate) reserve: U256,
    /// `ComputePool.bootstrapEnd()` (unix seconds).
    pub(crate) bootstrap_end: u64,
    /// This router's `shareBps` (`SessionRouter.routerInfo`).
    pub(crate) share_bps: u64,
    /// `claimRecord(router, provider).bootstrapPaid` of the providers with allotments.
    pub(crate) paid: HashMap<Address, U256>,
}

/// A day [`Store::compute_bootstrap_day`] computed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BootstrapDay {
    pub(crate) day: u64,
    pub(crate) share: U256,
    pub(crate) days_left: u64,
    pub(crate) outstanding: U256,
    /// The providers allotted something, in rank order.
    pub(crate) allotted: Vec<(Address, U256)>,
}

impl Store {
    /// The days before `today` (the chain's day) with sessions and not computed yet, oldest
    /// first, up to the first one still open at `now` (the router's clock): days are computed
    /// in order, each counting what the ones before allotted.
    pub(crate) fn bootstrap_due(&self, today: u64, now: u64) -> Result<Vec<u64>> {
        self.read(|db| {
            let mut due = Vec::new();
            let mut after = -1i64;
            // One index seek per day with sessions: the sessions table is never scanned.
            while let Some(day) = db
                .query_one(
                    "SELECT MIN(day) FROM sessions WHERE day > ?1 AND day < ?2",
                    args![after, to_i64(today)],
                )?
                .get::<Option<i64>>(0)?
            {
                after = day;
                let day = read_u64("sessions.day", day)?;
                if computed(db, day)? {
                    continue;
                }
                if !closed(db, day, now)? {
                    break;
                }
                due.push(day);
            }
            Ok(due)
        })
    }

    /// The providers with an allotment, each with its cumulative allotment.
    pub(crate) fn bootstrap_allotted(&self) -> Result<Vec<(Address, U256)>> {
        self.read(allotted_totals)
    }

    /// `provider`'s cumulative allotment: its voucher's `cumulativeBootstrap`.
    pub(crate) fn bootstrap_of(&self, provider: Address) -> Result<U256> {
        self.read(|db| allotted_to(db, provider))
    }

    /// Computes `day`'s bootstrap in one writing transaction: unless the day is computed
    /// already, not before `today` or not closed at `now`, it ranks the day's credited
    /// providers, allots the day's share (`bootstrap.rs`) from `chain`'s figures and what this
    /// router has allotted and the chain not paid, and records the day. Returns the day
    /// computed, `None` when it was not (so two computations racing write it once).
    pub(crate) fn compute_bootstrap_day(
        &self,
        day: u64,
        today: u64,
        now: u64,
        chain: &BootstrapChain,
    ) -> Result<Option<BootstrapDay>> {
        self.write_alone(|db| {
            if day >= today || computed(db, day)? || !closed(db, day, now)? {
                return Ok(None);
            }
            let credited = credited_on(db, day)?;
            let outstanding = bootstrap_outstanding(&allotted_totals(db)?, &chain.paid);
            let days_left = bootstrap_days_left(day, chain.bootstrap_end);
            let share = bootstrap_day_share(chain.reserve, outstanding, chain.share_bps, days_left);
            let allotted = bootstrap_split(share, &credited);
            db.exec(
                "INSERT INTO bootstrap_days
                     (day, share, reserve, days_left, share_bps, outstanding, computed_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                args![
                    to_i64(day),
                    share.to_string(),
                    chain.reserve.to_string(),
                    to_i64(days_left),
                    to_i64(chain.share_bps),
                    outstanding.to_string(),
                    to_i64(now)
                ],
            )?;
            let credit_of: HashMap<Address, U256> = credited.into_iter().collect();
            for (provider, amount) in &allotted {
                db.exec(
                    "INSERT INTO bootstrap_allotments (day, provider, credited, amount)
                     VALUES (?1, ?2, ?3, ?4)",
                    args![
                        to_i64(day),
                        key(provider),
                        credit_of
                            .get(provider)
                            .copied()
                            .unwrap_or_default()
                            .to_string(),
                        amount.to_string()
                    ],
                )?;
            }
            Ok(Some(BootstrapDay {
                day,
                share,
                days_left,
                outstanding,
                allotted,
            }))
        })
    }
}

/// `provider`'s cumulative allotment (reconciled raises included).
pub(super) fn allotted_to(db: &mut dyn Db, provider: Address) -> Result<U256> {
    let mut total = U256::ZERO;
    for row in db.query(
        "SELECT amount FROM bootstrap_allotments WHERE provider = ?1",
        args![key(&provider)],
    )? {
        total = total.saturating_add(read_u256(
            "bootstrap_allotments.amount",
            &row.get::<String>(0)?,
        )?);
    }
    Ok(total)
}

fn computed(db: &mut dyn Db, day: u64) -> Result<bool> {
    Ok(db
        .query_opt(
            "SELECT 1 FROM bootstrap_days WHERE day = ?1",
            args![to_i64(day)],
        )?
        .is_some())
}

/// Whether none of `day`'s assigned sessions is open at `now`: each is reported or expired. A
/// session reserved but never assigned (`provider` NULL: being assigned, or left by a crash)
/// does not hold the day open; it has earned nothing yet.
fn closed(db: &mut dyn Db, day: u64, now: u64) -> Result<bool> {
    let open = db.query_opt(OPEN_OF_DAY, args![to_i64(day), to_i64(now)])?;
    Ok(open.is_none())
}

/// An open session of day `?1` at `?2`, if any. Read through `sessions_due` (the sessions not
/// expired at `?2`, of either `settled`: the few booked within a session's lifetime), not
/// through `sessions_day` (every session of the day): `+day` keeps the planner off the latter.
pub(super) const OPEN_OF_DAY: &str = "SELECT 1 FROM sessions
    WHERE settled IN (0, 1) AND expires_at >= ?2 AND +day = ?1
      AND provider IS NOT NULL AND reported = 0
    LIMIT 1";

/// Adds `amount` to `provider`'s credit of `day` (`provider_days`). Runs in the report's
/// transaction, under the provider's lock (`Lock::Provider`), so no two reports add at once.
pub(super) fn credit_day(db: &mut dyn Db, day: i64, provider: &str, amount: U256) -> Result<()> {
    if amount.is_zero() {
        return Ok(());
    }
    let before = match db.query_opt(
        "SELECT credited FROM provider_days WHERE day = ?1 AND provider = ?2",
        args![day, provider],
    )? {
        Some(row) => read_u256("provider_days.credited", &row.get::<String>(0)?)?,
        None => U256::ZERO,
    };
    db.exec(
        "INSERT INTO provider_days (day, provider, credited) VALUES (?1, ?2, ?3)
         ON CONFLICT (day, provider) DO UPDATE SET credited = excluded.credited",
        args![day, provider, before.saturating_add(amount).to_string()],
    )?;
    Ok(())
}

/// The `provider_days` table: what each provider was credited each day, the sum of `amount`
/// over its sessions of the day that earned. Created by a migration (`migrations.rs`, `pg.rs`)
/// that fills it from the sessions already stored.
pub(super) const PROVIDER_DAYS: &str = "
CREATE TABLE provider_days (
    day      BIGINT NOT NULL,
    provider TEXT NOT NULL,
    credited TEXT NOT NULL, -- SUM(sessions.amount) of its reported sessions of the day
    PRIMARY KEY (day, provider)
);
";

/// Fills `provider_days` from the sessions of a file from before it (SQLite cannot sum the
/// amounts, decimal strings of up to 78 digits, exactly: they are summed here).
pub(super) fn fill_provider_days(conn: &Connection) -> rusqlite::Result<()> {
    let mut totals: HashMap<(i64, String), U256> = HashMap::new();
    let mut rows = conn.prepare(
        "SELECT day, provider, amount FROM sessions
         WHERE reported = 1 AND provider IS NOT NULL AND amount IS NOT NULL",
    )?;
    let mut rows = rows.query([])?;
    while let Some(row) = rows.next()? {
        let amount: String = row.get(2)?;
        let amount: U256 = amount.parse().map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(
                2,
                rusqlite::types::Type::Text,
                format!("sessions.amount {amount:?} is not an amount: {e}").into(),
            )
        })?;
        if !amount.is_zero() {
            let total = totals.entry((row.get(0)?, row.get(1)?)).or_default();
            *total = total.saturating_add(amount);
        }
    }
    let mut insert =
        conn.prepare("INSERT INTO provider_days (day, provider, credited) VALUES (?1, ?2, ?3)")?;
    for ((day, provider), credited) in totals {
        insert.execute(rusqlite::params![day, provider, credited.to_string()])?;
    }
    Ok(())
}

/// The MOR credited per provider on `day`: the amounts of its reported sessions of that day,
/// from their running totals.
fn credited_on(db: &mut dyn Db, day: u64) -> Result<Vec<(Address, U256)>> {
    let rows = db.query(
        "SELECT provider, credited FROM provider_days WHERE day = ?1",
        args![to_i64(day)],
    )?;
    let mut credited = Vec::with_capacity(rows.len());
    for row in rows {
        let amount = read_u256("provider_days.credited", &row.get::<String>(1)?)?;
        if !amount.is_zero() {
            credited.push((
                read_address("provider_days.provider", &row.get::<String>(0)?)?,
                amount,
            ));
        }
    }
    Ok(credited)
}

/// Every provider's cumulative allotment.
fn allotted_totals(db: &mut dyn Db) -> Result<Vec<(Address, U256)>> {
    let allotments = db.query("SELECT provider, amount FROM bootstrap_allotments", args![])?;
    let mut totals: HashMap<Address, U256> = HashMap::new();
    for allotment in allotments {
        let amount = read_u256("bootstrap_allotments.amount", &allotment.get::<String>(1)?)?;
        let total = totals
            .entry(read_address(
                "bootstrap_allotments.provider",
                &allotment.get::<String>(0)?,
            )?)
            .or_default();
        *total = total.saturating_add(amount);
    }
    Ok(totals.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use alloy::primitives::B256;
    use morpheus_sdk::messages::UsageReport;

    use super::*;
    use crate::{
        speed::SpeedRule,
        store::{Booking, NewSession},
    };

    const RULE: SpeedRule = SpeedRule {
        slow_threshold_pct: 50,
        window: 20,
        min_ms_per_token: 1.0,
        max_ms_per_token: 10_000.0,
    };
    const USER: Address = Address::repeat_byte(1);

    /// Books session `n` of `day` for `provider` at 3 wei a token, open until `expires_at`.
    fn book(store: &Store, n: u8, day: u64, provider: Address, expires_at: u64) -> B256 {
        let session = NewSession {
            session_id: B256::repeat_byte(n),
            user: USER,
            nonce: U256::from(n),
            model_id: B256::repeat_byte(9),
            day,
            token_max: 1_000,
            deadline: u64::MAX / 4,
        };
        store
            .reserve(&session, U256::from(1_000_000))
            .expect("reserve");
        let booked = store
            .book(
                session.session_id,
                provider,
                "http://p.test",
                U256::from(100),
                U256::from(3),
                0,
                expires_at,
            )
            .expect("book");
        assert_eq!(booked, Booking::Booked);
        session.session_id
    }

    /// Reports `tokens` on session `id`, passed or failed.
    fn report(store: &Store, id: B256, tokens: u64, passed: bool) {
        let r = UsageReport {
            sessionId: id,
            tokens: U256::from(tokens),
            ttftMs: U256::from(1),
            durationMs: U256::from(tokens * 10),
            passed,
        };
        store
            .record_report(&r, USER, RULE, None, true)
            .expect("report");
    }

    fn chain(reserve: u64) -> BootstrapChain {
        BootstrapChain {
            reserve: U256::from(reserve),
            bootstrap_end: 1_000 * 86_400,
            share_bps: 10_000,
            paid: HashMap::new(),
        }
    }

    #[test]
    fn a_day_closes_once_its_sessions_are_reported_or_expired_and_is_computed_once() {
        let db = crate::store::TestDb::new();
        let store = db.open();
        let (a, b) = (Address::repeat_byte(0xa), Address::repeat_byte(0xb));
        let first = book(&store, 1, 10, a, 5_000);
        let second = book(&store, 2, 10, b, 6_000);
        report(&store, first, 100, true);
        assert_eq!(
            store.bootstrap_due(10, 0).expect("due"),
            [] as [u64; 0],
            "day 10 is today"
        );
        assert_eq!(
            store.bootstrap_due(11, 5_999).expect("due"),
            [] as [u64; 0],
            "b's is open"
        );
        let c = chain(990 * 1_000);
        assert_eq!(
            store
                .compute_bootstrap_day(10, 11, 5_999, &c)
                .expect("compute"),
            None
        );
        report(&store, second, 50, true);
        assert_eq!(store.bootstrap_due(11, 5_999).expect("due"), [10]);

        // 990,000 wei over days 10..1000 (990 days): 1,000 a day, split 300 : 150.
        let day = store
            .compute_bootstrap_day(10, 11, 5_999, &c)
            .expect("compute");
        let day = day.expect("computed");
        assert_eq!((day.share, day.days_left), (U256::from(1_000), 990));
        assert_eq!(day.allotted, [(a, U256::from(666)), (b, U256::from(333))]);
        assert_eq!(store.bootstrap_of(a).expect("a"), U256::from(666));

        // Computed once: a second computation (after a restart) changes nothing, and credit
        // reported for the day afterwards does not either.
        assert_eq!(
            store
                .compute_bootstrap_day(10, 12, 9_999, &c)
                .expect("again"),
            None
        );
        let late = book(&store, 3, 10, b, 20_000);
        report(&store, late, 900, true);
        assert_eq!(
            store.bootstrap_due(12, 30_000).expect("due"),
            [] as [u64; 0]
        );
        assert_eq!(store.bootstrap_of(b).expect("b"), U256::from(333));
        drop(store);
        let store = db.open();
        assert_eq!(
            store.bootstrap_due(12, 30_000).expect("due"),
            [] as [u64; 0]
        );
        assert_eq!(store.bootstrap_of(a).expect("a"), U256::from(666));
    }

    #[test]
    fn an_expired_session_closes_its_day_and_failed_sessions_earn_no_rank() {
        let db = crate::store::TestDb::new();
        let store = db.open();
        let (a, b) = (Address::repeat_byte(0xa), Address::repeat_byte(0xb));
        let failed = book(&store, 1, 3, a, 100);
        report(&store, failed, 100, false);
        let credited = book(&store, 2, 3, b, 100);
        report(&store, credited, 1, true);
        book(&store, 3, 3, a, 200); // never reported
        book(&store, 4, 5, a, 10_000); // day 5 still open
        assert_eq!(store.bootstrap_due(6, 200).expect("due"), [] as [u64; 0]);
        assert_eq!(
            store.bootstrap_due(6, 201).expect("due"),
            [3],
            "day 5 waits"
        );
        let day = store
            .compute_bootstrap_day(3, 6, 201, &chain(997 * 7))
            .expect("compute")
            .expect("computed");
        assert_eq!(day.allotted, [(b, U256::from(7))], "only credit ranks");
    }

    #[test]
    fn unpaid_allotments_lower_the_next_days_share() {
        let db = crate::store::TestDb::new();
        let store = db.open();
        let a = Address::repeat_byte(0xa);
        for day in [10, 11] {
            let id = book(&store, day as u8, day, a, 0);
            report(&store, id, 10, true);
        }
        let mut c = chain(990 * 1_000);
        let first = store
            .compute_bootstrap_day(10, 12, 1, &c)
            .expect("10")
            .expect("computed");
        assert_eq!(first.share, U256::from(1_000));
        // Unpaid: the 1,000 still in the reserve is owed, the rest spread over 989 days.
        let second = store
            .compute_bootstrap_day(11, 12, 1, &c)
            .expect("11")
            .expect("computed");
        assert_eq!(
            (second.outstanding, second.share),
            (U256::from(1_000), U256::from(1_000))
        );
        assert_eq!(store.bootstrap_of(a).expect("a"), U256::from(2_000));
        // Paid 2,000 out of the reserve: nothing is outstanding.
        let id = book(&store, 12, 12, a, 0);
        report(&store, id, 10, true);
        c.reserve -= U256::from(2_000);
        c.paid.insert(a, U256::from(2_000));
        let third = store
            .compute_bootstrap_day(12, 13, 1, &c)
            .expect("12")
            .expect("computed");
        assert_eq!(
            (third.outstanding, third.share),
            (U256::ZERO, U256::from(1_000))
        );
    }
}
