//! The provider's side: what its node (`morpheus-worker run`) set up on-chain, read back; and
//! at the end, the claim of what the router owes with `morpheus-worker claim`, the provider's
//! own tool, on the node's database.

use std::time::Duration;

use alloy::primitives::{Address, B256, U256, utils::format_ether};
use morpheus_sdk::{
    contracts::{DailyBudget, Protocol},
    messages::{CreditVoucher, Signed},
    router::RouterClient,
};

use super::{model::PreparedModel, services::Local};
use crate::{Error, Result};

/// MOR (wei) per token the provider bids: 2e-6 MOR.
pub(crate) const PRICE_PER_TOKEN: u64 = 2_000_000_000_000;
/// Sessions the provider takes at once.
pub(crate) const CAPACITY: u64 = 16;
/// How long the router may take to issue the voucher after the gateway's usage report.
const VOUCHER_WAIT: Duration = Duration::from_secs(30);

/// What the node (`morpheus-worker run`) set up on-chain, read back and printed: the provider
/// registered, `model` (registered by `creator` in the deploy script) claimed, the bid; returns
/// the model id.
pub(crate) async fn standing(
    chain: &Protocol,
    provider: Address,
    creator: Address,
    model: &PreparedModel,
) -> Result<B256> {
    let registry = chain.registry();
    let model_id = registry
        .compute_model_id(creator, model.root, &model.name)
        .await?;
    let (record, claimed, bid) = tokio::try_join!(
        registry.provider(provider),
        registry.has_model_claim(provider, model_id),
        registry.bid(provider, model_id),
    )?;
    if !claimed || bid.capacity.is_zero() {
        return Err(Error::Devnet(format!(
            "the node is serving but model {model_id} is not claimed and bid for by {provider}"
        )));
    }
    println!(
        "provider {provider} registered at {} with {} MOR staked, claimed model {model_id}, bid {} MOR/token for {} sessions",
        record.endpoint,
        format_ether(record.stake),
        format_ether(bid.pricePerToken),
        bid.capacity,
    );
    Ok(model_id)
}

/// Waits for the router's voucher to count at least one session: the gateway reports usage
/// after the answer's last chunk, so it may still be on its way when the stream ends.
pub(crate) async fn voucher(
    router: &RouterClient,
    provider: alloy::primitives::Address,
) -> Result<Signed<CreditVoucher>> {
    let started = tokio::time::Instant::now();
    loop {
        if let Some(v) = router.voucher(provider).await?
            && !v.message.sessions.is_zero()
        {
            return Ok(v);
        }
        if started.elapsed() > VOUCHER_WAIT {
            return Err(Error::Devnet(format!(
                "the router issued no voucher for {provider} within {VOUCHER_WAIT:?} of the \
                 chat: the gateway's usage report did not reach it (see the gateway's warnings \
                 and router.log)"
            )));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// What the claim did, read back from the chain.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Claimed {
    pub(crate) tx: B256,
    pub(crate) gas: u64,
    /// `claimRecord(router, provider)`: `paid + bootstrapPaid`.
    pub(crate) paid: U256,
    /// `claimRecord(router, provider).tokens`.
    pub(crate) tokens: u64,
    /// What the provider's MOR balance grew by in the claim.
    pub(crate) balance_change: U256,
    /// The provider's bid (`ProviderRegistry.getBid`), MOR (wei) per token.
    pub(crate) bid: U256,
    /// The reference price, MOR (wei) per token: `tokensUsd * 1e15 / morUsd` of the
    /// SessionRouter's price source (docs/protocol.md, "Credit per token").
    pub(crate) reference_price: U256,
    /// `ComputePool.today()` after the claim.
    pub(crate) budget: DailyBudget,
}

/// The provider claims what the router owes with its own tool, `morpheus-worker claim --now
/// --json` (its key through the environment), and the effect is read back from the chain.
pub(crate) async fn claim(
    local: &Local<'_>,
    chain: &Protocol,
    voucher: &Signed<CreditVoucher>,
    model_id: B256,
) -> Result<Claimed> {
    let (router, provider) = (voucher.message.router, voucher.message.provider);
    let sessions = chain.session_router();
    let (mor, pool, registry) = (chain.mor(), chain.pool(), chain.registry());
    let before = mor.balance_of(provider).await?;
    let output = tokio::process::Command::new(&local.tools.worker)
        .arg("claim")
        .arg("--now")
        .arg("--json")
        .arg("--rpc-url")
        .arg(&local.rpc)
        .arg("--deployment")
        .arg(local.state.join("deployment.json"))
        .arg("--router-url")
        .arg(local.router_url())
        .arg("--db")
        .arg(super::services::worker_db(local.state))
        .env(
            "MORPHEUS_PROVIDER_KEY",
            local.accounts.provider.to_bytes().to_string(),
        )
        .output()
        .await
        .map_err(|e| Error::Devnet(format!("running morpheus-worker claim: {e}")))?;
    if !output.status.success() {
        return Err(Error::Devnet(format!(
            "morpheus-worker claim failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    let printed: serde_json::Value = serde_json::from_slice(&output.stdout).map_err(|e| {
        Error::Devnet(format!(
            "morpheus-worker claim printed no JSON ({e}): {}",
            String::from_utf8_lossy(&output.stdout)
        ))
    })?;
    let claimed = &printed["claimed"];
    let tx: B256 = claimed["tx"]
        .as_str()
        .and_then(|t| t.parse().ok())
        .ok_or_else(|| Error::Devnet(format!("morpheus-worker claim did not claim: {printed}")))?;
    let gas = claimed["gasUsed"].as_u64().unwrap_or_default();
    let (after, record, budget, bid, prices) = tokio::try_join!(
        mor.balance_of(provider),
        sessions.claim_record(router, provider),
        pool.today(),
        registry.bid(provider, model_id),
        sessions.prices(),
    )?;
    // 1e15: 1e18 wei per MOR over 1000 tokens per `tokensUsd`.
    let reference_price = prices
        .tokens_usd
        .saturating_mul(U256::from(1_000_000_000_000_000u64))
        .checked_div(prices.mor_usd)
        .unwrap_or_default();
    Ok(Claimed {
        tx,
        gas,
        paid: U256::from(record.paid) + U256::from(record.bootstrapPaid),
        tokens: u64::try_from(record.tokens).unwrap_or(u64::MAX),
        balance_change: after.saturating_sub(before),
        bid: bid.pricePerToken,
        reference_price,
        budget,
    })
}
