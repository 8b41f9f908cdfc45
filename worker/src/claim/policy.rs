//! When a claim is worth sending (`claim_due`, docs/protocol.md, Worker): a claim costs gas
//! whatever it pays, so a provider claims when what is owed is at least a multiple of that cost,
//! or when its oldest unclaimed credit has waited long enough, and never at a gas price above its
//! ceiling.

use std::time::Duration;

use alloy::primitives::U256;

/// A provider's settings for claiming.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimPolicy {
    /// Claim once what is owed is at least this many times the claim's gas cost in MOR.
    pub gas_multiple: u64,
    /// Claim anything owed once the oldest unclaimed credit is this old, whatever the gas.
    pub max_age: Duration,
    /// Never send a claim at a gas price above this (wei per gas).
    pub max_gas_price: u128,
    /// The price of 1 ETH in MOR, with 18 decimals (`1000e18`: 1 ETH buys 1000 MOR), to price
    /// the gas in MOR.
    pub mor_per_eth: U256,
}

impl Default for ClaimPolicy {
    /// 10x the gas, at least daily, at most 100 gwei, 1 ETH = 1000 MOR.
    fn default() -> Self {
        Self {
            gas_multiple: 10,
            max_age: Duration::from_secs(86_400),
            max_gas_price: 100_000_000_000,
            mor_per_eth: U256::from(1000u64) * U256::from(10u64).pow(U256::from(18u64)),
        }
    }
}

/// What a claim would pay and cost now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClaimCost {
    /// MOR wei owed over every router (daily budget and bootstrap).
    pub owed: U256,
    /// The claim's estimated gas.
    pub gas: u64,
    /// The gas price now, wei per gas.
    pub gas_price: u128,
    /// How long the oldest unclaimed credit has waited.
    pub age: Duration,
}

/// Whether to claim, and why (for the log and `status`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimDecision {
    /// Send the claim.
    Claim(String),
    /// Not now.
    Wait(String),
}

/// The claim's gas cost in MOR wei: gas × gas price × `mor_per_eth` / 1e18.
pub fn gas_cost_in_mor(gas: u64, gas_price: u128, mor_per_eth: U256) -> U256 {
    U256::from(gas)
        .saturating_mul(U256::from(gas_price))
        .saturating_mul(mor_per_eth)
        / U256::from(10u64).pow(U256::from(18u64))
}

/// The rule: nothing owed, or a gas price above the ceiling, waits; otherwise claim when the
/// owed MOR is at least `gas_multiple` × the gas cost in MOR, or when the oldest credit has
/// waited `max_age`.
pub fn claim_due(policy: &ClaimPolicy, cost: &ClaimCost) -> ClaimDecision {
    if cost.owed.is_zero() {
        return ClaimDecision::Wait("nothing is owed".into());
    }
    if cost.gas_price > policy.max_gas_price {
        return ClaimDecision::Wait(format!(
            "gas price {} wei is above the ceiling {} wei",
            cost.gas_price, policy.max_gas_price
        ));
    }
    let gas_mor = gas_cost_in_mor(cost.gas, cost.gas_price, policy.mor_per_eth);
    let threshold = gas_mor.saturating_mul(U256::from(policy.gas_multiple));
    if cost.owed >= threshold {
        return ClaimDecision::Claim(format!(
            "{} MOR wei owed, at least {}x the claim's gas ({gas_mor} MOR wei)",
            cost.owed, policy.gas_multiple
        ));
    }
    if cost.age >= policy.max_age {
        return ClaimDecision::Claim(format!(
            "the oldest credit has waited {}s (at most {}s)",
            cost.age.as_secs(),
            policy.max_age.as_secs()
        ));
    }
    ClaimDecision::Wait(format!(
        "{} MOR wei owed, under {}x the claim's gas ({threshold} MOR wei)",
        cost.owed, policy.gas_multiple
    ))
}

