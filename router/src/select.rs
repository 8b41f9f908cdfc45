//! Picking a provider: among registered, whitelisted providers with a model claim, free
//! capacity and a bid within the request's maximum price, good records before bad, then in the
//! request's order ([`candidate_order`]: by default the cheapest, then the best reputation
//! score, then the fastest), then at random. The checks before an assignment (endpoint,
//! liveness, cool-down) are in [`liveness`].

mod endpoint;
mod liveness;

use std::cmp::Ordering;

use alloy::primitives::{Address, B256, U256};
pub(crate) use liveness::Checks;
use morpheus_sdk::{
    contracts::{Bid, Model, ProviderRegistryClient},
    router::{ModelReputation, Order, Preferences, ProviderStats},
};

use crate::{Error, Result, chain_index::ChainIndex, store::Standing};

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
    /// MOR staked in the registry.
    pub(crate) stake: U256,
    pub(crate) record: ProviderStats,
    /// Its reputation for the model.
    pub(crate) reputation: ModelReputation,
    /// Its sessions neither reported nor expired.
    pub(crate) open_sessions: u64,
    /// Why it may not be picked now (not registered, no claim, full); `None` when eligible.
    pub(crate) excluded: Option<String>,
    /// Excluded only for being at its bid's capacity: a place may free up.
    pub(crate) full: bool,
    tiebreak: u64,
}

/// The selection order for a request asking for `order`: eligible first, a good record before
/// a bad one, then
/// - `price` (the default): cheaper, then the higher reputation score, then faster;
/// - `speed`: faster (the median ms per token of recent reports on the model; unmeasured
///   last), then cheaper, then the higher score;
/// - `reputation`: the higher score, then cheaper, then faster;
///
/// then at random.
pub(crate) fn candidate_order(order: Order, a: &Candidate, b: &Candidate) -> Ordering {
    let speed = |c: &Candidate| c.reputation.ms_per_token.unwrap_or(f64::INFINITY);
    let by_price = a.price_per_token.cmp(&b.price_per_token);
    let by_speed = speed(a).total_cmp(&speed(b));
    // Higher first.
    let by_score = b.reputation.score.total_cmp(&a.reputation.score);
    let asked = match order {
        Order::Price => by_price.then(by_score).then(by_speed),
        Order::Speed => by_speed.then(by_price).then(by_score),
        Order::Reputation => by_score.then(by_price).then(by_speed),
    };
    a.excluded
        .is_some()
        .cmp(&b.excluded.is_some())
        .then(a.record.bad_record.cmp(&b.record.bad_record))
        .then(asked)
        .then(a.tiebreak.cmp(&b.tiebreak))
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

/// The bidders for `model_id` with their standing in the router's store, in the selection
/// order `preferences` ask for; a bid above their maximum price is excluded. The registry's
/// facts come from the chain index.
pub(crate) fn candidates(
    registry: &ChainIndex,
    model_id: B256,
    bids: impl IntoIterator<Item = (Bid, Standing)>,
    preferences: &Preferences,
) -> Vec<Candidate> {
    let whitelist_on = registry.whitelist_active();
    let mut out = Vec::new();
    for (bid, standing) in bids {
        let info = registry.provider(bid.provider);
        let whitelisted = !whitelist_on || registry.is_whitelisted(bid.provider);
        let claimed = registry.has_model_claim(bid.provider, model_id);
        let open = standing.open_sessions;
        let ineligible = if preferences.exclude.contains(&bid.provider) {
            Some("excluded by the request".to_string())
        } else if let Some(max) = preferences
            .max_price_per_token
            .filter(|max| bid.pricePerToken > *max)
        {
            Some(format!(
                "bid {} MOR wei per token, above the request's maximum {max}",
                bid.pricePerToken
            ))
        } else if info.status != STATUS_ACTIVE {
            Some("not a registered provider".to_string())
        } else if !whitelisted {
            Some("not whitelisted".to_string())
        } else if !claimed {
            Some("no model claim".to_string())
        } else {
            None
        };
        let full = ineligible.is_none() && U256::from(open) >= bid.capacity;
        let excluded = ineligible.or_else(|| full.then(|| full_reason(open, bid.capacity)));
        out.push(Candidate {
            provider: bid.provider,
            endpoint: info.endpoint,
            price_per_token: bid.pricePerToken,
            capacity: bid.capacity,
            stake: info.stake,
            record: standing.record,
            reputation: standing.reputation,
            open_sessions: open,
            full,
            excluded,
            tiebreak: rand::random(),
        });
    }
    out.sort_by(|a, b| candidate_order(preferences.order, a, b));
    out
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

#[cfg(test)]
mod tests {
    use super::*;

    fn candidate(
        n: u8,
        price: u64,
        ms_per_token: Option<f64>,
        completed: u64,
        failed: u64,
    ) -> Candidate {
        Candidate {
            provider: Address::repeat_byte(n),
            endpoint: String::new(),
            price_per_token: U256::from(price),
            capacity: U256::from(1),
            stake: U256::ZERO,
            record: ProviderStats::default(),
            reputation: ModelReputation {
                completed,
                failed,
                ms_per_token,
                score: crate::reputation::reputation_score(completed, failed),
                ..Default::default()
            },
            open_sessions: 0,
            excluded: None,
            full: false,
            tiebreak: u64::from(n),
        }
    }

    fn picked(order: Order, mut candidates: Vec<Candidate>) -> Vec<u8> {
        candidates.sort_by(|a, b| candidate_order(order, a, b));
        candidates.iter().map(|c| c.provider.0[0]).collect()
    }

    /// 1: cheap, slow, middling; 2: dear, fast, untried; 3: middle price, middle speed, proven.
    fn three() -> Vec<Candidate> {
        vec![
            candidate(1, 10, Some(50.0), 5, 7),
            candidate(2, 30, Some(5.0), 0, 0),
            candidate(3, 20, Some(20.0), 40, 0),
        ]
    }

    #[test]
    fn each_order_puts_its_own_measure_first() {
        assert_eq!(picked(Order::Price, three()), vec![1, 3, 2]);
        assert_eq!(picked(Order::Speed, three()), vec![2, 3, 1]);
        assert_eq!(picked(Order::Reputation, three()), vec![3, 2, 1]);
    }

    #[test]
    fn at_one_price_the_better_reputation_goes_first_then_the_faster() {
        let same_price = vec![
            candidate(1, 10, Some(5.0), 1, 3),
            candidate(2, 10, Some(50.0), 9, 1),
            candidate(3, 10, Some(1.0), 9, 1),
        ];
        assert_eq!(picked(Order::Price, same_price), vec![3, 2, 1]);
    }

    #[test]
    fn unmeasured_speed_goes_last_and_records_and_exclusions_come_first() {
        let mut bad = candidate(1, 1, Some(1.0), 0, 0);
        bad.record.bad_record = true;
        let mut excluded = candidate(2, 1, Some(1.0), 0, 0);
        excluded.excluded = Some("full".into());
        let unmeasured = candidate(3, 5, None, 0, 0);
        let measured = candidate(4, 9, Some(100.0), 0, 0);
        for order in [Order::Price, Order::Speed, Order::Reputation] {
            let got = picked(
                order,
                vec![
                    excluded.clone(),
                    bad.clone(),
                    unmeasured.clone(),
                    measured.clone(),
                ],
            );
            assert_eq!(
                &got[2..],
                &[1, 2],
                "{order:?}: the bad record, then the excluded, last"
            );
        }
        assert_eq!(
            picked(Order::Speed, vec![unmeasured.clone(), measured.clone()]),
            vec![4, 3]
        );
    }
}
