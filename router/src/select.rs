//! Picking a provider: the cheapest live bid among registered, whitelisted providers with a
//! model claim, free capacity and a good record; ties by latency record, then at random.

use std::cmp::Ordering;

use alloy::{
    primitives::{Address, B256, U256},
    signers::local::PrivateKeySigner,
    sol_types::Eip712Domain,
};
use morpheus_sdk::{
    contracts::{Model, ProviderRegistryClient},
    messages::{LivenessChallenge, Signed},
    provider::ProviderClient,
    router::ProviderStats,
};
use tracing::{debug, info};

use crate::{Error, Result, service::unix_now};

/// `ProviderStatus.Active` in `IProviderRegistry`.
const STATUS_ACTIVE: u8 = 1;
/// Bids read per registry call.
const PAGE: u64 = 100;

/// A provider with an active bid for the model.
#[derive(Debug, Clone)]
pub(crate) struct Candidate {
    pub(crate) provider: Address,
    pub(crate) endpoint: String,
    pub(crate) price_per_token: U256,
    pub(crate) capacity: U256,
    pub(crate) record: ProviderStats,
    /// Why it may not be picked now (not registered, no claim, full); `None` when eligible.
    pub(crate) excluded: Option<String>,
    tiebreak: u64,
}

impl Candidate {
    /// Selection order: eligible first, good record before bad, cheaper, faster, random.
    fn order(&self, other: &Self) -> Ordering {
        let speed = |c: &Self| c.record.ms_per_token.unwrap_or(f64::INFINITY);
        self.excluded
            .is_some()
            .cmp(&other.excluded.is_some())
            .then(self.record.bad_record.cmp(&other.record.bad_record))
            .then(self.price_per_token.cmp(&other.price_per_token))
            .then(speed(self).total_cmp(&speed(other)))
            .then(self.tiebreak.cmp(&other.tiebreak))
    }
}

/// The model's registry entry; an unregistered id is [`Error::UnknownModel`].
pub(crate) async fn model(registry: &ProviderRegistryClient, model_id: B256) -> Result<Model> {
    match registry.model(model_id).await {
        Ok(m) if m.merkleRoot != B256::ZERO => Ok(m),
        Ok(_) | Err(morpheus_sdk::Error::Reverted(_)) => Err(Error::UnknownModel(model_id)),
        Err(e) => Err(e.into()),
    }
}

/// Every provider with an active bid for `model_id`, in selection order. `record` and
/// `open_sessions` come from the router's store.
pub(crate) async fn candidates(
    registry: &ProviderRegistryClient,
    model_id: B256,
    mut record: impl FnMut(Address) -> Result<(ProviderStats, u64)>,
) -> Result<Vec<Candidate>> {
    let mut bids = Vec::new();
    loop {
        let page = registry
            .bids_for_model(model_id, bids.len() as u64, PAGE)
            .await?;
        let done = (page.len() as u64) < PAGE;
        bids.extend(page);
        if done {
            break;
        }
    }
    let whitelist_on = registry.whitelist_active().await?;
    let mut out = Vec::with_capacity(bids.len());
    for bid in bids {
        let info = registry.provider(bid.provider).await?;
        let (stats, open) = record(bid.provider)?;
        let excluded = if info.status != STATUS_ACTIVE {
            Some("not a registered provider".to_string())
        } else if whitelist_on && !registry.is_whitelisted(bid.provider).await? {
            Some("not whitelisted".to_string())
        } else if !registry.has_model_claim(bid.provider, model_id).await? {
            Some("no model claim".to_string())
        } else if U256::from(open) >= bid.capacity {
            Some(format!(
                "full ({open} open sessions, capacity {})",
                bid.capacity
            ))
        } else {
            None
        };
        out.push(Candidate {
            provider: bid.provider,
            endpoint: info.endpoint,
            price_per_token: bid.pricePerToken,
            capacity: bid.capacity,
            record: stats,
            excluded,
            tiebreak: rand::random(),
        });
    }
    out.sort_by(Candidate::order);
    Ok(out)
}

/// Challenges a provider for one random chunk of the model and checks the proof against the
/// on-chain root. `Err` says why the provider is not live.
pub(crate) async fn check_liveness(
    candidate: &Candidate,
    model: &Model,
    domain: &Eip712Domain,
    signer: &PrivateKeySigner,
    timeout: std::time::Duration,
) -> std::result::Result<(), String> {
    let chunks = model.chunkCount.max(U256::from(1));
    let challenge = LivenessChallenge {
        challengeId: B256::from(rand::random::<[u8; 32]>()),
        provider: candidate.provider,
        modelId: model.modelId,
        chunkIndex: U256::from_be_bytes(rand::random::<[u8; 32]>()) % chunks,
        deadline: U256::from(unix_now() + timeout.as_secs().max(1) * 2),
    };
    let signed = Signed::sign(challenge.clone(), domain, signer).map_err(|e| e.to_string())?;
    let client = ProviderClient::new(&candidate.endpoint).map_err(|e| e.to_string())?;
    let proof = tokio::time::timeout(timeout, client.liveness(&signed))
        .await
        .map_err(|_| format!("no liveness answer within {timeout:?}"))?
        .map_err(|e| e.to_string())?;
    proof
        .verify(&challenge, model.merkleRoot, domain)
        .map_err(|e| e.to_string())?;
    debug!(target: "router::select", provider = %candidate.provider, chunk = %challenge.chunkIndex, "liveness ok");
    Ok(())
}

/// Walks the candidates in order and returns the first eligible one that passes liveness.
pub(crate) async fn pick(
    candidates: &[Candidate],
    model: &Model,
    domain: &Eip712Domain,
    signer: &PrivateKeySigner,
    liveness: Option<std::time::Duration>,
) -> Result<Candidate> {
    let mut refused = Vec::new();
    for c in candidates {
        if let Some(why) = &c.excluded {
            refused.push(format!("{}: {why}", c.provider));
            continue;
        }
        if let Some(timeout) = liveness
            && let Err(why) = check_liveness(c, model, domain, signer, timeout).await
        {
            info!(target: "router::select", provider = %c.provider, reason = %why, "liveness failed");
            refused.push(format!("{}: liveness failed: {why}", c.provider));
            continue;
        }
        return Ok(c.clone());
    }
    Err(Error::NoProvider {
        model: model.modelId,
        reason: if refused.is_empty() {
            "no active bids".into()
        } else {
            refused.join("; ")
        },
    })
}