/// MOR per ETH (18 decimals) from ETH's USD price and MOR's (both 18 decimals, MOR's as the
/// protocol's price source gives it): how the node prices gas in MOR when the configuration names
/// an ETH price instead of a fixed rate. `None` when MOR has no price.
pub fn mor_per_eth_from_usd(eth_usd: U256, mor_usd: U256) -> Option<U256> {
    eth_usd
        .saturating_mul(U256::from(10u64).pow(U256::from(18u64)))
        .checked_div(mor_usd)
}

/// `feed_price` (docs/protocol.md, Worker, "Claims"): a Chainlink-shaped feed's round as a USD
/// price with 18 decimals, or why it cannot price gas: an answer of zero or below, or one last
/// updated more than `max_age` seconds before `now` (the chain's time; a round from the future
/// counts as fresh).
pub fn feed_price(
    answer: alloy::primitives::I256,
    decimals: u8,
    updated_at: u64,
    now: u64,
    max_age: u64,
) -> Result<U256, String> {
    if answer <= alloy::primitives::I256::ZERO {
        return Err(format!("the feed answers {answer}, not a price"));
    }
    let age = now.saturating_sub(updated_at);
    if age > max_age {
        return Err(format!(
            "the feed's answer is {age} s old, older than the {max_age} s allowed"
        ));
    }
    let answer = answer.into_raw();
    let ten = U256::from(10u64);
    Ok(match decimals.cmp(&18) {
        std::cmp::Ordering::Less => answer.saturating_mul(ten.pow(U256::from(18 - decimals))),
        std::cmp::Ordering::Equal => answer,
        std::cmp::Ordering::Greater => answer / ten.pow(U256::from(decimals - 18)),
    })
}

/// One router's credit owed to the provider, and what its share of today's budget still pays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PairOwed {
    /// MOR wei owed from the daily budget.
    pub amount: U256,
    /// MOR wei owed from the bootstrap reserve.
    pub bootstrap: U256,
    /// What the router's share of today's budget still pays (`shareBps` of the budget less
    /// what its vouchers paid today).
    pub router_left: U256,
}

