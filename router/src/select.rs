//! Picking a provider: the cheapest live bid among registered, whitelisted providers with a
//! model claim, free capacity and a good record; ties by latency record, then at random. The
//! checks before an assignment (endpoint, liveness, cool-down) are in [`liveness`].

mod endpoint;
mod liveness;

use std::cmp::Ordering;

use alloy::primitives::{Address, B256, U256};
pub(crate) use liveness::Checks;
use morpheus_sdk::{
    contracts::{Bid, Model, ProviderRegistryClient},
    router::ProviderStats,
};

use crate::{Error, Result, store::Standing};

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
    /// Its sessions neither reported nor expired.
    pub(crate) open_sessions: u64,
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

/// Every active bid for `model_id`.
pub(crate) async fn bids(registry: &ProviderRegistryClient, model_id: B256) -> Result<Vec<Bid>> {
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
    Ok(bids)
}

/// The bidders for `model_id` with their standing in the router's store, in selection order.
pub(crate) async fn candidates(
    registry: &ProviderRegistryClient,
    model_id: B256,
    bids: impl IntoIterator<Item = (Bid, Standing)>,
) -> Result<Vec<Candidate>> {
    let whitelist_on = registry.whitelist_active().await?;
    let mut out = Vec::new();
    for (bid, standing) in bids {
        let info = registry.provider(bid.provider).await?;
        let open = standing.open_sessions;
        let excluded = if info.status != STATUS_ACTIVE {
            Some("not a registered provider".to_string())
        } else if whitelist_on && !registry.is_whitelisted(bid.provider).await? {
            Some("not whitelisted".to_string())
        } else if !registry.has_model_claim(bid.provider, model_id).await? {
            Some("no model claim".to_string())
        } else if U256::from(open) >= bid.capacity {
            Some(full_reason(open, bid.capacity))
        } else {
            None
        };
        out.push(Candidate {
            provider: bid.provider,
            endpoint: info.endpoint,
            price_per_token: bid.pricePerToken,
            capacity: bid.capacity,
            record: standing.record,
            open_sessions: open,
            excluded,
            tiebreak: rand::random(),
        });
    }
    out.sort_by(Candidate::order);
    Ok(out)
}

fn full_reason(open: u64, capacity: U256) -> String {
    format!("full ({open} open sessions, capacity {capacity})")
}

/// Why `provider` was refused when [`Store::book`](crate::store::Store::book) found it full.
pub(crate) fn full(provider: Address, open: u64, capacity: U256) -> String {
    format!("{provider}: {}", full_reason(open, capacity))
}

/// The refusal when no candidate could be assigned, with each one's reason.
pub(crate) fn no_provider(model: B256, refused: Vec<String>) -> Error {
    Error::NoProvider {
        model,
        reason: if refused.is_empty() {
            "no active bids".into()
        } else {
            refused.join("; ")
        },
    }
}
