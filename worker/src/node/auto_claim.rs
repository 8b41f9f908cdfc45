//! The automatic claims beside the API: every interval, finish what a crash left unfinished,
//! fetch each router's newest voucher (kept in the database first), and claim them all in one
//! transaction when the rule says so (`claim::claim_due`: worth its gas, or old enough, under
//! the gas price cap). A failure is logged and tried again next interval; serving goes on.
//! When the day's budget runs short, the claim pays what it can and the rest stays owed for a
//! later day's claim (the contract's rule).

use std::time::Duration;

use alloy::primitives::{Address, U256, utils::format_ether};
use morpheus_sdk::{contracts::Protocol, router::RouterClient};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::{
    Result,
    claim::{self, ClaimDecision, ClaimPolicy, Claimed, Owed},
    metrics::{Metrics, ProviderFigures},
    node::{EthPrice, retry::backoff},
    store::Store,
};

/// What one look at the routers found and did.
#[derive(Debug)]
pub struct Round {
    /// MOR wei owed before any claim.
    pub owed: U256,
    /// The rule's decision.
    pub decision: ClaimDecision,
    /// The claim sent, when it was.
    pub claimed: Option<Claimed>,
}

/// The claims' settings and connections.
#[derive(Debug)]
pub struct AutoClaim {
    /// Connection sending the claims.
    pub protocol: Protocol,
    /// The worker's database.
    pub store: Store,
    /// The routers asked, by URL.
    pub routers: Vec<(String, RouterClient)>,
    /// The provider credited.
    pub provider: Address,
    /// When to claim.
    pub policy: ClaimPolicy,
    /// Where ETH's price comes from: `policy.mor_per_eth`, or each round from MOR's price at
    /// the protocol's price source and ETH's configured or read from an on-chain feed.
    pub eth_price: EthPrice,
    /// Where the figures go.
    pub metrics: std::sync::Arc<Metrics>,
}

fn mor(wei: U256) -> f64 {
    format_ether(wei).parse().unwrap_or(f64::MAX)
}

impl AutoClaim {
    /// One look: recover, fetch, keep, decide, claim.
    pub async fn round(&self) -> Result<Round> {
        claim::recover(&self.protocol, &self.store, self.provider).await?;
        let gathered =
            claim::gather(&self.protocol, &self.store, &self.routers, self.provider).await?;
        let owing: Vec<&Owed> = gathered.owing();
        let owed = owing
            .iter()
            .fold(U256::ZERO, |t, o| t.saturating_add(o.total()));
        let policy = self.policy(gathered.chain_now).await?;
        let decision = claim::decide(
            &self.protocol,
            &self.store,
            &policy,
            &owing,
            gathered.chain_now,
        )
        .await?
        .decision;
        let claimed = match &decision {
            ClaimDecision::Claim(why) => {
                info!(target: "worker::claim", owed = %owed, %why, "claiming");
                Some(claim::claim(&self.protocol, &self.store, &owing, self.provider).await?)
            }
            ClaimDecision::Wait(_) => None,
        };
        let left = owed.saturating_sub(claimed.map_or(U256::ZERO, |c| c.paid));
        self.publish(left)?;
        Ok(Round {
            owed,
            decision,
            claimed,
        })
    }

    /// The rule for this round: the configured one, its MOR per ETH from the chain's MOR price
    /// when ETH's is configured or read from a feed (checked fresh at the chain's time `now`).
    async fn policy(&self, now: u64) -> Result<ClaimPolicy> {
        let eth_usd = match self.eth_price {
            EthPrice::Fixed => return Ok(self.policy.clone()),
            EthPrice::Usd(usd) => usd,
            EthPrice::Feed { address, max_age } => {
                let round = self.protocol.price_feed(address).latest().await?;
                claim::feed_price(round.answer, round.decimals, round.updated_at, now, max_age)
                    .map_err(|why| {
                        crate::Error::Config(format!(
                            "claims.eth_usd_feed {address}: {why}: cannot price gas"
                        ))
                    })?
            }
        };
        let prices = self.protocol.session_router().prices().await?;
        let mor_per_eth =
            claim::mor_per_eth_from_usd(eth_usd, prices.mor_usd).ok_or_else(|| {
                crate::Error::Config("the price source gives MOR no price: cannot price gas".into())
            })?;
        Ok(ClaimPolicy {
            mor_per_eth,
            ..self.policy.clone()
        })
    }

    /// Sets the metrics from the journal and what is still owed.
    fn publish(&self, owed: U256) -> Result<()> {
        let totals = self.store.claim_totals()?;
        self.metrics.set_provider(ProviderFigures {
            owed_mor: mor(owed),
            claimed_mor: mor(totals.paid),
            claims: totals.claims,
            claim_gas: totals.gas_used,
            last_claim_at: totals.last_at,
        });
        Ok(())
    }

    /// Runs a round every `interval` until `stop` is cancelled; a round under way when it is
    /// finishes first (a claim is never cut between sending and recording). After a failed
    /// round (the chain or a router down, a 429) the next comes sooner, backing off from 0.5 s
    /// up to `interval`.
    pub async fn run(self, interval: Duration, stop: CancellationToken) {
        let mut failures = 0;
        loop {
            let round = self.round().await;
            failures = if round.is_err() { failures + 1 } else { 0 };
            let wait = if failures == 0 {
                interval
            } else {
                backoff(failures).min(interval)
            };
            match round {
                Ok(r) => match (&r.decision, &r.claimed) {
                    (_, Some(c)) => {
                        info!(target: "worker::claim", tx = %c.tx, paid = %c.paid, owed_before = %r.owed, "claim round: claimed")
                    }
                    (ClaimDecision::Wait(why), None) => {
                        info!(target: "worker::claim", owed = %r.owed, %why, "claim round: waiting")
                    }
                    (ClaimDecision::Claim(_), None) => {}
                },
                Err(e) => {
                    warn!(target: "worker::claim", error = %e, ?wait, "claim round failed; trying again")
                }
            }
            tokio::select! {
                () = stop.cancelled() => break,
                () = tokio::time::sleep(wait) => {}
            }
        }
        info!(target: "worker::claim", "automatic claims stopped");
    }
}
