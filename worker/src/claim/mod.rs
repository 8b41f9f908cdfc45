//! The provider's claims: what each router owes (its newest voucher less what the chain has
//! paid of the pair), whether a claim is worth its gas ([`policy::claim_due`]), and one
//! transaction for every router's voucher. Anyone may submit a voucher; the MOR always goes to
//! the voucher's provider, so the key sending the claim only pays its gas.

pub mod journal;
pub mod policy;

use std::time::Duration;

use alloy::{
    primitives::{Address, B256, U256},
    providers::Provider,
};
use morpheus_sdk::{
    contracts::Protocol,
    messages::{CreditVoucher, Signed},
    router::RouterClient,
};
use tracing::warn;

pub use journal::{CRASH_POINT_ENV, Recovered, recover};
pub use policy::{
    ClaimCost, ClaimDecision, ClaimPolicy, PairOwed, claim_due, feed_price, mor_per_eth_from_usd,
    payable_today,
};

use crate::{Error, Result, store::Store};

/// What one router owes the provider, by its newest voucher.
#[derive(Debug, Clone)]
pub struct Owed {
    /// The router's signer.
    pub router: Address,
    /// Its newest voucher for the provider.
    pub voucher: Signed<CreditVoucher>,
    /// MOR wei the voucher pays from the daily budget beyond what the chain has paid.
    pub amount: U256,
    /// MOR wei it pays from the bootstrap reserve beyond what the chain has paid.
    pub bootstrap: U256,
    /// The `issuedAt` of the pair's newest claimed voucher (0: never claimed).
    pub last_claimed_at: u64,
}

impl Owed {
    /// Everything the voucher would pay now, budget allowing.
    pub fn total(&self) -> U256 {
        self.amount.saturating_add(self.bootstrap)
    }
}

/// One router's answer: what it owes, nothing (no voucher yet), or why it could not be asked.
#[derive(Debug)]
pub struct RouterOwed {
    /// The router's URL, as configured.
    pub url: String,
    /// `Ok(None)`: no session of the provider was reported there yet.
    pub owed: std::result::Result<Option<Owed>, String>,
}

/// A claim mined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claimed {
    /// Its transaction.
    pub tx: B256,
    /// The gas it used.
    pub gas_used: u64,
    /// MOR wei its vouchers paid the provider (the `VoucherClaimed` events; the balance rose by
    /// as much).
    pub paid: U256,
}

/// Asks each router in `routers` for its newest voucher for `provider` and the chain for what
/// the pair was paid. A voucher for someone else, or not signed by the router it names, is that
/// router's error (a claim including it would revert for everyone).
pub async fn owed(
    protocol: &Protocol,
    routers: &[(String, RouterClient)],
    provider: Address,
) -> Vec<RouterOwed> {
    let mut out = Vec::with_capacity(routers.len());
    for (url, client) in routers {
        let owed = one_router(protocol, client, provider)
            .await
            .map_err(|e| e.to_string());
        if let Err(e) = &owed {
            warn!(target: "worker::claim", router = %url, error = %e, "could not read what the router owes");
        }
        out.push(RouterOwed {
            url: url.clone(),
            owed,
        });
    }
    out
}

async fn one_router(
    protocol: &Protocol,
    client: &RouterClient,
    provider: Address,
) -> Result<Option<Owed>> {
    let Some(voucher) = client.voucher(provider).await? else {
        return Ok(None);
    };
    let v = &voucher.message;
    if v.provider != provider {
        return Err(Error::InvalidRequest(format!(
            "the router sent a voucher for {}, not this provider",
            v.provider
        )));
    }
    let domain = protocol.deployment().domain();
    let signer = voucher.recover(&domain)?;
    if signer != v.router {
        return Err(Error::InvalidRequest(format!(
            "the voucher names router {} but is signed by {signer}",
            v.router
        )));
    }
    Ok(Some(owed_by(protocol, voucher, provider).await?))
}

