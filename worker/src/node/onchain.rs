//! The provider's standing on-chain, made to match its configuration on every start: registered
//! at its endpoint, its model registered and claimed, its bid at the configured price and
//! capacity. Each step reads first and sends only what differs, so a restart with the same
//! configuration sends nothing and a changed price sends one `updateBid`.

use alloy::{
    primitives::{Address, B256, U256},
    signers::{Signer, local::PrivateKeySigner},
};
use morpheus_sdk::contracts::Protocol;
use tracing::info;

use crate::{Error, Result};

/// `ProviderStatus` in `IProviderRegistry`.
const STATUS_NONE: u8 = 0;
const STATUS_ACTIVE: u8 = 1;

/// What the provider's node serves, as the chain must know it.
#[derive(Debug, Clone)]
pub struct Wanted {
    /// The URL registered.
    pub endpoint: String,
    /// MOR wei staked when registering (`None`: the registry's minimum).
    pub stake: Option<U256>,
    /// The model's name.
    pub model_name: String,
    /// Who registered the model (`None`: the provider registers it).
    pub creator: Option<Address>,
    /// The Merkle root of the weights file served.
    pub root: B256,
    /// Its chunk count.
    pub chunk_count: u64,
    /// Its format label (`gguf`).
    pub format: String,
    /// MOR wei per token bid.
    pub price_per_token: U256,
    /// Sessions at once bid.
    pub capacity: u64,
}

/// What the set-up found and did.
#[derive(Debug, Clone)]
pub struct SetUp {
    /// The served model's id.
    pub model_id: B256,
    /// The transactions it sent, in words (empty when everything already matched).
    pub sent: Vec<String>,
}

/// Makes the chain match `wanted` for `signer`, the provider (`protocol` sends as it).
pub async fn set_up(
    protocol: &Protocol,
    signer: &PrivateKeySigner,
    wanted: &Wanted,
) -> Result<SetUp> {
    let me = signer.address();
    if protocol.sender() != Some(me) {
        return Err(Error::Config(format!(
            "the connection does not send as the provider {me}"
        )));
    }
    let registry = protocol.registry();
    let mut sent = Vec::new();

    let record = registry.provider(me).await?;
    match record.status as u8 {
        STATUS_NONE => {
            let stake = match wanted.stake {
                Some(s) => s,
                None => registry.min_stake().await?,
            };
            registry.register(&wanted.endpoint, stake).await?;
            sent.push(format!(
                "registered {me} at {} with {stake} MOR wei staked",
                wanted.endpoint
            ));
        }
        STATUS_ACTIVE if record.endpoint != wanted.endpoint => {
            registry.update_endpoint(&wanted.endpoint).await?;
            sent.push(format!(
                "moved the endpoint from {} to {}",
                record.endpoint, wanted.endpoint
            ));
        }
        STATUS_ACTIVE => {}
        _ => {
            return Err(Error::Config(format!(
                "provider {me} is deregistered on-chain (stake unlocking at {}): withdraw it \
                 (`morpheus-worker withdraw`) and use a new key to provide again",
                record.unlockAt
            )));
        }
    }

    let creator = wanted.creator.unwrap_or(me);
    let model_id = registry
        .compute_model_id(creator, wanted.root, &wanted.model_name)
        .await?;
    // The registry reverts for an id it does not know.
    let known = match registry.model(model_id).await {
        Ok(m) => m.merkleRoot != B256::ZERO,
        Err(morpheus_sdk::Error::Reverted(_)) => false,
        Err(e) => return Err(e.into()),
    };
    if !known {
        // A bid on a model of this name with another root: the file is not the one bid for.
        for bid in registry.bids_of_provider(me, 0, 100).await? {
            let other = registry.model(bid.modelId).await?;
            if other.name == wanted.model_name && other.merkleRoot != wanted.root {
                return Err(Error::Config(format!(
                    "model.dir: the weights file's root {} differs from the registered model {:?} \
                     ({}, root {}) this provider bids on; serve that file, or delete the bid \
                     (`morpheus-worker bid delete`) to serve this one",
                    wanted.root, wanted.model_name, bid.modelId, other.merkleRoot
                )));
            }
        }
        if creator != me {
            return Err(Error::Config(format!(
                "model: {creator} registered no model {:?} with this file's root {}: the file \
                 differs from the registered one",
                wanted.model_name, wanted.root
            )));
        }
        registry
            .register_model(
                wanted.root,
                wanted.chunk_count,
                &wanted.format,
                &wanted.model_name,
            )
            .await?;
        sent.push(format!(
            "registered model {:?} ({model_id})",
            wanted.model_name
        ));
    }

    if !registry.has_model_claim(me, model_id).await? {
        let signer = signer
            .clone()
            .with_chain_id(Some(protocol.deployment().chain_id));
        let claim = registry.sign_model_claim(model_id, &signer).await?;
        registry.claim_model(me, model_id, claim).await?;
        sent.push(format!("claimed model {model_id}"));
    }

    let bid = registry.bid(me, model_id).await?;
    let capacity = U256::from(wanted.capacity);
    if bid.capacity.is_zero() {
        registry
            .post_bid(model_id, wanted.price_per_token, capacity)
            .await?;
        sent.push(format!(
            "bid {} MOR wei per token for {} sessions",
            wanted.price_per_token, wanted.capacity
        ));
    } else if bid.pricePerToken != wanted.price_per_token || bid.capacity != capacity {
        registry
            .update_bid(model_id, wanted.price_per_token, capacity)
            .await?;
        sent.push(format!(
            "updated the bid from {} to {} MOR wei per token, {} to {} sessions",
            bid.pricePerToken, wanted.price_per_token, bid.capacity, wanted.capacity
        ));
    }
    for s in &sent {
        info!(target: "worker::node", "{s}");
    }
    Ok(SetUp { model_id, sent })
}