/// What one claim of `pairs` sent now would pay, by the contract's rule (`SessionRouter._settle`,
/// in claim order): each voucher's budget part within the day's budget left and its router's
/// share left, then its bootstrap part within the reserve left and what is left of that share.
/// What it cannot pay today stays owed for a later day's claim.
pub fn payable_today(pairs: &[PairOwed], budget_left: U256, reserve_left: U256) -> U256 {
    let (mut budget, mut reserve, mut total) = (budget_left, reserve_left, U256::ZERO);
    for p in pairs {
        let amount = p.amount.min(budget).min(p.router_left);
        budget -= amount;
        let bootstrap = p.bootstrap.min(reserve).min(p.router_left - amount);
        reserve -= bootstrap;
        total = total.saturating_add(amount).saturating_add(bootstrap);
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(amount: u64, bootstrap: u64, router_left: u64) -> PairOwed {
        PairOwed {
            amount: U256::from(amount),
            bootstrap: U256::from(bootstrap),
            router_left: U256::from(router_left),
        }
    }

    #[test]
    fn mor_per_eth_follows_the_price_of_mor() {
        let e18 = U256::from(10u64).pow(U256::from(18u64));
        // ETH at $3000, MOR at $20: 1 ETH buys 150 MOR.
        assert_eq!(
            mor_per_eth_from_usd(U256::from(3000) * e18, U256::from(20) * e18),
            Some(U256::from(150) * e18)
        );
        assert_eq!(
            mor_per_eth_from_usd(U256::from(3000) * e18, U256::ZERO),
            None
        );
    }

    #[test]
    fn what_is_payable_today_is_capped_by_the_budget_the_reserve_and_each_routers_share() {
        let u = U256::from;
        // Everything fits.
        assert_eq!(payable_today(&[pair(10, 5, 100)], u(100), u(100)), u(15));
        // The router's share: budget part first, the bootstrap part from what is left of it.
        assert_eq!(payable_today(&[pair(10, 5, 12)], u(100), u(100)), u(12));
        // The day's budget is shared by the vouchers in claim order.
        assert_eq!(
            payable_today(&[pair(30, 0, 100), pair(30, 0, 100)], u(40), u(0)),
            u(40)
        );
        // The reserve bounds the bootstrap parts.
        assert_eq!(payable_today(&[pair(0, 50, 100)], u(100), u(20)), u(20));
        // A spent day pays nothing.
        assert_eq!(payable_today(&[pair(10, 0, 100)], u(0), u(0)), u(0));
        assert_eq!(payable_today(&[pair(10, 0, 0)], u(100), u(0)), u(0));
    }

    fn cost(owed: u64, gas_price: u128, age_s: u64) -> ClaimCost {
        ClaimCost {
            owed: U256::from(owed),
            gas: 100_000,
            gas_price,
            age: Duration::from_secs(age_s),
        }
    }

    fn claims(decision: ClaimDecision) -> bool {
        matches!(decision, ClaimDecision::Claim(_))
    }

    #[test]
    fn gas_is_priced_in_mor_at_the_configured_rate() {
        // 100,000 gas at 1 gwei = 1e14 wei of ETH; at 1000 MOR per ETH, 1e17 MOR wei.
        let policy = ClaimPolicy::default();
        assert_eq!(
            gas_cost_in_mor(100_000, 1_000_000_000, policy.mor_per_eth),
            U256::from(100_000_000_000_000_000u64)
        );
    }

    #[test]
    fn a_claim_waits_until_it_pays_its_gas_times_the_multiple() {
        let policy = ClaimPolicy {
            mor_per_eth: U256::from(10u64).pow(U256::from(18u64)), // 1 ETH = 1 MOR
            ..ClaimPolicy::default()
        };
        // Gas 100,000 × 1 wei = 1e5 MOR wei; 10x = 1e6.
        assert!(!claims(claim_due(&policy, &cost(999_999, 1, 0))));
        assert!(claims(claim_due(&policy, &cost(1_000_000, 1, 0))));
        // Below the multiple, but old enough.
        assert!(claims(claim_due(&policy, &cost(1, 1, 86_400))));
        assert!(!claims(claim_due(&policy, &cost(1, 1, 86_399))));
    }

    #[test]
    fn nothing_owed_or_a_gas_price_over_the_ceiling_never_claims() {
        let policy = ClaimPolicy::default();
        assert!(!claims(claim_due(&policy, &cost(0, 1, 10 * 86_400))));
        let over = policy.max_gas_price + 1;
        let decision = claim_due(&policy, &cost(u64::MAX, over, 10 * 86_400));
        assert!(
            matches!(&decision, ClaimDecision::Wait(why) if why.contains("ceiling")),
            "{decision:?}"
        );
    }

    #[test]
    fn a_feed_round_is_a_price_only_when_positive_and_fresh() {
        use alloy::primitives::I256;
        let usd = |n: i64| I256::try_from(n).expect("small");
        // 3000 USD at Chainlink's 8 decimals, and at 18 and 20.
        assert_eq!(
            feed_price(usd(3000_0000_0000), 8, 100, 160, 60),
            Ok(U256::from(3000u64) * U256::from(10u64).pow(U256::from(18u64)))
        );
        assert_eq!(feed_price(usd(7), 18, 100, 100, 0), Ok(U256::from(7)));
        assert_eq!(feed_price(usd(700), 20, 100, 100, 0), Ok(U256::from(7)));
        // From the future: fresh.
        assert!(feed_price(usd(1), 8, 200, 100, 0).is_ok());
        let stale = feed_price(usd(1), 8, 100, 161, 60).expect_err("stale");
        assert!(stale.contains("61 s old"), "{stale}");
        for bad in [0, -5] {
            let e = feed_price(usd(bad), 8, 100, 100, 60).expect_err("not a price");
            assert!(e.contains("not a price"), "{e}");
        }
    }
}