/// What `voucher` pays beyond what the chain has paid its pair.
async fn owed_by(
    protocol: &Protocol,
    voucher: Signed<CreditVoucher>,
    provider: Address,
) -> Result<Owed> {
    let v = &voucher.message;
    let record = protocol
        .session_router()
        .claim_record(v.router, provider)
        .await?;
    Ok(Owed {
        router: v.router,
        amount: v.cumulativeAmount.saturating_sub(U256::from(record.paid)),
        bootstrap: v
            .cumulativeBootstrap
            .saturating_sub(U256::from(record.bootstrapPaid)),
        last_claimed_at: u64::from(record.issuedAt),
        voucher,
    })
}

/// What claiming `owed` (the routers owing something) would cost now, its oldest credit's age
/// counted from the pairs' last claims by the chain's clock (`first_seen`, the chain time this
/// process first saw the credit, for pairs never claimed).
pub async fn cost(protocol: &Protocol, owed: &[&Owed], first_seen: u64) -> Result<ClaimCost> {
    let vouchers: Vec<Signed<CreditVoucher>> = owed.iter().map(|o| o.voucher.clone()).collect();
    let (gas, gas_price, now) = tokio::try_join!(
        async {
            Ok::<_, Error>(
                protocol
                    .session_router()
                    .estimate_claim_gas(&vouchers)
                    .await?,
            )
        },
        async {
            protocol
                .provider()
                .get_gas_price()
                .await
                .map_err(|e| Error::Protocol(morpheus_sdk::Error::Rpc(e.to_string())))
        },
        async { Ok(protocol.latest_block_time().await?) },
    )?;
    let since = owed
        .iter()
        .map(|o| {
            if o.last_claimed_at > 0 {
                o.last_claimed_at
            } else {
                first_seen
            }
        })
        .min()
        .unwrap_or(now);
    Ok(ClaimCost {
        owed: owed
            .iter()
            .fold(U256::ZERO, |t, o| t.saturating_add(o.total())),
        gas,
        gas_price,
        age: Duration::from_secs(now.saturating_sub(since)),
    })
}

/// The routers' clients for `urls`.
pub fn router_clients(urls: &[String]) -> Result<Vec<(String, RouterClient)>> {
    urls.iter()
        .map(|url| Ok((url.clone(), RouterClient::new(url)?)))
        .collect()
}

/// What every source says is owed: the routers asked just now, and the stored vouchers of
/// those that did not answer with one.
#[derive(Debug)]
pub struct Gathered {
    /// Each router's answer, in the order asked.
    pub answers: Vec<RouterOwed>,
    /// What the stored vouchers of routers that did not answer still pay.
    pub stored: Vec<Owed>,
    /// The chain's time when they were gathered.
    pub chain_now: u64,
}

impl Gathered {
    /// Everything owing something, answered and stored.
    pub fn owing(&self) -> Vec<&Owed> {
        self.answers
            .iter()
            .filter_map(|a| a.owed.as_ref().ok().and_then(Option::as_ref))
            .chain(&self.stored)
            .filter(|o| !o.total().is_zero())
            .collect()
    }
}

/// Asks `routers` for their newest vouchers, keeps them in `store` ([`keep`]), and adds what
/// the stored vouchers of the routers that did not answer still pay ([`stored_owed`]).
pub async fn gather(
    protocol: &Protocol,
    store: &Store,
    routers: &[(String, RouterClient)],
    provider: Address,
) -> Result<Gathered> {
    let answers = owed(protocol, routers, provider).await;
    let chain_now = protocol.latest_block_time().await?;
    keep(store, &answers, chain_now)?;
    let answered: Vec<Address> = answers
        .iter()
        .filter_map(|a| a.owed.as_ref().ok().and_then(Option::as_ref))
        .map(|o| o.router)
        .collect();
    let stored = stored_owed(protocol, store, provider, &answered).await?;
    Ok(Gathered {
        answers,
        stored,
        chain_now,
    })
}

