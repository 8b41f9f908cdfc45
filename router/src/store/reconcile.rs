//! The database's side of reconciliation (`reconcile.rs` holds the rule): a provider's
//! counters and its bootstrap allotments raised to what the chain paid.

use super::{
    Credits, Store,
    bootstrap::allotted_to,
    credits_of, key, read_u256,
    sql::{Lock, args},
};
use crate::{
    Result,
    reconcile::{Counters, reconciled},
};
use alloy::primitives::{Address, U256};

/// The bootstrap "day" of the allotment that makes a provider's cumulative bootstrap reach what
/// the chain paid (a real day is a day number, never negative).
const RECONCILED_DAY: i64 = -1;

impl Store {
    /// Raises `provider`'s counters to `chain` (its claim record) where the chain is ahead, in
    /// one transaction. Returns the counters before and after, or `None` when nothing changed.
    pub(crate) fn reconcile(
        &self,
        provider: Address,
        chain: Counters,
    ) -> Result<Option<(Counters, Counters)>> {
        self.write(|db| {
            let who = key(&provider);
            db.lock(Lock::Provider(&who))?;
            let credits = credits_of(db, &who)?.unwrap_or_default();
            let before = Counters {
                amount: credits.amount,
                bootstrap: allotted_to(db, provider)?,
                tokens: credits.tokens,
                sessions: credits.sessions,
                failed: credits.failed,
            };
            let Some(after) = reconciled(before, chain) else {
                return Ok(None);
            };
            let raised = Credits {
                amount: after.amount,
                tokens: after.tokens,
                sessions: after.sessions,
                failed: after.failed,
            };
            super::write_credits(db, &who, &raised)?;
            if after.bootstrap > before.bootstrap {
                let reconciled_before = match db.query_opt(
                    "SELECT amount FROM bootstrap_allotments WHERE day = ?1 AND provider = ?2",
                    args![RECONCILED_DAY, &who],
                )? {
                    Some(row) => read_u256("bootstrap_allotments.amount", &row.get::<String>(0)?)?,
                    None => U256::ZERO,
                };
                let amount = reconciled_before + (after.bootstrap - before.bootstrap);
                db.exec(
                    "INSERT INTO bootstrap_allotments (day, provider, credited, amount)
                     VALUES (?1, ?2, '0', ?3)
                     ON CONFLICT (day, provider) DO UPDATE SET amount = excluded.amount",
                    args![RECONCILED_DAY, &who, amount.to_string()],
                )?;
            }
            Ok(Some((before, after)))
        })
    }
}

#[cfg(test)]
mod tests {
    use alloy::primitives::{Address, U256};

    use super::*;

    #[test]
    fn a_lost_database_is_raised_to_the_chain_and_then_counts_on_from_there() {
        let db = crate::store::TestDb::new();
        let store = db.open();
        let provider = Address::repeat_byte(2);
        let chain = Counters {
            amount: U256::from(700),
            bootstrap: U256::from(30),
            tokens: 70,
            sessions: 5,
            failed: 1,
        };
        let (before, after) = store
            .reconcile(provider, chain)
            .expect("reconcile")
            .expect("the chain is ahead");
        assert_eq!((before, after), (Counters::default(), chain));
        let credits = store.credits(provider).expect("read").expect("a row");
        assert_eq!(
            (
                credits.amount,
                credits.tokens,
                credits.sessions,
                credits.failed
            ),
            (U256::from(700), 70, 5, 1)
        );
        assert_eq!(
            store.bootstrap_of(provider).expect("bootstrap"),
            U256::from(30)
        );
        assert_eq!(store.reconcile(provider, chain).expect("again"), None);
        // The chain moves on (a later voucher paid more bootstrap): only the difference is added.
        let later = Counters {
            bootstrap: U256::from(45),
            ..chain
        };
        store
            .reconcile(provider, later)
            .expect("later")
            .expect("ahead");
        assert_eq!(
            store.bootstrap_of(provider).expect("bootstrap"),
            U256::from(45)
        );
    }
}
