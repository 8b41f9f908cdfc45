//! The bootstrap incentive (docs/protocol.md, "ComputePool", "Bootstrap reserve"): during the
//! pool's first year the top providers of each UTC day share a daily part of the bootstrap
//! reserve pro rata to the MOR credited to them that day. The router computes each closed day
//! once (`store/bootstrap.rs`) and signs the cumulative result as `cumulativeBootstrap`; the
//! contract pays it from the reserve within the router's share of the day's budget.

use std::collections::HashMap;

use alloy::primitives::{Address, U256, U512};

/// How many providers share a day's bootstrap.
pub(crate) const BOOTSTRAP_TOP: usize = 100;

const DAY: u64 = 86_400;
const BPS: u64 = 10_000;

/// UTC days from the start of `day` up to `bootstrap_end` (unix seconds), a partial last day
/// counting whole: the days a reserve read on `day` is spread over. 0 once `day` starts at or
/// after the end, so nothing is allotted after the bootstrap period.
pub(crate) fn bootstrap_days_left(day: u64, bootstrap_end: u64) -> u64 {
    let start = day.saturating_mul(DAY);
    bootstrap_end.saturating_sub(start).div_ceil(DAY)
}

/// What this router may allot for one day: its budget share (`share_bps`, at most 10,000) of the
/// reserve, less what it has allotted and the chain has not paid yet (`outstanding`), spread
/// over `days_left`; 0 when no day is left.
///
/// `outstanding` is subtracted because the reserve read on-chain still holds every unpaid
/// allotment: without it, days whose providers do not claim would each promise the same MOR
/// again, and the router would owe more than its part of the reserve.
pub(crate) fn bootstrap_day_share(
    reserve: U256,
    outstanding: U256,
    share_bps: u64,
    days_left: u64,
) -> U256 {
    if days_left == 0 {
        return U256::ZERO;
    }
    let bps = U256::from(share_bps.min(BPS));
    let whole = U256::from(BPS);
    // reserve × bps / 10,000 without the product overflowing.
    let part = reserve / whole * bps + reserve % whole * bps / whole;
    part.saturating_sub(outstanding) / U256::from(days_left)
}

/// Splits `day_share` among the day's top [`BOOTSTRAP_TOP`] providers by MOR credited
/// (`credited`: one entry per provider), pro rata to their credit, each rounded down, so the
/// total never exceeds `day_share`. The rank is by credit, highest first, ties by the lower
/// address (the same on every run); providers credited nothing take no place. Returns the
/// providers allotted more than 0, in rank order.
pub(crate) fn bootstrap_split(
    day_share: U256,
    credited: &[(Address, U256)],
) -> Vec<(Address, U256)> {
    let mut ranked: Vec<(Address, U256)> = credited
        .iter()
        .copied()
        .filter(|(_, c)| !c.is_zero())
        .collect();
    ranked.sort_by(|(a, x), (b, y)| y.cmp(x).then(a.cmp(b)));
    ranked.truncate(BOOTSTRAP_TOP);
    // In 512 bits: neither the sum of 100 credits nor a share times a credit can overflow.
    let total: U512 = ranked.iter().map(|(_, c)| U512::from(*c)).sum();
    if total.is_zero() {
        return Vec::new();
    }
    let share = U512::from(day_share);
    ranked
        .into_iter()
        .filter_map(|(provider, c)| {
            // At most `day_share` (c <= total), so it fits 256 bits.
            let amount: U256 = (share * U512::from(c) / total).saturating_to();
            (!amount.is_zero()).then_some((provider, amount))
        })
        .collect()
}

