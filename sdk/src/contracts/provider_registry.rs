use alloy::{
    contract::{CallBuilder, CallDecoder},
    eips::BlockId,
    primitives::{Address, B256, FixedBytes, U256},
    providers::DynProvider,
    rpc::types::TransactionReceipt,
    signers::SignerSync,
    sol_types::SolStruct,
};

pub use super::bindings::provider_registry::IProviderRegistry::{
    Bid, Model, Provider as ProviderRecord,
};
use super::{
    MorClient,
    bindings::provider_registry::ProviderRegistry::{self, ProviderRegistryInstance},
    call::{send, view},
};
use crate::{
    Error, Result,
    merkle::ChunkProof,
    messages::{ModelClaim, registry_domain},
};

/// The format label of a GGUF weights file, as models are published for llama.cpp and its kin.
pub const GGUF: &str = "gguf";

/// A model's weights format as the registry stores it: `label` left-aligned in 16 bytes, zero
/// padded. The label must be 1..16 bytes of `a-z`, `0-9`, the rule `registerModel` enforces
/// (`ProviderRegistryInvalidFormat`), so one format has one spelling on-chain.
pub fn model_format(label: &str) -> Result<FixedBytes<16>> {
    let bytes = label.as_bytes();
    if bytes.is_empty()
        || bytes.len() > 16
        || !bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    {
        return Err(Error::Mismatch {
            field: "model format",
            expected: "1..16 bytes of a-z, 0-9".into(),
            actual: format!("{label:?}"),
        });
    }
    let mut word = FixedBytes::<16>::ZERO;
    word[..bytes.len()].copy_from_slice(bytes);
    Ok(word)
}

/// The label of a format as the registry stores it ([`Model::format`]): the bytes before the
/// first zero, as text (a registered format is always ASCII).
pub fn format_label(format: &FixedBytes<16>) -> String {
    let end = format.iter().position(|&b| b == 0).unwrap_or(16);
    String::from_utf8_lossy(&format[..end]).into_owned()
}

/// Client of `ProviderRegistry`: providers, the whitelist, models, model claims and bids.
#[derive(Debug, Clone)]
pub struct ProviderRegistryClient {
    contract: ProviderRegistryInstance<DynProvider>,
    mor: MorClient,
    /// The block every read is made at ([`at`](Self::at)); `None`: the latest.
    block: Option<BlockId>,
}

impl ProviderRegistryClient {
    /// The registry at `address`; `mor` pays the stake.
    pub fn new(address: Address, provider: DynProvider, mor: MorClient) -> Self {
        Self {
            contract: ProviderRegistry::new(address, provider),
            mor,
            block: None,
        }
    }

    /// This client with every read made at `block` (an indexer reading the state of the block
    /// it indexed, however far the chain has moved on); transactions are unaffected.
    pub fn at(&self, block: BlockId) -> Self {
        Self {
            block: Some(block),
            ..self.clone()
        }
    }

    /// Runs a read-only call at this client's block.
    async fn read<D: CallDecoder>(
        &self,
        call: CallBuilder<&DynProvider, D>,
    ) -> Result<D::CallOutput> {
        match self.block {
            Some(block) => view(call.block(block)).await,
            None => view(call).await,
        }
    }

    /// The registry's address.
    pub fn address(&self) -> Address {
        *self.contract.address()
    }

    // --- providers ---------------------------------------------------------------------------

    /// Registers the sender as a provider at `endpoint`, locking `stake` MOR (approved here).
    pub async fn register(&self, endpoint: &str, stake: U256) -> Result<TransactionReceipt> {
        self.mor.ensure_allowance(self.address(), stake).await?;
        send(self.contract.register(endpoint.to_string(), stake)).await
    }

    /// Moves the sender's endpoint.
    pub async fn update_endpoint(&self, endpoint: &str) -> Result<TransactionReceipt> {
        send(self.contract.updateEndpoint(endpoint.to_string())).await
    }

    /// Deregisters the sender (no active bids allowed); the stake unlocks after the cooldown.
    pub async fn deregister(&self) -> Result<TransactionReceipt> {
        send(self.contract.deregister()).await
    }

