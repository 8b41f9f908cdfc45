//! The user's account on-chain: `stake`, `unstake`, `withdraw`, and the day's `allowance`.

use alloy::{
    primitives::{Address, U256, utils::format_ether, utils::parse_ether},
    signers::local::PrivateKeySigner,
};
use morpheus_sdk::{contracts::Protocol, router::RouterClient};
use serde::Serialize;

use crate::{Error, Result, config::Settings};

/// Parses a decimal amount of MOR ("12.5") into wei; 0 and negative amounts are refused.
pub fn parse_mor(what: &'static str, value: &str) -> Result<U256> {
    let bad = |reason: &str| Error::BadAmount {
        what,
        value: value.to_string(),
        reason: reason.to_string(),
    };
    let trimmed = value.trim();
    if trimmed.starts_with('-') {
        return Err(bad("negative"));
    }
    let wei = parse_ether(trimmed).map_err(|e| bad(&e.to_string()))?;
    if wei.is_zero() {
        return Err(bad("zero"));
    }
    Ok(wei)
}

/// A user's stake and allowance, as `morpheus allowance` (and each staking command after its
/// transaction) shows them.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct AccountView {
    /// The user.
    pub user: Address,
    /// MOR (wei) in the user's wallet.
    pub balance: U256,
    /// MOR (wei) staked: the allowance is computed from it.
    pub staked: U256,
    /// MOR (wei) unstaked, withdrawable from `unlockDay`.
    pub pending: U256,
    /// The UTC day `pending` unlocks.
    pub unlock_day: U256,
    /// Tokens the whole network may grant the user today (`SessionRouter.userMax`).
    pub user_max: U256,
    /// This router's part of it, what it used and what is left (`None` when the router could
    /// not be reached: the chain's figures still hold).
    pub router: Option<morpheus_sdk::router::Allowance>,
    /// Why the router's figures are missing, if they are.
    pub router_error: Option<String>,
    /// The transaction just sent, if any.
    pub transaction: Option<String>,
}

impl AccountView {
    /// Lines for people.
    pub fn render(&self) -> String {
        let mut out = format!(
            "user      {}\nwallet    {} MOR\nstaked    {} MOR\n",
            self.user,
            format_ether(self.balance),
            format_ether(self.staked)
        );
        if !self.pending.is_zero() {
            out.push_str(&format!(
                "unstaked  {} MOR, withdrawable from UTC day {}\n",
                format_ether(self.pending),
                self.unlock_day
            ));
        }
        out.push_str(&format!(
            "allowance {} tokens a day (network)\n",
            self.user_max
        ));
        match (&self.router, &self.router_error) {
            (Some(a), _) => out.push_str(&format!(
                "router    {} tokens today, {} used, {} left (UTC day {})\n",
                a.user_max, a.used, a.remaining, a.day
            )),
            (None, Some(e)) => out.push_str(&format!("router    unreachable: {e}\n")),
            (None, None) => {}
        }
        if let Some(tx) = &self.transaction {
            out.push_str(&format!("tx        {tx}\n"));
        }
        out
    }
}

/// What a staking command does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StakeAction {
    /// Stake this much.
    Stake(U256),
    /// Unstake this much.
    Unstake(U256),
    /// Withdraw what has unlocked.
    Withdraw,
}

/// Sends `action` as `signer`, then shows the account.
pub async fn act(
    settings: &Settings,
    signer: PrivateKeySigner,
    action: StakeAction,
) -> Result<AccountView> {
    let user = signer.address();
    let chain =
        Protocol::connect(&settings.rpc_url, settings.load_deployment()?, Some(signer)).await?;
    let router = chain.session_router();
    let stake = router.stake_of(user).await?;
    let receipt = match action {
        StakeAction::Stake(amount) => {
            let balance = chain.mor().balance_of(user).await?;
            if balance < amount {
                return Err(Error::BadAmount {
                    what: "stake",
                    value: format_ether(amount),
                    reason: format!("the wallet holds {} MOR", format_ether(balance)),
                });
            }
            router.stake(amount).await?
        }
        StakeAction::Unstake(amount) => {
            if stake.staked < amount {
                return Err(Error::BadAmount {
                    what: "unstake",
                    value: format_ether(amount),
                    reason: format!("{} MOR is staked", format_ether(stake.staked)),
                });
            }
            router.unstake(amount).await?
        }
        StakeAction::Withdraw => {
            if stake.pending.is_zero() {
                return Err(Error::Config(
                    "nothing to withdraw: no MOR is unstaked".into(),
                ));
            }
            router.withdraw().await?
        }
    };
    let mut view = view(settings, &chain, user).await?;
    view.transaction = Some(receipt.transaction_hash.to_string());
    Ok(view)
}

/// The account of `user` now: the chain's figures, and the router's when it answers.
pub async fn show(settings: &Settings, user: Address) -> Result<AccountView> {
    let chain = Protocol::connect(&settings.rpc_url, settings.load_deployment()?, None).await?;
    view(settings, &chain, user).await
}

async fn view(settings: &Settings, chain: &Protocol, user: Address) -> Result<AccountView> {
    let (session_router, mor) = (chain.session_router(), chain.mor());
    let (stake, user_max, balance) = tokio::try_join!(
        session_router.stake_of(user),
        session_router.user_max(user),
        mor.balance_of(user)
    )?;
    let (router, router_error) = match RouterClient::new(&settings.router_url) {
        Ok(client) => match client.allowance(user).await {
            Ok(a) => (Some(a), None),
            Err(e) => (None, Some(e.to_string())),
        },
        Err(e) => (None, Some(e.to_string())),
    };
    Ok(AccountView {
        user,
        balance,
        staked: stake.staked,
        pending: stake.pending,
        unlock_day: stake.unlock_day,
        user_max,
        router,
        router_error,
        transaction: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_decimal_mor_and_positive() {
        assert_eq!(
            parse_mor("stake", "1.5").expect("ok"),
            U256::from(1_500_000_000_000_000_000u128)
        );
        for bad in ["0", "-1", "one", "1e3x", ""] {
            let err = parse_mor("stake", bad).expect_err(bad);
            assert!(err.to_string().starts_with("stake: "), "{err}");
        }
    }
}
