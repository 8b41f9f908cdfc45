//! What one token of a session earns: the provider's bid, capped at the reference price
//! (docs/protocol.md, Router, "credit per token").
//!
//! `SessionRouter.userMax` counts a user's tokens at the price source's token price: the day's
//! budget buys `maxT` tokens at [`reference_price`] each. Crediting a token above that price
//! would spend more of the budget than the allowance it was counted against, and a provider that
//! bids on its own model could set any price (up to `uint112`) and take the router's whole share
//! with one token.

use alloy::primitives::U256;
use morpheus_sdk::contracts::Prices;

/// MOR wei per MOR, over the 1000 tokens `tokensUsd` is quoted for (`AccessRate._WEI_PER_MOR_PER_1000`).
const WEI_PER_MOR_PER_1000: u64 = 1_000_000_000_000_000;

/// The reference price in MOR wei per token: `tokensUsd * 1e15 / morUsd`, rounded down, the
/// price `AccessRate.maxT = budget * morUsd / (tokensUsd * 1e15)` buys tokens at (so
/// `maxT * reference_price <= budget`).
///
/// A MOR price of 0 gives 0: the contract's `maxT` is then 0 as well, and the budget pays for
/// nothing. A product above `U256::MAX` (a token price above ~1e62 USD, which `maxT` refuses)
/// saturates, erring low.
pub(crate) fn reference_price(prices: Prices) -> U256 {
    if prices.mor_usd.is_zero() {
        return U256::ZERO;
    }
    prices
        .tokens_usd
        .saturating_mul(U256::from(WEI_PER_MOR_PER_1000))
        / prices.mor_usd
}

/// What one token of a session earns: `min(bid, reference)`. The assignment carries it as
/// `pricePerToken`, and a credited report earns `tokens * credit_per_token`.
pub(crate) fn credit_per_token(bid: U256, reference: U256) -> U256 {
    bid.min(reference)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// USD with 18 decimals.
    fn usd(whole: u64, millionths: u64) -> U256 {
        U256::from(whole) * U256::from(10u64.pow(18))
            + U256::from(millionths) * U256::from(10u64.pow(12))
    }

    /// The devnet's and the worked example's prices (docs/protocol.md, Access rate): MOR $20,
    /// $0.002 per 1000 tokens. A token costs $0.000002 = 1e-7 MOR = 1e11 wei.
    const WORKED: u64 = 100_000_000_000;

    fn worked() -> Prices {
        Prices {
            mor_usd: usd(20, 0),
            tokens_usd: usd(0, 2_000),
        }
    }

    #[test]
    fn the_reference_price_is_what_the_budget_buys_a_token_at() {
        assert_eq!(reference_price(worked()), U256::from(WORKED));
        // The worked example's budget of 3,000 MOR buys maxT = 30,000,000,000 tokens: at the
        // reference price they cost exactly the budget.
        let budget = U256::from(3_000u64) * U256::from(10u64.pow(18));
        assert_eq!(
            reference_price(worked()) * U256::from(30_000_000_000u64),
            budget
        );
    }

    #[test]
    fn the_reference_price_rounds_down() {
        // MOR $3, $0.002 per 1000 tokens: 2e15 * 1e15 / 3e18 = 666,666,666,666.67 wei.
        let prices = Prices {
            mor_usd: usd(3, 0),
            tokens_usd: usd(0, 2_000),
        };
        assert_eq!(reference_price(prices), U256::from(666_666_666_666u64));
    }

    #[test]
    fn edge_prices_neither_divide_by_zero_nor_wrap() {
        let free_mor = Prices {
            mor_usd: U256::ZERO,
            ..worked()
        };
        assert_eq!(reference_price(free_mor), U256::ZERO);
        let absurd = Prices {
            mor_usd: U256::from(1),
            tokens_usd: U256::MAX,
        };
        assert_eq!(reference_price(absurd), U256::MAX);
    }

    #[test]
    fn a_bid_above_the_reference_earns_the_reference() {
        let reference = U256::from(WORKED);
        let uint112_max = (U256::from(1) << 112) - U256::from(1);
        assert_eq!(credit_per_token(uint112_max, reference), reference);
        assert_eq!(
            credit_per_token(reference * U256::from(20), reference),
            reference
        );
    }

    #[test]
    fn a_bid_at_or_below_the_reference_earns_the_bid() {
        let reference = U256::from(WORKED);
        assert_eq!(credit_per_token(reference, reference), reference);
        assert_eq!(
            credit_per_token(U256::from(WORKED / 2), reference),
            U256::from(WORKED / 2)
        );
        assert_eq!(credit_per_token(U256::from(1), U256::ZERO), U256::ZERO);
    }
}