    /// Withdraws the sender's stake after deregistration and cooldown.
    pub async fn withdraw_stake(&self) -> Result<TransactionReceipt> {
        send(self.contract.withdrawStake()).await
    }

    /// A provider's record (zeroed when unknown).
    pub async fn provider(&self, provider: Address) -> Result<ProviderRecord> {
        self.read(self.contract.getProvider(provider)).await
    }

    /// Providers in registration order, `limit` from `offset`.
    pub async fn providers(&self, offset: u64, limit: u64) -> Result<Vec<ProviderRecord>> {
        self.read(
            self.contract
                .getProviders(U256::from(offset), U256::from(limit)),
        )
        .await
    }

    /// Number of providers ever registered.
    pub async fn provider_count(&self) -> Result<U256> {
        self.read(self.contract.providerCount()).await
    }

    /// Least stake a provider must lock.
    pub async fn min_stake(&self) -> Result<U256> {
        self.read(self.contract.minStake()).await
    }

    // --- whitelist ---------------------------------------------------------------------------

    /// Whether the temporary whitelist is still on.
    pub async fn whitelist_active(&self) -> Result<bool> {
        self.read(self.contract.whitelistActive()).await
    }

    /// Whether `provider` is whitelisted.
    pub async fn is_whitelisted(&self, provider: Address) -> Result<bool> {
        self.read(self.contract.isWhitelisted(provider)).await
    }

    /// Adds `provider` to the whitelist (owner only).
    pub async fn add_to_whitelist(&self, provider: Address) -> Result<TransactionReceipt> {
        send(self.contract.addToWhitelist(provider)).await
    }

    /// Removes `provider` from the whitelist (owner only).
    pub async fn remove_from_whitelist(&self, provider: Address) -> Result<TransactionReceipt> {
        send(self.contract.removeFromWhitelist(provider)).await
    }

    /// Switches the whitelist off for good (owner only).
    pub async fn disable_whitelist(&self) -> Result<TransactionReceipt> {
        send(self.contract.disableWhitelist()).await
    }

    // --- models ------------------------------------------------------------------------------

    /// The id `creator` gets for a model (front-running cannot take it: the creator is in it).
    pub async fn compute_model_id(&self, creator: Address, root: B256, name: &str) -> Result<B256> {
        self.read(
            self.contract
                .computeModelId(creator, root, name.to_string()),
        )
        .await
    }

    /// Registers a model by its weights file's Merkle root, chunk count and format (a label such
    /// as [`GGUF`], checked here as the contract does: [`model_format`]); returns its id.
    pub async fn register_model(
        &self,
        root: B256,
        chunk_count: u64,
        format: &str,
        name: &str,
    ) -> Result<B256> {
        let receipt = send(self.contract.registerModel(
            root,
            U256::from(chunk_count),
            model_format(format)?,
            name.to_string(),
        ))
        .await?;
        let creator = receipt.from;
        self.compute_model_id(creator, root, name).await
    }

    /// A model; an unknown id reverts with `ProviderRegistryUnknownModel`.
    pub async fn model(&self, model_id: B256) -> Result<Model> {
        self.read(self.contract.getModel(model_id)).await
    }

    /// Models in registration order, `limit` from `offset`.
    pub async fn models(&self, offset: u64, limit: u64) -> Result<Vec<Model>> {
        self.read(
            self.contract
                .getModels(U256::from(offset), U256::from(limit)),
        )
        .await
    }

    /// Checks a chunk proof against the model's registered root, on-chain.
    pub async fn verify_model_chunk(&self, model_id: B256, proof: &ChunkProof) -> Result<bool> {
        self.read(self.contract.verifyModelChunk(
            model_id,
            U256::from(proof.index),
            proof.leaf,
            proof.siblings.clone(),
        ))
        .await
    }

