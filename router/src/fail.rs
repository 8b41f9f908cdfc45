//! The fail policy: whether a user's "failed" report withholds the provider's credit
//! (docs/protocol.md, Router, "fail policy").
//!
//! The specification leaves it open: a fail "withholds credit only when the user's stake exceeds
//! the provider's; otherwise it is a negative point on the provider's record". A user with a tiny
//! stake could otherwise deny an honest provider its pay at no cost; a provider with a large stake
//! has more to lose from a bad record than from one session's credit.

use std::{fmt, str::FromStr};

use alloy::primitives::U256;

/// How a failed report is treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FailPolicy {
    /// Every failed report withholds the session's credit (the default).
    #[default]
    Withhold,
    /// A failed report withholds the credit only when the user's stake exceeds the provider's;
    /// otherwise the session is credited and counts against the provider's record (`disputed`).
    ByStake,
}

/// Whether a failed report from a user staking `user_stake` withholds the credit of a provider
/// staking `provider_stake`, under `policy`.
pub(crate) fn fail_withholds_credit(
    policy: FailPolicy,
    user_stake: U256,
    provider_stake: U256,
) -> bool {
    match policy {
        FailPolicy::Withhold => true,
        FailPolicy::ByStake => user_stake > provider_stake,
    }
}

impl FromStr for FailPolicy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "withhold" => Ok(Self::Withhold),
            "by-stake" => Ok(Self::ByStake),
            other => Err(format!(
                "unknown fail policy {other:?}: expected \"withhold\" or \"by-stake\""
            )),
        }
    }
}

impl fmt::Display for FailPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Withhold => "withhold",
            Self::ByStake => "by-stake",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn withhold_always_withholds() {
        for (u, p) in [(0, 10), (10, 10), (11, 10)] {
            assert!(fail_withholds_credit(
                FailPolicy::Withhold,
                U256::from(u),
                U256::from(p)
            ));
        }
    }

    #[test]
    fn by_stake_withholds_only_for_a_larger_stake() {
        let judge = |u: u64, p: u64| {
            fail_withholds_credit(FailPolicy::ByStake, U256::from(u), U256::from(p))
        };
        assert!(!judge(5, 10), "a smaller stake: a point on the record");
        assert!(!judge(10, 10), "an equal stake does not exceed");
        assert!(judge(11, 10), "a larger stake withholds");
    }

    #[test]
    fn parses_and_prints_its_names() {
        for p in [FailPolicy::Withhold, FailPolicy::ByStake] {
            assert_eq!(p.to_string().parse::<FailPolicy>(), Ok(p));
        }
        match "sometimes".parse::<FailPolicy>() {
            Err(e) => assert!(e.contains("sometimes"), "{e}"),
            Ok(p) => panic!("parsed as {p}"),
        }
    }
}