/// What this router has allotted and the chain has not paid: over every provider with an
/// allotment (`allotted`: its cumulative allotment), that less its `claimRecord.bootstrapPaid`
/// (`paid`; a provider missing there counts as paid nothing, which can only lower the next
/// share). A provider paid more than allotted (a database from before a loss) owes nothing back.
pub(crate) fn bootstrap_outstanding(
    allotted: &[(Address, U256)],
    paid: &HashMap<Address, U256>,
) -> U256 {
    allotted
        .iter()
        .map(|(p, a)| a.saturating_sub(paid.get(p).copied().unwrap_or_default()))
        .fold(U256::ZERO, U256::saturating_add)
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng, rngs::StdRng};

    use super::*;

    fn provider(n: u16) -> Address {
        let mut a = [0u8; 20];
        a[18..].copy_from_slice(&n.to_be_bytes());
        Address::from(a)
    }

    fn mor(n: u64) -> U256 {
        U256::from(n)
    }

    #[test]
    fn days_left_counts_the_partial_last_day_and_stops_at_the_end() {
        let end = 400 * DAY + 3_600;
        assert_eq!(bootstrap_days_left(35, end), 366, "days 35..=400");
        assert_eq!(
            bootstrap_days_left(400, end),
            1,
            "the day the period ends in"
        );
        assert_eq!(bootstrap_days_left(401, end), 0, "the first day after it");
        assert_eq!(bootstrap_days_left(5_000, end), 0);
        assert_eq!(
            bootstrap_days_left(400, 400 * DAY),
            0,
            "a day starting at the end"
        );
        assert_eq!(bootstrap_days_left(399, 400 * DAY), 1);
        assert_eq!(bootstrap_days_left(u64::MAX, end), 0, "no overflow");
    }

    #[test]
    fn day_share_is_the_routers_part_less_outstanding_over_the_days_left() {
        // 100,000 MOR of reserve at half the budget: 50,000, less 5,000 owed, over 300 days.
        let reserve = mor(100_000);
        assert_eq!(
            bootstrap_day_share(reserve, mor(5_000), 5_000, 300),
            mor(150)
        );
        assert_eq!(
            bootstrap_day_share(reserve, U256::ZERO, 10_000, 3),
            mor(33_333)
        );
        assert_eq!(
            bootstrap_day_share(reserve, mor(60_000), 5_000, 300),
            U256::ZERO,
            "owing more than its part: nothing more"
        );
        assert_eq!(
            bootstrap_day_share(reserve, U256::ZERO, 10_000, 0),
            U256::ZERO
        );
        assert_eq!(
            bootstrap_day_share(reserve, U256::ZERO, 20_000, 1),
            reserve,
            "a share above the whole counts as the whole"
        );
        assert_eq!(
            bootstrap_day_share(U256::MAX, U256::ZERO, 10_000, 1),
            U256::MAX,
            "no overflow"
        );
    }

    #[test]
    fn unclaimed_days_never_promise_more_than_the_routers_part() {
        // Nobody claims for a whole year: what the router allots stays within its part.
        let (reserve, bps, end) = (mor(1_000_000_007), 2_500, 365 * DAY);
        let mut allotted = U256::ZERO;
        for day in 0..400 {
            allotted += bootstrap_day_share(reserve, allotted, bps, bootstrap_days_left(day, end));
        }
        let part = reserve * U256::from(bps) / U256::from(BPS);
        assert!(allotted <= part, "{allotted} allotted, part {part}");
        assert!(part - allotted < mor(365), "the part is spent but rounding");
    }

    #[test]
    fn the_101st_provider_gets_nothing() {
        // Providers 1..=101, provider n credited n: provider 1 is the 101st.
        let credited: Vec<_> = (1..=101)
            .map(|n| (provider(n), mor(u64::from(n))))
            .collect();
        let split = bootstrap_split(mor(1_000_000), &credited);
        assert_eq!(split.len(), 100);
        assert!(split.iter().all(|(p, _)| *p != provider(1)), "{split:?}");
        assert_eq!(split[0].0, provider(101), "highest credit first");
        // Σ over 2..=101 is 5150: each gets 1,000,000 × n / 5150.
        let of = |n: u16| {
            split
                .iter()
                .find(|(p, _)| *p == provider(n))
                .map(|(_, a)| *a)
        };
        assert_eq!(of(101), Some(mor(1_000_000 * 101 / 5150)));
        assert_eq!(of(2), Some(mor(1_000_000 * 2 / 5150)));
    }

    #[test]
    fn ties_rank_by_the_lower_address() {
        // 101 providers credited the same: the one with the highest address is left out.
        let credited: Vec<_> = (1..=101).rev().map(|n| (provider(n), mor(7))).collect();
        let split = bootstrap_split(mor(1_000), &credited);
        assert_eq!(split.len(), 100);
        assert!(
            split
                .iter()
                .all(|(p, a)| *p != provider(101) && *a == mor(10))
        );
        assert_eq!(split[0].0, provider(1));
        assert_eq!(split[99].0, provider(100));
    }

    #[test]
    fn zero_share_zero_credit_and_one_provider() {
        let credited = [(provider(1), mor(5)), (provider(2), U256::ZERO)];
        assert_eq!(bootstrap_split(U256::ZERO, &credited), []);
        assert_eq!(bootstrap_split(mor(9), &[(provider(2), U256::ZERO)]), []);
        assert_eq!(bootstrap_split(mor(9), &[]), []);
        assert_eq!(
            bootstrap_split(mor(9), &credited),
            [(provider(1), mor(9))],
            "one credited provider gets the whole share"
        );
    }

    #[test]
    fn shares_are_pro_rata_rounded_down() {
        let credited = [(provider(1), mor(1)), (provider(2), mor(2))];
        assert_eq!(
            bootstrap_split(mor(100), &credited),
            [(provider(2), mor(66)), (provider(1), mor(33))]
        );
        // A share rounding to 0 is not listed.
        let credited = [(provider(1), mor(1)), (provider(2), mor(1_000))];
        assert_eq!(
            bootstrap_split(mor(100), &credited),
            [(provider(2), mor(99))]
        );
    }

    #[test]
    fn a_days_total_never_exceeds_its_share() {
        let mut rng = StdRng::seed_from_u64(11);
        for round in 0..2_000 {
            let n = rng.random_range(0..250u16);
            let wide = rng.random_bool(0.2);
            let credited: Vec<_> = (0..n)
                .map(|i| {
                    let c = if wide {
                        U256::from_limbs(rng.random())
                    } else {
                        U256::from(rng.random_range(0..1_000_000_000_000u64))
                    };
                    (provider(i), c)
                })
                .collect();
            let share = if rng.random_bool(0.2) {
                U256::from_limbs(rng.random())
            } else {
                U256::from(rng.random_range(0..10u64.pow(18)))
            };
            let split = bootstrap_split(share, &credited);
            let total = split.iter().fold(U256::ZERO, |t, (_, a)| t + a);
            assert!(total <= share, "round {round}: {total} over {share}");
            assert!(split.len() <= BOOTSTRAP_TOP, "round {round}");
            let positive = credited.iter().filter(|(_, c)| !c.is_zero()).count();
            let paid = positive.min(BOOTSTRAP_TOP);
            // Rounding down loses less than one wei per provider paid.
            assert!(
                share - total < U256::from(paid.max(1)) || positive == 0,
                "round {round}: {total} of {share} among {paid}"
            );
        }
    }

    #[test]
    fn outstanding_is_allotted_less_paid_per_provider() {
        let allotted = [
            (provider(1), mor(100)),
            (provider(2), mor(50)),
            (provider(3), mor(10)),
        ];
        let paid = HashMap::from([(provider(1), mor(40)), (provider(3), mor(20))]);
        assert_eq!(bootstrap_outstanding(&allotted, &paid), mor(60 + 50));
    }
}