    /// Signs the provider's claim to hold `model_id` (the seed's "sign the model hash").
    pub async fn sign_model_claim(
        &self,
        model_id: B256,
        provider: &(impl SignerSync + alloy::signers::Signer),
    ) -> Result<alloy::primitives::Bytes> {
        let model = self.model(model_id).await?;
        if model.merkleRoot == B256::ZERO {
            return Err(Error::ModelProof(format!(
                "model {model_id} is not registered"
            )));
        }
        let chain_id = provider
            .chain_id()
            .ok_or_else(|| Error::InvalidSignature("the signer has no chain id set".into()))?;
        let claim = ModelClaim {
            provider: provider.address(),
            modelId: model_id,
            merkleRoot: model.merkleRoot,
        };
        let hash = claim.eip712_signing_hash(&registry_domain(chain_id, self.address()));
        let sig = provider
            .sign_hash_sync(&hash)
            .map_err(|e| Error::InvalidSignature(e.to_string()))?;
        Ok(sig.as_bytes().to_vec().into())
    }

    /// Records a provider's signed claim to hold `model_id` (anyone may submit it).
    pub async fn claim_model(
        &self,
        provider: Address,
        model_id: B256,
        signature: alloy::primitives::Bytes,
    ) -> Result<TransactionReceipt> {
        send(self.contract.claimModel(provider, model_id, signature)).await
    }

    /// Whether `provider` has claimed `model_id`.
    pub async fn has_model_claim(&self, provider: Address, model_id: B256) -> Result<bool> {
        self.read(self.contract.hasModelClaim(provider, model_id))
            .await
    }

    /// The digest a provider signs to claim `model_id` (for checking off-chain hashing).
    pub async fn hash_model_claim(&self, provider: Address, model_id: B256) -> Result<B256> {
        self.read(self.contract.hashModelClaim(provider, model_id))
            .await
    }

    // --- bids --------------------------------------------------------------------------------

    /// Offers to serve `model_id` at `price_per_token` MOR (wei) for `capacity` concurrent sessions.
    pub async fn post_bid(
        &self,
        model_id: B256,
        price_per_token: U256,
        capacity: U256,
    ) -> Result<TransactionReceipt> {
        send(self.contract.postBid(model_id, price_per_token, capacity)).await
    }

    /// Changes the sender's bid for `model_id`.
    pub async fn update_bid(
        &self,
        model_id: B256,
        price_per_token: U256,
        capacity: U256,
    ) -> Result<TransactionReceipt> {
        send(self.contract.updateBid(model_id, price_per_token, capacity)).await
    }

    /// Withdraws the sender's bid for `model_id`.
    pub async fn delete_bid(&self, model_id: B256) -> Result<TransactionReceipt> {
        send(self.contract.deleteBid(model_id)).await
    }

    /// A provider's bid for a model (zeroed when none).
    pub async fn bid(&self, provider: Address, model_id: B256) -> Result<Bid> {
        self.read(self.contract.getBid(provider, model_id)).await
    }

    /// Active bids for a model, `limit` from `offset`.
    pub async fn bids_for_model(
        &self,
        model_id: B256,
        offset: u64,
        limit: u64,
    ) -> Result<Vec<Bid>> {
        self.read(
            self.contract
                .getBidsForModel(model_id, U256::from(offset), U256::from(limit)),
        )
        .await
    }

    /// A provider's active bids, `limit` from `offset`.
    pub async fn bids_of_provider(
        &self,
        provider: Address,
        offset: u64,
        limit: u64,
    ) -> Result<Vec<Bid>> {
        self.read(
            self.contract
                .getBidsOfProvider(provider, U256::from(offset), U256::from(limit)),
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_format_label_is_left_aligned_and_zero_padded() {
        let gguf = model_format(GGUF).expect("a label");
        assert_eq!(&gguf[..4], b"gguf");
        assert!(gguf[4..].iter().all(|&b| b == 0));
        assert_eq!(format_label(&gguf), "gguf");
        let longest = model_format("0123456789abcdef").expect("16 bytes");
        assert_eq!(format_label(&longest), "0123456789abcdef");
    }

    /// The contract's rule, so a refused label never costs a transaction.
    #[test]
    fn labels_the_registry_refuses_are_refused_here() {
        for bad in [
            "",
            "GGUF",
            "gguf ",
            "g\0guf",
            "0123456789abcdefg",
            "safe-tensors",
        ] {
            match model_format(bad) {
                Err(Error::Mismatch { field, actual, .. }) => {
                    assert_eq!(field, "model format");
                    assert_eq!(actual, format!("{bad:?}"));
                }
                other => panic!("{bad:?} was not refused: {other:?}"),
            }
        }
    }
}
