//! Reconciliation with the chain: what `SessionRouter` has already paid a provider on this
//! router's vouchers is a floor for the router's counters. A router whose database was lost or
//! restored from an older copy would otherwise sign vouchers below what the chain paid, which
//! pay nothing until new credit passes the old figure: the provider would work for free that
//! long. The rule (docs/protocol.md, Router, "Reconciliation") is [`reconciled`].

use alloy::primitives::U256;

/// A provider's cumulative counters as a voucher carries them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Counters {
    pub(crate) amount: U256,
    pub(crate) bootstrap: U256,
    pub(crate) tokens: u64,
    pub(crate) sessions: u64,
    pub(crate) failed: u64,
}

/// The counters the router must sign from now on: each of the database's raised to the chain's
/// claim record (`paid`, `bootstrapPaid`, `tokens`, `sessions`, `failed`) where the chain is
/// ahead; `None` when it is ahead in none (nothing to change). The chain's figures are what it
/// recorded from vouchers this router signed, so they never ask more than was once credited.
pub(crate) fn reconciled(database: Counters, chain: Counters) -> Option<Counters> {
    let raised = Counters {
        amount: database.amount.max(chain.amount),
        bootstrap: database.bootstrap.max(chain.bootstrap),
        tokens: database.tokens.max(chain.tokens),
        sessions: database.sessions.max(chain.sessions),
        failed: database.failed.max(chain.failed),
    };
    (raised != database).then_some(raised)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counters(amount: u64, bootstrap: u64, tokens: u64, sessions: u64, failed: u64) -> Counters {
        Counters {
            amount: U256::from(amount),
            bootstrap: U256::from(bootstrap),
            tokens,
            sessions,
            failed,
        }
    }

    #[test]
    fn a_database_behind_the_chain_is_raised_to_it_field_by_field() {
        let lost = Counters::default();
        let chain = counters(500, 20, 50, 3, 1);
        assert_eq!(reconciled(lost, chain), Some(chain));
        // Partly ahead: each counter takes the larger.
        let restored = counters(800, 0, 40, 4, 0);
        assert_eq!(
            reconciled(restored, chain),
            Some(counters(800, 20, 50, 4, 1))
        );
    }

    #[test]
    fn a_database_at_or_ahead_of_the_chain_is_left_alone() {
        let chain = counters(500, 20, 50, 3, 1);
        assert_eq!(reconciled(chain, chain), None);
        assert_eq!(reconciled(counters(900, 30, 90, 9, 2), chain), None);
        // A claim paid short (the day's budget ran out) leaves the chain behind the credit.
        assert_eq!(
            reconciled(counters(900, 20, 50, 3, 1), counters(300, 20, 50, 3, 1)),
            None
        );
    }
}