/// The rule's decision for `owing`, and what a claim now would pay.
#[derive(Debug, Clone)]
pub struct Decided {
    /// Claim or wait, and why.
    pub decision: ClaimDecision,
    /// MOR wei a claim sent now would pay ([`payable_today`]).
    pub payable: U256,
}

/// The rule's decision for `owing`: nothing owed, or nothing payable today (the day's budget or
/// the routers' shares of it spent: a claim would pay nothing and cost gas), waits; otherwise
/// [`claim_due`] over what a claim now would pay and its [`cost`].
pub async fn decide(
    protocol: &Protocol,
    store: &Store,
    policy: &ClaimPolicy,
    owing: &[&Owed],
    chain_now: u64,
) -> Result<Decided> {
    if owing.is_empty() {
        return Ok(Decided {
            decision: ClaimDecision::Wait("nothing is owed".into()),
            payable: U256::ZERO,
        });
    }
    let sessions = protocol.session_router();
    let today = protocol.pool().today().await?;
    let mut pairs = Vec::with_capacity(owing.len());
    for o in owing {
        let info = sessions.router_info(o.router).await?;
        let limit = today.budget.saturating_mul(info.share_bps) / U256::from(10_000);
        pairs.push(PairOwed {
            amount: o.amount,
            bootstrap: o.bootstrap,
            router_left: limit.saturating_sub(info.spent_today),
        });
    }
    let payable = payable_today(&pairs, today.remaining(), today.reserve);
    if payable.is_zero() {
        return Ok(Decided {
            decision: ClaimDecision::Wait(
                "nothing is payable today: the day's budget (or the routers' shares of it) is \
                 spent; the credit stays owed for a later day's claim"
                    .into(),
            ),
            payable,
        });
    }
    let mut cost = cost(protocol, owing, first_seen(store, chain_now)?).await?;
    cost.owed = payable;
    Ok(Decided {
        decision: claim_due(policy, &cost),
        payable,
    })
}

/// Keeps each router's newest voucher in `owed` in `store` (before any claim sends it; a
/// router down later still leaves its credit claimable, [`stored_owed`]).
pub fn keep(store: &Store, owed: &[RouterOwed], now: u64) -> Result<()> {
    for o in owed
        .iter()
        .filter_map(|a| a.owed.as_ref().ok().and_then(Option::as_ref))
    {
        store.put_voucher(&o.voucher, now)?;
    }
    Ok(())
}

/// What the routers whose vouchers `store` holds owe, for those not in `answered` (the
/// routers that answered just now): a router that is down or gone is still claimed from.
pub async fn stored_owed(
    protocol: &Protocol,
    store: &Store,
    provider: Address,
    answered: &[Address],
) -> Result<Vec<Owed>> {
    let mut out = Vec::new();
    for stored in store.vouchers()? {
        if answered.contains(&stored.router) || stored.voucher.message.provider != provider {
            continue;
        }
        out.push(owed_by(protocol, stored.voucher, provider).await?);
    }
    Ok(out)
}

/// The chain's time the oldest stored voucher was first seen (`now` when none is stored): the
/// age of credit never claimed counts from it, across restarts.
pub fn first_seen(store: &Store, now: u64) -> Result<u64> {
    Ok(store
        .vouchers()?
        .iter()
        .map(|v| v.first_seen)
        .min()
        .unwrap_or(now)
        .min(now))
}

/// Claims every voucher in `owed` in one transaction, sent by `protocol`'s wallet and
/// journaled in `store` (after [`recover`]ing what an earlier run left unfinished); returns what
/// the vouchers paid the provider.
pub async fn claim(
    protocol: &Protocol,
    store: &Store,
    owed: &[&Owed],
    provider: Address,
) -> Result<Claimed> {
    recover(protocol, store, provider).await?;
    let vouchers: Vec<Signed<CreditVoucher>> = owed.iter().map(|o| o.voucher.clone()).collect();
    let now = protocol.latest_block_time().await?;
    for v in &vouchers {
        store.put_voucher(v, now)?;
    }
    journal::send(protocol, store, &vouchers, provider).await
}
